//! Contacts at scale: CSV and NDJSON imports streamed in, the CSV export, and
//! the attribute rules on every path that writes a contact.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, Res, TestApp, ADMIN_KEY};

const CSV: &str = "text/csv";
const NDJSON: &str = "application/x-ndjson";

async fn upload(app: &TestApp, tenant: &str, key: &str, query: &str, content_type: &str, body: Vec<u8>) -> Res {
    let res = app
        .http
        .post(format!("{}/customers/{tenant}/contacts/import{query}", app.base))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("request sent");
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    Res { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
}

async fn import_csv(app: &TestApp, tenant: &str, key: &str, query: &str, body: &str) -> Value {
    let r = upload(app, tenant, key, query, CSV, body.as_bytes().to_vec()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body
}

/// Every contact of the tenant by email.
async fn contacts(app: &TestApp, tenant: &str, key: &str) -> std::collections::BTreeMap<String, Value> {
    let r = app.get(&format!("/customers/{tenant}/contacts?limit=1000"), key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body.as_array().unwrap().iter().map(|c| (c["email"].as_str().unwrap().to_owned(), c.clone())).collect()
}

async fn audience(app: &TestApp, tenant: &str, key: &str, tag: &str) -> i64 {
    let r = app.get(&format!("/customers/{tenant}/audience?tag={tag}"), key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["count"].as_i64().unwrap()
}

async fn export(app: &TestApp, tenant: &str, key: &str) -> (reqwest::header::HeaderMap, String) {
    let r =
        app.http.get(format!("{}/customers/{tenant}/contacts/export", app.base)).bearer_auth(key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let headers = r.headers().clone();
    (headers, r.text().await.unwrap())
}

#[tokio::test]
async fn a_csv_with_a_bom_crlf_quoted_fields_and_repeated_rows_imports_as_written() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let body = "\u{feff}email,first_name,last_name,tags,plan,note\r\n\
                ada@example.org,Ada,\"Lovelace, Countess\",vip;news,pro,\"said \"\"hi\"\"\r\nover two lines\"\r\n\
                bob@example.org,Bob,,news,,\r\n\
                ADA@example.org,Again,,,,\r\n";
    let r = import_csv(&app, &t, &key, "", body).await;
    assert_eq!(
        (r["created"].as_u64(), r["skipped"].as_u64(), r["rejected"].as_u64()),
        (Some(2), Some(1), Some(0)),
        "{r}"
    );
    let all = contacts(&app, &t, &key).await;
    let ada = &all["ada@example.org"];
    assert_eq!(ada["first_name"], "Ada", "with skip the first row of an address stays");
    assert_eq!(ada["last_name"], "Lovelace, Countess");
    assert_eq!(ada["tags"], json!(["news", "vip"]));
    assert_eq!(ada["attributes"], json!({ "plan": "pro", "note": "said \"hi\"\r\nover two lines" }));
    assert_eq!(all["bob@example.org"]["attributes"], json!({}), "an empty cell is no attribute");
    assert_eq!(all["bob@example.org"]["last_name"], Value::Null);

    // The same file with update: the later row of an address wins where it says something.
    let r = import_csv(&app, &t, &key, "?on_conflict=update", body).await;
    assert_eq!((r["created"].as_u64(), r["updated"].as_u64()), (Some(0), Some(3)), "{r}");
    let ada = &contacts(&app, &t, &key).await["ada@example.org"];
    assert_eq!(ada["first_name"], "Again");
    assert_eq!(ada["last_name"], "Lovelace, Countess", "an empty cell keeps the stored value");
}

#[tokio::test]
async fn bad_rows_are_reported_by_their_line_in_the_file_and_the_rest_imported() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let long = "x".repeat(1001);
    let mut body = b"email,first_name,plan\n".to_vec(); // line 1
    body.extend_from_slice(b"good1@example.org,A,\n"); // 2
    body.extend_from_slice(b"not-an-email,B,\n"); // 3
    body.extend_from_slice(b"q@example.org,\"two\nlines\",\n"); // 4-5: a name must be one line
    body.extend_from_slice(format!("long@example.org,C,{long}\n").as_bytes()); // 6
    body.extend_from_slice(b"wide@example.org,D,x,extra\n"); // 7
    body.extend_from_slice(b"bad\xff@example.org,E,\n"); // 8
    body.extend_from_slice(b"nul@example.org,F\x00,\n"); // 9
    body.extend_from_slice(b",no email,\n"); // 10
    body.extend_from_slice(b"good2@example.org,G,\n"); // 11
    let r = upload(&app, &t, &key, "", CSV, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["created"], 2, "{}", r.body);
    assert_eq!(r.body["rejected"], 7);
    let lines: Vec<u64> = r.body["errors"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![3, 4, 6, 7, 8, 9, 10]);
    let reason = |line: u64| {
        r.body["errors"].as_array().unwrap().iter().find(|e| e["line"] == line).unwrap()["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(reason(3).starts_with("email:"), "{}", reason(3));
    assert!(reason(6).starts_with("attributes.plan:"), "{}", reason(6));
    assert!(reason(7).contains("too many columns"), "{}", reason(7));
    assert!(reason(8).contains("UTF-8"), "{}", reason(8));
    assert!(reason(9).contains("NUL"), "{}", reason(9));
}

#[tokio::test]
async fn a_header_without_email_or_a_bad_query_is_refused_whole() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    for (query, body) in [
        ("", "name,plan\nada@example.org,pro\n"),
        ("", ""),
        ("", "email,bad key\nada@example.org,x\n"),
        ("", "email,email\nada@example.org,x\n"),
        ("?on_conflict=replace", "email\nada@example.org\n"),
        ("?mode=skip", "email\nada@example.org\n"),
    ] {
        let r = upload(&app, &t, &key, query, CSV, body.as_bytes().to_vec()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{query} {body:?}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "validation_error");
    }
    let r = upload(&app, &t, &key, "", "text/plain", b"email\nada@example.org\n".to_vec()).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("text/csv"));
    assert!(contacts(&app, &t, &key).await.is_empty());
}

#[tokio::test]
async fn a_suppressed_address_is_imported_unsubscribed_and_no_import_changes_a_status() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    app.store
        .execute_raw(&format!(
            "INSERT INTO suppressions (tenant_id, email_normalized, reason, created_at) \
             VALUES ('{t}', 'gone@example.org', 'bounced', 0)"
        ))
        .await
        .unwrap();
    let left = app.add_contact(&t, &key, json!({ "email": "left@example.org", "first_name": "L" })).await;
    let p = app.patch(&format!("/customers/{t}/contacts/{left}"), &key, json!({ "is_subscribed": false })).await;
    assert_eq!(p.body["status"], "unsubscribed");

    let body = "email,first_name,plan\nGone@Example.org,G,pro\nleft@example.org,Left,pro\nnew@example.org,N,\n";
    for query in ["", "?on_conflict=update", "?on_conflict=update"] {
        import_csv(&app, &t, &key, query, body).await;
        let all = contacts(&app, &t, &key).await;
        assert_eq!(all["Gone@Example.org"]["status"], "unsubscribed", "{query}");
        assert_eq!(all["left@example.org"]["status"], "unsubscribed", "{query}");
        assert_eq!(all["new@example.org"]["status"], "subscribed", "{query}");
    }
    let all = contacts(&app, &t, &key).await;
    assert_eq!(all["left@example.org"]["first_name"], "Left", "update changes names");
    assert_eq!(all["left@example.org"]["attributes"], json!({ "plan": "pro" }));
    // NDJSON and JSON take the same path.
    let r =
        upload(&app, &t, &key, "?on_conflict=update", NDJSON, b"{\"email\": \"gone@example.org\"}\n".to_vec()).await;
    assert_eq!(r.body["updated"], 1, "{}", r.body);
    let r = app
        .post(
            &format!("/customers/{t}/contacts/import"),
            &key,
            json!({ "contacts": [{ "email": "gone@example.org" }] }),
        )
        .await;
    assert_eq!(r.body["skipped"], 1, "{}", r.body);
    assert_eq!(contacts(&app, &t, &key).await["Gone@Example.org"]["status"], "unsubscribed");
}

#[tokio::test]
async fn update_merges_attributes_and_names_but_skip_leaves_the_contact_alone() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    app.add_contact(
        &t,
        &key,
        json!({ "email": "ada@example.org", "first_name": "Ada", "tags": ["old"], "attributes": { "plan": "free", "seats": 2 } }),
    )
    .await;
    let body = "email,first_name,tags,plan\nada@example.org,Augusta,new,pro\n";
    let r = import_csv(&app, &t, &key, "", body).await;
    assert_eq!((r["created"].as_u64(), r["skipped"].as_u64()), (Some(0), Some(1)));
    assert_eq!(contacts(&app, &t, &key).await["ada@example.org"]["first_name"], "Ada");

    let r = import_csv(&app, &t, &key, "?on_conflict=update", body).await;
    assert_eq!(r["updated"], 1, "{r}");
    let ada = &contacts(&app, &t, &key).await["ada@example.org"];
    assert_eq!(ada["first_name"], "Augusta");
    assert_eq!(ada["attributes"], json!({ "plan": "pro", "seats": 2 }));
    assert_eq!(ada["tags"], json!(["new", "old"]), "an import adds tags");
    assert_eq!(ada["status"], "subscribed");
    assert_eq!(audience(&app, &t, &key, "new").await, 1);
    assert_eq!(audience(&app, &t, &key, "old").await, 1);

    // A merge past 50 keys is a rejected row, not a 5xx.
    let header: Vec<String> = (0..50).map(|i| format!("k{i}")).collect();
    let row: Vec<&str> = (0..50).map(|_| "v").collect();
    let body = format!("email,{}\nada@example.org,{}\n", header.join(","), row.join(","));
    let r = import_csv(&app, &t, &key, "?on_conflict=update", &body).await;
    assert_eq!(r["rejected"], 1, "{r}");
    assert_eq!(r["errors"][0]["line"], 2);
    assert!(r["errors"][0]["reason"].as_str().unwrap().starts_with("attributes"), "{r}");
}

#[tokio::test]
async fn ndjson_lines_carry_the_json_contact_fields_and_bad_lines_are_reported() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let body = concat!(
        "{\"email\": \"ada@example.org\", \"first_name\": \"Ada\", \"tags\": [\"vip\"], \"attributes\": {\"plan\": \"pro\", \"seats\": 3, \"trial\": true}}\r\n",
        "\n",
        "{\"email\": \"bob@example.org\", \"colour\": \"red\"}\n",
        "{\"email\": \"cy@example.org\", \"attributes\": {\"nested\": {\"a\": 1}}}\n",
        "not json\n",
        "{\"email\": \"nul@example.org\", \"first_name\": \"a\\u0000b\"}\n",
        "[1, 2]\n",
        "{\"email\": \"dee@example.org\", \"tags\": [\"vip\", \"news\"]}"
    );
    let r = upload(&app, &t, &key, "", NDJSON, body.as_bytes().to_vec()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["created"], 2, "{}", r.body);
    let lines: Vec<u64> = r.body["errors"].as_array().unwrap().iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, vec![3, 4, 5, 6, 7]);
    assert!(r.body["errors"][0]["reason"].as_str().unwrap().contains("colour"), "{}", r.body);
    assert!(r.body["errors"][1]["reason"].as_str().unwrap().starts_with("attributes.nested"), "{}", r.body);
    let ada = &contacts(&app, &t, &key).await["ada@example.org"];
    assert_eq!(ada["attributes"], json!({ "plan": "pro", "seats": 3, "trial": true }));
    assert_eq!(audience(&app, &t, &key, "vip").await, 2);
    assert_eq!(audience(&app, &t, &key, "news").await, 1);
}

