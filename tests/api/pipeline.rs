//! The delivery pipeline under pressure: rate limits, priorities, pause and
//! cancel, dead letters, killed processes and several worker processes.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mailroom::mock::{Faults, MockConfig, MockResend};
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_on, spawn_with, wait_for, Options, TestApp, TestDb, ADMIN_KEY};

fn limited(rate: u32, run_worker: bool) -> Options {
    Options {
        resend: true,
        run_worker,
        mock: MockConfig { rate_limit: rate, ..MockConfig::default() },
        env: vec![("MAILROOM_SEND_RATE".into(), rate.to_string())],
        ..Options::default()
    }
}

fn per_recipient(mock: &MockResend) -> HashMap<String, usize> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    for e in mock.accepted() {
        for to in e.to {
            *seen.entry(to).or_default() += 1;
        }
    }
    seen
}

fn assert_exactly_once(mock: &MockResend, n: usize) {
    let seen = per_recipient(mock);
    let dupes: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(dupes.is_empty(), "duplicates: {dupes:?}");
    assert_eq!(seen.len(), n, "every recipient got mail");
}

async fn campaign(app: &TestApp, t: &str, key: &str, n: usize) -> String {
    app.import_contacts(t, key, n, "example.org").await;
    let r = app.post(&format!("/customers/{t}/send"), key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    r.body["campaign_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn at_the_providers_rate_limit_nothing_is_refused_and_transactional_mail_goes_first() {
    let app = spawn_with(limited(10, true)).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    campaign(&app, &t, &key, 3_000).await;
    wait_for("the campaign to be under way", Duration::from_secs(10), || async { app.mock().accepted_count() >= 300 })
        .await;
    let before = app.mock().accepted_count();
    let r = app
        .post(
            &format!("/customers/{t}/send/single"),
            &key,
            json!({ "to_email": "reset@example.org", "subject": "reset", "html": "h" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    app.drain().await;
    let sent = app.mock().accepted();
    let at = sent.iter().position(|e| e.subject == "reset").unwrap();
    // Only campaign batches already holding a send slot may go before it.
    assert!(at <= before + 300, "the reset went out after {} more campaign emails", at - before);
    assert!(at < sent.len() - 1000, "it did not wait for the campaign");
    let stats = app.mock().stats();
    assert_eq!(stats.http_429, 0, "{stats:?}");
    assert!(stats.peak_requests_per_second <= 10, "{stats:?}");
    assert_exactly_once(app.mock(), 3_001);
}

#[tokio::test]
async fn pause_stops_claiming_resume_continues_without_duplicates() {
    let app = spawn_with(limited(10, true)).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let cid = campaign(&app, &t, &key, 2_000).await;
    wait_for("some mail to go out", Duration::from_secs(10), || async { app.mock().accepted_count() >= 200 }).await;
    let p = app.post(&format!("/customers/{t}/campaigns/{cid}/pause"), &key, json!({})).await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.body["status"], "paused");
    // Batches already holding a slot may finish; nothing new is claimed.
    app.settle().await;
    let settled = app.mock().accepted_count();
    app.settle().await;
    assert_eq!(app.mock().accepted_count(), settled, "nothing sent while paused");
    assert!(settled < 2_000);
    let c = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    assert_eq!(c.body["counts"]["paused"], 2_000 - settled, "{}", c.body);

    let r = app.post(&format!("/customers/{t}/campaigns/{cid}/resume"), &key, json!({})).await;
    assert_eq!(r.status, StatusCode::OK);
    app.drain().await;
    assert_exactly_once(app.mock(), 2_000);
    let done = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    assert_eq!(done.body["status"], "sent");
    let again = app.post(&format!("/customers/{t}/campaigns/{cid}/resume"), &key, json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn cancel_leaves_the_unsent_messages_cancelled_and_resume_from_sends_only_those() {
    let app = spawn_with(limited(10, true)).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let cid = campaign(&app, &t, &key, 1_500).await;
    wait_for("some mail to go out", Duration::from_secs(10), || async { app.mock().accepted_count() >= 100 }).await;
    let c = app.post(&format!("/customers/{t}/campaigns/{cid}/cancel"), &key, json!({})).await;
    assert_eq!(c.status, StatusCode::OK);
    assert_eq!(c.body["status"], "cancelled");
    app.drain().await;
    let sent = app.mock().accepted_count();
    let view = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    assert_eq!(view.body["counts"]["cancelled"], (1_500 - sent) as i64, "{}", view.body);
    assert_eq!(view.body["status"], "cancelled");

    let resumed = app
        .post(
            &format!("/customers/{t}/send"),
            &key,
            json!({ "subject": "s", "html": "h", "resume_from_campaign_id": cid }),
        )
        .await;
    assert_eq!(resumed.status, StatusCode::ACCEPTED, "{}", resumed.body);
    assert_eq!(resumed.body["sent_to"], (1_500 - sent) as i64);
    app.drain().await;
    assert_exactly_once(app.mock(), 1_500);
}

#[tokio::test]
async fn a_scheduled_campaign_waits_for_its_time() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let at = mailroom::domain::rfc3339(mailroom::domain::now_ms() + 2_000);
    let r = app
        .post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h", "scheduled_at": at }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body["status"], "scheduled");
    let cid = r.body["campaign_id"].as_str().unwrap();
    app.settle().await;
    assert_eq!(app.mock().accepted_count(), 0);
    assert_eq!(app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await.body["status"], "scheduled");
    app.drain().await;
    assert_eq!(app.mock().accepted_count(), 1);
    let bad = app
        .post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h", "scheduled_at": "tomorrow" }))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let far = app
        .post(
            &format!("/customers/{t}/send"),
            &key,
            json!({ "subject": "s", "html": "h", "scheduled_at": "9999-12-31T00:00:00Z" }),
        )
        .await;
    assert_eq!(far.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", far.body);
    assert!(far.body["error"]["message"].as_str().unwrap().contains("a year ahead"), "{}", far.body);
    assert_eq!(app.get(&format!("/customers/{t}/campaigns"), &key).await.body.as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn invalid_recipients_become_dead_letters_and_are_delivered_once_after_the_fix() {
    let faults = Faults { reject: vec!["user7@example.org".into(), "user42@example.org".into()], ..Faults::default() };
    let app = spawn_with(Options {
        resend: true,
        mock: MockConfig { faults, ..MockConfig::default() },
        ..Options::default()
    })
    .await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let cid = campaign(&app, &t, &key, 250).await;
    app.drain().await;
    assert_eq!(app.mock().accepted_count(), 248, "only the two invalid addresses are held back");
    let dead = app.get(&format!("/customers/{t}/dead-letters"), &key).await;
    let dead = dead.body.as_array().unwrap().clone();
    assert_eq!(dead.len(), 2);
    for d in &dead {
        assert!(d["reason"].as_str().unwrap().contains("validation_error"), "{d}");
        assert_eq!(d["campaign_id"], cid.as_str());
    }
    let view = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    assert_eq!(view.body["status"], "partially_failed");
    assert_eq!(view.body["counts"]["dead"], 2);
    let all = app.get("/dead-letters", ADMIN_KEY).await;
    assert_eq!(all.body.as_array().unwrap().len(), 2);

    // The cause is fixed (say, the addresses were wrong at the provider's end).
    app.mock().set_faults(Faults::default());
    let one = dead[0]["email_id"].as_str().unwrap();
    let r = app.post(&format!("/customers/{t}/dead-letters/{one}/retry"), &key, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.body["requeued"], 1);
    let rest = app.post(&format!("/customers/{t}/campaigns/{cid}/dead-letters/retry"), &key, json!({})).await;
    assert_eq!(rest.body["requeued"], 1);
    app.drain().await;
    assert_exactly_once(app.mock(), 250);
    assert_eq!(app.get(&format!("/customers/{t}/dead-letters"), &key).await.body, json!([]));
}

#[tokio::test]
async fn metrics_report_the_queue_the_provider_and_webhooks() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    campaign(&app, &t, &key, 10).await;
    app.drain().await;
    app.webhook("m1", &crate::helpers::event("email.delivered", "x", json!({}))).await;
    // C2 — fails on the old main: /metrics was public.
    let anonymous = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/metrics", &key).await.status, StatusCode::FORBIDDEN, "a tenant key may not");
    let r = app.http.get(format!("{}/metrics", app.base)).bearer_auth(ADMIN_KEY).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    for name in [
        "mailroom_provider_requests_total",
        "mailroom_provider_request_seconds",
        "mailroom_webhook_events_total",
        "mailroom_queue_depth",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    // A scraper's own token reads /metrics and nothing else.
    let scraper = spawn_with(Options {
        env: vec![("MAILROOM_METRICS_TOKEN".into(), "scrape-token-0123456789".into())],
        ..Options::default()
    })
    .await;
    let r = scraper
        .http
        .get(format!("{}/metrics", scraper.base))
        .bearer_auth("scrape-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(scraper.get("/customers", "scrape-token-0123456789").await.status, StatusCode::UNAUTHORIZED);
}

// ---- separate processes -------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn mailroom(args: &[&str], env: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mailroom"));
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    for k in ["DATABASE_URL", "RESEND_API_KEY", "WEBHOOK_SECRET", "MAILROOM_ADMIN_KEY", "MAILROOM_PROVIDER"] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("mailroom binary starts")
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn process_env(db: &str, mock: &MockResend, rate: u32) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", db.to_owned()),
        ("MAILROOM_ADMIN_KEY", ADMIN_KEY.to_owned()),
        ("RESEND_API_KEY", "re_test_key".to_owned()),
        ("RESEND_BASE_URL", mock.url()),
        ("MAILROOM_SEND_RATE", rate.to_string()),
        ("MAILROOM_LEASE_SECS", "1".to_owned()),
        ("MAILROOM_RETRY_BASE_MS", "20".to_owned()),
    ]
}

#[tokio::test]
async fn a_server_killed_mid_campaign_and_started_again_sends_every_recipient_once() {
    let db = TestDb::new().await;
    let mock = MockResend::start(MockConfig { port: 0, ..MockConfig::default() }).await.unwrap();
    // Set up through an in-test app without a worker, on the same database.
    let setup = spawn_on(TestDb::shared(&db.url), Options { run_worker: false, ..Options::default() }).await;
    let (t, key) = setup.verified_tenant("A", "acme.com").await;
    setup.import_contacts(&t, &key, 3_000, "example.org").await;

    let port = free_port();
    let mut env = process_env(&db.url, &mock, 20);
    env.push(("MAILROOM_BIND", format!("127.0.0.1:{port}")));
    let first = Killed(mailroom(&["serve"], &env));
    let http = reqwest::Client::new();
    wait_for("the server", Duration::from_secs(20), || async {
        http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.is_ok()
    })
    .await;
    let r = http
        .post(format!("http://127.0.0.1:{port}/customers/{t}/send"))
        .bearer_auth(&key)
        .json(&json!({ "subject": "s", "html": "h" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    wait_for("the campaign to be under way", Duration::from_secs(20), || async { mock.accepted_count() >= 500 }).await;
    drop(first); // SIGKILL: no chance to finish anything
    let at_kill = mock.accepted_count();
    assert!(at_kill < 3_000, "killed before the end");

    let _second = Killed(mailroom(&["serve"], &env));
    wait_for("every recipient", Duration::from_secs(60), || async { setup.store.outbox_depth().await.unwrap() == 0 })
        .await;
    assert_exactly_once(&mock, 3_000);
}

#[tokio::test]
async fn three_worker_processes_share_the_rate_limit_and_send_each_recipient_once() {
    let db = TestDb::new().await;
    let mock = MockResend::start(MockConfig { port: 0, rate_limit: 10, ..MockConfig::default() }).await.unwrap();
    let api = spawn_on(TestDb::shared(&db.url), Options { run_worker: false, ..Options::default() }).await;
    let (t, key) = api.verified_tenant("A", "acme.com").await;
    api.import_contacts(&t, &key, 4_000, "example.org").await;
    let env = process_env(&db.url, &mock, 10);
    let _workers: Vec<Killed> = (0..3).map(|_| Killed(mailroom(&["worker"], &env))).collect();
    let r = api.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    wait_for("every recipient", Duration::from_secs(60), || async { api.store.outbox_depth().await.unwrap() == 0 })
        .await;
    assert_exactly_once(&mock, 4_000);
    let stats = mock.stats();
    assert_eq!(stats.http_429, 0, "{stats:?}");
    assert!(stats.peak_requests_per_second <= 10, "{stats:?}");
}

/// The acceptance run of issue 8: slow answers (longer than the lease), 10% 5xx,
/// 5% 429 and 5% accepted-then-dropped, two worker processes, one SIGKILLed, and
/// a second tenant's campaign cancelled mid-way.
#[tokio::test]
async fn a_fault_run_with_two_workers_and_a_sigkill_sends_once_and_nothing_after_cancel() {
    let db = TestDb::new().await;
    let faults =
        Faults { latency_ms: 1_500, fail_rate: 0.10, throttle_rate: 0.05, drop_rate: 0.05, ..Faults::default() };
    let mock = MockResend::start(MockConfig { port: 0, faults, ..MockConfig::default() }).await.unwrap();
    let api = spawn_on(TestDb::shared(&db.url), Options { run_worker: false, ..Options::default() }).await;
    let (a, key_a) = api.verified_tenant("A", "acme.com").await;
    let (b, key_b) = api.verified_tenant("B", "beta.com").await;
    api.import_contacts(&a, &key_a, 2_000, "example.org").await;
    api.import_contacts(&b, &key_b, 2_000, "example.net").await;
    let mut env = process_env(&db.url, &mock, 40);
    env.push(("MAILROOM_MAX_ATTEMPTS", "8".to_owned()));
    let first = Killed(mailroom(&["worker"], &env));
    let _second = Killed(mailroom(&["worker"], &env));
    let send = |t: &str, key: &str| {
        let (t, key) = (t.to_owned(), key.to_owned());
        let api = &api;
        async move {
            let r = api.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            r.body["campaign_id"].as_str().unwrap().to_owned()
        }
    };
    send(&a, &key_a).await;
    let cid_b = send(&b, &key_b).await;
    let to_b = |mock: &MockResend| mock.accepted().iter().filter(|e| e.to[0].ends_with("example.net")).count() as i64;
    wait_for("both campaigns under way", Duration::from_secs(60), || async { to_b(&mock) >= 200 }).await;
    drop(first); // SIGKILL, with requests in flight
    let c = api.post(&format!("/customers/{b}/campaigns/{cid_b}/cancel"), &key_b, json!({})).await;
    assert!(c.status.is_success(), "{}", c.body);
    let view = api.get(&format!("/customers/{b}/campaigns/{cid_b}"), &key_b).await;
    let handed_over = view.body["counts"]["sent"].as_i64().unwrap() + view.body["counts"]["sending"].as_i64().unwrap();
    wait_for("every recipient", Duration::from_secs(120), || async { api.store.outbox_depth().await.unwrap() == 0 })
        .await;

    let seen = per_recipient(&mock);
    let dupes: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(dupes.is_empty(), "duplicates: {dupes:?}");
    let to_a = seen.keys().filter(|k| k.ends_with("example.org")).count();
    let view_a = api.get(&format!("/customers/{a}/campaigns"), &key_a).await;
    assert_eq!(to_a, 2_000, "every recipient of the campaign that was not cancelled: {}", view_a.body);
    assert!(to_b(&mock) <= handed_over, "{} sent to B, {handed_over} sent or in flight at the cancel", to_b(&mock));
    for e in mock.accepted() {
        let (t, key) = if e.to[0].ends_with("example.org") { (&a, &key_a) } else { (&b, &key_b) };
        let id = e.tags.iter().find(|t| t.name == "message").unwrap().value.clone();
        let m = api.get(&format!("/customers/{t}/messages/{id}"), key).await;
        assert_ne!(m.body["status"], "dead", "the provider accepted it: {}", m.body);
    }
}
