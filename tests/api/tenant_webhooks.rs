//! Webhooks to customers: endpoints, Standard Webhooks signatures (checked with
//! the official `standardwebhooks` library), retries under one `webhook-id`,
//! disabling, secret rotation, SSRF refusals, filtering and isolation.

use std::time::Duration;

use axum::http::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};

pub use crate::common::webhook_receiver::Receiver;
use crate::helpers::{event, spawn_with, Options, TestApp, ADMIN_KEY};

/// Settles the app until `rx` has received `n` webhooks; what it received.
pub async fn received_at_least(app: &TestApp, rx: &Receiver, n: usize) -> Vec<(HeaderMap, String)> {
    app.settle_until(&format!("{n} webhook(s)"), || async { rx.received().len() >= n }).await;
    rx.received()
}

fn header(h: &HeaderMap, name: &str) -> String {
    h.get(name).unwrap().to_str().unwrap().to_owned()
}

pub fn verifies(secret: &str, h: &HeaderMap, body: &str) -> bool {
    standardwebhooks::Webhook::new(secret).unwrap().verify(body.as_bytes(), h).is_ok()
}

/// An app whose webhooks may call 127.0.0.1 (the receiver), with a fast retry
/// schedule and a low disabling threshold.
async fn app_with(resend: bool) -> TestApp {
    spawn_with(Options {
        resend,
        env: vec![
            ("MAILROOM_ALLOW_PRIVATE_WEBHOOKS".into(), "true".into()),
            ("MAILROOM_WEBHOOK_RETRY_SCALE".into(), "0.001".into()),
            ("MAILROOM_WEBHOOK_DISABLE_AFTER".into(), "3".into()),
        ],
        ..Options::default()
    })
    .await
}

async fn customer(app: &TestApp, name: &str) -> (String, String) {
    let c = app.post("/customers", ADMIN_KEY, json!({ "name": name })).await;
    let id = c.body["id"].as_str().unwrap().to_owned();
    let key = app.post(&format!("/customers/{id}/api-keys"), ADMIN_KEY, json!({})).await;
    (id, key.body["key"].as_str().unwrap().to_owned())
}

