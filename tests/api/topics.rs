//! Topics: CRUD with its hostile cases, each contact's choice per topic,
//! tenant isolation.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{spawn_app, TestApp};

mod automation_sends;
mod import;
mod one_click;
mod preferences;
mod sends;

pub(super) async fn topic(app: &TestApp, t: &str, key: &str, body: Value) -> String {
    let r = app.post(&format!("/customers/{t}/topics"), key, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().expect("id").to_owned()
}

/// The contact's topics as `(name, state, is_default)`, in creation order.
pub(super) async fn standing(app: &TestApp, t: &str, key: &str, contact: &str) -> Vec<(String, String, bool)> {
    let r = app.get(&format!("/customers/{t}/contacts/{contact}/topics"), key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
        .as_array()
        .expect("array")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t["state"].as_str().unwrap().to_owned(),
                t["is_default"].as_bool().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_topic_is_created_read_listed_changed_and_deleted() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let r = app
        .post(
            &format!("/customers/{t}/topics"),
            &key,
            json!({ "name": " Newsletter ", "description": "Once a month.\nNo spam.", "default": "opt_out" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["name"], "Newsletter");
    assert_eq!(r.body["description"], "Once a month.\nNo spam.");
    assert_eq!(r.body["default"], "opt_out");
    assert_eq!(r.body["customer_id"], t.as_str());
    let id = r.body["id"].as_str().unwrap().to_owned();
    let plain = topic(&app, &t, &key, json!({ "name": "Product news" })).await;
    let r = app.get(&format!("/customers/{t}/topics/{plain}"), &key).await;
    assert_eq!((r.body["default"].as_str(), r.body["description"].as_str()), (Some("opt_in"), Some("")));

    let r = app.get(&format!("/customers/{t}/topics"), &key).await;
    let names: Vec<&str> = r.body.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Newsletter", "Product news"]);

    let r = app
        .patch(&format!("/customers/{t}/topics/{id}"), &key, json!({ "name": "Letters", "default": "opt_in" }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["name"].as_str(), r.body["default"].as_str()), (Some("Letters"), Some("opt_in")));
    assert_eq!(r.body["description"], "Once a month.\nNo spam.", "absent fields stay");

    assert_eq!(app.delete(&format!("/customers/{t}/topics/{id}"), &key).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/customers/{t}/topics/{id}"), &key).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&format!("/customers/{t}/topics/{id}"), &key).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_topic_list_pages_with_a_link_header() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    for i in 0..5 {
        topic(&app, &t, &key, json!({ "name": format!("Topic {i}") })).await;
    }
    let r = app.get(&format!("/customers/{t}/topics?limit=2"), &key).await;
    assert_eq!(r.body.as_array().unwrap().len(), 2);
    assert!(r.next_page().is_some(), "a next page");
    let all = app.get_all(&format!("/customers/{t}/topics?limit=2"), &key).await;
    let names: Vec<&str> = all.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Topic 0", "Topic 1", "Topic 2", "Topic 3", "Topic 4"]);
    let r = app.get(&format!("/customers/{t}/topics?limit=0"), &key).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.get(&format!("/customers/{t}/topics?after=nope"), &key).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_topic_name_taken_in_any_case_is_a_conflict() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    topic(&app, &t, &key, json!({ "name": "News" })).await;
    let other = topic(&app, &t, &key, json!({ "name": "Offers" })).await;
    let r = app.post(&format!("/customers/{t}/topics"), &key, json!({ "name": "news" })).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "duplicate_topic");
    let r = app.patch(&format!("/customers/{t}/topics/{other}"), &key, json!({ "name": "NEWS" })).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    // Another customer may use the name.
    let (t2, key2) = app.verified_tenant("Other", "other.com").await;
    topic(&app, &t2, &key2, json!({ "name": "News" })).await;
}

#[tokio::test]
async fn bad_topic_input_is_a_clear_422() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let path = format!("/customers/{t}/topics");
    for (body, says) in [
        (json!({ "name": "News", "colour": "red" }), "unknown field `colour`"),
        (json!({ "name": "" }), "must not be empty"),
        (json!({ "name": "   " }), "must not be empty"),
        (json!({ "name": "a\nb" }), "one line"),
        (json!({ "name": "a\u{7f}b" }), "control"),
        (json!({ "name": "a\u{2028}b" }), "control"),
        (json!({ "name": "a\u{0}b" }), "NUL"),
        (json!({ "name": "x".repeat(101) }), "longer than 100"),
        (json!({ "name": "News", "description": "x".repeat(501) }), "longer than 500"),
        (json!({ "name": "News", "description": "a\u{1b}b" }), "control"),
        (json!({ "name": "News", "default": "opt_maybe" }), "unknown variant"),
        (json!({ "name": 5 }), "invalid type"),
        (json!({}), "missing field `name`"),
    ] {
        let r = app.post(&path, &key, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{body}: {message}");
    }
    assert!(app.get(&path, &key).await.body.as_array().unwrap().is_empty(), "nothing was created");
    let id = topic(&app, &t, &key, json!({ "name": "News" })).await;
    let r = app.patch(&format!("{path}/{id}"), &key, json!({ "nme": "x" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = app.patch(&format!("{path}/{id}"), &key, json!({ "name": "a\tb" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
}

#[tokio::test]
async fn an_opt_in_topic_cannot_become_opt_out_but_the_other_way_round_is_fine() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let opt_in = topic(&app, &t, &key, json!({ "name": "News" })).await;
    let r = app.patch(&format!("/customers/{t}/topics/{opt_in}"), &key, json!({ "default": "opt_out" })).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "default_widens");
    let opt_out = topic(&app, &t, &key, json!({ "name": "Offers", "default": "opt_out" })).await;
    let r = app.patch(&format!("/customers/{t}/topics/{opt_out}"), &key, json!({ "default": "opt_in" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn a_contact_stands_at_each_topics_default_until_it_chooses() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(&app, &t, &key, json!({ "name": "News" })).await;
    let offers = topic(&app, &t, &key, json!({ "name": "Offers", "default": "opt_out" })).await;
    let c = app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let s = |n: &str, st: &str, d: bool| (n.to_owned(), st.to_owned(), d);
    assert_eq!(standing(&app, &t, &key, &c).await, [s("News", "unsubscribed", true), s("Offers", "subscribed", true)]);
    let path = format!("/customers/{t}/contacts/{c}/topics");
    let r = app
        .patch(
            &path,
            &key,
            json!({ "topics": [{ "id": news, "state": "subscribed" }, { "id": offers, "state": "unsubscribed" }] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body[0]["state"], "subscribed", "the answer is the contact's topics after the change");
    assert_eq!(
        standing(&app, &t, &key, &c).await,
        [s("News", "subscribed", false), s("Offers", "unsubscribed", false)]
    );
    // PATCH leaves the topics it does not name.
    let r = app.patch(&path, &key, json!({ "topics": [{ "id": news, "state": "default" }] })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        standing(&app, &t, &key, &c).await,
        [s("News", "unsubscribed", true), s("Offers", "unsubscribed", false)]
    );
    // PUT puts every topic it does not name back to its default.
    let r = app
        .request(Method::PUT, &path, Some(&key), Some(json!({ "topics": [{ "id": news, "state": "subscribed" }] })))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(standing(&app, &t, &key, &c).await, [s("News", "subscribed", false), s("Offers", "subscribed", true)]);
    let r = app.request(Method::PUT, &path, Some(&key), Some(json!({ "topics": [] }))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(standing(&app, &t, &key, &c).await, [s("News", "unsubscribed", true), s("Offers", "subscribed", true)]);
}

#[tokio::test]
async fn bad_topic_choices_are_refused_and_change_nothing() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(&app, &t, &key, json!({ "name": "News" })).await;
    let c = app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let path = format!("/customers/{t}/contacts/{c}/topics");
    let unknown = mailroom::domain::new_id();
    for (body, status) in [
        (json!({ "topics": [{ "id": news, "state": "maybe" }] }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "topics": [{ "id": news, "state": "subscribed", "extra": 1 }] }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "topics": [], "more": true }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "topics": [{ "id": "not-an-id", "state": "subscribed" }] }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "topics": [{ "id": "\u{0}", "state": "subscribed" }] }), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({ "topics": [{ "id": news, "state": "subscribed" }, { "id": news, "state": "default" }] }),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({ "topics": [{ "id": news, "state": "subscribed" }, { "id": unknown, "state": "subscribed" }] }),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let r = app.patch(&path, &key, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.body["error"]["message"].is_string(), "{}", r.body);
    }
    assert_eq!(standing(&app, &t, &key, &c).await, [("News".to_owned(), "unsubscribed".to_owned(), true)]);
    let gone = mailroom::domain::new_id();
    let r = app.get(&format!("/customers/{t}/contacts/{gone}/topics"), &key).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn another_customers_topics_and_contacts_are_not_found() {
    let app = spawn_app().await;
    let (a, key_a) = app.verified_tenant("A", "a.com").await;
    let (b, key_b) = app.verified_tenant("B", "b.com").await;
    let topic_a = topic(&app, &a, &key_a, json!({ "name": "News" })).await;
    let contact_a = app.add_contact(&a, &key_a, json!({ "email": "x@example.org" })).await;
    let contact_b = app.add_contact(&b, &key_b, json!({ "email": "y@example.org" })).await;
    // B's key on B's routes, naming A's topic.
    assert_eq!(app.get(&format!("/customers/{b}/topics/{topic_a}"), &key_b).await.status, StatusCode::NOT_FOUND);
    let r = app.patch(&format!("/customers/{b}/topics/{topic_a}"), &key_b, json!({ "name": "Mine" })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&format!("/customers/{b}/topics/{topic_a}"), &key_b).await.status, StatusCode::NOT_FOUND);
    let choice = json!({ "topics": [{ "id": topic_a, "state": "subscribed" }] });
    let r = app.patch(&format!("/customers/{b}/contacts/{contact_b}/topics"), &key_b, choice.clone()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(r.body["error"]["message"], "topic not found");
    // B's key on B's routes, naming A's contact.
    let r = app.get(&format!("/customers/{b}/contacts/{contact_a}/topics"), &key_b).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // B's key on A's routes.
    assert!(app.get(&format!("/customers/{a}/topics"), &key_b).await.status.is_client_error());
    let r = app.patch(&format!("/customers/{a}/contacts/{contact_a}/topics"), &key_b, choice).await;
    assert!(r.status.is_client_error() && r.status != StatusCode::OK);
    assert!(app.get(&format!("/customers/{b}/topics"), &key_b).await.body.as_array().unwrap().is_empty());
    let r = app.get(&format!("/customers/{a}/topics/{topic_a}"), &key_a).await;
    assert_eq!(r.body["name"], "News", "unchanged");
}

#[tokio::test]
async fn deleting_a_topic_or_a_contact_takes_their_choices_with_them() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(&app, &t, &key, json!({ "name": "News" })).await;
    let c = app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let choice = json!({ "topics": [{ "id": news, "state": "subscribed" }] });
    assert_eq!(app.patch(&format!("/customers/{t}/contacts/{c}/topics"), &key, choice).await.status, StatusCode::OK);
    assert_eq!(app.delete(&format!("/customers/{t}/contacts/{c}"), &key).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.delete(&format!("/customers/{t}/topics/{news}"), &key).await.status, StatusCode::NO_CONTENT);
    let c = app.add_contact(&t, &key, json!({ "email": "b@example.org" })).await;
    assert!(standing(&app, &t, &key, &c).await.is_empty());
}

#[tokio::test]
async fn a_contact_is_created_and_changed_with_its_topics() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(&app, &t, &key, json!({ "name": "News" })).await;
    let offers = topic(&app, &t, &key, json!({ "name": "Offers", "default": "opt_out" })).await;
    let c = app
        .add_contact(&t, &key, json!({ "email": "a@example.org", "topics": [{ "id": news, "state": "subscribed" }] }))
        .await;
    let s = |n: &str, st: &str, d: bool| (n.to_owned(), st.to_owned(), d);
    assert_eq!(standing(&app, &t, &key, &c).await, [s("News", "subscribed", false), s("Offers", "subscribed", true)]);
    let r = app
        .patch(
            &format!("/customers/{t}/contacts/{c}"),
            &key,
            json!({ "first_name": "Ann", "topics": [{ "id": offers, "state": "unsubscribed" }] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        standing(&app, &t, &key, &c).await,
        [s("News", "subscribed", false), s("Offers", "unsubscribed", false)],
        "a PATCH changes the topics it names"
    );
}

#[tokio::test]
async fn a_contact_with_an_unknown_or_foreign_topic_is_not_created() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let (other, other_key) = app.verified_tenant("Other", "other.com").await;
    let theirs = topic(&app, &other, &other_key, json!({ "name": "Theirs" })).await;
    for (id, status) in [
        (theirs.clone(), StatusCode::NOT_FOUND),
        (mailroom::domain::new_id(), StatusCode::NOT_FOUND),
        ("x".to_owned(), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let body = json!({ "email": "a@example.org", "topics": [{ "id": id, "state": "subscribed" }] });
        let r = app.post(&format!("/customers/{t}/contacts"), &key, body).await;
        assert_eq!(r.status, status, "{}", r.body);
    }
    assert!(app.get(&format!("/customers/{t}/contacts"), &key).await.body.as_array().unwrap().is_empty());
    let c = app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let body = json!({ "first_name": "Ann", "topics": [{ "id": theirs, "state": "subscribed" }] });
    let r = app.patch(&format!("/customers/{t}/contacts/{c}"), &key, body).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = app.get(&format!("/customers/{t}/contacts/{c}"), &key).await;
    assert!(r.body["first_name"].is_null(), "nothing changed: {}", r.body);
    // A JSON import does not take topics: the request is refused, naming the contact.
    let news = topic(&app, &t, &key, json!({ "name": "News" })).await;
    let body = json!({ "contacts": [{ "email": "b@example.org", "topics": [{ "id": news, "state": "subscribed" }] }] });
    let r = app.post(&format!("/customers/{t}/contacts/import"), &key, body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("contacts[0]"), "{}", r.body);
}