#[tokio::test]
async fn imported_tags_are_counted_like_created_ones() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    app.add_contact(&t, &key, json!({ "email": "first@example.org", "tags": ["vip"] })).await;
    let mut body = String::from("email,tags\n");
    for i in 0..4_500 {
        body.push_str(&format!("u{i}@example.org,{}\n", if i % 3 == 0 { "vip; news" } else { "news" }));
    }
    body.push_str("first@example.org,vip;news\n");
    let r = import_csv(&app, &t, &key, "", &body).await;
    assert_eq!((r["created"].as_u64(), r["skipped"].as_u64()), (Some(4_500), Some(1)), "{r}");
    assert_eq!(audience(&app, &t, &key, "vip").await, 1 + 1_500);
    assert_eq!(audience(&app, &t, &key, "news").await, 4_500);
    import_csv(&app, &t, &key, "?on_conflict=update", &body).await;
    assert_eq!(audience(&app, &t, &key, "news").await, 4_501, "update adds the tag to the existing contact");
    assert_eq!(audience(&app, &t, &key, "vip").await, 1 + 1_500, "and counts nothing twice");
    let tagged = app.get(&format!("/customers/{t}/contacts?tag=vip&limit=1000"), &key).await;
    assert_eq!(tagged.body.as_array().unwrap().len(), 1_000);
}

