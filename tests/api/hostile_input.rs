//! What a careless or hostile caller sends: typos, control characters, NUL,
//! the wrong content type (issue 8, B1, B2, C1, C5). Every answer is a 4xx in
//! the JSON error envelope; nothing reaches the store or the provider.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, Res, ADMIN_KEY};

fn refused(r: &Res, status: StatusCode, mentions: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(mentions), "{mentions:?} not in {}", r.body);
}

// B2 — fails on the old main: the typo was ignored and every contact targeted.
#[tokio::test]
async fn a_misspelled_targeting_field_is_refused_by_name_and_sends_nothing() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.add_contact(&t, &key, json!({ "email": "a@example.org", "tags": ["vip"] })).await;
    app.add_contact(&t, &key, json!({ "email": "b@example.org" })).await;
    let path = format!("/customers/{t}/send");
    refused(
        &app.post(&path, &key, json!({ "subject": "s", "html": "h", "tags": "vip" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`tags`",
    );
    refused(
        &app.post(&path, &key, json!({ "subject": "s", "html": "h", "segmentId": "x" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`segmentId`",
    );
    refused(
        &app.post(&format!("/customers/{t}/contacts"), &key, json!({ "email": "c@example.org", "firstname": "C" }))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`firstname`",
    );
    refused(
        &app.post(
            &format!("/customers/{t}/send/single"),
            &key,
            json!({ "to_email": "a@example.org", "subject": "s", "html": "h",
                    "tags": [{ "name": "a", "value": "b", "valu": "c" }] }),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`valu`",
    );
    refused(
        &app.post("/customers", ADMIN_KEY, json!({ "name": "x", "plan": "gold" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "`plan`",
    );
    refused(
        &app.get(&format!("/customers/{t}/audience?segmentId=x"), &key).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "segmentId",
    );
    assert_eq!(app.get(&path.replace("/send", "/campaigns"), &key).await.body, json!([]));
    assert_eq!(app.store.outbox_depth().await.unwrap(), 0);
    // The documented names still work.
    let ok =
        app.post(&path, &key, json!({ "subject": "s", "html": "h", "tag": "vip", "reply_to": "r@acme.com" })).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.body);
    assert_eq!(ok.body["sent_to"], 1);
}

// B1 — fails on the old main: the name was stored and rendered into subjects.
#[tokio::test]
async fn line_breaks_and_control_characters_are_refused_where_they_could_reach_a_header() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let contacts = format!("/customers/{t}/contacts");
    for name in ["Ada\r\nBcc: victim@example.org", "Ada\nX", "A\u{7}da", "A\u{2028}da", "A\u{2029}da", "A\u{7f}"] {
        let r = app.post(&contacts, &key, json!({ "email": "a@example.org", "first_name": name })).await;
        refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "first_name");
        let r = app.post(&contacts, &key, json!({ "email": "a@example.org", "last_name": name })).await;
        refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "last_name");
    }
    let id = app.add_contact(&t, &key, json!({ "email": "a@example.org", "first_name": "Ada" })).await;
    let r = app.patch(&format!("{contacts}/{id}"), &key, json!({ "first_name": "Ada\r\nBcc: x@evil.com" })).await;
    refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "first_name");
    let send = format!("/customers/{t}/send");
    refused(
        &app.post(&send, &key, json!({ "subject": "Hi\r\nBcc: x@evil.com", "html": "h" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "subject",
    );
    refused(
        &app.post(&send, &key, json!({ "subject": "Hi\u{2028}there", "html": "h" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "subject",
    );
    refused(
        &app.post("/customers", ADMIN_KEY, json!({ "name": "Evil\r\nCorp" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "name",
    );
    refused(
        &app.post(&format!("/customers/{t}/segments"), &key, json!({ "name": "a\nb" })).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "name",
    );
    let single = app
        .post(
            &format!("/customers/{t}/send/single"),
            &key,
            json!({ "to_email": "a@example.org", "subject": "s", "html": "h", "reply_to": "x@acme.com\r\nBcc: y@evil.com" }),
        )
        .await;
    assert_eq!(single.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", single.body);
    // A multi-line text body is fine: it is not a header.
    let ok = app.post(&send, &key, json!({ "subject": "s", "html": "h", "text": "line 1\nline 2" })).await;
    assert_eq!(ok.status, StatusCode::ACCEPTED, "{}", ok.body);
}

// C1 — fails on the old main on PostgreSQL: a NUL was a 500.
#[tokio::test]
async fn a_nul_in_any_string_is_a_422_never_a_500() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let cases = [
        ("/customers".to_owned(), ADMIN_KEY.to_owned(), json!({ "name": "a\u{0}b" })),
        (format!("/customers/{t}/contacts"), key.clone(), json!({ "email": "a\u{0}@example.org" })),
        (format!("/customers/{t}/contacts"), key.clone(), json!({ "email": "a@example.org", "first_name": "\u{0}" })),
        (format!("/customers/{t}/contacts"), key.clone(), json!({ "email": "a@example.org", "tags": ["a\u{0}"] })),
        (
            format!("/customers/{t}/contacts"),
            key.clone(),
            json!({ "email": "a@example.org", "attributes": { "k": "\u{0}" } }),
        ),
        (format!("/customers/{t}/segments"), key.clone(), json!({ "name": "\u{0}" })),
        (format!("/customers/{t}/send"), key.clone(), json!({ "subject": "s", "html": "h\u{0}" })),
        (format!("/customers/{t}/send"), key.clone(), json!({ "subject": "s\u{0}", "html": "h" })),
        (
            format!("/customers/{t}/send/single"),
            key.clone(),
            json!({ "to_email": "a@example.org", "subject": "s", "html": "h", "text": "\u{0}" }),
        ),
        (format!("/customers/{t}/domains"), key.clone(), json!({ "domain_name": "a\u{0}.com" })),
    ];
    for (path, k, body) in cases {
        let r = app.post(&path, &k, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{path} {body}: {}", r.body);
        assert!(r.body["error"]["code"].is_string(), "{}", r.body);
    }
    for path in [
        format!("/customers/{t}/contacts?tag=%00"),
        format!("/customers/{t}/contacts?after=%00"),
        format!("/customers/{t}/audience?tag=a%00"),
    ] {
        let r = app.get(&path, &key).await;
        assert!(r.status.is_client_error(), "{path}: {} {}", r.status, r.body);
    }
    assert_eq!(app.store.count_rows("contacts").await.unwrap(), 0);
}

// C5 — fails on the old main: /send/single parsed a body of any content type.
#[tokio::test]
async fn a_body_that_is_not_declared_json_is_refused_with_415() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let body = json!({ "to_email": "a@example.org", "subject": "s", "html": "h" }).to_string();
    for path in
        [format!("/customers/{t}/send/single"), format!("/customers/{t}/send"), format!("/customers/{t}/contacts")]
    {
        let r = app
            .http
            .post(format!("{}{path}", app.base))
            .bearer_auth(&key)
            .header("content-type", "text/plain")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "unsupported_media_type");
    }
    // JSON in another charset would be read wrongly as UTF-8: refused too;
    // UTF-8 said aloud is fine.
    let path = format!("{}/customers/{t}/send/single", app.base);
    for (charset, status) in [
        ("utf-16", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("\"latin1\"", StatusCode::UNSUPPORTED_MEDIA_TYPE),
        ("UTF-8", StatusCode::ACCEPTED),
        ("\"utf-8\"", StatusCode::ACCEPTED),
    ] {
        let r = app
            .http
            .post(&path)
            .bearer_auth(&key)
            .header("content-type", format!("application/json; charset={charset}"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{charset}");
    }
}

// Invariant 8 on the action routes, which take no fields: a body with one is
// refused by name (422), one that is not JSON with 415; none, or `{}`, works.
#[tokio::test]
async fn action_routes_refuse_any_field_and_bodies_that_are_not_json() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let sent = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    let cid = sent.body["campaign_id"].as_str().unwrap().to_owned();
    let routes = [
        format!("/customers/{t}/campaigns/{cid}/pause"),
        format!("/customers/{t}/campaigns/{cid}/resume"),
        format!("/customers/{t}/campaigns/{cid}/dead-letters/retry"),
        format!("/customers/{t}/domains/verify"),
        format!("/customers/{t}/campaigns/{cid}/cancel"),
    ];
    for path in &routes {
        let r = app.post(path, &key, json!({ "zz_unknown": 1 })).await;
        refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "zz_unknown");
        let r = app
            .http
            .post(format!("{}{path}", app.base))
            .bearer_auth(&key)
            .header("content-type", "text/plain")
            .body("pause it")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{path}");
    }
    let r = app.post(&routes[0], &key, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app.http.post(format!("{}{}", app.base, routes[1])).bearer_auth(&key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "no body at all");
}

// B3 — fails on the old main: B registered and verified A's domain.
#[tokio::test]
async fn a_domain_belongs_to_one_customer() {
    let app = spawn_app().await;
    let (_, _) = app.verified_tenant("A", "acme.com").await;
    let b = app.post("/customers", ADMIN_KEY, json!({ "name": "B" })).await.body["id"].as_str().unwrap().to_owned();
    let key_b = app.post(&format!("/customers/{b}/api-keys"), ADMIN_KEY, json!({})).await.body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    for name in ["acme.com", "ACME.com", "acme.com."] {
        let r = app.post(&format!("/customers/{b}/domains"), &key_b, json!({ "domain_name": name })).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{name}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "domain_taken");
    }
    // Two customers racing for a new domain: exactly one gets it.
    let c = app.post("/customers", ADMIN_KEY, json!({ "name": "C" })).await.body["id"].as_str().unwrap().to_owned();
    let key_c = app.post(&format!("/customers/{c}/api-keys"), ADMIN_KEY, json!({})).await.body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (path_b, path_c) = (format!("/customers/{b}/domains"), format!("/customers/{c}/domains"));
    let (rb, rc) = tokio::join!(
        app.post(&path_b, &key_b, json!({ "domain_name": "shared.example" })),
        app.post(&path_c, &key_c, json!({ "domain_name": "shared.example" })),
    );
    let mut statuses = [rb.status, rc.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::CREATED, StatusCode::CONFLICT], "{} {}", rb.body, rc.body);
    // B cannot send as acme.com either.
    let from = app
        .post(
            &format!("/customers/{b}/send/single"),
            &key_b,
            json!({ "to_email": "a@example.org", "subject": "s", "html": "h", "from": "ceo@acme.com" }),
        )
        .await;
    assert!(from.status.is_client_error(), "{}", from.body);
}

// B4 — fails on the old main: a body of any size was queued.
#[tokio::test]
async fn html_over_the_limit_is_413_in_the_json_envelope() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let html = "x".repeat(600 * 1024);
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": html })).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "payload_too_large");
    let r = app
        .post(
            &format!("/customers/{t}/send/single"),
            &key,
            json!({ "to_email": "a@example.org", "subject": "s", "html": html }),
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Over the request limit itself: still the envelope.
    let huge = "x".repeat(3 * 1024 * 1024);
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": huge })).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.body["error"]["code"], "payload_too_large", "{}", r.body);
    assert_eq!(app.store.outbox_depth().await.unwrap(), 0);
}

// C5 — fails on the old main: 405 answered in plain text.
#[tokio::test]
async fn a_wrong_method_is_405_in_the_json_envelope() {
    let app = spawn_app().await;
    let r = app.request(reqwest::Method::PUT, "/customers", Some(ADMIN_KEY), Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.body["error"]["code"], "method_not_allowed", "{}", r.body);
}

// B6 — fails on the old main: the sandbox accepted unsigned events from anyone.
#[tokio::test]
async fn unsigned_webhooks_are_refused_without_the_development_flag() {
    let app = crate::helpers::spawn_with(crate::helpers::Options { webhook_secret: None, ..Default::default() }).await;
    let body = crate::helpers::event("email.bounced", "x", json!({ "bounce": { "type": "Permanent" } }));
    let r = app
        .http
        .post(format!("{}/webhooks/resend", app.base))
        .header("svix-id", "evt-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let dev = crate::helpers::spawn_with(crate::helpers::Options {
        webhook_secret: None,
        env: vec![("MAILROOM_ALLOW_UNSIGNED_WEBHOOKS".into(), "true".into())],
        ..Default::default()
    })
    .await;
    let r = dev
        .http
        .post(format!("{}/webhooks/resend", dev.base))
        .header("svix-id", "evt-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

// B6 — fails on the old main: a campaign's message ids were a counter.
#[tokio::test]
async fn message_ids_are_random_not_a_counter() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 50, "example.org").await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    let ids = app
        .store
        .campaign_message_ids(
            &mailroom::domain::TenantId::from_stored(t.clone()),
            r.body["campaign_id"].as_str().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 50);
    let distinct_tails: std::collections::HashSet<_> = ids.iter().map(|id| &id[24..30]).collect();
    assert!(distinct_tails.len() > 40, "the random part varies across the whole tail: {ids:?}");
    for id in &ids {
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
}

// The operator's `customer_id` filter is no parameter of a customer's own
// listing: refused there like any unknown one, not silently ignored.
#[tokio::test]
async fn a_customers_dead_letter_listing_refuses_the_operators_parameter() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let r = app.get(&format!("/customers/{t}/dead-letters?customer_id=garbage"), &key).await;
    refused(&r, StatusCode::UNPROCESSABLE_ENTITY, "customer_id");
    assert_eq!(app.get(&format!("/customers/{t}/dead-letters"), &key).await.status, StatusCode::OK);
}
