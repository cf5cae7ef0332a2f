//! Fair shares of webhooks to customers (issue 20): a slow endpoint holds at
//! most its own share of deliveries in flight and never holds up another
//! customer's; a customer's endpoints together are capped; test events and
//! replays are rate-limited per endpoint.

use std::time::{Duration, Instant};

use mailroom::domain::webhook_shares::InFlightCaps;
use mailroom::domain::TenantId;
use reqwest::StatusCode;
use serde_json::json;

use crate::common::webhook_receiver::Receiver;
use crate::helpers::{spawn_with, wait_for, Options, TestApp, ADMIN_KEY};
use crate::tenant_webhooks::endpoint;

/// An app (running its workers) whose webhooks may call the local receivers.
async fn app_with(env: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("MAILROOM_ALLOW_PRIVATE_WEBHOOKS", "true"), ("MAILROOM_WEBHOOK_RETRY_SCALE", "0.001")];
    all.extend_from_slice(env);
    spawn_with(Options { env: all.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(), ..Options::default() })
        .await
}

async fn customer(app: &TestApp, name: &str) -> (String, String) {
    let c = app.post("/customers", ADMIN_KEY, json!({ "name": name })).await;
    let id = c.body["id"].as_str().unwrap().to_owned();
    let key = app.post(&format!("/customers/{id}/api-keys"), ADMIN_KEY, json!({})).await;
    (id, key.body["key"].as_str().unwrap().to_owned())
}

/// Queues `n` `email.sent` events for every subscribed endpoint of the customer.
async fn queue_events(app: &TestApp, tenant: &str, n: usize) {
    let tenant = TenantId::from_stored(tenant.to_owned());
    for i in 0..n {
        app.store.enqueue_tenant_events(&tenant, "email.sent", &json!({ "n": i })).await.unwrap();
    }
}

/// An app whose workers never run: the test claims deliveries itself.
async fn app_claiming_by_hand() -> TestApp {
    let env = [("MAILROOM_ALLOW_PRIVATE_WEBHOOKS", "true")];
    spawn_with(Options {
        run_worker: false,
        env: env.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
        ..Options::default()
    })
    .await
}

/// Where nothing listens: these tests only claim, never send.
const NOWHERE: &str = "http://127.0.0.1:9/hook";

#[tokio::test]
async fn a_claim_takes_endpoints_in_turn_however_long_one_endpoints_backlog() {
    let app = app_claiming_by_hand().await;
    let (a, key_a) = customer(&app, "A").await;
    let (b, key_b) = customer(&app, "B").await;
    let (wa, _) = endpoint(&app, &a, &key_a, NOWHERE, &["email.sent"]).await;
    let (wb, _) = endpoint(&app, &b, &key_b, NOWHERE, &["email.sent"]).await;
    // A backlog far longer than one claim takes (or reads), queued first.
    queue_events(&app, &a, 300).await;
    queue_events(&app, &b, 1).await;
    let tenant_a = TenantId::from_stored(a.clone());
    let mut backlog = app.store.deliveries(&tenant_a, &wa, None, 1_000).await.unwrap();
    assert_eq!(backlog.len(), 300);
    backlog.sort_by(|x, y| (x.next_attempt_at, &x.id).cmp(&(y.next_attempt_at, &y.id)));

    let caps = InFlightCaps { per_endpoint: 2, per_tenant: 8 };
    let claimed = app.store.claim_deliveries(60_000, 32, caps).await.unwrap();
    let order: Vec<&str> = claimed.iter().map(|d| d.endpoint_id.as_str()).collect();
    assert_eq!(order, [wa.as_str(), wb.as_str(), wa.as_str()], "every endpoint's first before any endpoint's second");
    assert_eq!(claimed[0].id, backlog[0].id, "the endpoint's oldest first");
    assert_eq!(claimed[2].id, backlog[1].id, "then its next oldest");
    assert!(
        app.store.claim_deliveries(60_000, 32, caps).await.unwrap().is_empty(),
        "A's endpoint has its 2 in flight, B has nothing more due"
    );
}

#[tokio::test]
async fn a_claim_passes_over_a_saturated_customers_endpoints_to_the_next_customers() {
    let app = app_claiming_by_hand().await;
    let (t, key_t) = customer(&app, "T").await;
    let (u, key_u) = customer(&app, "U").await;
    for _ in 0..4 {
        endpoint(&app, &t, &key_t, NOWHERE, &["email.sent"]).await;
    }
    let (wu, _) = endpoint(&app, &u, &key_u, NOWHERE, &["email.sent"]).await;
    // T's four endpoints are longer due than U's, and as many as a claim takes.
    queue_events(&app, &t, 2).await;
    queue_events(&app, &u, 2).await;

    let caps = InFlightCaps { per_endpoint: 2, per_tenant: 2 };
    let claimed = app.store.claim_deliveries(60_000, 4, caps).await.unwrap();
    let tenants: Vec<&str> = claimed.iter().map(|d| d.tenant_id.as_str()).collect();
    assert_eq!(tenants, [t.as_str(), t.as_str(), u.as_str(), u.as_str()], "T's cap, then U's endpoint twice");
    assert_ne!(claimed[0].endpoint_id, claimed[1].endpoint_id, "T's endpoints in turn");
    assert!(claimed[2..].iter().all(|d| d.endpoint_id == wu));
}

