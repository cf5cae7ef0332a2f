use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{spawn_app, ADMIN_KEY};

#[tokio::test]
async fn requests_without_or_with_a_wrong_key_get_401_json() {
    let app = spawn_app().await;
    let none = app.request(Method::GET, "/customers", None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.body["error"]["code"], "unauthorized");
    let wrong = app.get("/customers", "mr_not_a_real_key").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_x_api_key_header_works_like_bearer() {
    let app = spawn_app().await;
    let r = app.http.get(format!("{}/customers", app.base)).header("X-API-Key", ADMIN_KEY).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_tenant_key_reaches_only_its_own_customer() {
    let app = spawn_app().await;
    let (a, key_a) = app.verified_tenant("A", "a.example.com").await;
    let (b, key_b) = app.verified_tenant("B", "b.example.com").await;
    let contact_b = app.add_contact(&b, &key_b, json!({ "email": "x@b.example.com" })).await;
    let seg_b = app.post(&format!("/customers/{b}/segments"), &key_b, json!({ "name": "s" })).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let camp_b = app.post(&format!("/customers/{b}/send"), &key_b, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(camp_b.status, StatusCode::ACCEPTED, "{}", camp_b.body);
    let camp_b = camp_b.body["campaign_id"].as_str().unwrap().to_owned();
    let msg_b = app
        .post(
            &format!("/customers/{b}/send/single"),
            &key_b,
            json!({ "to_email": "y@example.org", "subject": "s", "html": "h" }),
        )
        .await;
    let msg_b = msg_b.body["email_id"].as_str().unwrap().to_owned();

    // Every route under B, with A's key: 404, as if B did not exist.
    let body = json!({ "name": "x", "email": "z@b.example.com", "domain_name": "b.example.com", "subject": "s", "html": "h", "to_email": "q@example.org", "contact_ids": [contact_b] });
    let routes: Vec<(Method, String)> = vec![
        (Method::GET, format!("/customers/{b}")),
        (Method::PATCH, format!("/customers/{b}")),
        (Method::DELETE, format!("/customers/{b}")),
        (Method::POST, format!("/customers/{b}/domains")),
        (Method::POST, format!("/customers/{b}/domains/verify")),
        (Method::GET, format!("/customers/{b}/domains/status")),
        (Method::POST, format!("/customers/{b}/contacts")),
        (Method::GET, format!("/customers/{b}/contacts")),
        (Method::POST, format!("/customers/{b}/contacts/import")),
        (Method::GET, format!("/customers/{b}/contacts/{contact_b}")),
        (Method::PATCH, format!("/customers/{b}/contacts/{contact_b}")),
        (Method::DELETE, format!("/customers/{b}/contacts/{contact_b}")),
        (Method::POST, format!("/customers/{b}/segments")),
        (Method::GET, format!("/customers/{b}/segments")),
        (Method::GET, format!("/customers/{b}/segments/{seg_b}")),
        (Method::DELETE, format!("/customers/{b}/segments/{seg_b}")),
        (Method::POST, format!("/customers/{b}/segments/{seg_b}/contacts")),
        (Method::DELETE, format!("/customers/{b}/segments/{seg_b}/contacts")),
        (Method::POST, format!("/customers/{b}/send")),
        (Method::POST, format!("/customers/{b}/send/single")),
        (Method::GET, format!("/customers/{b}/campaigns")),
        (Method::GET, format!("/customers/{b}/campaigns/{camp_b}")),
        (Method::DELETE, format!("/customers/{b}/campaigns/{camp_b}")),
        (Method::GET, format!("/customers/{b}/messages/{msg_b}")),
    ];
    for (method, path) in routes {
        let r = app.request(method.clone(), &path, Some(&key_a), Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}: {}", r.body);
    }
    // And B's things are untouched.
    let still = app.get(&format!("/customers/{b}/contacts/{contact_b}"), &key_b).await;
    assert_eq!(still.status, StatusCode::OK);
    // Admin routes answer a tenant key 403, whichever customer they name (so
    // the answer says nothing about other customers).
    for (method, path) in [
        (Method::GET, "/customers".to_owned()),
        (Method::POST, "/customers".to_owned()),
        (Method::POST, format!("/customers/{b}/api-keys")),
        (Method::GET, format!("/customers/{b}/api-keys")),
        (Method::POST, format!("/customers/{a}/api-keys")),
        (Method::GET, "/dead-letters".to_owned()),
    ] {
        let r = app.request(method.clone(), &path, Some(&key_a), Some(json!({ "name": "x" }))).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "forbidden");
    }
    // But it reaches its own customer.
    assert_eq!(app.get(&format!("/customers/{a}"), &key_a).await.status, StatusCode::OK);
}

#[tokio::test]
async fn api_keys_are_shown_once_listed_without_secrets_and_revocable() {
    let app = spawn_app().await;
    let c = app.post("/customers", ADMIN_KEY, json!({ "name": "Acme" })).await.body["id"].as_str().unwrap().to_owned();
    let created = app.post(&format!("/customers/{c}/api-keys"), ADMIN_KEY, json!({ "name": "ci" })).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let key_id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&format!("/customers/{c}"), &key).await.status, StatusCode::OK);

    let list = app.get(&format!("/customers/{c}/api-keys"), ADMIN_KEY).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert!(list.body[0].get("key").is_none(), "secrets are never listed");
    assert!(!list.body.to_string().contains(&key));

    let revoked = app.delete(&format!("/customers/{c}/api-keys/{key_id}"), ADMIN_KEY).await;
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/customers/{c}"), &key).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.delete(&format!("/customers/{c}/api-keys/{key_id}"), ADMIN_KEY).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_the_admin_may_delete_a_customer() {
    let app = spawn_app().await;
    let (a, key_a) = app.verified_tenant("A", "a.example.com").await;
    assert_eq!(app.delete(&format!("/customers/{a}"), &key_a).await.status, StatusCode::FORBIDDEN);
    assert_eq!(app.delete(&format!("/customers/{a}"), ADMIN_KEY).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/customers/{a}"), ADMIN_KEY).await.status, StatusCode::NOT_FOUND);
}

// C3 — fails on the old main: a wrong key could be tried without limit.
#[tokio::test]
async fn a_key_that_keeps_failing_is_throttled_with_429_and_others_are_not() {
    let app = spawn_app().await;
    for _ in 0..10 {
        assert_eq!(app.get("/customers", "mr_wrong_key_in_a_loop").await.status, StatusCode::UNAUTHORIZED);
    }
    let r = app.get("/customers", "mr_wrong_key_in_a_loop").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(r.headers.get("retry-after").is_some());
    assert_eq!(r.body["error"]["code"], "rate_limited");
    assert_eq!(app.get("/customers", ADMIN_KEY).await.status, StatusCode::OK);
}

// C3 — fails on the old main: a client trickling its headers held the connection forever.
#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let mut conn = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), conn.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "still open after 20 s");
    assert!(started.elapsed() >= std::time::Duration::from_secs(5));
}

#[tokio::test]
async fn an_optional_body_that_is_a_json_array_is_refused_not_read_as_no_fields() {
    let app = spawn_app().await;
    let c = app.post("/customers", ADMIN_KEY, json!({ "name": "Acme" })).await.body["id"].as_str().unwrap().to_owned();
    let r = app.post(&format!("/customers/{c}/api-keys"), ADMIN_KEY, json!([])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "validation_error");
    let keys = app.get(&format!("/customers/{c}/api-keys"), ADMIN_KEY).await;
    assert_eq!(keys.body.as_array().map(Vec::len), Some(0), "no key was made: {}", keys.body);
}
