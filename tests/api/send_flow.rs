//! The send flow of issue 22: a default sender per customer, test sends, and
//! a rendered preview of inline content.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{event, spawn_app, spawn_with, Options, ADMIN_KEY};

const STATS_SINCE: &str = "from=2026-11-19T00:00:00Z";

#[tokio::test]
async fn a_test_send_reaches_the_provider_from_the_default_sender_and_counts_in_no_figure() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let p = app
        .patch(&format!("/customers/{t}"), &key, json!({ "from_name": "Acme News", "from_address": "news@acme.com" }))
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    let c = app.get(&format!("/customers/{t}"), &key).await;
    assert_eq!(c.body["from_name"], "Acme News");
    assert_eq!(c.body["from_address"], "news@acme.com");
    assert_eq!(c.body["default_from"], "\"Acme News\" <news@acme.com>");
    app.add_contact(&t, &key, json!({ "email": "ada@gmail.example", "first_name": "Ada", "tags": ["test"] })).await;

    let r = app
        .post(
            &format!("/customers/{t}/send/test"),
            &key,
            json!({ "to": ["ada@gmail.example", "boss@acme.com"], "subject": "Hi {{first_name}}",
                    "html": "<p>Hi {{first_name}}</p>", "tag": "everyone-later" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["test"], true);
    assert_eq!(r.body["from"], "\"Acme News\" <news@acme.com>");
    assert_eq!(r.body["to"], json!(["ada@gmail.example", "boss@acme.com"]));
    let ids: Vec<String> = r.body["email_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().into()).collect();
    assert_eq!(ids.len(), 2);
    app.drain().await;

    let accepted = app.mock().accepted();
    assert_eq!(accepted.len(), 2);
    let ada = accepted.iter().find(|e| e.to == vec!["ada@gmail.example"]).unwrap();
    assert_eq!(ada.from, "\"Acme News\" <news@acme.com>");
    assert_eq!(ada.subject, "[Test] Hi Ada", "marked as a test, rendered for the contact");
    assert!(ada.html.as_deref().unwrap().starts_with("<p>Hi Ada</p>"));
    assert!(ada.headers.get("List-Unsubscribe").is_some_and(|v| v.contains("/u/")), "{:?}", ada.headers);
    assert_eq!(ada.headers.get("List-Unsubscribe-Post").map(String::as_str), Some("List-Unsubscribe=One-Click"));
    assert!(ada.tags.iter().any(|t| t.name == "test" && t.value == "true"));
    assert!(!ada.tags.iter().any(|t| t.name == "campaign"), "a test belongs to no campaign");
    let boss = accepted.iter().find(|e| e.to == vec!["boss@acme.com"]).unwrap();
    assert_eq!(boss.subject, "[Test] Hi there");

    // The stored message says it is a test.
    let m = app.get(&format!("/customers/{t}/messages/{}", ids[0]), &key).await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.body);
    assert_eq!(m.body["test"], true);
    assert!(m.body["campaign_id"].is_null());

    // Its events move it but count in no figure; a real email beside it counts.
    for (i, e) in accepted.iter().enumerate() {
        app.webhook(&format!("msg_t_sent_{i}"), &event("email.sent", &e.id, json!({}))).await;
        app.webhook(&format!("msg_t_deliv_{i}"), &event("email.delivered", &e.id, json!({}))).await;
        app.webhook(&format!("msg_t_open_{i}"), &event("email.opened", &e.id, json!({}))).await;
    }
    let single = app.send_single(&t, &key, "reader@example.org").await;
    app.drain().await;
    let real = app.mock().accepted().into_iter().find(|e| e.to == vec!["reader@example.org"]).unwrap();
    assert_eq!(real.from, "\"Acme News\" <news@acme.com>", "the default sender for a single send too");
    app.webhook("msg_real_deliv", &event("email.delivered", &real.id, json!({}))).await;
    app.settle().await;
    let delivered = app.get(&format!("/customers/{t}/messages/{}", ids[0]), &key).await;
    assert_ne!(delivered.body["status"], "queued", "{}", delivered.body);
    assert_eq!(app.get(&format!("/customers/{t}/messages/{single}"), &key).await.body["test"], false);

    let stats = app.get(&format!("/customers/{t}/stats?{STATS_SINCE}"), &key).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    assert_eq!(stats.body["totals"]["sent"], 1, "only the real email: {}", stats.body["totals"]);
    assert_eq!(stats.body["totals"]["delivered"], 1, "{}", stats.body["totals"]);
    assert_eq!(stats.body["totals"]["unique_opens"], 0, "{}", stats.body["totals"]);
    assert_eq!(app.get(&format!("/customers/{t}/campaigns"), &key).await.body, json!([]), "no campaign is created");
}

#[tokio::test]
async fn a_test_send_is_refused_for_a_sixth_address_a_contact_not_tagged_test_another_domain_or_a_duplicate() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let (other, other_key) = app.verified_tenant("Other", "other.com").await;
    app.add_contact(&t, &key, json!({ "email": "plain@gmail.example", "tags": ["vip"] })).await;
    app.add_contact(&other, &other_key, json!({ "email": "theirs@gmail.example", "tags": ["test"] })).await;
    let theirs = app
        .post(&format!("/customers/{other}/templates"), &other_key, json!({ "name": "n", "subject": "s", "html": "h" }))
        .await;
    assert_eq!(theirs.status, StatusCode::CREATED, "{}", theirs.body);
    let their_template = theirs.body["id"].as_str().unwrap();
    let path = format!("/customers/{t}/send/test");
    let six: Vec<String> = (0..6).map(|i| format!("u{i}@acme.com")).collect();
    let cases = [
        (json!({ "to": six, "subject": "s", "html": "h" }), StatusCode::UNPROCESSABLE_ENTITY, "validation_error"),
        (json!({ "to": [], "subject": "s", "html": "h" }), StatusCode::UNPROCESSABLE_ENTITY, "validation_error"),
        (
            json!({ "to": ["plain@gmail.example"], "subject": "s", "html": "h" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "recipient_not_allowed",
        ),
        (
            json!({ "to": ["someone@other.com"], "subject": "s", "html": "h" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "recipient_not_allowed",
        ),
        (
            json!({ "to": ["theirs@gmail.example"], "subject": "s", "html": "h" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "recipient_not_allowed",
        ),
        (
            json!({ "to": ["a@acme.com", "A@ACME.com"], "subject": "s", "html": "h" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        ),
        (
            json!({ "to": ["not an address"], "subject": "s", "html": "h" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_email",
        ),
        (
            json!({ "to": "a@acme.com", "subject": "s", "html": "h" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        ),
        (json!({ "to": ["a@acme.com"], "template_id": their_template }), StatusCode::NOT_FOUND, "not_found"),
        (
            json!({ "to": ["a@acme.com"], "subject": "s", "html": "h", "bogus": 1 }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        ),
        (
            json!({ "to": ["a@acme.com"], "subject": "s", "html": "h", "from": "x@other.com" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_from",
        ),
        (
            json!({ "to": ["a@acme.com"], "subject": "s\r\nBcc: x@y.z", "html": "h" }),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        ),
        (
            json!({ "to": ["a@acme.com"], "subject": "s", "html": "x".repeat(3_000_000) }),
            StatusCode::PAYLOAD_TOO_LARGE,
            "",
        ),
    ];
    for (body, status, code) in cases {
        let r = app.post(&path, &key, body.clone()).await;
        assert_eq!(r.status, status, "{} -> {}", &body.to_string()[..body.to_string().len().min(200)], r.body);
        if !code.is_empty() {
            assert_eq!(r.body["error"]["code"], code, "{}", r.body);
        }
    }
    // A suppressed address, even one on the domain, is refused and nothing of the request is queued.
    let s = app.post(&format!("/customers/{t}/suppressions"), &key, json!({ "emails": ["gone@acme.com"] })).await;
    assert!(s.status.is_success(), "{}", s.body);
    let r = app.post(&path, &key, json!({ "to": ["ok@acme.com", "gone@acme.com"], "subject": "s", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "recipient_suppressed");
    // Another tenant's key reaches nothing.
    let r = app.post(&path, &other_key, json!({ "to": ["a@acme.com"], "subject": "s", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    app.drain().await;
    assert!(app.mock().accepted().is_empty(), "nothing reached the provider");
}

#[tokio::test]
async fn the_default_sender_is_used_when_a_send_names_none_and_another_domain_is_refused() {
    let app = spawn_app().await;
    let unverified =
        app.post("/customers", ADMIN_KEY, json!({ "name": "New" })).await.body["id"].as_str().unwrap().to_owned();
    let r = app.patch(&format!("/customers/{unverified}"), ADMIN_KEY, json!({ "from_address": "a@new.com" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "invalid_from");
    assert!(app.get(&format!("/customers/{unverified}"), ADMIN_KEY).await.body["default_from"].is_null());

    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    app.verified_tenant("Other", "other.com").await;
    app.add_contact(&t, &key, json!({ "email": "reader@example.org" })).await;
    let single = |from: Option<&str>| {
        let mut body = json!({ "to_email": "reader@example.org", "subject": "s", "html": "h" });
        if let Some(f) = from {
            body["from"] = json!(f);
        }
        body
    };
    let before = app.post(&format!("/customers/{t}/send/single"), &key, single(None)).await;
    assert_eq!(before.body["from"], "hello@acme.com", "hello@{{domain}} until a sender is set");
    assert_eq!(app.get(&format!("/customers/{t}"), &key).await.body["default_from"], "hello@acme.com");

    let refused = [
        json!({ "from_address": "news@other.com" }),
        json!({ "from_address": "news@sub.acme.com" }),
        json!({ "from_address": "Acme <news@acme.com>" }),
        json!({ "from_address": "news@acme.com\r\nBcc: x@y.z" }),
        json!({ "from_name": "Acme\r\nBcc: x@y.z" }),
        json!({ "from_name": "Acme\u{0}" }),
        json!({ "from_name": "x".repeat(101) }),
        json!({ "from_name": 7 }),
        json!({ "from_email": "news@acme.com" }),
    ];
    for body in refused {
        let r = app.patch(&format!("/customers/{t}"), &key, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body} -> {}", r.body);
        assert!(r.body["error"]["message"].is_string(), "{}", r.body);
    }
    assert!(app.get(&format!("/customers/{t}"), &key).await.body["from_address"].is_null(), "nothing was set");

    let set = app.patch(&format!("/customers/{t}"), &key, json!({ "from_address": "News@acme.com" })).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(set.body["default_from"], "News@acme.com");
    let after = app.post(&format!("/customers/{t}/send/single"), &key, single(None)).await;
    assert_eq!(after.body["from"], "News@acme.com");
    let campaign = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(campaign.status, StatusCode::ACCEPTED, "{}", campaign.body);
    assert_eq!(campaign.body["from"], "News@acme.com");
    let named = app.post(&format!("/customers/{t}/send/single"), &key, single(Some("billing@acme.com"))).await;
    assert_eq!(named.body["from"], "billing@acme.com", "a send that names a sender keeps it");

    let named = app.patch(&format!("/customers/{t}"), &key, json!({ "from_name": "Acme, \"the\" shop" })).await;
    assert_eq!(named.body["default_from"], "\"Acme, \\\"the\\\" shop\" <News@acme.com>");
    let cleared = app.patch(&format!("/customers/{t}"), &key, json!({ "from_address": null, "from_name": null })).await;
    assert_eq!(cleared.status, StatusCode::OK, "{}", cleared.body);
    assert_eq!(cleared.body["default_from"], "hello@acme.com");
    let again = app.post(&format!("/customers/{t}/send/single"), &key, single(None)).await;
    assert_eq!(again.body["from"], "hello@acme.com");
}

#[tokio::test]
async fn an_inline_campaign_previews_for_a_contact_and_for_a_sample_one() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let (other, other_key) = app.verified_tenant("Other", "other.com").await;
    let ada = app.add_contact(&t, &key, json!({ "email": "ada@example.org", "first_name": "<Ada>" })).await;
    let theirs = app.add_contact(&other, &other_key, json!({ "email": "x@example.org" })).await;
    let path = format!("/customers/{t}/send/preview");
    let content = json!({ "subject": "Hi {{first_name}}", "html": "<p>Hi {{first_name}}</p><a href=\"{{unsubscribe_url}}\">u</a>",
                          "text": "Hi {{ first_name }}" });

    let sample = app.post(&path, &key, content.clone()).await;
    assert_eq!(sample.status, StatusCode::OK, "{}", sample.body);
    assert_eq!(sample.body["subject"], "Hi there");
    assert!(sample.body["html"].as_str().unwrap().starts_with("<p>Hi there</p><a href=\"http"), "{}", sample.body);
    assert!(sample.body["html"].as_str().unwrap().contains("/u/preview"));
    assert_eq!(sample.body["text"], "Hi there");

    let mut for_ada = content.clone();
    for_ada["contact_id"] = json!(ada);
    let r = app.post(&path, &key, for_ada).await;
    assert_eq!(r.body["subject"], "Hi <Ada>", "a subject is text");
    assert!(r.body["html"].as_str().unwrap().starts_with("<p>Hi &lt;Ada&gt;</p>"), "html is escaped: {}", r.body);

    let tpl = app
        .post(
            &format!("/customers/{t}/templates"),
            &key,
            json!({ "name": "n", "subject": "T {{ code }}", "html": "<p>{{ code }}</p>" }),
        )
        .await;
    let tpl = tpl.body["id"].as_str().unwrap().to_owned();
    let r = app.post(&path, &key, json!({ "template_id": tpl, "variables": { "code": "SPRING" } })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["subject"], "T SPRING");

    let mut theirs_body = content.clone();
    theirs_body["contact_id"] = json!(theirs);
    let cases = [
        (theirs_body, StatusCode::NOT_FOUND),
        (json!({ "template_id": tpl, "subject": "s" }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "subject": "s" }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "subject": "s", "html": "h", "tag": "x" }), StatusCode::UNPROCESSABLE_ENTITY),
        (json!({ "subject": "s", "html": "x".repeat(3_000_000) }), StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (body, status) in cases {
        let r = app.post(&path, &key, body).await;
        assert_eq!(r.status, status, "{}", r.body);
    }
    assert_eq!(app.post(&path, &other_key, content).await.status, StatusCode::NOT_FOUND, "another tenant's key");
}