#[tokio::test]
async fn a_saturated_slow_endpoint_does_not_hold_up_another_customers_first_attempt() {
    let app = app_with(&[]).await;
    let (a, key_a) = customer(&app, "A").await;
    let (b, key_b) = customer(&app, "B").await;
    let slow = Receiver::start().await;
    slow.delay(Duration::from_secs(8));
    let fast = Receiver::start().await;
    endpoint(&app, &a, &key_a, &slow.url, &["email.sent"]).await;
    let (wb, _) = endpoint(&app, &b, &key_b, &fast.url, &["email.sent"]).await;
    queue_events(&app, &a, 32).await;
    wait_for("the slow endpoint to be saturated", Duration::from_secs(20), || async { slow.received().len() >= 2 })
        .await;
    let saturated = Instant::now();

    let queued = Instant::now();
    let test = app.post(&format!("/customers/{b}/webhooks/{wb}/test"), &key_b, json!({})).await;
    assert_eq!(test.status, StatusCode::ACCEPTED, "{}", test.body);
    wait_for("the other customer's event", Duration::from_secs(30), || async { !fast.received().is_empty() }).await;
    let waited = fast.arrivals()[0].duration_since(queued);
    // The slow endpoint answers after 8 s: waiting for its attempts would take that long.
    assert!(waited < Duration::from_secs(3), "the other customer's event waited {waited:?}");
    if saturated.elapsed() < Duration::from_secs(7) {
        assert_eq!(slow.received().len(), 2, "at most 2 in flight to one endpoint (the default)");
    }
}

#[tokio::test]
async fn a_customers_endpoints_together_have_no_more_than_its_cap_in_flight_taken_in_turn() {
    let app = app_with(&[("MAILROOM_WEBHOOK_TENANT_CONCURRENCY", "3")]).await;
    let (a, key_a) = customer(&app, "A").await;
    let slow: Vec<Receiver> = futures::future::join_all((0..3).map(|_| Receiver::start())).await;
    for rx in &slow {
        rx.delay(Duration::from_secs(8));
        endpoint(&app, &a, &key_a, &rx.url, &["email.sent"]).await;
    }
    queue_events(&app, &a, 4).await;
    let total = || slow.iter().map(|rx| rx.received().len()).sum::<usize>();
    wait_for("3 deliveries in flight", Duration::from_secs(20), || async { total() >= 3 }).await;
    let started = Instant::now();
    // A claim would take more within this time if the cap let it (it claims every few ms).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    if started.elapsed() < Duration::from_secs(6) {
        assert_eq!(total(), 3, "the customer's cap, not 3 endpoints x 2");
        for rx in &slow {
            assert_eq!(rx.received().len(), 1, "endpoints in turn: one each");
        }
    }
}

#[tokio::test]
async fn test_events_and_replays_to_one_endpoint_are_rate_limited_with_retry_after() {
    let app = app_with(&[]).await;
    let (t, key) = customer(&app, "A").await;
    let rx = Receiver::start().await;
    let (w, _) = endpoint(&app, &t, &key, &rx.url, &["email.sent"]).await;
    let (other, _) = endpoint(&app, &t, &key, &rx.url, &["email.sent"]).await;
    let test_path = format!("/customers/{t}/webhooks/{w}/test");
    let mut first = None;
    for i in 0..10 {
        let r = app.post(&test_path, &key, json!({})).await;
        assert_eq!(r.status, StatusCode::ACCEPTED, "test event {i}: {}", r.body);
        first.get_or_insert(r.body["delivery_id"].as_str().unwrap().to_owned());
    }
    let limited = app.post(&test_path, &key, json!({})).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{}", limited.body);
    assert_eq!(limited.body["error"]["code"], "rate_limited");
    let retry: u64 = limited.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=6).contains(&retry), "one send every 6 s after a burst of 10: {retry}");

    let did = first.unwrap();
    let replay_path = format!("/customers/{t}/webhooks/{w}/deliveries/{did}/replay");
    let replay = app.post(&replay_path, &key, json!({})).await;
    assert_eq!(replay.status, StatusCode::TOO_MANY_REQUESTS, "replays share the allowance: {}", replay.body);
    assert!(replay.headers.contains_key("retry-after"));
    let unknown = app
        .post(
            &format!("/customers/{t}/webhooks/{w}/deliveries/0192f0c4-0000-7000-8000-000000000001/replay"),
            &key,
            json!({}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "an unknown delivery is 404 whatever the allowance");

    let elsewhere = app.post(&format!("/customers/{t}/webhooks/{other}/test"), &key, json!({})).await;
    assert_eq!(elsewhere.status, StatusCode::ACCEPTED, "each endpoint has its own allowance: {}", elsewhere.body);

    // A replay waits while an attempt of the delivery is in flight (409): let the first one finish.
    let deliveries = format!("/customers/{t}/webhooks/{w}/deliveries?limit=100");
    wait_for("the first test event delivered", Duration::from_secs(30), || async {
        let list = app.get_all(&deliveries, &key).await;
        list.iter().any(|d| d["id"] == did.as_str() && d["status"] == "delivered")
    })
    .await;
    // One more each interval once the burst is spent (the store's clock).
    app.advance(Duration::from_secs(6));
    assert_eq!(app.post(&replay_path, &key, json!({})).await.status, StatusCode::ACCEPTED);
    assert_eq!(app.post(&test_path, &key, json!({})).await.status, StatusCode::TOO_MANY_REQUESTS);
}
