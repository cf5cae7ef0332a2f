//! Tenant isolation with the caller's own path: another tenant's ids under
//! `/customers/{own id}/...` name nothing (invariant 4).

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn another_tenants_ids_under_the_callers_own_path_are_404_and_change_nothing() {
    let app = spawn_app().await;
    let (a, key_a) = app.verified_tenant("A", "a.example.com").await;
    let (b, key_b) = app.verified_tenant("B", "b.example.com").await;
    let contact_b = app.add_contact(&b, &key_b, json!({ "email": "x@b.example.com" })).await;
    let seg_a = app.post(&format!("/customers/{a}/segments"), &key_a, json!({ "name": "mine" })).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let seg_b = app.post(&format!("/customers/{b}/segments"), &key_b, json!({ "name": "theirs" })).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let camp_b = app.post(&format!("/customers/{b}/send"), &key_b, json!({ "subject": "s", "html": "h" })).await;
    let camp_b = camp_b.body["campaign_id"].as_str().unwrap().to_owned();
    let msg_b = app
        .post(
            &format!("/customers/{b}/send/single"),
            &key_b,
            json!({ "to_email": "y@example.org", "subject": "s", "html": "h" }),
        )
        .await;
    let msg_b = msg_b.body["email_id"].as_str().unwrap().to_owned();

    let routes: Vec<(Method, String, serde_json::Value)> = vec![
        (Method::GET, format!("/customers/{a}/contacts/{contact_b}"), json!(null)),
        (Method::PATCH, format!("/customers/{a}/contacts/{contact_b}"), json!({ "first_name": "x" })),
        (Method::DELETE, format!("/customers/{a}/contacts/{contact_b}"), json!(null)),
        (Method::GET, format!("/customers/{a}/segments/{seg_b}"), json!(null)),
        (Method::DELETE, format!("/customers/{a}/segments/{seg_b}"), json!(null)),
        (Method::POST, format!("/customers/{a}/segments/{seg_b}/contacts"), json!({ "contact_ids": [contact_b] })),
        (Method::GET, format!("/customers/{a}/campaigns/{camp_b}"), json!(null)),
        (Method::DELETE, format!("/customers/{a}/campaigns/{camp_b}"), json!(null)),
        (Method::POST, format!("/customers/{a}/campaigns/{camp_b}/pause"), json!({})),
        (Method::POST, format!("/customers/{a}/campaigns/{camp_b}/resume"), json!({})),
        (Method::POST, format!("/customers/{a}/campaigns/{camp_b}/cancel"), json!({})),
        (Method::POST, format!("/customers/{a}/campaigns/{camp_b}/dead-letters/retry"), json!({})),
        (Method::GET, format!("/customers/{a}/messages/{msg_b}"), json!(null)),
        (Method::POST, format!("/customers/{a}/dead-letters/{msg_b}/retry"), json!({})),
        (Method::POST, format!("/customers/{a}/send"), json!({ "subject": "s", "html": "h", "segment_id": seg_b })),
        (
            Method::POST,
            format!("/customers/{a}/send"),
            json!({ "subject": "s", "html": "h", "resume_from_campaign_id": camp_b }),
        ),
        (Method::GET, format!("/customers/{a}/audience?segment_id={seg_b}"), json!(null)),
    ];
    for (method, path, body) in routes {
        let body = (!body.is_null()).then_some(body);
        let r = app.request(method.clone(), &path, Some(&key_a), body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}: {}", r.body);
        assert!(r.body["error"]["code"].is_string(), "JSON error envelope: {}", r.body);
    }
    // Adding B's contact to A's own segment skips it silently.
    let add = app
        .post(&format!("/customers/{a}/segments/{seg_a}/contacts"), &key_a, json!({ "contact_ids": [contact_b] }))
        .await;
    assert_eq!(add.body["added_count"], 0, "{}", add.body);
    // B's things are untouched.
    assert_eq!(app.get(&format!("/customers/{b}/contacts/{contact_b}"), &key_b).await.body["first_name"], json!(null));
    assert_eq!(app.get(&format!("/customers/{b}/segments/{seg_b}"), &key_b).await.status, StatusCode::OK);
    let camp = app.get(&format!("/customers/{b}/campaigns/{camp_b}"), &key_b).await;
    assert_eq!(camp.status, StatusCode::OK);
    assert_ne!(camp.body["status"], "cancelled");
}
