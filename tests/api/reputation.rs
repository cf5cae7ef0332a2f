//! Issue 10 (4): the reputation guard. A customer's rolling hard-bounce and
//! complaint rates move it to `warning` and `paused` exactly at the
//! thresholds (and only past the minimum sent); `paused` holds its campaign
//! mail at once while transactional mail flows; only the admin resumes it;
//! every change is in its history and reaches its webhooks and the operator's
//! alert webhook, signed.

use std::time::Duration;

use axum::http::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::webhook_receiver::Receiver;
use crate::events::event_at;
use crate::helpers::{spawn_with, Options, TestApp, ADMIN_KEY};

const ALERT_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// An app on the Resend mock whose alert webhook is `alerts` (if any), with a
/// one-second sweep.
async fn app_with(alerts: Option<&Receiver>, env: &[(&str, &str)]) -> TestApp {
    let mut all: Vec<(String, String)> = vec![
        ("MAILROOM_ALLOW_PRIVATE_WEBHOOKS".into(), "true".into()),
        ("MAILROOM_WEBHOOK_RETRY_SCALE".into(), "0.001".into()),
        ("MAILROOM_REPUTATION_SWEEP_SECS".into(), "1".into()),
    ];
    if let Some(r) = alerts {
        all.push(("MAILROOM_ALERT_WEBHOOK_URL".into(), r.url.clone()));
        all.push(("MAILROOM_ALERT_WEBHOOK_SECRET".into(), ALERT_SECRET.into()));
    }
    all.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    spawn_with(Options { resend: true, env: all, ..Options::default() }).await
}

