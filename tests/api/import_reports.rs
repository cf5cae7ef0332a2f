//! Every streamed import leaves a report: what it wrote and refused, and
//! whether its body ended early (issue 20, section 5). Fails on the old main:
//! a cut upload kept its committed chunks and left no word of them.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::helpers::{spawn_app, wait_for, TestApp, ADMIN_KEY};

/// A CSV body: the header, `good` valid rows, then `bad` rows with a bad address.
fn csv_rows(good: usize, bad: usize) -> String {
    let mut body = String::from("email,first_name\n");
    for i in 0..good {
        body.push_str(&format!("person{i}@example.org,P{i}\n"));
    }
    for i in 0..bad {
        body.push_str(&format!("not-an-address-{i},B\n"));
    }
    body
}

async fn imports(app: &TestApp, tenant: &str, key: &str) -> Vec<Value> {
    let r = app.get(&format!("/customers/{tenant}/imports"), key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body.as_array().unwrap().clone()
}

/// Waits until the tenant's only import has committed `rows` rows (still running).
async fn wait_written(app: &TestApp, tenant: &str, key: &str, rows: i64) {
    wait_for("the first chunk to commit", Duration::from_secs(60), || async {
        let list = imports(app, tenant, key).await;
        list.first().is_some_and(|i| i["status"] == "running" && i["rows_written"].as_i64() >= Some(rows))
    })
    .await;
}

/// Waits until the tenant's only import has ended; its stored report.
async fn wait_ended(app: &TestApp, tenant: &str, key: &str) -> Value {
    wait_for("the import to end", Duration::from_secs(60), || async {
        imports(app, tenant, key).await.first().is_some_and(|i| i["status"] != "running")
    })
    .await;
    let list = imports(app, tenant, key).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let id = list[0]["id"].as_str().unwrap();
    let one = app.get(&format!("/customers/{tenant}/imports/{id}"), key).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body, list[0], "the list and the report agree");
    one.body
}

async fn contact_count(app: &TestApp, tenant: &str, key: &str) -> usize {
    let mut n = 0;
    let mut after = String::new();
    loop {
        let r = app.get(&format!("/customers/{tenant}/contacts?limit=1000{after}"), key).await;
        let page = r.body.as_array().unwrap();
        n += page.len();
        if page.len() < 1000 {
            return n;
        }
        after = format!("&after={}", page.last().unwrap()["id"].as_str().unwrap());
    }
}

#[tokio::test]
async fn an_upload_cut_short_leaves_a_report_of_the_rows_written_and_rejected() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    // 2,600 good rows (a chunk of 2,000 commits while the body is still
    // arriving), 3 bad ones, then half a row: the body is cut there.
    let mut body = csv_rows(2_600, 3);
    body.push_str("half-a-row@exam");
    let head = format!(
        "POST /customers/{t}/contacts/import HTTP/1.1\r\nHost: mailroom\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: text/csv\r\nContent-Length: {}\r\n\r\n",
        body.len() + 10_000
    );
    let mut conn = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body.as_bytes()).await.unwrap();
    conn.flush().await.unwrap();
    wait_written(&app, &t, &key, 2_000).await;
    drop(conn); // The client goes away 10,000 bytes short of what it announced.

    let report = wait_ended(&app, &t, &key).await;
    assert_eq!(report["status"], "ended_early", "{report}");
    assert_eq!(report["ended_early"], true);
    assert!(report["end_reason"].as_str().unwrap().contains("ended early"), "{report}");
    assert_eq!(report["format"], "csv");
    assert_eq!(report["rows_written"], 2_600, "every row read to its line end is written: {report}");
    assert_eq!(report["created"], 2_600);
    assert_eq!(report["rejected"], 3);
    let lines: Vec<i64> = report["errors"].as_array().unwrap().iter().map(|e| e["line"].as_i64().unwrap()).collect();
    assert_eq!(lines, vec![2_602, 2_603, 2_604]);
    assert!(report["errors"][0]["reason"].as_str().unwrap().starts_with("email:"), "{report}");
    assert!(report["finished_at"].is_string());
    assert_eq!(contact_count(&app, &t, &key).await, 2_600, "the report counts what is stored, no more");
}

#[tokio::test]
async fn a_body_stream_that_errors_mid_way_leaves_a_report_saying_it_ended_early() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let request = app
        .http
        .post(format!("{}/customers/{t}/contacts/import", app.base))
        .bearer_auth(&key)
        .header("content-type", "application/x-ndjson")
        .body(reqwest::Body::wrap_stream(stream))
        .send();
    let request = tokio::spawn(request);
    let mut lines = String::new();
    for i in 0..2_100 {
        lines.push_str(&format!("{{\"email\": \"p{i}@example.org\", \"tags\": [\"imported\"]}}\n"));
    }
    lines.push_str("{\"email\": \"nope\"}\n{\"email\": \"cut@example.org\", \"first_na");
    tx.send(Ok(lines.into_bytes())).await.unwrap();
    wait_written(&app, &t, &key, 2_000).await;
    tx.send(Err(std::io::Error::other("the disk went away"))).await.unwrap();
    let answer = request.await.unwrap();
    assert!(answer.is_err() || answer.unwrap().status().is_client_error());

    let report = wait_ended(&app, &t, &key).await;
    assert_eq!((report["status"].as_str(), report["ended_early"].as_bool()), (Some("ended_early"), Some(true)));
    assert_eq!(report["format"], "ndjson");
    assert_eq!(report["rows_written"], 2_100, "{report}");
    assert_eq!(report["rejected"], 1);
    assert_eq!(report["errors"][0]["line"], 2_101);
    assert_eq!(contact_count(&app, &t, &key).await, 2_100);
}

