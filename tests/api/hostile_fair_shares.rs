//! Hostile callers against the fair-shares routes (issue 20): what the review
//! found and fixed.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::webhook_receiver::Receiver;
use crate::helpers::{spawn_with, wait_for, Options, TestApp};
use crate::tenant_webhooks::endpoint;

async fn app_with(env: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("MAILROOM_ALLOW_PRIVATE_WEBHOOKS", "true")];
    all.extend_from_slice(env);
    spawn_with(Options { env: all.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(), ..Options::default() })
        .await
}

/// A replay of a delivery whose attempt is still in flight used to put it back
/// in the queue at once: each replay started one more concurrent request to
/// the endpoint (9 at once to a slow one), past its cap of 2 in flight and the
/// customer's cap. It is now refused (409) until the attempt ends, without
/// spending the endpoint's allowance.
#[tokio::test]
async fn a_replay_of_a_delivery_in_flight_is_refused_and_starts_no_second_request() {
    let app = app_with(&[]).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let slow = Receiver::start().await;
    slow.delay(Duration::from_secs(6));
    let (w, _) = endpoint(&app, &t, &key, &slow.url, &["email.sent"]).await;
    let test = app.post(&format!("/customers/{t}/webhooks/{w}/test"), &key, json!({})).await;
    assert_eq!(test.status, StatusCode::ACCEPTED, "{}", test.body);
    let did = test.body["delivery_id"].as_str().unwrap().to_owned();
    wait_for("the attempt to start", Duration::from_secs(20), || async { !slow.received().is_empty() }).await;

    let replay_path = format!("/customers/{t}/webhooks/{w}/deliveries/{did}/replay");
    for _ in 0..3 {
        let r = app.post(&replay_path, &key, json!({})).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert_eq!(r.body["error"]["code"], "delivery_in_flight", "{}", r.body);
    }
    // The claimer looks every few ms: a replayed delivery would be claimed again by now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(slow.received().len(), 1, "one request in flight for the delivery, not one per replay");

    // Once the attempt has ended, the replay is taken (the refusals spent none of the allowance).
    wait_for("the attempt to end", Duration::from_secs(20), || async {
        let r = app.get(&format!("/customers/{t}/webhooks/{w}/deliveries"), &key).await;
        r.body.as_array().is_some_and(|d| d.iter().any(|d| d["id"] == did.as_str() && d["status"] == "delivered"))
    })
    .await;
    let r = app.post(&replay_path, &key, json!({})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}

/// A version below 1 names no version at all: the schema says `minimum: 1`,
/// so it is refused as invalid input (422), not looked up as a missing one.
#[tokio::test]
async fn a_resume_naming_version_zero_or_below_is_invalid_input() {
    let app = app_with(&[]).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.add_contact(&t, &key, json!({ "email": "delivered@resend.dev" })).await;
    let tpl = app
        .post(&format!("/customers/{t}/templates"), &key, json!({ "name": "n", "subject": "s", "html": "<p>x</p>" }))
        .await;
    assert_eq!(tpl.status, StatusCode::CREATED, "{}", tpl.body);
    let at = mailroom::domain::rfc3339(mailroom::domain::now_ms() + 30 * 86_400_000);
    let send = app
        .post(&format!("/customers/{t}/send"), &key, json!({ "template_id": tpl.body["id"], "scheduled_at": at }))
        .await;
    assert_eq!(send.status, StatusCode::ACCEPTED, "{}", send.body);
    let c = send.body["campaign_id"].as_str().unwrap();
    let pause = app.post(&format!("/customers/{t}/campaigns/{c}/pause"), &key, json!({})).await;
    assert_eq!(pause.status, StatusCode::OK, "{}", pause.body);
    let resume = format!("/customers/{t}/campaigns/{c}/resume");
    for version in [0, -1, i64::MIN] {
        let r = app.post(&resume, &key, json!({ "template_version": version })).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{version}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "validation_error", "{}", r.body);
    }
    let r = app.post(&resume, &key, json!({ "template_version": 2 })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "a version that does not exist (yet): {}", r.body);
    let r = app.post(&resume, &key, json!({ "template_version": 1 })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// The OpenAPI document gives send_weight's bounds (1 to 1000) as it gives agent_daily_calls'.
#[tokio::test]
async fn the_openapi_document_bounds_send_weight() {
    let app = app_with(&[]).await;
    let doc = app.request(reqwest::Method::GET, "/openapi.json", None, None).await;
    let weight = &doc.body["components"]["schemas"]["CustomerPatchIn"]["properties"]["send_weight"];
    assert_eq!(weight["minimum"], 1, "{weight}");
    assert_eq!(weight["maximum"], 1000, "{weight}");
}
