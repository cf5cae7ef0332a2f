use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn root_health_and_readiness_answer_without_a_key() {
    let app = spawn_app().await;
    for path in ["/", "/healthz", "/readyz"] {
        let r = app.request(reqwest::Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    let root = app.request(reqwest::Method::GET, "/", None, None).await;
    assert_eq!(root.body["status"], "ok");
}

#[tokio::test]
async fn openapi_describes_every_route_and_docs_are_served_offline() {
    let app = spawn_app().await;
    let doc = app.request(reqwest::Method::GET, "/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let paths = doc.body["paths"].as_object().expect("paths");
    for p in [
        "/customers",
        "/customers/{id}",
        "/customers/{id}/api-keys",
        "/customers/{id}/api-keys/{key_id}",
        "/customers/{id}/domains",
        "/customers/{id}/domains/verify",
        "/customers/{id}/domains/status",
        "/customers/{id}/contacts",
        "/customers/{id}/contacts/import",
        "/customers/{id}/contacts/{contact_id}",
        "/customers/{id}/segments",
        "/customers/{id}/segments/{sid}",
        "/customers/{id}/segments/{sid}/contacts",
        "/customers/{id}/topics",
        "/customers/{id}/topics/{topic_id}",
        "/customers/{id}/contacts/{contact_id}/topics",
        "/customers/{id}/send",
        "/customers/{id}/send/single",
        "/customers/{id}/campaigns",
        "/customers/{id}/campaigns/{cid}",
        "/customers/{id}/messages/{email_id}",
        "/webhooks/resend",
    ] {
        assert!(paths.contains_key(p), "openapi lacks {p}");
    }
    let docs = app.http.get(format!("{}/docs/", app.base)).send().await.expect("docs");
    assert_eq!(docs.status(), StatusCode::OK);
    let html = docs.text().await.expect("html");
    assert!(html.contains("swagger"), "docs page is Swagger UI");
    let js = app.http.get(format!("{}/docs/swagger-ui-bundle.js", app.base)).send().await.expect("asset");
    assert_eq!(js.status(), StatusCode::OK, "Swagger UI assets are vendored");
}

#[tokio::test]
async fn unknown_routes_answer_json_404() {
    let app = spawn_app().await;
    let r = app.request(reqwest::Method::GET, "/nope", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["error"]["code"], "not_found");
}

// C4 — fails on the old main: a lost database answered 500 after a 30 s wait.
#[tokio::test]
async fn with_the_database_gone_requests_fail_fast_with_503_and_retry_after() {
    let app = crate::helpers::spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.store.close().await;
    let started = std::time::Instant::now();
    let r = app.get(&format!("/customers/{t}/contacts"), &key).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    assert_eq!(r.headers.get("retry-after").map(|v| v.to_str().unwrap()), Some("5"));
    assert_eq!(r.body["error"]["code"], "unavailable");
    assert!(started.elapsed() < std::time::Duration::from_secs(6));
    let hook = app.webhook("evt-db-down", &crate::helpers::event("email.delivered", "x", serde_json::json!({}))).await;
    assert_eq!(hook.status, StatusCode::SERVICE_UNAVAILABLE, "the provider will retry: {}", hook.body);
    let ready = app.request(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
}

// C4 — fails on the old main: readiness only pinged the database.
#[tokio::test]
async fn readiness_fails_while_migrations_are_pending() {
    let app = crate::helpers::spawn_app().await;
    app.store.execute_raw("DELETE FROM _sqlx_migrations WHERE version = 6").await.unwrap();
    let ready = app.request(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(ready.body["error"]["message"].as_str().unwrap().contains("migrate"), "{}", ready.body);
}

// C4 — fails on the old main: the startup error said only "Failed to connect to the database".
#[tokio::test]
async fn an_unreachable_database_is_named_at_startup_with_its_password_masked() {
    let err = mailroom::store::Store::connect("postgres://mailroom:s3cret@127.0.0.1:9/mailroom", 1).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("connection refused"), "{message}");
    assert!(message.contains("127.0.0.1:9"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}
