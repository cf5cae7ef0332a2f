//! A contact's consent history in the dashboard: the newest records on its
//! page, in the reader's words, older ones a page at a time, the client of a
//! public page's change shown beside its record.

use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{spawn_with, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contacts_consent_history_shows_each_change_newest_first_with_older_pages() {
    let Some(b) = Browser::start("consent-history").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key) = app.verified_tenant("Acme", "mail.acme.example").await;
    let news = app
        .post(&format!("/customers/{t}/topics"), &key, json!({ "name": "Product news", "default": "opt_out" }))
        .await;
    let news = news.body["id"].as_str().unwrap().to_owned();
    let ada = app.add_contact(&t, &key, json!({ "email": "ada@example.com" })).await;

    // The recipient leaves the topic in the preference centre, from this browser.
    let sent = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "Hi", "html": "<p>Hi</p>" })).await;
    let campaign = sent.body["campaign_id"].as_str().unwrap().to_owned();
    let messages = app.get(&format!("/customers/{t}/campaigns/{campaign}/messages"), &key).await;
    let url = url::Url::parse(messages.body[0]["preferences_url"].as_str().unwrap()).unwrap();
    b.open(url.path()).await;
    b.click(&format!("input[name=topic][value='{news}']")).await;
    b.click("button[type=submit]").await;
    b.wait_text(".saved", "Saved.").await;

    b.sign_in(&key).await;
    b.open(&format!("/ui/t/{t}/contacts/{ada}")).await;
    b.wait_title("ada@example.com").await;
    let history = b.text("#consent-history ~ .table-wrap").await;
    assert!(history.contains("Unsubscribed from topic"), "{history}");
    assert!(history.contains("Product news") && history.contains("Preference centre"), "{history}");
    assert!(history.contains("127.0.0.1") && history.contains("Chrome"), "the client: {history}");
    assert!(history.contains("Added") && history.contains("API"), "{history}");
    let order = b.js_value("return [...document.querySelectorAll('.consent-history tbody tr')].length;").await;
    assert_eq!(order, json!(2));
    assert!(history.find("Unsubscribed from topic") < history.find("Added"), "newest first: {history}");
    assert!(!history.contains("topic_unsubscribed") && !history.contains("preference_centre"), "{history}");
    b.check_page("consent-history").await;
    b.js_value("document.getElementById('consent-history').scrollIntoView(); return null;").await;
    b.photograph("section-desktop").await;

    // Ten more changes: the page shows the newest ten and leads to the rest.
    for i in 0..10 {
        let state = if i % 2 == 0 { "subscribed" } else { "unsubscribed" };
        let r = app
            .patch(
                &format!("/customers/{t}/contacts/{ada}/topics"),
                &key,
                json!({ "topics": [{ "id": news, "state": state }] }),
            )
            .await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    b.open(&format!("/ui/t/{t}/contacts/{ada}")).await;
    b.wait_title("ada@example.com").await;
    let rows = b.js_value("return [...document.querySelectorAll('.consent-history tbody tr')].length;").await;
    assert_eq!(rows, json!(10));
    let newest = b.text("#consent-history ~ .table-wrap").await;
    assert!(!newest.contains("Preference centre"), "{newest}");
    b.click("#older-consent").await;
    b.wait_title("Consent history of ada@example.com").await;
    let older = b.text(".consent-history").await;
    assert!(older.contains("Preference centre") && older.contains("Added"), "{older}");
    let rows = b.js_value("return [...document.querySelectorAll('.consent-history tbody tr')].length;").await;
    assert_eq!(rows, json!(2));
    assert!(b.js_value("return document.querySelector('#older-consent') === null;").await == json!(true));
    b.check_page("consent-history-older").await;

    // Another tenant's contact has no history here.
    let (other, other_key) = app.verified_tenant("Other", "mail.other.example").await;
    let theirs = app.add_contact(&other, &other_key, json!({ "email": "eve@example.com" })).await;
    assert_eq!(b.status_of(&format!("/ui/t/{t}/contacts/{theirs}/consent")).await, 404);
    b.finish().await;
}
