//! Issue 20, section 2: templates that fail do not drain the queue. A campaign
//! whose renders keep failing is paused (`render_failing`) instead of
//! dead-lettering its audience; the tenant fixes the template and resumes.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_with, Options, TestApp, ADMIN_KEY};

async fn app() -> TestApp {
    spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await
}

async fn create_template(app: &TestApp, t: &str, key: &str, body: Value) -> Value {
    let r = app.post(&format!("/customers/{t}/templates"), key, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn send(app: &TestApp, t: &str, key: &str, template: &Value) -> String {
    let r = app.post(&format!("/customers/{t}/send"), key, json!({ "template_id": template["id"] })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    r.body["campaign_id"].as_str().unwrap().to_owned()
}

fn accepted_at(app: &TestApp, domain: &str) -> Vec<mailroom::mock::AcceptedEmail> {
    app.mock().accepted().into_iter().filter(|e| e.to[0].ends_with(domain)).collect()
}

// Fails on the old main: every recipient became a dead letter, one claim after another.
#[tokio::test]
async fn a_campaign_whose_renders_keep_failing_is_paused_and_resumes_with_a_fixed_version() {
    let app = app().await;
    let (a, key_a) = app.verified_tenant("Acme", "acme.com").await;
    let (b, key_b) = app.verified_tenant("Other", "other.com").await;
    for i in 0..30 {
        app.add_contact(&a, &key_a, json!({ "email": format!("user{i}@acme.example") })).await;
    }
    for i in 0..5 {
        app.add_contact(&b, &key_b, json!({ "email": format!("user{i}@other.example") })).await;
    }
    // Its error depends on the data (a string plus a number), so saving lets
    // it through; at send time it fails for every recipient.
    let broken = create_template(
        &app,
        &a,
        &key_a,
        json!({ "name": "Broken", "subject": "Hi", "html": "<p>{{ contact.email + 1 }}</p>" }),
    )
    .await;
    let fine = create_template(
        &app,
        &b,
        &key_b,
        json!({ "name": "Fine", "subject": "Hi", "html": "<p>{{ contact.email }}</p>" }),
    )
    .await;
    let ca = send(&app, &a, &key_a, &broken).await;
    let cb = send(&app, &b, &key_b, &fine).await;
    app.settle().await;

    let view = app.get(&format!("/customers/{a}/campaigns/{ca}"), &key_a).await;
    assert_eq!(view.body["status"], "paused", "{}", view.body);
    assert_eq!(view.body["pause_reason"], "render_failing", "{}", view.body);
    // Nine dead letters; the tenth failure in a row paused the campaign, and
    // it waits (with its error) for the resume like the rest.
    assert_eq!(view.body["counts"]["dead"], 9, "{}", view.body);
    assert_eq!(view.body["counts"]["paused"], 21, "{}", view.body);
    let listed = app.get(&format!("/customers/{a}/campaigns"), &key_a).await;
    assert_eq!(listed.body[0]["pause_reason"], "render_failing", "{}", listed.body);
    assert!(accepted_at(&app, "acme.example").is_empty());

    // The other tenant's campaign is untouched.
    let other = app.get(&format!("/customers/{b}/campaigns/{cb}"), &key_b).await;
    assert_eq!(other.body["status"], "sent", "{}", other.body);
    assert_eq!(other.body["pause_reason"], Value::Null, "{}", other.body);
    assert_eq!(accepted_at(&app, "other.example").len(), 5);

    let metrics = app.http.get(format!("{}/metrics", app.base)).bearer_auth(ADMIN_KEY).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("mailroom_campaigns_paused_total{reason=\"render_failing\"}"), "{metrics}");

    // The tenant fixes the template and resumes with the new version.
    let id = broken["id"].as_str().unwrap();
    let fixed = app
        .patch(&format!("/customers/{a}/templates/{id}"), &key_a, json!({ "html": "<p>Fixed {{ contact.email }}</p>" }))
        .await;
    assert_eq!(fixed.body["version"], 2, "{}", fixed.body);
    let resume = format!("/customers/{a}/campaigns/{ca}/resume");
    let r = app.post(&resume, &key_a, json!({ "template_version": 99 })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = app.post(&resume, &key_a, json!({ "template_versoin": 2 })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = app.post(&format!("/customers/{b}/campaigns/{cb}/resume"), &key_b, json!({ "template_version": 1 })).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "a campaign that is not paused: {}", r.body);
    let r = app.post(&resume, &key_b, json!({ "template_version": 2 })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "another tenant's campaign: {}", r.body);
    let r = app.post(&resume, &key_a, json!({ "template_version": 2 })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["template_version"], 2, "{}", r.body);
    assert_eq!(r.body["pause_reason"], Value::Null, "{}", r.body);
    app.settle().await;

    let sent = accepted_at(&app, "acme.example");
    assert_eq!(sent.len(), 21, "the paused recipients, the one that tipped it included");
    assert!(sent.iter().all(|e| e.html.as_deref().unwrap_or_default().starts_with("<p>Fixed ")));
    let view = app.get(&format!("/customers/{a}/campaigns/{ca}"), &key_a).await;
    assert_eq!(view.body["counts"]["dead"], 9, "dead letters from before the pause stay: {}", view.body);
    assert_eq!(view.body["status"], "partially_failed", "{}", view.body);
    // ... and can be retried, now with the fixed version.
    let r = app.post(&format!("/customers/{a}/campaigns/{ca}/dead-letters/retry"), &key_a, json!({})).await;
    assert_eq!(r.body["requeued"], 9, "{}", r.body);
    app.settle().await;
    assert_eq!(accepted_at(&app, "acme.example").len(), 30);
}

// A template that fails for some recipients only is paused once more than 5%
// of its first 200 fail, without ten in a row.
#[tokio::test]
async fn a_campaign_failing_for_more_than_five_percent_of_its_first_renders_is_paused() {
    let app = app().await;
    let (a, key) = app.verified_tenant("Acme", "acme.com").await;
    // Every third contact has an `n` that is not a number (messages are
    // claimed in an order of their own: ten of those in a row are unlikely
    // to come before the eleventh).
    for i in 0..60 {
        let plan = if i % 3 == 0 { json!("gold") } else { json!(i) };
        app.add_contact(&a, &key, json!({ "email": format!("user{i:02}@acme.example"), "attributes": { "n": plan } }))
            .await;
    }
    let tpl = create_template(
        &app,
        &a,
        &key,
        json!({ "name": "Plan", "subject": "Hi", "html": "{{ contact.attributes.n + 1 }}" }),
    )
    .await;
    let cid = send(&app, &a, &key, &tpl).await;
    app.settle().await;
    let view = app.get(&format!("/customers/{a}/campaigns/{cid}"), &key).await;
    assert_eq!(view.body["status"], "paused", "{}", view.body);
    assert_eq!(view.body["pause_reason"], "render_failing", "{}", view.body);
    // The 11th failure among its first renders paused it.
    assert_eq!(view.body["counts"]["dead"], 10, "{}", view.body);
    // A pause by hand says so.
    let (b, key_b) = app.verified_tenant("Other", "other.com").await;
    app.add_contact(&b, &key_b, json!({ "email": "x@other.example" })).await;
    let fine = create_template(&app, &b, &key_b, json!({ "name": "Fine", "subject": "Hi", "html": "ok" })).await;
    let cb = send(&app, &b, &key_b, &fine).await;
    let r = app.post(&format!("/customers/{b}/campaigns/{cb}/pause"), &key_b, json!({})).await;
    assert_eq!(r.body["pause_reason"], "manual", "{}", r.body);
}