pub async fn endpoint(app: &TestApp, t: &str, key: &str, url: &str, types: &[&str]) -> (String, String) {
    let r = app.post(&format!("/customers/{t}/webhooks"), key, json!({ "url": url, "event_types": types })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (r.body["id"].as_str().unwrap().to_owned(), r.body["secret"].as_str().unwrap().to_owned())
}

async fn deliveries(app: &TestApp, t: &str, key: &str, w: &str) -> Value {
    let r = app.get(&format!("/customers/{t}/webhooks/{w}/deliveries"), key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

#[tokio::test]
async fn a_delivery_event_reaches_the_subscribed_endpoint_signed_per_standard_webhooks() {
    let app = app_with(true).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let (u, key_u) = app.verified_tenant("B", "bolt.com").await;
    let mine = Receiver::start().await;
    let theirs = Receiver::start().await;
    let (w, secret) = endpoint(&app, &t, &key, &mine.url, &["email.delivered", "email.clicked"]).await;
    endpoint(&app, &u, &key_u, &theirs.url, &["email.delivered", "email.clicked", "email.opened"]).await;
    app.add_contact(&t, &key, json!({ "email": "pat@example.org" })).await;
    let send = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    let campaign = send.body["campaign_id"].as_str().unwrap().to_owned();
    app.drain().await;
    let provider_id = app.mock().accepted()[0].id.clone();

    assert_eq!(app.webhook("e1", &event("email.delivered", &provider_id, json!({}))).await.status, StatusCode::OK);
    // Not subscribed: never sent.
    app.webhook("e2", &event("email.opened", &provider_id, json!({}))).await;
    app.webhook("e3", &event("email.clicked", &provider_id, json!({ "click": { "link": "https://acme.com/x" } })))
        .await;
    // A duplicate of an applied event notifies nobody again.
    app.webhook("e1", &event("email.delivered", &provider_id, json!({}))).await;

    let got = received_at_least(&app, &mine, 2).await;
    app.settle().await;
    let got_all = mine.received();
    assert_eq!(got_all.len(), 2, "only the subscribed types, once each");
    let bodies: Vec<Value> = got.iter().map(|(_, b)| serde_json::from_str(b).unwrap()).collect();
    for (h, body) in &got {
        assert!(verifies(&secret, h, body), "signature verifies with the endpoint's secret");
        assert!(!verifies("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", h, body));
        assert!(!header(h, "webhook-id").is_empty());
        assert!(header(h, "webhook-timestamp").parse::<i64>().is_ok());
    }
    let delivered = bodies.iter().find(|b| b["type"] == "email.delivered").expect("delivered sent");
    assert_eq!(delivered["data"]["campaign_id"], campaign.as_str());
    assert_eq!(delivered["data"]["to"], "pat@example.org");
    assert_ne!(delivered["data"]["email_id"], provider_id.as_str(), "mailroom's own message id, not the provider's");
    assert!(delivered["timestamp"].is_string());
    let clicked = bodies.iter().find(|b| b["type"] == "email.clicked").expect("clicked sent");
    assert_eq!(clicked["data"]["click"]["link"], "https://acme.com/x");
    assert!(theirs.received().is_empty(), "another customer's endpoint hears nothing of this customer's mail");

    let log = deliveries(&app, &t, &key, &w).await;
    assert_eq!(log.as_array().unwrap().len(), 2);
    assert_eq!(log[0]["status"], "delivered");
    assert_eq!(log[0]["last_status_code"], 200);
    assert_eq!(log[0]["attempts"], 1);
}

#[tokio::test]
async fn retries_keep_the_same_webhook_id_until_the_endpoint_answers_2xx() {
    let app = app_with(false).await;
    let (t, key) = customer(&app, "A").await;
    let rx = Receiver::start().await;
    rx.answer(&[500, 503]);
    let (w, secret) = endpoint(&app, &t, &key, &rx.url, &["email.sent"]).await;
    let test = app.post(&format!("/customers/{t}/webhooks/{w}/test"), &key, json!({})).await;
    assert_eq!(test.status, StatusCode::ACCEPTED, "{}", test.body);
    let did = test.body["delivery_id"].as_str().unwrap().to_owned();

    let got = received_at_least(&app, &rx, 3).await;
    let ids: Vec<String> = got.iter().map(|(h, _)| header(h, "webhook-id")).collect();
    assert_eq!(ids, vec![did.clone(), did.clone(), did.clone()], "one webhook-id across retries");
    for (h, body) in &got {
        assert!(verifies(&secret, h, body));
        assert_eq!(serde_json::from_str::<Value>(body).unwrap()["type"], "webhook.test");
    }
    app.settle_until("the delivery to be recorded", || async {
        deliveries(&app, &t, &key, &w).await[0]["status"] == "delivered"
    })
    .await;
    let log = deliveries(&app, &t, &key, &w).await;
    assert_eq!(log[0]["id"], did.as_str());
    assert_eq!(log[0]["attempts"], 3);
    assert_eq!(log[0]["last_status_code"], 200);
    assert!(log[0]["last_latency_ms"].is_number());
    let endpoint = app.get(&format!("/customers/{t}/webhooks/{w}"), &key).await;
    assert_eq!(endpoint.body["enabled"], true, "a success clears the failures");
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_disabled_and_can_be_enabled_again() {
    let app = app_with(false).await;
    let (t, key) = customer(&app, "A").await;
    let rx = Receiver::start().await;
    rx.always(500);
    let (w, _) = endpoint(&app, &t, &key, &rx.url, &["email.sent"]).await;
    app.post(&format!("/customers/{t}/webhooks/{w}/test"), &key, json!({})).await;
    app.settle_until("the endpoint to be disabled", || async {
        app.get(&format!("/customers/{t}/webhooks/{w}"), &key).await.body["enabled"] == false
    })
    .await;
    let e = app.get(&format!("/customers/{t}/webhooks/{w}"), &key).await;
    assert!(e.body["disabled_reason"].as_str().unwrap().contains("3 consecutive"), "{}", e.body);
    let refused = app.post(&format!("/customers/{t}/webhooks/{w}/test"), &key, json!({})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["error"]["code"], "webhook_disabled");
    app.settle_until("the queued retry to be settled", || async {
        deliveries(&app, &t, &key, &w).await[0]["status"] == "failed"
    })
    .await;
    let seen = rx.received().len();
    app.advance(Duration::from_secs(5));
    app.settle().await;
    assert_eq!(rx.received().len(), seen, "a disabled endpoint is not called");

    rx.always(200);
    let on = app.patch(&format!("/customers/{t}/webhooks/{w}"), &key, json!({ "enabled": true })).await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    assert_eq!(on.body["disabled_reason"], Value::Null);
    let test = app.post(&format!("/customers/{t}/webhooks/{w}/test"), &key, json!({})).await;
    assert_eq!(test.status, StatusCode::ACCEPTED);
    app.settle_until("the test to arrive", || async {
        rx.received().last().is_some_and(|(h, _)| header(h, "webhook-id") == test.body["delivery_id"].as_str().unwrap())
    })
    .await;
}

#[tokio::test]
async fn after_a_rotation_both_secrets_verify_and_only_the_new_one_is_shown() {
    let app = app_with(false).await;
    let (t, key) = customer(&app, "A").await;
    let rx = Receiver::start().await;
    let (w, old) = endpoint(&app, &t, &key, &rx.url, &["email.sent"]).await;
    assert!(old.starts_with("whsec_"));
    let listed = app.get(&format!("/customers/{t}/webhooks"), &key).await;
    assert!(listed.body[0].get("secret").is_none(), "the secret is shown once");
    assert!(app.get(&format!("/customers/{t}/webhooks/{w}"), &key).await.body.get("secret").is_none());

    let r = app.post(&format!("/customers/{t}/webhooks/{w}/rotate-secret"), &key, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new = r.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(r.body["previous_secret_expires_at"].is_string());
    app.post(&format!("/customers/{t}/webhooks/{w}/test"), &key, json!({})).await;
    let got = received_at_least(&app, &rx, 1).await;
    let (h, body) = &got[0];
    assert_eq!(header(h, "webhook-signature").split(' ').count(), 2, "two signatures during the overlap");
    assert!(verifies(&new, h, body));
    assert!(verifies(&old, h, body));
}

#[tokio::test]
async fn private_loopback_and_metadata_urls_are_refused_without_the_operator_flag() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = customer(&app, "A").await;
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://10.0.0.5/hook",
        "http://192.168.1.10/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[fd00:ec2::254]/",
        "http://100.64.0.1/",
        "http://0.0.0.0/",
        "http://localhost:8080/hook",
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "not a url",
    ] {
        let r = app
            .post(&format!("/customers/{t}/webhooks"), &key, json!({ "url": url, "event_types": ["email.sent"] }))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}: {}", r.body);
        assert!(r.body["error"]["message"].as_str().unwrap().contains("url"), "{url}: {}", r.body);
    }
    let listed = app.get(&format!("/customers/{t}/webhooks"), &key).await;
    assert_eq!(listed.body, json!([]));
}

#[tokio::test]
async fn an_update_to_a_private_url_is_refused_too() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = customer(&app, "A").await;
    let created = app
        .post(
            &format!("/customers/{t}/webhooks"),
            &key,
            json!({ "url": "https://93.184.216.34/hook", "event_types": ["email.sent"] }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let w = created.body["id"].as_str().unwrap();
    let r = app.patch(&format!("/customers/{t}/webhooks/{w}"), &key, json!({ "url": "http://127.0.0.1/x" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let e = app.get(&format!("/customers/{t}/webhooks/{w}"), &key).await;
    assert_eq!(e.body["url"], "https://93.184.216.34/hook");
}

#[tokio::test]
async fn another_customers_webhook_answers_404_everywhere() {
    let app = app_with(false).await;
    let (a, key_a) = customer(&app, "A").await;
    let (b, key_b) = customer(&app, "B").await;
    let rx = Receiver::start().await;
    let (w, _) = endpoint(&app, &a, &key_a, &rx.url, &["email.sent"]).await;
    let test = app.post(&format!("/customers/{a}/webhooks/{w}/test"), &key_a, json!({})).await;
    let did = test.body["delivery_id"].as_str().unwrap().to_owned();
    received_at_least(&app, &rx, 1).await;

    for path in [format!("/customers/{b}/webhooks/{w}"), format!("/customers/{b}/webhooks/{w}/deliveries")] {
        assert_eq!(app.get(&path, &key_b).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        format!("/customers/{b}/webhooks/{w}/test"),
        format!("/customers/{b}/webhooks/{w}/rotate-secret"),
        format!("/customers/{b}/webhooks/{w}/deliveries/{did}/replay"),
    ] {
        assert_eq!(app.post(&path, &key_b, json!({})).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    let patch = app.patch(&format!("/customers/{b}/webhooks/{w}"), &key_b, json!({ "enabled": false })).await;
    assert_eq!(patch.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&format!("/customers/{b}/webhooks/{w}"), &key_b).await.status, StatusCode::NOT_FOUND);
    // B's key on A's path.
    assert_eq!(app.get(&format!("/customers/{a}/webhooks/{w}"), &key_b).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/customers/{a}/webhooks"), &key_b).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/customers/{a}/webhooks/not-an-id"), &key_a).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/customers/{a}/webhooks/{w}"), &key_a).await.body["enabled"], true);
}

#[tokio::test]
async fn unknown_fields_unknown_event_types_and_bad_parameters_are_refused() {
    let app = app_with(false).await;
    let (t, key) = customer(&app, "A").await;
    let rx = Receiver::start().await;
    let base = format!("/customers/{t}/webhooks");
    let cases = [
        json!({ "url": rx.url, "event_types": ["email.sent"], "secret": "mine" }),
        json!({ "url": rx.url, "event_types": ["email.sent", "email.nope"] }),
        json!({ "url": rx.url, "event_types": [] }),
        json!({ "url": rx.url }),
        json!({ "url": rx.url, "event_types": ["email.sent"], "description": "a\u{0}b" }),
        json!({ "url": rx.url, "event_types": ["email.sent"], "description": "two\nlines" }),
        json!({ "url": 5, "event_types": ["email.sent"] }),
    ];
    for body in cases {
        let r = app.post(&base, &key, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "validation_error");
    }
    let bad = app.post(&base, &key, json!({ "url": rx.url, "event_types": ["email.nope"] })).await;
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("email.nope"), "{}", bad.body);
    let unknown = app.post(&base, &key, json!({ "url": rx.url, "event_types": ["email.sent"], "secret": "x" })).await;
    assert!(unknown.body["error"]["message"].as_str().unwrap().contains("secret"), "{}", unknown.body);

    let (w, _) = endpoint(&app, &t, &key, &rx.url, &["email.sent", "email.sent"]).await;
    let e = app.get(&format!("{base}/{w}"), &key).await;
    assert_eq!(e.body["event_types"], json!(["email.sent"]));
    for (method, path, body) in [
        ("PATCH", format!("{base}/{w}"), json!({ "urll": "x" })),
        ("PATCH", format!("{base}/{w}"), json!({ "event_types": ["bogus"] })),
        ("POST", format!("{base}/{w}/rotate-secret"), json!({ "now": true })),
        ("POST", format!("{base}/{w}/test"), json!({ "type": "email.sent" })),
    ] {
        let r = match method {
            "PATCH" => app.patch(&path, &key, body).await,
            _ => app.post(&path, &key, body).await,
        };
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {}", r.body);
    }
    for query in ["limit=0", "limit=abc", "after=garbage", "bogus=1"] {
        let r = app.get(&format!("{base}/{w}/deliveries?{query}"), &key).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {}", r.body);
    }
    let r =
        app.post(&format!("{base}/{w}/deliveries/0192f0c4-0000-7000-8000-000000000001/replay"), &key, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_replay_sends_the_same_delivery_again_and_the_log_pages_newest_first() {
    let app = app_with(false).await;
    let (t, key) = customer(&app, "A").await;
    let rx = Receiver::start().await;
    let (w, secret) = endpoint(&app, &t, &key, &rx.url, &["email.sent"]).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let r = app.post(&format!("/customers/{t}/webhooks/{w}/test"), &key, json!({})).await;
        ids.push(r.body["delivery_id"].as_str().unwrap().to_owned());
        // Wall-clock on purpose: the deliveries' creation times differ, so the log's order is theirs.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    received_at_least(&app, &rx, 3).await;
    let page = app.get(&format!("/customers/{t}/webhooks/{w}/deliveries?limit=2"), &key).await;
    assert_eq!(page.body.as_array().unwrap().len(), 2);
    assert_eq!(page.body[0]["id"], ids[2].as_str(), "newest first");
    let link = page.headers.get("link").unwrap().to_str().unwrap().to_owned();
    let next = link.strip_prefix('<').and_then(|l| l.split_once('>')).unwrap().0.to_owned();
    let rest = app.get(&next, &key).await;
    assert_eq!(rest.body.as_array().unwrap().len(), 1);
    assert_eq!(rest.body[0]["id"], ids[0].as_str());

    let replay = app.post(&format!("/customers/{t}/webhooks/{w}/deliveries/{}/replay", ids[0]), &key, json!({})).await;
    assert_eq!(replay.status, StatusCode::ACCEPTED, "{}", replay.body);
    assert_eq!(replay.body["id"], ids[0].as_str());
    let got = received_at_least(&app, &rx, 4).await;
    let (h, body) = got.last().unwrap();
    assert_eq!(header(h, "webhook-id"), ids[0]);
    assert_eq!(body, &got.iter().find(|(h, _)| header(h, "webhook-id") == ids[0]).unwrap().1, "the same body");
    assert!(verifies(&secret, h, body));

    assert_eq!(app.delete(&format!("/customers/{t}/webhooks/{w}"), &key).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/customers/{t}/webhooks/{w}"), &key).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_one_click_unsubscribe_notifies_the_customer() {
    let app = app_with(true).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let rx = Receiver::start().await;
    let (_, secret) = endpoint(&app, &t, &key, &rx.url, &["contact.unsubscribed"]).await;
    app.add_contact(&t, &key, json!({ "email": "pat@example.org" })).await;
    app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    app.drain().await;
    let email = app.mock().accepted()[0].clone();
    let link = email.headers.get("List-Unsubscribe").unwrap();
    let url = link.trim_start_matches('<').trim_end_matches('>');
    let path = url::Url::parse(url).unwrap().path().to_owned();
    for _ in 0..2 {
        let r = app
            .http
            .post(format!("{}{path}", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let got = received_at_least(&app, &rx, 1).await;
    app.advance(Duration::from_secs(5));
    app.settle().await;
    assert_eq!(rx.received().len(), 1, "once, however often the link is clicked");
    let (h, body) = &got[0];
    assert!(verifies(&secret, h, body));
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["type"], "contact.unsubscribed");
    assert_eq!(body["data"]["email"], "pat@example.org");
}

#[tokio::test]
async fn a_one_click_from_a_topic_campaign_notifies_the_customer_once_of_that_topic_only() {
    let app = app_with(true).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let rx = Receiver::start().await;
    endpoint(&app, &t, &key, &rx.url, &["contact.unsubscribed", "contact.topic_unsubscribed"]).await;
    let r = app.post(&format!("/customers/{t}/topics"), &key, json!({ "name": "News", "default": "opt_out" })).await;
    let news = r.body["id"].as_str().unwrap().to_owned();
    app.add_contact(&t, &key, json!({ "email": "pat@example.org" })).await;
    let r =
        app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h", "topic_id": news })).await;
    let campaign = r.body["campaign_id"].as_str().unwrap().to_owned();
    app.drain().await;
    let email = app.mock().accepted()[0].clone();
    let link = email.headers.get("List-Unsubscribe").unwrap();
    let url = link.trim_start_matches('<').trim_end_matches('>');
    let path = url::Url::parse(url).unwrap().path().to_owned();
    for _ in 0..2 {
        let r = app
            .http
            .post(format!("{}{path}", app.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    let got = received_at_least(&app, &rx, 1).await;
    app.advance(Duration::from_secs(5));
    app.settle().await;
    assert_eq!(rx.received().len(), 1, "once, however often the link is clicked");
    let body: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(body["type"], "contact.topic_unsubscribed", "not an unsubscribe from everything: {body}");
    assert_eq!(body["data"]["email"], "pat@example.org");
    assert_eq!(body["data"]["campaign_id"], campaign);
    assert_eq!(body["data"]["topic"], json!({ "id": news, "name": "News" }));
}

#[tokio::test]
async fn every_webhook_route_is_in_the_openapi_document() {
    let app = spawn_with(Options::default()).await;
    let doc = app.request(reqwest::Method::GET, "/openapi.json", None, None).await;
    let paths = doc.body["paths"].as_object().unwrap();
    for p in [
        "/customers/{id}/webhooks",
        "/customers/{id}/webhooks/{wid}",
        "/customers/{id}/webhooks/{wid}/rotate-secret",
        "/customers/{id}/webhooks/{wid}/deliveries",
        "/customers/{id}/webhooks/{wid}/deliveries/{did}/replay",
        "/customers/{id}/webhooks/{wid}/test",
    ] {
        assert!(paths.contains_key(p), "openapi lacks {p}");
    }
}

#[tokio::test]
async fn a_finished_campaign_is_announced_once_with_its_figures() {
    let app = app_with(true).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let rx = Receiver::start().await;
    let (_, secret) = endpoint(&app, &t, &key, &rx.url, &["campaign.sent"]).await;
    for i in 0..3 {
        app.add_contact(&t, &key, json!({ "email": format!("c{i}@example.org") })).await;
    }
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let cid = r.body["campaign_id"].as_str().unwrap().to_owned();
    app.drain().await;
    let got = received_at_least(&app, &rx, 1).await;
    // Past two of the announcer's one-second rounds.
    app.advance(Duration::from_millis(2_500));
    app.settle().await;
    assert_eq!(rx.received().len(), 1, "announced once: {got:?}");
    let (headers, body) = &got[0];
    assert!(verifies(&secret, headers, body));
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["type"], "campaign.sent");
    assert_eq!(body["data"]["campaign_id"], json!(cid));
    assert_eq!(body["data"]["status"], "sent");
    assert_eq!(body["data"]["recipients"], 3);
    assert_eq!(body["data"]["sent"], 3);
}

// The per-customer limit holds under concurrent creations (the count and the
// insert are one transaction with the customer's row held).
#[tokio::test]
async fn concurrent_creations_cannot_pass_the_endpoint_limit() {
    let app = app_with(false).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let path = format!("/customers/{t}/webhooks");
    let answers = futures::future::join_all((0..30).map(|i| {
        app.post(&path, &key, json!({ "url": format!("http://127.0.0.1:9/{i}"), "event_types": ["email.sent"] }))
    }))
    .await;
    let created = answers.iter().filter(|r| r.status == StatusCode::CREATED).count();
    assert_eq!(created, 20, "{:?}", answers.iter().map(|r| r.status).collect::<Vec<_>>());
    for r in answers.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    }
    assert_eq!(app.get(&path, &key).await.body.as_array().map(Vec::len), Some(20));
}
