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
