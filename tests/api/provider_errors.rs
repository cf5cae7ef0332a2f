//! Provider errors by kind, and the account's limits (issue 8, B4 and B5).

use std::collections::HashMap;

use mailroom::mock::{Faults, MockConfig};
use mailroom::outbox::Step;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_with, Options, TestApp, ADMIN_KEY};

fn resend(run_worker: bool, mock: MockConfig, env: &[(&str, &str)]) -> Options {
    Options {
        resend: true,
        run_worker,
        mock,
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Options::default()
    }
}

async fn status(app: &TestApp, t: &str, key: &str, id: &str) -> String {
    app.get(&format!("/customers/{t}/messages/{id}"), key).await.body["status"].as_str().unwrap().to_owned()
}

fn most_per_second(times: &[i64]) -> usize {
    let mut per: HashMap<i64, usize> = HashMap::new();
    for t in times {
        *per.entry(t / 1000).or_default() += 1;
    }
    per.values().copied().max().unwrap_or(0)
}

// Fails on the old main: a revoked key made every message a dead letter.
#[tokio::test]
async fn a_rejected_api_key_pauses_sending_and_keeps_the_mail() {
    let mock = MockConfig { faults: Faults { key_revoked: true, ..Faults::default() }, ..MockConfig::default() };
    let app = spawn_with(resend(false, mock, &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let id = app.send_single(&t, &key, "a@example.org").await;
    assert_eq!(app.outbox.try_dispatch_once().await.unwrap(), Step::Dispatched { messages: 1, sent: false });
    assert_eq!(status(&app, &t, &key, &id).await, "sending", "held for a retry, not dead");
    assert_eq!(app.outbox.try_dispatch_once().await.unwrap(), Step::Empty, "paused");
    assert_eq!(app.mock().stats().key_refusals, 1);
    let m = app.get(&format!("/customers/{t}/messages/{id}"), &key).await;
    assert_eq!(m.body["attempts"], 0, "a refused key is not the message's attempt: {}", m.body);
}

// Fails on the old main: a spent quota was retried like a 429 until the attempts ran out.
#[tokio::test]
async fn a_spent_daily_quota_pauses_sending_until_it_resets() {
    let mock = MockConfig { faults: Faults { quota_exceeded: true, ..Faults::default() }, ..MockConfig::default() };
    let app = spawn_with(resend(false, mock, &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let id = app.send_single(&t, &key, "a@example.org").await;
    app.outbox.try_dispatch_once().await.unwrap();
    for _ in 0..3 {
        assert_eq!(app.outbox.try_dispatch_once().await.unwrap(), Step::Empty);
    }
    assert_eq!(status(&app, &t, &key, &id).await, "sending");
    assert_eq!(app.mock().stats().quota_refusals, 1);
}

// Fails on the old main: paced at the configured 10/s against an account limited to 2/s.
#[tokio::test]
async fn the_accounts_stated_rate_limit_wins_over_a_higher_configured_rate() {
    let mock = MockConfig { rate_limit: 2, ..MockConfig::default() };
    let app = spawn_with(resend(true, mock, &[("MAILROOM_SEND_RATE", "10")])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 1_000, "example.org").await;
    app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    app.drain().await;
    let stats = app.mock().stats();
    assert_eq!(app.mock().accepted_count(), 1_000);
    assert!(stats.http_429 <= 4, "only before the limit was learned: {stats:?}");
    let later: Vec<i64> = stats.accepted_request_times.iter().skip(4).copied().collect();
    assert!(most_per_second(&later) <= 2, "{stats:?}");
}

// Fails on the old main: domain calls went around the pacer.
#[tokio::test]
async fn domain_calls_and_sends_share_the_accounts_rate() {
    let mock = MockConfig { rate_limit: 3, ..MockConfig::default() };
    let app = spawn_with(resend(true, mock, &[("MAILROOM_SEND_RATE", "3")])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 500, "example.org").await;
    app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    let others = (0..4).map(|i| {
        let app = &app;
        async move {
            let c = app.post("/customers", ADMIN_KEY, json!({ "name": format!("T{i}") })).await;
            let id = c.body["id"].as_str().unwrap().to_owned();
            let k = app.post(&format!("/customers/{id}/api-keys"), ADMIN_KEY, json!({})).await;
            let k = k.body["key"].as_str().unwrap().to_owned();
            let d = app
                .post(&format!("/customers/{id}/domains"), &k, json!({ "domain_name": format!("t{i}.example.com") }))
                .await;
            assert_eq!(d.status, StatusCode::CREATED, "{}", d.body);
        }
    });
    futures::future::join_all(others).await;
    app.drain().await;
    let stats = app.mock().stats();
    assert_eq!(stats.http_429, 0, "{stats:?}");
    assert!(stats.peak_requests_per_second <= 3, "{stats:?}");
}

// Fails on the old main: a campaign's requests were cut by count only.
#[tokio::test]
async fn a_large_body_goes_out_in_requests_under_the_byte_cap() {
    let app = spawn_with(resend(false, MockConfig::default(), &[("MAILROOM_MAX_BATCH_BYTES", "200000")])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 30, "example.org").await;
    let html = format!("<p>{}</p>", "x".repeat(50_000));
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": html })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    let stats = app.mock().stats();
    assert_eq!(app.mock().accepted_count(), 30);
    assert!(stats.largest_body_bytes <= 200_000, "{stats:?}");
    assert!(stats.accepted_requests >= 10, "{stats:?}");
}

// C5 — fails on the old main: `last_error` carried the provider's URL.
#[tokio::test]
async fn a_transport_error_is_recorded_without_the_providers_url() {
    let app =
        spawn_with(resend(false, MockConfig::default(), &[("RESEND_BASE_URL", "http://127.0.0.1:9/internal-relay")]))
            .await;
    let (t, key) = app.verified_tenant_offline("A", "acme.com").await;
    let id = app.send_single(&t, &key, "a@example.org").await;
    app.outbox.try_dispatch_once().await.unwrap();
    let m = app.get(&format!("/customers/{t}/messages/{id}"), &key).await;
    let last_error = m.body["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(last_error.starts_with("network_error"), "{}", m.body);
    assert!(!last_error.contains("127.0.0.1") && !last_error.contains("internal-relay"), "{last_error}");
}

// C5 — fails on the old main: a campaign whose every message died was `partially_failed`.
#[tokio::test]
async fn a_campaign_whose_every_message_died_is_failed() {
    let faults = Faults { reject: vec!["user0@example.org".into(), "user1@example.org".into()], ..Faults::default() };
    let app = spawn_with(resend(false, MockConfig { faults, ..MockConfig::default() }, &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 2, "example.org").await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    let cid = r.body["campaign_id"].as_str().unwrap().to_owned();
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    let view = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    assert_eq!(view.body["counts"]["dead"], 2, "{}", view.body);
    assert_eq!(view.body["status"], "failed");
}