#[tokio::test]
async fn attributes_are_checked_on_create_and_patch_naming_the_field() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let id = app
        .add_contact(
            &t,
            &key,
            json!({ "email": "ada@example.org", "attributes": { "plan": "pro", "n": 1.5, "ok": true } }),
        )
        .await;
    let many: serde_json::Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
    for (attributes, field) in [
        (json!({ "plan": null }), "attributes.plan"),
        (json!({ "plan": ["a"] }), "attributes.plan"),
        (json!({ "plan": { "tier": 1 } }), "attributes.plan"),
        (json!({ "plan": "x".repeat(1001) }), "attributes.plan"),
        (json!({ "bad key": 1 }), "attributes"),
        (Value::Object(many), "attributes"),
        (json!("pro"), "attributes"),
    ] {
        let r = app
            .post(
                &format!("/customers/{t}/contacts"),
                &key,
                json!({ "email": "bob@example.org", "attributes": attributes }),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{attributes}");
        assert!(r.body["error"]["message"].as_str().unwrap().starts_with(field), "{}", r.body);
        let r = app.patch(&format!("/customers/{t}/contacts/{id}"), &key, json!({ "attributes": attributes })).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{attributes}");
        assert!(r.body["error"]["message"].as_str().unwrap().starts_with(field), "{}", r.body);
        let r = app
            .post(
                &format!("/customers/{t}/contacts/import"),
                &key,
                json!({ "contacts": [{ "email": "bob@example.org", "attributes": attributes }] }),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            r.body["error"]["message"].as_str().unwrap().starts_with(&format!("contacts[0]: {field}")),
            "{}",
            r.body
        );
    }
    assert_eq!(contacts(&app, &t, &key).await.len(), 1);
}