/// Imports `n` contacts (`user{i}@{contacts}`) and sends a campaign to all
/// the customer's contacts (`expected` of them): the provider ids of its emails.
async fn campaign(app: &TestApp, t: &str, key: &str, n: usize, contacts: &str, expected: usize) -> Vec<String> {
    app.import_contacts(t, key, n, contacts).await;
    let from =
        app.get(&format!("/customers/{t}/domains/status"), key).await.body["domain"].as_str().unwrap().to_owned();
    let before: usize = accepted_from(app, &from).len();
    let r = app.post(&format!("/customers/{t}/send"), key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.drain().await;
    let ids = accepted_from(app, &from);
    assert_eq!(ids.len(), before + expected);
    ids[before..].to_vec()
}

/// A first campaign to `n` new contacts of this customer.
async fn sent_campaign(app: &TestApp, t: &str, key: &str, n: usize, contacts: &str) -> Vec<String> {
    campaign(app, t, key, n, contacts, n).await
}

/// Provider ids of the emails the mock accepted from this sender domain, in order.
fn accepted_from(app: &TestApp, domain: &str) -> Vec<String> {
    app.mock().accepted().into_iter().filter(|a| a.from.contains(&format!("@{domain}"))).map(|a| a.id).collect()
}

fn now_rfc3339() -> String {
    mailroom::domain::rfc3339(mailroom::domain::now_ms())
}

/// Posts one event per provider id, now, concurrently; each answered 200.
async fn events(app: &TestApp, kind: &str, ids: &[String], extra: Value, tag: &str) {
    let at = now_rfc3339();
    let bodies: Vec<(String, Value)> =
        ids.iter().map(|id| (format!("{tag}-{kind}-{id}"), event_at(kind, id, extra.clone(), &at))).collect();
    for chunk in bodies.chunks(32) {
        let answers = futures::future::join_all(chunk.iter().map(|(svix, body)| app.webhook(svix, body))).await;
        for r in answers {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    }
}

async fn hard_bounces(app: &TestApp, ids: &[String]) {
    events(app, "email.bounced", ids, json!({ "bounce": { "type": "Permanent", "subType": "General" } }), "b").await;
}

async fn reputation(app: &TestApp, t: &str, key: &str) -> Value {
    let r = app.get(&format!("/customers/{t}/reputation"), key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

#[tokio::test]
async fn a_customer_is_paused_at_the_bounce_threshold_and_not_below_it() {
    let app = app_with(None, &[]).await;
    let (a, key_a) = app.verified_tenant("A", "acme.com").await;
    let (b, key_b) = app.verified_tenant("B", "bolt.com").await;
    let sent_a = sent_campaign(&app, &a, &key_a, 200, "acme.com").await;
    let sent_b = sent_campaign(&app, &b, &key_b, 199, "bolt.com").await;

    // 199 sent: under the minimum, so even 8 hard bounces (4.02%) judge nothing.
    hard_bounces(&app, &sent_b[..8]).await;
    let r = reputation(&app, &b, &key_b).await;
    assert_eq!(r["state"], "ok", "{r}");
    assert_eq!(r["judged"], false);
    assert_eq!(r["window"]["sent"], 199);
    assert_eq!(r["window"]["hard_bounces"], 8);
    assert_eq!(r["thresholds"]["min_sent"], 200);
    assert_eq!(r["history"].as_array().unwrap().len(), 0);

    // 200 sent: 3 bounces (1.5%) is ok, the 4th (2%) a warning.
    hard_bounces(&app, &sent_a[..3]).await;
    assert_eq!(reputation(&app, &a, &key_a).await["state"], "ok");
    hard_bounces(&app, &sent_a[3..4]).await;
    let r = reputation(&app, &a, &key_a).await;
    assert_eq!(r["state"], "warning", "{r}");
    assert_eq!(r["judged"], true);
    assert_eq!(r["window"]["bounce_rate"], 0.02);
    assert_eq!(r["campaigns_paused"], false);

    // 7 (3.5%) is still a warning; the 8th (4%) pauses, at once.
    hard_bounces(&app, &sent_a[4..7]).await;
    assert_eq!(reputation(&app, &a, &key_a).await["state"], "warning");
    // A soft bounce, and a hard one delivered again under its svix id, count for nothing.
    events(
        &app,
        "email.bounced",
        &sent_a[7..8],
        json!({ "bounce": { "type": "Transient", "subType": "MailboxFull" } }),
        "s",
    )
    .await;
    hard_bounces(&app, &sent_a[6..7]).await;
    assert_eq!(reputation(&app, &a, &key_a).await["state"], "warning");
    hard_bounces(&app, &sent_a[7..8]).await;
    let r = reputation(&app, &a, &key_a).await;
    assert_eq!(r["state"], "paused", "{r}");
    assert_eq!(r["campaigns_paused"], true);
    assert_eq!(r["window"]["hard_bounces"], 8);
    assert_eq!(r["window"]["bounce_rate"], 0.04);
    assert_eq!(r["thresholds"]["bounce_pause"], 0.04);
    let history = r["history"].as_array().unwrap();
    assert_eq!(history.len(), 2, "{r}");
    assert_eq!((history[0]["from"].as_str(), history[0]["to"].as_str()), (Some("warning"), Some("paused")));
    assert_eq!((history[1]["from"].as_str(), history[1]["to"].as_str()), (Some("ok"), Some("warning")));
    assert_eq!(history[0]["actor"], "system");
    assert_eq!(history[0]["hard_bounces"], 8);
    assert!(history[0]["reason"].as_str().unwrap().contains("4%"), "{}", history[0]);

    // The operator's view: everyone, worst first.
    let (c, _) = app.verified_tenant("C", "calm.com").await;
    let all = app.get("/reputation", ADMIN_KEY).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    let order: Vec<&str> = all.body.as_array().unwrap().iter().map(|r| r["customer_id"].as_str().unwrap()).collect();
    assert_eq!(order[0], a, "the paused customer first");
    assert!(order.contains(&b.as_str()) && order.contains(&c.as_str()));
    assert!(all.body[0].get("history").is_none());
}

#[tokio::test]
async fn campaign_mail_is_held_while_paused_transactional_mail_flows_and_only_the_admin_resumes() {
    let app = app_with(None, &[]).await;
    let (a, key) = app.verified_tenant("A", "acme.com").await;
    let (_, key_b) = app.verified_tenant("B", "bolt.com").await;
    let sent = sent_campaign(&app, &a, &key, 200, "acme.com").await;
    hard_bounces(&app, &sent[..8]).await;
    assert_eq!(reputation(&app, &a, &key).await["state"], "paused");

    // A new campaign is accepted, but none of it is claimed while paused.
    let r = app.post(&format!("/customers/{a}/send"), &key, json!({ "subject": "again", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    // Transactional mail still goes out.
    app.send_single(&a, &key, "pat@example.org").await;
    app.settle_until("the transactional email", || async {
        app.mock().accepted().iter().any(|m| m.to == ["pat@example.org"])
    })
    .await;
    app.settle().await;
    let again = app.mock().accepted().iter().filter(|m| m.subject == "again").count();
    assert_eq!(again, 0, "no campaign mail while paused");

    // Only the admin resumes.
    let path = format!("/customers/{a}/reputation/resume");
    let r = app.post(&path, &key, json!({})).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert!(r.body["error"]["code"].is_string(), "{}", r.body);
    assert_eq!(app.post(&path, &key_b, json!({})).await.status, StatusCode::FORBIDDEN);
    assert_eq!(reputation(&app, &a, &key).await["state"], "paused");
    let r = app.post(&path, ADMIN_KEY, json!({ "note": "list cleaned" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["state"], "ok");
    assert!(r.body["resumed_at"].is_string());
    assert_eq!(r.body["window"]["sent"], 0, "the window starts afresh at the resume");
    let top = &r.body["history"][0];
    assert_eq!(
        (top["from"].as_str(), top["to"].as_str(), top["actor"].as_str()),
        (Some("paused"), Some("ok"), Some("admin"))
    );
    assert!(top["reason"].as_str().unwrap().contains("list cleaned"));
    assert!(top["at"].is_string());

    // The held campaign goes out now (to the 192 not suppressed by their bounce).
    app.settle_until("the held campaign to go out", || async {
        app.mock().accepted().iter().filter(|m| m.subject == "again").count() == 192
    })
    .await;
    // The old events do not pause it again, neither the sweep (every second)
    // nor a repeat of them under new svix ids.
    hard_bounces(&app, &sent[..8]).await;
    events(
        &app,
        "email.bounced",
        &sent[..8],
        json!({ "bounce": { "type": "Permanent", "subType": "General" } }),
        "again",
    )
    .await;
    // Past two of the sweep's one-second rounds.
    app.advance(Duration::from_millis(2500));
    app.settle().await;
    let r = reputation(&app, &a, &key).await;
    assert_eq!(r["state"], "ok", "{r}");
    assert_eq!(r["history"].as_array().unwrap().len(), 2);

    // Resuming what is not paused is a conflict.
    let r = app.post(&path, ADMIN_KEY, json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "not_paused");
}

#[tokio::test]
async fn new_bounces_after_a_resume_pause_again() {
    let app = app_with(None, &[("MAILROOM_REPUTATION_MIN_SENT", "20")]).await;
    let (a, key) = app.verified_tenant("A", "acme.com").await;
    let sent = sent_campaign(&app, &a, &key, 20, "acme.com").await;
    hard_bounces(&app, &sent[..1]).await;
    assert_eq!(reputation(&app, &a, &key).await["state"], "paused", "1 of 20 is 5%");
    let r = app.request(Method::POST, &format!("/customers/{a}/reputation/resume"), Some(ADMIN_KEY), None).await;
    assert_eq!(r.status, StatusCode::OK, "no body is fine: {}", r.body);
    // 40 new contacts and the 19 not bounced: 59 sent since the resume.
    let more = campaign(&app, &a, &key, 40, "example.org", 59).await;
    assert_eq!(reputation(&app, &a, &key).await["window"]["sent"], 59);
    hard_bounces(&app, &more[..2]).await;
    assert_eq!(reputation(&app, &a, &key).await["state"], "warning", "2 of 59 is 3.4%: only the new bounces count");
    hard_bounces(&app, &more[2..3]).await;
    let r = reputation(&app, &a, &key).await;
    assert_eq!(r["state"], "paused", "3 of 59 is 5.1%: {r}");
    assert_eq!(r["window"]["hard_bounces"], 3, "only the bounces after the resume");
}

#[tokio::test]
async fn complaints_warn_and_pause_at_their_configured_thresholds() {
    let app = app_with(
        None,
        &[
            ("MAILROOM_REPUTATION_COMPLAINT_WARNING_PERCENT", "0.5"),
            ("MAILROOM_REPUTATION_COMPLAINT_PAUSE_PERCENT", "1"),
        ],
    )
    .await;
    let (a, key) = app.verified_tenant("A", "acme.com").await;
    let sent = sent_campaign(&app, &a, &key, 200, "acme.com").await;
    events(&app, "email.delivered", &sent, json!({}), "d").await;
    events(&app, "email.complained", &sent[..1], json!({}), "c").await;
    let r = reputation(&app, &a, &key).await;
    assert_eq!(r["state"], "warning", "1 of 200 delivered is 0.5%: {r}");
    assert_eq!(r["thresholds"]["complaint_warning"], 0.005);
    assert_eq!(r["window"]["complaint_rate"], 0.005);
    events(&app, "email.complained", &sent[1..2], json!({}), "c").await;
    let r = reputation(&app, &a, &key).await;
    assert_eq!(r["state"], "paused", "2 of 200 is 1%: {r}");
    assert_eq!(r["window"]["complaints"], 2);
}

fn verifies(secret: &str, h: &HeaderMap, body: &str) -> bool {
    standardwebhooks::Webhook::new(secret).unwrap().verify(body.as_bytes(), h).is_ok()
}

#[tokio::test]
async fn a_change_reaches_the_customer_webhook_and_the_operator_alert_webhook_signed() {
    let operator = Receiver::start().await;
    let app = app_with(Some(&operator), &[]).await;
    let (a, key) = app.verified_tenant("A", "acme.com").await;
    let (b, key_b) = app.verified_tenant("B", "bolt.com").await;
    let mine = Receiver::start().await;
    let theirs = Receiver::start().await;
    let w = app
        .post(
            &format!("/customers/{a}/webhooks"),
            &key,
            json!({ "url": mine.url, "event_types": ["reputation.changed"] }),
        )
        .await;
    assert_eq!(w.status, StatusCode::CREATED, "{}", w.body);
    let secret = w.body["secret"].as_str().unwrap().to_owned();
    let w = app
        .post(
            &format!("/customers/{b}/webhooks"),
            &key_b,
            json!({ "url": theirs.url, "event_types": ["reputation.changed"] }),
        )
        .await;
    assert_eq!(w.status, StatusCode::CREATED, "{}", w.body);

    let sent = sent_campaign(&app, &a, &key, 200, "acme.com").await;
    hard_bounces(&app, &sent[..8]).await;

    // The bounces may land in one group commit or several: the customer may
    // pass through `warning` on its way to `paused`, so look for the pause.
    let to = |state: &'static str| move |(_, b): &(HeaderMap, String)| b.contains(&format!("\"to\":\"{state}\""));
    app.settle_until("the pause, to the customer", || async { mine.received().iter().any(to("paused")) }).await;
    let got = mine.received();
    let (h, body) = got.iter().find(|d| to("paused")(d)).unwrap();
    assert!(verifies(&secret, h, body), "signed with the endpoint's secret");
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["type"], "reputation.changed");
    assert_eq!(v["data"]["customer_id"], a.as_str());
    assert!(matches!(v["data"]["from"].as_str(), Some("ok" | "warning")), "{v}");
    assert_eq!(v["data"]["window"]["hard_bounces"], 8);

    app.settle_until("the pause, to the operator", || async { operator.received().iter().any(to("paused")) }).await;
    let alerts = operator.received();
    let (h, body) = alerts.iter().find(|d| to("paused")(d)).unwrap();
    assert!(verifies(ALERT_SECRET, h, body), "signed with MAILROOM_ALERT_WEBHOOK_SECRET");
    assert!(!verifies(&secret, h, body));
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["type"], "reputation.changed");
    assert_eq!(v["data"]["customer_id"], a.as_str());
    assert_eq!(v["data"]["customer_name"], "A");

    // The resume is alerted too.
    let r = app.post(&format!("/customers/{a}/reputation/resume"), ADMIN_KEY, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.settle_until("the resume, to the operator", || async { operator.received().iter().any(to("ok")) }).await;
    let alerts = operator.received();
    let mut ids: Vec<&str> = alerts.iter().map(|(h, _)| h.get("webhook-id").unwrap().to_str().unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), alerts.len(), "one webhook-id per change");
    let (_, body) = alerts.iter().find(|d| to("ok")(d)).unwrap();
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["data"]["actor"], "admin");
    app.settle_until("the resume, to the customer", || async { mine.received().iter().any(to("ok")) }).await;
    app.settle().await;
    assert!(theirs.received().is_empty(), "another customer hears nothing");
    // The alerts are not among the customer's own deliveries.
    let endpoints = app.get(&format!("/customers/{a}/webhooks"), &key).await;
    let wid = endpoints.body[0]["id"].as_str().unwrap();
    let log = app.get(&format!("/customers/{a}/webhooks/{wid}/deliveries"), &key).await;
    assert_eq!(log.body.as_array().unwrap().len(), mine.received().len(), "{}", log.body);
}

#[tokio::test]
async fn reputation_routes_check_keys_ids_and_input() {
    let app = app_with(None, &[]).await;
    let (a, key_a) = app.verified_tenant("A", "acme.com").await;
    let (b, key_b) = app.verified_tenant("B", "bolt.com").await;
    let fresh = reputation(&app, &a, &key_a).await;
    assert_eq!(fresh["state"], "ok");
    assert_eq!(fresh["window"]["days"], 7);
    assert_eq!(fresh["window"]["bounce_rate"], 0.0);
    assert!(fresh["state_since"].is_null());
    assert_eq!(reputation(&app, &a, ADMIN_KEY).await["customer_id"], a.as_str(), "the admin reads it too");

    // Another customer's reputation does not exist for this key.
    for (path, key) in [(format!("/customers/{b}/reputation"), &key_a), (format!("/customers/{a}/reputation"), &key_b)]
    {
        let r = app.get(&path, key).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.body);
        assert!(r.body["error"]["code"].is_string());
    }
    let unknown = "0192f0c4-0000-7000-8000-000000000001";
    assert_eq!(app.get(&format!("/customers/{unknown}/reputation"), ADMIN_KEY).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get("/customers/not-an-id/reputation", ADMIN_KEY).await.status, StatusCode::NOT_FOUND);
    let r = app.post(&format!("/customers/{unknown}/reputation/resume"), ADMIN_KEY, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert_eq!(
        app.request(Method::GET, &format!("/customers/{a}/reputation"), None, None).await.status,
        StatusCode::UNAUTHORIZED
    );

    // The operator's list is the operator's.
    assert_eq!(app.get("/reputation", &key_a).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.request(Method::GET, "/reputation", None, None).await.status, StatusCode::UNAUTHORIZED);

    // Hostile resume bodies: unknown fields, wrong types, NUL, oversize notes, not JSON.
    let path = format!("/customers/{a}/reputation/resume");
    for (body, status) in [
        (json!({ "force": true }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "note": 5 }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "note": "a\u{0}b" }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "note": "x".repeat(501) }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "note": "line\nbreak" }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!([1, 2]), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let r = app.post(&path, ADMIN_KEY, body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert!(r.body["error"]["message"].is_string(), "{}", r.body);
    }
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Not paused: nothing to resume.
    assert_eq!(app.post(&path, ADMIN_KEY, json!({})).await.status, StatusCode::CONFLICT);

    // The gauge of customers per state (refreshed by the server every few seconds).
    app.settle_until("the reputation gauge", || async {
        let m = app.request(Method::GET, "/metrics", Some(ADMIN_KEY), None).await;
        m.body.as_str().is_some_and(|text| text.contains("mailroom_tenants_by_reputation{state=\"paused\"}"))
    })
    .await;

    // Every route is documented.
    let doc = app.request(Method::GET, "/openapi.json", None, None).await;
    let paths = doc.body["paths"].as_object().unwrap();
    for p in ["/customers/{id}/reputation", "/customers/{id}/reputation/resume", "/reputation"] {
        assert!(paths.contains_key(p), "openapi lacks {p}");
    }
}

#[tokio::test]
async fn concurrent_evaluations_change_a_state_once_and_alert_once() {
    let operator = Receiver::start().await;
    let app = app_with(Some(&operator), &[("MAILROOM_REPUTATION_SWEEP_SECS", "3600")]).await;
    let (a, key) = app.verified_tenant("A", "acme.com").await;
    let sent = sent_campaign(&app, &a, &key, 200, "acme.com").await;
    // 1.5%: below the 2% warning of this app, so ingestion changes nothing.
    hard_bounces(&app, &sent[..3]).await;
    assert_eq!(reputation(&app, &a, &key).await["state"], "ok");
    // Evaluators with a 1% warning threshold, racing: the sweep of several
    // workers, or a sweep and a group commit, judging the same figures.
    let lower = mailroom::config::Config::from_lookup(|k| match k {
        "DATABASE_URL" => Some("sqlite::memory:".into()),
        "MAILROOM_REPUTATION_BOUNCE_WARNING_PERCENT" => Some("1".into()),
        "MAILROOM_ALERT_WEBHOOK_URL" => Some(operator.url.clone()),
        "MAILROOM_ALERT_WEBHOOK_SECRET" => Some(ALERT_SECRET.into()),
        _ => None,
    })
    .unwrap()
    .reputation_policy();
    let store = app.store.clone().with_reputation(lower);
    let changes = futures::future::join_all((0..8).map(|_| store.evaluate_reputation(None))).await;
    let changed: usize = changes.into_iter().map(|c| c.unwrap().len()).sum();
    assert_eq!(changed, 1, "one evaluation makes the change");
    let r = reputation(&app, &a, &key).await;
    assert_eq!(r["state"], "warning", "{r}");
    assert_eq!(r["history"].as_array().unwrap().len(), 1, "{r}");
    let to_warning = |(_, b): &(HeaderMap, String)| b.contains("\"to\":\"warning\"");
    app.settle_until("the alert", || async { operator.received().iter().any(to_warning) }).await;
    app.settle().await;
    assert_eq!(operator.received().iter().filter(|d| to_warning(d)).count(), 1, "one alert");
}