#[tokio::test]
async fn a_complete_import_answers_its_id_and_its_stored_report_lists_the_first_reasons_only() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let r = app
        .http
        .post(format!("{}/customers/{t}/contacts/import?on_conflict=update", app.base))
        .bearer_auth(&key)
        .header("content-type", "text/csv")
        .body(csv_rows(5, 150))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["errors"].as_array().unwrap().len(), 150, "the answer lists them all, as before");
    let id = answer["id"].as_str().expect("the answer names the import").to_owned();

    let report = app.get(&format!("/customers/{t}/imports/{id}"), &key).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let report = report.body;
    assert_eq!(report["status"], "completed");
    assert_eq!(report["ended_early"], false);
    assert_eq!(report["end_reason"], Value::Null);
    assert_eq!(report["customer_id"], t.as_str());
    assert_eq!(report["on_conflict"], "update");
    assert_eq!((report["rows_written"].as_i64(), report["created"].as_i64()), (Some(5), Some(5)));
    assert_eq!(report["rejected"], 150, "all are counted");
    let errors = report["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 100, "the first 100 are kept");
    assert_eq!(errors[0]["line"], 7);
    assert!(errors[0]["reason"].as_str().unwrap().starts_with("email:"));

    // A header without `email` is refused whole, and says so.
    let refused = app
        .http
        .post(format!("{}/customers/{t}/contacts/import", app.base))
        .bearer_auth(&key)
        .header("content-type", "text/csv")
        .body("name\nx\n")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let list = imports(&app, &t, &key).await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["status"], "refused", "newest first");
    assert!(list[0]["end_reason"].as_str().unwrap().contains("email"));
    assert_eq!(list[1]["id"], id.as_str());
    let one = app.get(&format!("/customers/{t}/imports?limit=1"), &key).await;
    assert_eq!(one.body.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn import_reports_belong_to_their_customer_and_a_bad_id_is_404() {
    let app = spawn_app().await;
    let (a, key_a) = app.verified_tenant("A", "a.example.com").await;
    let (b, key_b) = app.verified_tenant("B", "b.example.com").await;
    let r = app
        .http
        .post(format!("{}/customers/{a}/contacts/import", app.base))
        .bearer_auth(&key_a)
        .header("content-type", "text/csv")
        .body(csv_rows(1, 0))
        .send()
        .await
        .unwrap();
    let id = r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();

    // B, with its own key and path, cannot see A's import; nor with A's path.
    assert_eq!(app.get(&format!("/customers/{b}/imports/{id}"), &key_b).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/customers/{a}/imports/{id}"), &key_b).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/customers/{a}/imports"), &key_b).await.status, StatusCode::NOT_FOUND);
    assert!(imports(&app, &b, &key_b).await.is_empty());
    // Unknown and garbage ids are not found, in the JSON envelope.
    for bad in ["0190b5a0-0000-7000-8000-000000000000", "not-an-id", "%00", "1%27%20OR%201%3D1"] {
        let r = app.get(&format!("/customers/{a}/imports/{bad}"), &key_a).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "not_found", "{bad}");
    }
    assert_eq!(app.get(&format!("/customers/{a}/imports/{id}"), ADMIN_KEY).await.status, StatusCode::OK);
    // Bad queries are 422 naming the problem.
    for q in ["?limit=0", "?limit=x", "?colour=red"] {
        let r = app.get(&format!("/customers/{a}/imports{q}"), &key_a).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {}", r.body);
    }
    // Deleting the customer deletes its reports with it.
    assert_eq!(app.delete(&format!("/customers/{a}"), ADMIN_KEY).await.status, StatusCode::NO_CONTENT);
    let tenant = mailroom::domain::TenantId::parse(&a).unwrap();
    assert!(app.store.import_reports(&tenant, 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_import_report_routes_are_in_the_openapi_document_with_their_404() {
    let app = spawn_app().await;
    let doc = app.request(reqwest::Method::GET, "/openapi.json", None, None).await.body;
    let list = &doc["paths"]["/customers/{id}/imports"]["get"];
    let one = &doc["paths"]["/customers/{id}/imports/{iid}"]["get"];
    for op in [list, one] {
        assert!(op["responses"]["200"].is_object(), "{op}");
        assert!(op["responses"]["404"].is_object(), "{op}");
    }
    assert!(doc["components"]["schemas"]["ImportReport"]["properties"]["ended_early"].is_object());
}

#[tokio::test]
async fn a_json_import_is_recorded_too_and_its_answer_stays_as_it_was() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let body = serde_json::json!({ "contacts": [{ "email": "a@example.org" }, { "email": "A@example.org" }] });
    let r = app.post(&format!("/customers/{t}/contacts/import"), &key, body).await;
    assert_eq!(r.body, serde_json::json!({ "created": 1, "skipped": 1 }));
    let list = imports(&app, &t, &key).await;
    assert_eq!(list.len(), 1);
    assert_eq!((list[0]["format"].as_str(), list[0]["status"].as_str()), (Some("json"), Some("completed")));
    assert_eq!((list[0]["created"].as_i64(), list[0]["skipped"].as_i64()), (Some(1), Some(1)));
}
