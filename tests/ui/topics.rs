//! Topics in the dashboard: created, edited and deleted on their pages, a
//! contact's choice set on its page, a campaign composed to a topic whose
//! confirmation counts only those subscribed to it; on a phone, the pages fit.
//! Over plain HTTP: another tenant's topic is not there, deleting needs the
//! session's token, and a refusal comes back on the form with what was typed.

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::json;

use crate::browser::Browser;
use crate::helpers::{spawn_with, Options, TestApp};
use crate::http::signed_in;

/// Selects the option `value` of the `<select>` matching `css`.
async fn choose(b: &Browser, css: &str, value: &str) {
    b.client().find(Locator::Css(css)).await.unwrap().select_by_value(value).await.unwrap();
}

async fn topic(app: &TestApp, t: &str, key: &str, body: serde_json::Value) -> String {
    let r = app.post(&format!("/customers/{t}/topics"), key, body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_is_created_edited_chosen_on_a_contact_page_sent_to_and_deleted() {
    let Some(b) = Browser::start("topics").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key) = app.verified_tenant("Acme", "mail.acme.example").await;
    let ada = app.add_contact(&t, &key, json!({ "email": "ada@example.com", "first_name": "Ada" })).await;
    app.add_contact(&t, &key, json!({ "email": "grace@example.com" })).await;
    app.add_contact(&t, &key, json!({ "email": "linus@example.com" })).await;
    b.sign_in(&key).await;

    // Created from the list: opt-in, so it reaches nobody yet.
    b.open(&format!("/ui/t/{t}/topics")).await;
    b.wait_text("main", "No topics yet").await;
    b.fill("#topic-name", "Product news").await;
    b.fill("#topic-description", "New features, once a month.").await;
    b.click("#topic-create").await;
    b.wait_text(".notice", "Topic created").await;
    b.wait_title("Product news").await;
    assert_eq!(b.text("#topic-reach").await, "0 contacts");
    assert_eq!(b.text("#topic-default-words").await, "Opt-in: only those who say yes");

    // Edited: opt-in cannot become opt-out (the form keeps what was typed), a new name can.
    b.fill("#topic-name", "Product updates").await;
    b.click("#default-opt_out").await;
    b.click("#topic-save").await;
    b.wait_text("#form-error", "An opt-in topic cannot become opt-out").await;
    assert_eq!(b.js_value("return document.querySelector('#topic-name').value;").await, json!("Product updates"));
    b.click("#default-opt_in").await;
    b.click("#topic-save").await;
    b.wait_text(".notice", "Topic saved").await;
    b.wait_title("Product updates").await;
    b.check_page("topic").await;
    b.open(&format!("/ui/t/{t}/topics")).await;
    b.wait_text("#topics", "Product updates").await;
    b.check_page("topics").await;

    // Ada says yes on her page; the others stay at the default.
    b.open(&format!("/ui/t/{t}/contacts/{ada}")).await;
    b.wait_text("#contact-topic-list", "Product updates").await;
    assert!(b.text("#contact-topic-list").await.contains("by default"));
    choose(&b, "#contact-topic-list select", "subscribed").await;
    b.click("#save-topics").await;
    b.wait_text(".notice", "Topic choices saved").await;
    assert!(!b.text("#contact-topic-list").await.contains("by default"));
    b.js_value("document.querySelector('#contact-topics').scrollIntoView(); return true;").await;
    b.check_page("contact-topics").await;

    // A campaign to the topic: the confirmation counts Ada only.
    b.open(&format!("/ui/t/{t}/campaigns/new")).await;
    b.fill("#subject", "What's new").await;
    let topics = app.get(&format!("/customers/{t}/topics"), &key).await;
    choose(&b, "#topic_id", topics.body[0]["id"].as_str().unwrap()).await;
    b.click("form[action$='/campaigns/confirm'] button[type=submit]").await;
    b.wait_text("h1", "Send to 1 recipient?").await;
    assert!(b.text("main dl").await.contains("subscribed to the topic “Product updates”"));
    b.check_page("confirm-topic").await;
    b.click("#confirm-send").await;
    b.wait_text(".notice", "Campaign queued").await;
    app.drain().await;
    let campaigns = app.get(&format!("/customers/{t}/campaigns"), &key).await;
    assert!(campaigns.body[0]["topic_id"].is_string(), "{}", campaigns.body);

    // Deleted after a confirmation.
    b.open(&format!("/ui/t/{t}/topics")).await;
    b.click("#topics a").await;
    b.click("#delete-topic").await;
    b.wait_text("h1", "Delete the topic “Product updates”?").await;
    b.check_page("topic-delete").await;
    b.click("#confirm-delete").await;
    b.wait_text(".notice", "Topic deleted").await;
    assert_eq!(app.get(&format!("/customers/{t}/topics"), &key).await.body, json!([]));
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_phone_the_topic_pages_and_a_contacts_topics_fit_the_screen() {
    let Some(b) = Browser::start_phone("topics-phone").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key) = app.verified_tenant("Acme Newsletters", "mail.acme.example").await;
    let ada = app.add_contact(&t, &key, json!({ "email": "ada.lovelace@example.com" })).await;
    let news = topic(
        &app,
        &t,
        &key,
        json!({ "name": "Product news and announcements, a name that has to wrap",
            "description": "New features and improvements, at most once a month; nothing else.", "default": "opt_out" }),
    )
    .await;
    topic(&app, &t, &key, json!({ "name": "Events", "description": "Meetups near you." })).await;
    b.sign_in(&key).await;
    for (name, path) in [
        ("topics", "/topics".to_owned()),
        ("topic", format!("/topics/{news}")),
        ("topic-delete", format!("/topics/{news}/delete")),
        ("contact", format!("/contacts/{ada}")),
    ] {
        b.open(&format!("/ui/t/{t}{path}")).await;
        b.wait_text("#menu summary", "Menu").await;
        assert_eq!(b.js_value("return innerWidth;").await, json!(390), "not a phone-sized viewport");
        assert!(b.overflow_x().await <= 0, "{name} scrolls sideways on a phone");
        assert_eq!(b.wider_than_viewport().await, json!([]), "{name}: wider than a phone");
        b.check_accessibility(&format!("{name} on a phone")).await;
        if name == "contact" {
            b.js_value("document.querySelector('#contact-topics').scrollIntoView(); return true;").await;
        }
        b.photograph(name).await;
    }
    b.finish().await;
}

#[tokio::test]
async fn another_tenants_topic_is_the_not_found_page() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let (other, other_key) = app.verified_tenant("B", "b.example").await;
    let theirs = topic(&app, &other, &other_key, json!({ "name": "Theirs" })).await;
    let (c, csrf) = signed_in(&app, &key).await;
    for path in [
        format!("/ui/t/{t}/topics/{theirs}"),
        format!("/ui/t/{t}/topics/{theirs}/delete"),
        format!("/ui/t/{other}/topics"),
        format!("/ui/t/{other}/topics/{theirs}"),
        format!("/ui/t/{t}/topics/not-an-id"),
    ] {
        let r = c.get(format!("{}{path}", app.base)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(r.text().await.unwrap().contains("Not found"), "{path}");
    }
    let r = c.post(format!("{}/ui/t/{t}/topics/{theirs}/delete", app.base), &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.post(format!("{}/ui/t/{t}/topics/{theirs}", app.base), &[("csrf", &csrf), ("name", "Mine")]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Nor can a contact's choice name it.
    let ada = app.add_contact(&t, &key, json!({ "email": "ada@example.com" })).await;
    let field = format!("topic:{theirs}");
    let r = c
        .post(format!("{}/ui/t/{t}/contacts/{ada}/topics", app.base), &[("csrf", &csrf), (&field, "subscribed")])
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/customers/{other}/topics/{theirs}"), &other_key).await.body["name"], "Theirs");
}

#[tokio::test]
async fn deleting_a_topic_needs_the_sessions_token() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let id = topic(&app, &t, &key, json!({ "name": "News" })).await;
    let (c, csrf) = signed_in(&app, &key).await;
    let url = format!("{}/ui/t/{t}/topics/{id}/delete", app.base);
    for form in [vec![], vec![("csrf", "not-the-token")]] {
        let r = c.post(url.clone(), &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(app.get(&format!("/customers/{t}/topics/{id}"), &key).await.status, 200, "still there");
    let r = c.post(url, &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get(&format!("/customers/{t}/topics/{id}"), &key).await.status, 404);
}

#[tokio::test]
async fn a_refused_topic_comes_back_on_the_form_with_what_was_typed() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let id = topic(&app, &t, &key, json!({ "name": "News" })).await;
    let (c, csrf) = signed_in(&app, &key).await;
    let list = format!("{}/ui/t/{t}/topics", app.base);
    let form = [("csrf", csrf.as_str()), ("name", "news"), ("description", "Kept <here>"), ("default", "opt_out")];
    let r = c.post(list.clone(), &form).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let page = r.text().await.unwrap();
    assert!(page.contains("A topic named “news” already exists."), "{page}");
    assert!(page.contains(">Kept &lt;here&gt;</textarea>") && page.contains("value=\"opt_out\" checked"), "{page}");
    // A default that is not one of the two, a NUL in the name: refused, never a 500.
    for (name, default) in [("Other", "everyone"), ("Bad\0name", "opt_in")] {
        let r = c.post(list.clone(), &[("csrf", &csrf), ("name", name), ("default", default)]).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{name:?} {default:?}");
        assert!(r.text().await.unwrap().contains("id=\"form-error\""));
    }
    // Opt-in cannot become opt-out: the message on the form, the name as typed.
    let edit = format!("{list}/{id}");
    let r = c.post(edit, &[("csrf", &csrf), ("name", "Newsletter"), ("default", "opt_out")]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let page = r.text().await.unwrap();
    assert!(page.contains("An opt-in topic cannot become opt-out"), "{page}");
    assert!(page.contains("value=\"Newsletter\""));
    let kept = app.get(&format!("/customers/{t}/topics/{id}"), &key).await;
    assert_eq!((kept.body["name"].as_str(), kept.body["default"].as_str()), (Some("News"), Some("opt_in")));
    // A contact's choice that is not one of the three is refused.
    let ada = app.add_contact(&t, &key, json!({ "email": "ada@example.com" })).await;
    let field = format!("topic:{id}");
    let r = c.post(format!("{}/ui/t/{t}/contacts/{ada}/topics", app.base), &[("csrf", &csrf), (&field, "maybe")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn compose_opens_with_the_topic_chosen_and_refuses_another_tenants_topic() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let (other, other_key) = app.verified_tenant("B", "b.example").await;
    app.add_contact(&t, &key, json!({ "email": "ada@example.com" })).await;
    let ours = topic(&app, &t, &key, json!({ "name": "News", "default": "opt_out" })).await;
    let theirs = topic(&app, &other, &other_key, json!({ "name": "Theirs", "default": "opt_out" })).await;
    let (c, csrf) = signed_in(&app, &key).await;
    let page = c.get(format!("{}/ui/t/{t}/campaigns/new?topic={ours}", app.base)).await.text().await.unwrap();
    assert!(page.contains(&format!("value=\"{ours}\" selected")), "{page}");
    let page = c.get(format!("{}/ui/t/{t}/campaigns/new?topic={theirs}", app.base)).await.text().await.unwrap();
    assert!(!page.contains(&theirs) && !page.contains("Theirs"), "another tenant's topic is not offered");
    let form = |topic: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("content", "inline".to_owned()),
            ("subject", "S".to_owned()),
            ("html", "<p>H</p>".to_owned()),
            ("audience", "all".to_owned()),
            ("topic_id", topic.to_owned()),
        ]
    };
    for url in ["campaigns/confirm", "campaigns"] {
        let f = form(&theirs);
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = c.post(format!("{}/ui/t/{t}/{url}", app.base), &f).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{url}");
    }
    assert_eq!(app.get(&format!("/customers/{t}/campaigns"), &key).await.body, json!([]), "nothing was sent");
    let f = form(&ours);
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = c.post(format!("{}/ui/t/{t}/campaigns/confirm", app.base), &f).await;
    assert_eq!(r.status(), StatusCode::OK);
    let page = r.text().await.unwrap();
    assert!(page.contains("Send to 1 recipient?") && page.contains("subscribed to the topic “News”"), "{page}");
    assert!(page.contains(&format!("name=\"topic_id\" value=\"{ours}\"")), "the send carries the topic on");
}
