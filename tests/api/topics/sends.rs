//! Campaigns that target a topic: who they reach, the audience count, and
//! the topic checked again when each email is claimed.

use mailroom::outbox::Step;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::topic;
use crate::helpers::{spawn_with, Options, TestApp};

fn steppable() -> Options {
    Options { resend: true, run_worker: false, ..Options::default() }
}

/// Sends everything due and answers who got mail, sorted.
async fn recipients(app: &TestApp) -> Vec<String> {
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    let mut to: Vec<String> = app.mock().accepted().into_iter().flat_map(|e| e.to).collect();
    to.sort();
    to
}

async fn choose(app: &TestApp, t: &str, key: &str, contact: &str, topic: &str, state: &str) {
    let body = json!({ "topics": [{ "id": topic, "state": state }] });
    let r = app.patch(&format!("/customers/{t}/contacts/{contact}/topics"), key, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn send(app: &TestApp, t: &str, key: &str, extra: Value) -> reqwest::StatusCode {
    let mut body = json!({ "subject": "s", "html": "<p>h</p>" });
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    app.post(&format!("/customers/{t}/send"), key, body).await.status
}

/// A customer with an `opt_in` topic "News" and an `opt_out` topic "Offers",
/// and four contacts: `a` chose News (and is tagged vip), `b` left Offers,
/// `c` chose News but unsubscribed from everything, `d` chose nothing.
struct Fixture {
    t: String,
    key: String,
    news: String,
    offers: String,
    ids: Vec<String>,
}

async fn fixture(app: &TestApp) -> Fixture {
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(app, &t, &key, json!({ "name": "News" })).await;
    let offers = topic(app, &t, &key, json!({ "name": "Offers", "default": "opt_out" })).await;
    let mut ids = Vec::new();
    for (name, tags) in [("a", json!(["vip"])), ("b", json!([])), ("c", json!([])), ("d", json!([]))] {
        ids.push(app.add_contact(&t, &key, json!({ "email": format!("{name}@example.org"), "tags": tags })).await);
    }
    choose(app, &t, &key, &ids[0], &news, "subscribed").await;
    choose(app, &t, &key, &ids[1], &offers, "unsubscribed").await;
    choose(app, &t, &key, &ids[2], &news, "subscribed").await;
    let r = app.patch(&format!("/customers/{t}/contacts/{}", ids[2]), &key, json!({ "is_subscribed": false })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    Fixture { t, key, news, offers, ids }
}

#[tokio::test]
async fn an_opt_in_topic_campaign_reaches_only_those_who_chose_it() {
    let app = spawn_with(steppable()).await;
    let f = fixture(&app).await;
    let r = app
        .post(&format!("/customers/{}/send", f.t), &f.key, json!({ "subject": "s", "html": "h", "topic_id": f.news }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["sent_to"], 1);
    let campaign = r.body["campaign_id"].as_str().unwrap();
    let c = app.get(&format!("/customers/{}/campaigns/{campaign}", f.t), &f.key).await;
    assert_eq!(c.body["topic_id"], f.news.as_str(), "the campaign shows its topic");
    assert_eq!(recipients(&app).await, ["a@example.org"]);
}

#[tokio::test]
async fn an_opt_out_topic_campaign_reaches_everyone_who_did_not_leave_it() {
    let app = spawn_with(steppable()).await;
    let f = fixture(&app).await;
    assert_eq!(send(&app, &f.t, &f.key, json!({ "topic_id": f.offers })).await, StatusCode::ACCEPTED);
    assert_eq!(recipients(&app).await, ["a@example.org", "d@example.org"]);
}

#[tokio::test]
async fn a_topic_and_a_tag_must_both_hold() {
    let app = spawn_with(steppable()).await;
    let f = fixture(&app).await;
    assert_eq!(send(&app, &f.t, &f.key, json!({ "topic_id": f.offers, "tag": "vip" })).await, StatusCode::ACCEPTED);
    assert_eq!(recipients(&app).await, ["a@example.org"]);
    let filter = json!({ "attribute": "plan", "op": "exists" });
    let r = app
        .post(
            &format!("/customers/{}/send", f.t),
            &f.key,
            json!({ "subject": "s", "html": "h", "topic_id": f.news, "filter": filter }),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "nobody matches both: {}", r.body);
    assert_eq!(r.body["error"]["code"], "no_recipients");
}

#[tokio::test]
async fn the_audience_count_knows_topics_and_agrees_with_the_send() {
    let app = spawn_with(steppable()).await;
    let f = fixture(&app).await;
    let count = |q: String| {
        let app = &app;
        let f = &f;
        async move {
            let r = app.get(&format!("/customers/{}/audience{q}", f.t), &f.key).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.body["count"].as_i64().unwrap()
        }
    };
    assert_eq!(count(String::new()).await, 3, "everyone subscribed");
    assert_eq!(count(format!("?topic_id={}", f.news)).await, 1);
    assert_eq!(count(format!("?topic_id={}", f.offers)).await, 2);
    assert_eq!(count(format!("?topic_id={}&tag=vip", f.offers)).await, 1);
    let r = app.post(&format!("/customers/{}/audience", f.t), &f.key, json!({ "topic_id": f.offers })).await;
    assert_eq!(r.body["count"], 2, "{}", r.body);
    let r = app
        .post(
            &format!("/customers/{}/audience", f.t),
            &f.key,
            json!({ "topic_id": f.news, "filter": { "tag": "vip" } }),
        )
        .await;
    assert_eq!(r.body["count"], 1, "{}", r.body);
    let r = app
        .post(&format!("/customers/{}/send", f.t), &f.key, json!({ "subject": "s", "html": "h", "topic_id": f.offers }))
        .await;
    assert_eq!(r.body["sent_to"], 2, "the send agrees with the count");
}

#[tokio::test]
async fn an_unknown_or_another_customers_topic_is_not_found() {
    let app = spawn_with(steppable()).await;
    let f = fixture(&app).await;
    let (other, other_key) = app.verified_tenant("Other", "other.com").await;
    let theirs = topic(&app, &other, &other_key, json!({ "name": "Theirs", "default": "opt_out" })).await;
    app.add_contact(&other, &other_key, json!({ "email": "z@example.org" })).await;
    for id in [theirs.clone(), mailroom::domain::new_id(), "nope".to_owned()] {
        let r = app
            .post(&format!("/customers/{}/send", f.t), &f.key, json!({ "subject": "s", "html": "h", "topic_id": id }))
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.body);
        assert_eq!(r.body["error"]["message"], "topic not found");
        let r = app.get(&format!("/customers/{}/audience?topic_id={id}", f.t), &f.key).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.body);
    }
    // And the other customer's topic does not reach its own contacts from here.
    assert_eq!(app.store.count_rows("campaigns").await.unwrap(), 0);
}

#[tokio::test]
async fn a_contact_who_leaves_the_topic_after_enqueue_gets_nothing() {
    let app = spawn_with(steppable()).await;
    let f = fixture(&app).await;
    let r = app
        .post(&format!("/customers/{}/send", f.t), &f.key, json!({ "subject": "s", "html": "h", "topic_id": f.offers }))
        .await;
    assert_eq!(r.body["sent_to"], 2, "{}", r.body);
    let campaign = r.body["campaign_id"].as_str().unwrap().to_owned();
    // `d` leaves Offers between the enqueue and the claim.
    choose(&app, &f.t, &f.key, &f.ids[3], &f.offers, "unsubscribed").await;
    assert_eq!(recipients(&app).await, ["a@example.org"], "checked again at claim time");
    let c = app.get(&format!("/customers/{}/campaigns/{campaign}", f.t), &f.key).await;
    assert_eq!(c.body["counts"]["suppressed"], 1, "{}", c.body);
}

#[tokio::test]
async fn an_opt_in_choice_put_back_to_default_after_enqueue_stops_the_mail() {
    let app = spawn_with(steppable()).await;
    let f = fixture(&app).await;
    assert_eq!(send(&app, &f.t, &f.key, json!({ "topic_id": f.news })).await, StatusCode::ACCEPTED);
    let r = app
        .request(
            Method::PUT,
            &format!("/customers/{}/contacts/{}/topics", f.t, f.ids[0]),
            Some(&f.key),
            Some(json!({ "topics": [] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(recipients(&app).await.is_empty());
}

#[tokio::test]
async fn deleting_the_topic_stops_its_campaigns_unsent_mail() {
    let app = spawn_with(steppable()).await;
    let f = fixture(&app).await;
    assert_eq!(send(&app, &f.t, &f.key, json!({ "topic_id": f.offers })).await, StatusCode::ACCEPTED);
    let r = app.delete(&format!("/customers/{}/topics/{}", f.t, f.offers), &f.key).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(recipients(&app).await.is_empty());
}

#[tokio::test]
async fn a_resume_keeps_the_topic_of_the_campaign_it_resumes() {
    let app = spawn_with(steppable()).await;
    let f = fixture(&app).await;
    let r = app
        .post(&format!("/customers/{}/send", f.t), &f.key, json!({ "subject": "s", "html": "h", "topic_id": f.offers }))
        .await;
    let old = r.body["campaign_id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/customers/{}/send", f.t),
            &f.key,
            json!({ "subject": "s", "html": "h", "resume_from_campaign_id": old, "topic_id": f.news }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = app
        .post(
            &format!("/customers/{}/send", f.t),
            &f.key,
            json!({ "subject": "s", "html": "h", "resume_from_campaign_id": old }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let resumed = r.body["campaign_id"].as_str().unwrap();
    let c = app.get(&format!("/customers/{}/campaigns/{resumed}", f.t), &f.key).await;
    assert_eq!(c.body["topic_id"], f.offers.as_str());
}