#[tokio::test]
async fn an_export_imports_back_into_the_same_contacts_and_formulas_are_neutralised() {
    let app = spawn_app().await;
    let (a, key_a) = app.verified_tenant("Acme", "acme.example.com").await;
    let (b, key_b) = app.verified_tenant("Beta", "beta.example.com").await;
    app.add_contact(
        &a,
        &key_a,
        json!({ "email": "ada@example.org", "first_name": "=HYPERLINK(\"http://x\")", "last_name": "O'Neil, \"Jr\"",
                "tags": ["vip", "news"], "attributes": { "plan": "+pro", "seats": 3, "note": "multi\nline", "q": "'quoted" } }),
    )
    .await;
    app.add_contact(
        &a,
        &key_a,
        json!({ "email": "-dash@example.org", "first_name": "@home", "attributes": { "city": "Paris" } }),
    )
    .await;
    app.add_contact(&a, &key_a, json!({ "email": "plain@example.org" })).await;

    let (headers, csv) = export(&app, &a, &key_a).await;
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(headers["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("email,first_name,last_name,status,tags,created_at,city,note,plan,q,seats"));
    assert!(csv.contains("'=HYPERLINK"), "{csv}");
    assert!(
        csv.contains("'+pro")
            && csv.contains("'-dash@example.org")
            && csv.contains("'@home")
            && csv.contains("''quoted"),
        "{csv}"
    );
    assert!(!csv.lines().skip(1).any(|l| l.starts_with(['=', '+', '-', '@'])), "{csv}");

    let r = import_csv(&app, &b, &key_b, "", &csv).await;
    assert_eq!(r["created"], 3, "{r}");
    let (_, again) = export(&app, &b, &key_b).await;
    let strip_created = |s: &str| -> Vec<String> {
        let mut rdr = csv_rows(s);
        rdr.iter_mut().for_each(|r| {
            r.remove(5);
        });
        rdr.into_iter().map(|r| r.join("|")).collect()
    };
    assert_eq!(strip_created(&again), strip_created(&csv), "export -> import -> export changes nothing");
    let ada = &contacts(&app, &b, &key_b).await["ada@example.org"];
    assert_eq!(ada["first_name"], "=HYPERLINK(\"http://x\")");
    assert_eq!(ada["attributes"]["plan"], "+pro");
    assert_eq!(ada["attributes"]["q"], "'quoted");
    assert_eq!(ada["attributes"]["seats"], "3", "CSV values are strings");
    assert!(contacts(&app, &b, &key_b).await.contains_key("-dash@example.org"));
}

/// A minimal RFC 4180 reader for the test's own checks.
fn csv_rows(s: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field, mut quoted, mut chars) =
        (vec![], vec![], String::new(), false, s.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\r', false) => {}
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (c, _) => field.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn an_import_reaches_only_its_own_tenant_and_another_tenants_id_is_404() {
    let app = spawn_app().await;
    let (a, key_a) = app.verified_tenant("Acme", "acme.example.com").await;
    let (b, key_b) = app.verified_tenant("Beta", "beta.example.com").await;
    app.add_contact(&b, &key_b, json!({ "email": "ada@example.org", "first_name": "B's Ada" })).await;
    let r = import_csv(&app, &a, &key_a, "?on_conflict=update", "email,first_name\nada@example.org,A's Ada\n").await;
    assert_eq!(r["created"], 1, "the same address in another tenant is another contact");
    assert_eq!(contacts(&app, &b, &key_b).await["ada@example.org"]["first_name"], "B's Ada");
    let r = upload(&app, &b, &key_a, "", CSV, b"email\nx@example.org\n".to_vec()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r =
        app.http.get(format!("{}/customers/{b}/contacts/export", app.base)).bearer_auth(&key_a).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (_, csv) = export(&app, &a, &key_a).await;
    assert!(!csv.contains("B's Ada"));
    let (_, csv) = export(&app, &a, ADMIN_KEY).await;
    assert_eq!(csv.lines().count(), 2);
}

#[tokio::test]
async fn garbage_bodies_get_a_report_or_a_4xx_never_a_5xx() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let wide = format!("email,a\n{}\nok@example.org,1\n", vec!["x"; 10_000].join(","));
    let binary: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    let mut unclosed = b"email\n\"".to_vec();
    unclosed.extend(std::iter::repeat(b'x').take(3 * 1024 * 1024));
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        (CSV, binary.clone()),
        (NDJSON, binary),
        (CSV, b"\xff\xfe\x00e\x00m\x00a\x00i\x00l\x00\n".to_vec()),
        (CSV, b"email\n\xff\xff@example.org\n\x00\n".to_vec()),
        (CSV, wide.into_bytes()),
        (CSV, vec!["h"; 10_000].join(",").into_bytes()),
        (CSV, unclosed),
        (NDJSON, vec![b'{'; 2 * 1024 * 1024]),
        (NDJSON, b"\x00\n\xff\n{\"email\": 5}\n".to_vec()),
        ("application/json", b"\x00\xff".to_vec()),
    ];
    for (ct, body) in bodies {
        let r = upload(&app, &t, &key, "", ct, body).await;
        assert!(r.status.is_success() || r.status.is_client_error(), "{ct}: {} {}", r.status, r.body);
        assert!(r.body.get("error").is_some() || r.body.get("rejected").is_some(), "{}", r.body);
    }
    let wide = format!("email,a\n{}\nok2@example.org,1\n", vec!["x"; 10_000].join(","));
    let r = upload(&app, &t, &key, "", CSV, wide.into_bytes()).await;
    assert_eq!((r.body["created"].as_u64(), r.body["rejected"].as_u64()), (Some(1), Some(1)), "{}", r.body);
    assert_eq!(r.body["errors"][0]["line"], 2);
    assert!(r.body["errors"][0]["reason"].as_str().unwrap().contains("the header has 2"), "{}", r.body);
}

#[tokio::test]
async fn the_json_import_answers_as_before() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let body = json!({ "contacts": [
        { "email": "a@example.org", "tags": ["x"] }, { "email": "A@example.org" }, { "email": "b@example.org" }
    ] });
    let r = app.post(&format!("/customers/{t}/contacts/import"), &key, body.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({ "created": 2, "skipped": 1 }));
    let r = app.post(&format!("/customers/{t}/contacts/import"), &key, body).await;
    assert_eq!((r.body["created"].as_u64(), r.body["skipped"].as_u64()), (Some(0), Some(3)));
    let r = app
        .post(
            &format!("/customers/{t}/contacts/import"),
            &key,
            json!({ "contacts": [{ "email": "c@example.org", "x": 1 }] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .post(
            &format!("/customers/{t}/contacts/import?on_conflict=update"),
            &key,
            json!({ "contacts": [{ "email": "a@example.org", "first_name": "A" }] }),
        )
        .await;
    assert_eq!(r.body, json!({ "created": 0, "skipped": 0, "updated": 1 }));
    assert_eq!(audience(&app, &t, &key, "x").await, 1);
}

/// Contacts listed with `tag`, walked page by page (reads `contact_tags`, not the counts).
async fn tagged(app: &TestApp, tenant: &str, key: &str, tag: &str) -> i64 {
    let (mut n, mut after) = (0, String::new());
    loop {
        let r = app.get(&format!("/customers/{tenant}/contacts?tag={tag}&limit=1000{after}"), key).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let page = r.body.as_array().unwrap();
        n += page.len() as i64;
        if page.len() < 1000 {
            return n;
        }
        after = format!("&after={}", page.last().unwrap()["id"].as_str().unwrap());
    }
}

/// Each tag's maintained count (what an audience reads) equals its members.
async fn assert_counts_exact(app: &TestApp, tenant: &str, key: &str, when: &str) {
    for tag in ["a", "b", "c", "vip"] {
        let (counted, members) = (audience(app, tenant, key, tag).await, tagged(app, tenant, key, tag).await);
        assert_eq!(counted, members, "tag {tag} {when}");
    }
}

#[tokio::test]
async fn tag_counts_stay_exact_through_reimports_changed_tags_and_deletions() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    app.add_contact(&t, &key, json!({ "email": "api@example.org", "tags": ["vip"] })).await;
    // More than one chunk, an address repeated across a chunk's end, a stored one.
    let mut body = String::from("email,tags\n");
    for i in 0..2_500 {
        let tags = match (i % 2, i % 3) {
            (0, 0) => "a;b",
            (0, _) => "a",
            (_, 0) => "b",
            _ => "",
        };
        body.push_str(&format!("u{i}@example.org,{tags}\n"));
    }
    body.push_str("u5@example.org,c\napi@example.org,a;vip\n");
    let r = import_csv(&app, &t, &key, "", &body).await;
    assert_eq!((r["created"].as_u64(), r["skipped"].as_u64()), (Some(2_500), Some(2)), "{r}");
    assert_eq!(audience(&app, &t, &key, "a").await, 1_250);
    assert_eq!(audience(&app, &t, &key, "c").await, 0, "a skipped repeat adds no tag");
    assert_counts_exact(&app, &t, &key, "after the import").await;

    let r = import_csv(&app, &t, &key, "", &body).await;
    assert_eq!((r["created"].as_u64(), r["skipped"].as_u64()), (Some(0), Some(2_502)), "{r}");
    assert_counts_exact(&app, &t, &key, "after importing the same rows again").await;

    let r = import_csv(&app, &t, &key, "?on_conflict=update", &body).await;
    assert_eq!(r["updated"], 2_502, "{r}");
    assert_eq!(audience(&app, &t, &key, "c").await, 1, "the repeat's tag is added");
    assert_eq!(audience(&app, &t, &key, "a").await, 1_251, "and the stored contact's");
    assert_counts_exact(&app, &t, &key, "after an update of the same rows").await;

    // Tags that change: new ones for stored contacts and new contacts in one body.
    let mut body = String::from("email,tags\n");
    for i in 2_000..3_000 {
        body.push_str(&format!("u{i}@example.org,c;vip\n"));
    }
    let r = import_csv(&app, &t, &key, "?on_conflict=update", &body).await;
    assert_eq!((r["created"].as_u64(), r["updated"].as_u64()), (Some(500), Some(500)), "{r}");
    assert_eq!(audience(&app, &t, &key, "c").await, 1 + 1_000);
    assert_counts_exact(&app, &t, &key, "after tags changed").await;

    // Contacts deleted, tagged and created through the API.
    let listed = app.get(&format!("/customers/{t}/contacts?tag=c&limit=10"), &key).await;
    for c in listed.body.as_array().unwrap() {
        let r = app.delete(&format!("/customers/{t}/contacts/{}", c["id"].as_str().unwrap()), &key).await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    let listed = app.get(&format!("/customers/{t}/contacts?tag=b&limit=5"), &key).await;
    for c in listed.body.as_array().unwrap() {
        let r = app
            .patch(&format!("/customers/{t}/contacts/{}", c["id"].as_str().unwrap()), &key, json!({ "tags": ["c"] }))
            .await;
        assert!(r.status.is_success(), "{}", r.body);
    }
    app.add_contact(&t, &key, json!({ "email": "later@example.org", "tags": ["a", "c"] })).await;
    assert_eq!(audience(&app, &t, &key, "c").await, 1 + 1_000 - 10 + 5 + 1);
    assert_counts_exact(&app, &t, &key, "after deletions and API writes").await;
    let r = import_csv(&app, &t, &key, "", "email,tags\nnewest@example.org,a;b;c;vip\n").await;
    assert_eq!(r["created"], 1);
    assert_counts_exact(&app, &t, &key, "after a last import").await;
}
