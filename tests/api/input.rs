//! Bad input gets a clear 4xx with `{"error": {"code", "message"}}`, never a 500.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, ADMIN_KEY};

#[tokio::test]
async fn malformed_bodies_wrong_types_unknown_ids_and_oversized_bodies_are_4xx() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let raw = |path: String, body: Vec<u8>, ct: &'static str| {
        let req = app.http.post(format!("{}{path}", app.base)).bearer_auth(&key).header("content-type", ct).body(body);
        async move { req.send().await.unwrap() }
    };
    let cases: Vec<(String, Vec<u8>)> = vec![
        (format!("/customers/{t}/contacts"), b"{not json".to_vec()),
        (format!("/customers/{t}/contacts"), b"[]".to_vec()),
        (format!("/customers/{t}/contacts"), br#"{"email": 5}"#.to_vec()),
        (format!("/customers/{t}/contacts"), br#"{"email": "a@b.co", "tags": "x"}"#.to_vec()),
        (format!("/customers/{t}/contacts"), br#"{"email": "a@b.co", "attributes": [1]}"#.to_vec()),
        (format!("/customers/{t}/contacts"), br#"{"email": "a@b.co", "tags": ["bad tag"]}"#.to_vec()),
        (format!("/customers/{t}/send"), b"".to_vec()),
        (format!("/customers/{t}/send"), br#"{"subject": 1, "html": "h"}"#.to_vec()),
        (format!("/customers/{t}/send"), br#"{"subject": "a\nb", "html": "h"}"#.to_vec()),
        (
            format!("/customers/{t}/send/single"),
            br#"{"to_email": "a@b.co", "subject": "s", "html": "h", "tags": [{"name": "a b", "value": "c"}]}"#.to_vec(),
        ),
        (format!("/customers/{t}/segments/{}/contacts", uuid::Uuid::now_v7()), br#"{"contact_ids": []}"#.to_vec()),
        (format!("/customers/{t}/domains"), br#"{"domain_name": "not a domain"}"#.to_vec()),
        ("/customers".to_string(), br#"{"name": ""}"#.to_vec()),
        ("/webhooks/resend".to_string(), b"\xff\xfe".to_vec()),
    ];
    for (path, body) in cases {
        let shown = String::from_utf8_lossy(&body).into_owned();
        let r = if path == "/customers" {
            app.http
                .post(format!("{}{path}", app.base))
                .bearer_auth(ADMIN_KEY)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        } else {
            raw(path.clone(), body, "application/json").await
        };
        let status = r.status();
        let json: serde_json::Value = r.json().await.unwrap_or_default();
        assert!(status.is_client_error(), "{path} {shown}: {status}");
        assert!(json["error"]["code"].is_string(), "{path} {shown}: {json}");
    }
    let big = vec![b'a'; 3 * 1024 * 1024];
    let mut body = br#"{"subject": "s", "html": ""#.to_vec();
    body.extend(big);
    body.extend(br#""}"#);
    let r = raw(format!("/customers/{t}/send"), body, "application/json").await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    for path in [
        format!("/customers/{t}/contacts/nope"),
        format!("/customers/{t}/campaigns/{}", uuid::Uuid::now_v7()),
        "/customers/not-a-uuid".to_string(),
        format!("/customers/{}", uuid::Uuid::now_v7()),
    ] {
        let r = app.get(&path, ADMIN_KEY).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(r.body["error"]["code"], "not_found");
    }
    let bad_key = app
        .post_with_headers(
            &format!("/customers/{t}/send"),
            &key,
            &[("Idempotency-Key", &"k".repeat(300))],
            &json!({ "subject": "s", "html": "h" }),
        )
        .await;
    assert_eq!(bad_key.status, StatusCode::UNPROCESSABLE_ENTITY);
}
