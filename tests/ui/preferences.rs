//! The preference centre (`/p/{token}`) in a real browser: on a phone, a
//! recipient unticks a topic, saves, and sees "Saved"; nothing scrolls sideways.

use serde_json::{json, Value};

use crate::browser::Browser;
use crate::helpers::{spawn_with, Options, TestApp};

async fn topic(app: &TestApp, t: &str, key: &str, body: Value) -> String {
    let r = app.post(&format!("/customers/{t}/topics"), key, body).await;
    r.body["id"].as_str().expect("a topic").to_owned()
}

/// A tenant with topics, a contact and a campaign: the path of that
/// contact's preference centre.
async fn preference_centre(app: &TestApp) -> (String, String, String, String) {
    let (t, key) = app.verified_tenant("Acme Newsletters", "mail.acme.example").await;
    let news = topic(app, &t, &key, json!({ "name": "Product news", "description": "What we built this month, once a month.", "default": "opt_out" })).await;
    topic(app, &t, &key, json!({ "name": "Offers and discounts for subscribers in Europe", "description": "Now and then, never more than once a week.", "default": "opt_in" })).await;
    topic(app, &t, &key, json!({ "name": "Events", "default": "opt_out" })).await;
    let contact = app.add_contact(&t, &key, json!({ "email": "ada@example.com", "first_name": "Ada" })).await;
    let sent = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "Hi", "html": "<p>Hi</p>" })).await;
    let campaign = sent.body["campaign_id"].as_str().expect("a campaign").to_owned();
    let messages = app.get(&format!("/customers/{t}/campaigns/{campaign}/messages"), &key).await;
    let url = messages.body[0]["preferences_url"].as_str().expect("a preferences_url").to_owned();
    let path = url::Url::parse(&url).expect("a URL").path().to_owned();
    (t, key, contact, format!("{path}#{news}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_a_recipient_unticks_a_topic_saves_and_sees_saved() {
    let Some(b) = Browser::start_phone("preferences").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key, contact, path) = preference_centre(&app).await;
    let (path, news) = path.split_once('#').expect("path and topic");
    b.open(path).await;
    b.wait_text("h1", "Email preferences").await;
    assert_eq!(b.js_value("return innerWidth;").await, json!(390), "not a phone-sized viewport");
    assert_eq!(b.overflow_x().await, 0, "scrolls sideways: {}", b.wider_than_viewport().await);
    b.check_accessibility("preferences").await;
    b.photograph("phone").await;

    b.click(&format!("input[name=topic][value='{news}']")).await;
    b.click("button[type=submit]").await;
    b.wait_text(".saved", "Saved.").await;
    assert_eq!(b.overflow_x().await, 0, "scrolls sideways: {}", b.wider_than_viewport().await);
    b.check_accessibility("preferences-saved").await;
    b.photograph("phone-saved").await;
    let topics = app.get(&format!("/customers/{t}/contacts/{contact}/topics"), &key).await;
    assert_eq!(topics.body[0]["state"], "unsubscribed", "{}", topics.body);
    assert_eq!(topics.body[2]["state"], "subscribed", "{}", topics.body);
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preference_centre_reads_well_on_a_desktop() {
    let Some(b) = Browser::start("preferences").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (_, _, _, path) = preference_centre(&app).await;
    let (path, _) = path.split_once('#').expect("path and topic");
    b.open(path).await;
    b.wait_text("h1", "Email preferences").await;
    b.check_page("page").await;
    b.finish().await;
}
