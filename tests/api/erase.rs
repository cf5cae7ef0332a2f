//! A person's data on request (issue 23, section 4): the export holds
//! everything about the person at one customer; erasure leaves no row with
//! the address in clear, keeps the consent records without client details
//! and the campaign figures as they were, and the address is never mailed by
//! that customer again, however it comes back.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::{AnyPool, Row};

use crate::helpers::{event, spawn_with, Options, TestApp};

/// An app with the Resend mock whose customers' webhooks may name 127.0.0.1.
fn with_webhooks() -> Options {
    Options { resend: true, env: vec![("MAILROOM_ALLOW_PRIVATE_WEBHOOKS".into(), "true".into())], ..Options::default() }
}

const PAT: &str = "Pat.Erased@Example.org";
const PAT_LOWER: &str = "pat.erased@example.org";

/// Every (table, column) of the database whose text holds `needle`, ignoring
/// case: all tables and all their columns, read from the catalogue.
pub(crate) async fn rows_naming(app: &TestApp, needle: &str) -> Vec<(String, String, i64)> {
    let pool = AnyPool::connect(&app._db.url).await.unwrap();
    let postgres = app._db.url.starts_with("postgres");
    let columns: Vec<(String, String)> = if postgres {
        sqlx::query(
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) FROM information_schema.columns \
             WHERE table_schema = current_schema()",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect()
    } else {
        let tables: Vec<String> =
            sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
                .fetch_all(&pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<String, _>(0))
                .collect();
        let mut all = Vec::new();
        for t in tables {
            let cols =
                sqlx::query(&format!("SELECT name FROM pragma_table_info('{t}')")).fetch_all(&pool).await.unwrap();
            all.extend(cols.iter().map(|r| (t.clone(), r.get::<String, _>(0))));
        }
        all
    };
    assert!(columns.len() > 100, "the catalogue lists every column: {}", columns.len());
    let mut hits = Vec::new();
    for (table, column) in columns {
        let test = if postgres {
            "strpos(lower(CAST(\"{c}\" AS TEXT)), $1) > 0"
        } else {
            "instr(lower(CAST(\"{c}\" AS TEXT)), $1) > 0"
        };
        let sql = format!("SELECT COUNT(*) FROM \"{table}\" WHERE {}", test.replace("{c}", &column));
        let n: i64 = sqlx::query(&sql).bind(needle).fetch_one(&pool).await.unwrap().get(0);
        if n > 0 {
            hits.push((table, column, n));
        }
    }
    pool.close().await;
    hits
}

async fn sql_count(app: &TestApp, sql: &str, bind: &str) -> i64 {
    let pool = AnyPool::connect(&app._db.url).await.unwrap();
    let n: i64 = sqlx::query(sql).bind(bind).fetch_one(&pool).await.unwrap().get(0);
    pool.close().await;
    n
}

async fn campaign(app: &TestApp, t: &str, key: &str, body: Value) -> String {
    let r = app.post(&format!("/customers/{t}/send"), key, body).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    r.body["campaign_id"].as_str().unwrap().to_owned()
}

fn sent_to(app: &TestApp, to: &str) -> usize {
    app.mock().accepted().iter().filter(|e| e.to.iter().any(|a| a.eq_ignore_ascii_case(to))).count()
}

/// A customer with a topic, Pat (subscribed to it, with names, tags and
/// attributes) and Kim; one campaign to both, a transactional email to Pat
/// under an Idempotency-Key, Pat's delivery, open and click (a link naming
/// the address), and Pat's one-click unsubscribe from a browser (a consent
/// record with client details, and a suppression). Returns (tenant, key,
/// Pat's id, campaign id, topic id).
async fn pat_with_history(app: &TestApp) -> (String, String, String, String, String) {
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let r = app.post(&format!("/customers/{t}/topics"), &key, json!({ "name": "News", "default": "opt_in" })).await;
    let news = r.body["id"].as_str().unwrap().to_owned();
    let pat = app
        .add_contact(
            &t,
            &key,
            json!({ "email": PAT, "first_name": "Pat", "last_name": "Quill", "tags": ["vip"],
                    "attributes": { "city": "Quillburg" }, "topics": [{ "id": news, "state": "subscribed" }] }),
        )
        .await;
    app.add_contact(&t, &key, json!({ "email": "kim@example.org", "first_name": "Kim" })).await;
    // An endpoint of the customer's: its deliveries of Pat's events are stored (none is answered).
    let types = ["email.delivered", "email.opened", "email.clicked"];
    let r = app
        .post(
            &format!("/customers/{t}/webhooks"),
            &key,
            json!({ "url": "http://127.0.0.1:9/hook", "event_types": types }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let cid = campaign(app, &t, &key, json!({ "subject": "Hello {{first_name}}", "html": "<p>Hi</p>" })).await;
    let single = app
        .post_with_headers(
            &format!("/customers/{t}/send/single"),
            &key,
            &[("Idempotency-Key", "pat-receipt")],
            &json!({ "to_email": PAT, "subject": "Your receipt", "html": "<p>Thanks, Pat</p>" }),
        )
        .await;
    assert_eq!(single.status, StatusCode::ACCEPTED, "{}", single.body);
    app.drain().await;
    let ids: Vec<String> =
        app.mock().accepted().iter().filter(|e| e.to[0].eq_ignore_ascii_case(PAT)).map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 2, "the campaign email and the receipt");
    let to = json!({ "to": [PAT] });
    let link = json!({ "to": [PAT], "click": { "link": format!("https://acme.com/welcome?who={PAT_LOWER}") } });
    for (i, (kind, extra)) in
        [("email.delivered", &to), ("email.opened", &to), ("email.clicked", &link)].into_iter().enumerate()
    {
        for (j, id) in ids.iter().enumerate() {
            let r = app.webhook(&format!("msg_{i}_{j}"), &event(kind, id, extra.clone())).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    }
    app.settle().await;
    // The one-click link of Pat's campaign email, posted by a browser.
    let accepted = app.mock().accepted();
    let email = accepted.iter().find(|e| e.to[0] == PAT && e.subject.starts_with("Hello")).unwrap();
    let header = email.headers.get("List-Unsubscribe").unwrap();
    let path = url::Url::parse(header.trim_start_matches('<').trim_end_matches('>')).unwrap().path().to_owned();
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", "Mozilla/5.0 (Pat's phone)")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    (t, key, pat, cid, news)
}

#[tokio::test]
async fn the_export_holds_the_persons_contact_topics_consent_messages_and_events() {
    let app = spawn_with(with_webhooks()).await;
    let (t, key, pat, cid, news) = pat_with_history(&app).await;
    let r = app.get(&format!("/customers/{t}/contacts/{pat}/export"), &key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.headers["content-disposition"].to_str().unwrap().starts_with("attachment"));
    let x = r.body;
    assert_eq!(x["contact"]["email"], PAT);
    assert_eq!(x["contact"]["first_name"], "Pat");
    assert_eq!(x["contact"]["last_name"], "Quill");
    assert_eq!(x["contact"]["tags"], json!(["vip"]));
    assert_eq!(x["contact"]["attributes"], json!({ "city": "Quillburg" }));
    assert_eq!(x["contact"]["status"], "unsubscribed");
    assert_eq!(x["suppression"], "unsubscribed");
    let topics = x["topics"].as_array().unwrap();
    assert_eq!(topics.len(), 1);
    assert_eq!((topics[0]["id"].as_str(), topics[0]["state"].as_str()), (Some(news.as_str()), Some("subscribed")));
    let changes: Vec<&str> =
        x["consent_records"].as_array().unwrap().iter().map(|c| c["change"].as_str().unwrap()).collect();
    assert_eq!(changes, ["created", "topic_subscribed", "unsubscribed"], "oldest first");
    assert_eq!(x["consent_records"][2]["client"]["user_agent"], "Mozilla/5.0 (Pat's phone)");
    let messages = x["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0]["campaign_id"], cid.as_str());
    assert_eq!(messages[0]["subject"], "Hello {{first_name}}", "the campaign's subject");
    assert_eq!(messages[1]["campaign_id"], Value::Null);
    assert_eq!(messages[1]["subject"], "Your receipt");
    assert!(messages.iter().all(|m| m["status"] == "clicked" && m["to"] == PAT && m["created_at"].is_string()));
    let events = x["events"].as_array().unwrap();
    assert_eq!(events.len(), 6, "three events about each of the two messages");
    let ids: Vec<&str> = messages.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(events.iter().all(|e| ids.contains(&e["message_id"].as_str().unwrap())));
    assert!(events.iter().any(|e| e["type"] == "email.clicked" && e["link"].as_str().unwrap().contains(PAT_LOWER)));
    // Kim's mail is not Pat's.
    assert!(!x.to_string().contains("kim@example.org"));
}

#[tokio::test]
async fn after_erasure_no_row_of_any_table_holds_the_address_and_the_figures_are_unchanged() {
    let app = spawn_with(with_webhooks()).await;
    let (t, key, pat, cid, _) = pat_with_history(&app).await;
    let before = rows_naming(&app, PAT_LOWER).await;
    let tables: Vec<&str> = before.iter().map(|(t, _, _)| t.as_str()).collect();
    for table in [
        "contacts",
        "messages",
        "webhook_events",
        "webhook_deliveries",
        "suppressions",
        "idempotency_keys",
        "campaign_links",
    ] {
        assert!(tables.contains(&table), "{table} names the address before: {before:?}");
    }
    let stats = format!("/customers/{t}/campaigns/{cid}/stats");
    let (stats_before, campaign_before) =
        (app.get(&stats, &key).await.body, app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await.body);
    let tenant_before = app.get(&format!("/customers/{t}/stats"), &key).await.body;
    let clients =
        "SELECT COUNT(*) FROM consent_clients k JOIN consent_records r ON r.id = k.record_id WHERE r.contact_id = $1";
    assert_eq!(sql_count(&app, clients, &pat).await, 1);

    let r = app.post(&format!("/customers/{t}/contacts/{pat}/erase"), &key, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["contact_id"], pat.as_str());
    assert_eq!(r.body["counts"]["messages"], 2);
    assert_eq!(r.body["counts"]["consent_clients"], 1);
    assert_eq!(r.body["counts"]["suppressions"], 1);
    assert!(r.body["counts"]["delivery_events"].as_u64().unwrap() >= 6, "{}", r.body);

    assert_eq!(rows_naming(&app, PAT_LOWER).await, [], "no row holds the address in clear");
    // Resend reports opens for days: a late event about Pat's email is stored without its payload.
    let pat_email = app.mock().accepted().iter().find(|e| e.to[0] == PAT).unwrap().id.clone();
    let late = event("email.opened", &pat_email, json!({ "to": [PAT] }));
    assert_eq!(app.webhook("msg_late", &late).await.status, StatusCode::OK);
    app.settle().await;
    let late_stored = "SELECT COUNT(*) FROM webhook_events WHERE svix_id = $1";
    assert_eq!(sql_count(&app, late_stored, "msg_late").await, 1);
    assert_eq!(rows_naming(&app, PAT_LOWER).await, [], "nor after a late event");
    assert_eq!(rows_naming(&app, "quillburg").await, [], "nor the person's attributes");
    // The figures stay; a link that named the address names its hash instead.
    let without_links = |mut v: Value| {
        let links = v["top_links"].as_array_mut().unwrap().drain(..).map(|l| l["unique_clicks"].clone()).collect();
        v["top_links"] = Value::Array(links);
        v
    };
    let stats_after = app.get(&stats, &key).await.body;
    assert_eq!(without_links(stats_after.clone()), without_links(stats_before.clone()), "campaign figures stay");
    assert_eq!(stats_before["unsubscribed"], 1);
    assert_eq!(app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await.body, campaign_before);
    let tenant_after = app.get(&format!("/customers/{t}/stats"), &key).await.body;
    assert_eq!(tenant_after["totals"], tenant_before["totals"], "the customer's figures stay");
    assert_eq!(tenant_after["buckets"], tenant_before["buckets"]);
    // Kim is untouched.
    let kim = app.get(&format!("/customers/{t}/contacts?email=kim@example.org"), &key).await;
    assert_eq!(kim.body[0]["first_name"], "Kim");

    // The consent records stay, without client details, and one `erased` record names no one.
    let records = "SELECT COUNT(*) FROM consent_records WHERE contact_id = $1";
    assert_eq!(sql_count(&app, records, &pat).await, 4);
    assert_eq!(sql_count(&app, clients, &pat).await, 0);
    let erased = "SELECT COUNT(*) FROM consent_records WHERE contact_id = $1 AND change = 'erased'";
    assert_eq!(sql_count(&app, erased, &pat).await, 1);

    // Erasing again: the contact is gone.
    let again = app.post(&format!("/customers/{t}/contacts/{pat}/erase"), &key, json!({})).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.body);
    assert_eq!(app.get(&format!("/customers/{t}/contacts/{pat}/export"), &key).await.status, StatusCode::NOT_FOUND);
    // The idempotent answer of the receipt no longer names Pat, and its replay still sends nothing.
    let sent = app.mock().accepted_count();
    let replay = app
        .post_with_headers(
            &format!("/customers/{t}/send/single"),
            &key,
            &[("Idempotency-Key", "pat-receipt")],
            &json!({ "to_email": PAT, "subject": "Your receipt", "html": "<p>Thanks, Pat</p>" }),
        )
        .await;
    assert!(!replay.body.to_string().to_lowercase().contains(PAT_LOWER), "{}", replay.body);
    app.drain().await;
    assert_eq!(app.mock().accepted_count(), sent);
}

#[tokio::test]
async fn an_erased_address_added_again_gets_no_campaign_and_no_single_email() {
    let app = spawn_with(with_webhooks()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let pat = app.add_contact(&t, &key, json!({ "email": PAT, "first_name": "Pat" })).await;
    let lee = app.add_contact(&t, &key, json!({ "email": "lee@example.org" })).await;
    app.add_contact(&t, &key, json!({ "email": "kim@example.org" })).await;
    for c in [&pat, &lee] {
        let r = app.post(&format!("/customers/{t}/contacts/{c}/erase"), &key, json!({})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // Back through the API (another case), and through an import.
    app.add_contact(&t, &key, json!({ "email": PAT_LOWER })).await;
    let r = app
        .post(
            &format!("/customers/{t}/contacts/import"),
            &key,
            json!({ "contacts": [{ "email": "LEE@example.org" }, { "email": "new@example.org" }] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let listed = app.get(&format!("/customers/{t}/suppressions?reason=erased"), &key).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let text = listed.body.to_string();
    assert!(text.contains(PAT_LOWER) && text.contains("lee@example.org"), "{text}");

    // Taking it off the list by hand is refused: only the person's confirmed signup lifts it.
    let r = app.delete(&format!("/customers/{t}/suppressions/{PAT_LOWER}"), &key).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "erased_address");
    let r = app.delete(&format!("/customers/{t}/suppressions/lee@example.org?force=true"), &key).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);

    campaign(&app, &t, &key, json!({ "subject": "News", "html": "<p>News</p>" })).await;
    app.drain().await;
    assert_eq!(sent_to(&app, "kim@example.org"), 1);
    assert_eq!(sent_to(&app, "new@example.org"), 1);
    assert_eq!(sent_to(&app, PAT), 0, "added again by the API");
    assert_eq!(sent_to(&app, "lee@example.org"), 0, "added again by an import");

    // A single send is refused like one to a suppressed address.
    for to in [PAT, "lee@example.org"] {
        let r = app
            .post(&format!("/customers/{t}/send/single"), &key, json!({ "to_email": to, "subject": "s", "html": "h" }))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{to}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "recipient_suppressed");
    }
    // A confirmed double opt-in lifts the `erased` suppression (what the
    // signup forms do): then the person's mail goes again.
    app.store
        .execute_raw(&format!("DELETE FROM suppressions WHERE email_normalized = '{PAT_LOWER}' AND reason = 'erased'"))
        .await
        .unwrap();
    let r = app
        .post(&format!("/customers/{t}/send/single"), &key, json!({ "to_email": PAT, "subject": "s", "html": "h" }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let other = app
        .post(
            &format!("/customers/{t}/send/single"),
            &key,
            json!({ "to_email": "kim@example.org", "subject": "s", "html": "h" }),
        )
        .await;
    assert_eq!(other.status, StatusCode::ACCEPTED, "{}", other.body);
}

#[tokio::test]
async fn an_erased_address_is_refused_for_a_single_send_without_coming_back() {
    let app = spawn_with(with_webhooks()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let pat = app.add_contact(&t, &key, json!({ "email": PAT })).await;
    // No body at all, as `curl -X POST` sends.
    let path = format!("/customers/{t}/contacts/{pat}/erase");
    let r = app.request(reqwest::Method::POST, &path, Some(&key), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .post(&format!("/customers/{t}/send/single"), &key, json!({ "to_email": PAT, "subject": "s", "html": "h" }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "recipient_suppressed");
    // Another customer never erased it: its mail goes.
    let (o, okey) = app.verified_tenant("Other", "other.com").await;
    let r = app
        .post(&format!("/customers/{o}/send/single"), &okey, json!({ "to_email": PAT, "subject": "s", "html": "h" }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}

#[tokio::test]
async fn another_customer_can_neither_export_nor_erase_a_contact() {
    let app = spawn_with(with_webhooks()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let (o, okey) = app.verified_tenant("Other", "other.com").await;
    let pat = app.add_contact(&t, &key, json!({ "email": PAT })).await;
    let theirs = app.add_contact(&o, &okey, json!({ "email": PAT })).await;
    for path in [
        format!("/customers/{t}/contacts/{pat}/export"),
        format!("/customers/{o}/contacts/{pat}/export"),
        format!("/customers/{t}/contacts/not-an-id/export"),
    ] {
        let r = app.get(&path, &okey).await;
        assert!(matches!(r.status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN), "{path}: {}", r.status);
    }
    assert_eq!(app.get(&format!("/customers/{o}/contacts/{pat}/export"), &okey).await.status, StatusCode::NOT_FOUND);
    let r = app.post(&format!("/customers/{o}/contacts/{pat}/erase"), &okey, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = app.post(&format!("/customers/{t}/contacts/{theirs}/erase"), &key, json!({})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // Hostile ids and bodies: a clear 4xx in the error envelope, never a 5xx.
    for id in ["%00", "%E2%80%A8", "a%0Ab", &"x".repeat(5000)] {
        let r = app.get(&format!("/customers/{t}/contacts/{id}/export"), &key).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.body);
        let r = app.post(&format!("/customers/{t}/contacts/{id}/erase"), &key, json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}: {}", r.body);
        assert!(r.body["error"]["code"].is_string(), "{}", r.body);
    }
    let r = app.post(&format!("/customers/{t}/contacts/{pat}/erase"), &key, json!([])).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let huge = app
        .http
        .post(format!("{}/customers/{t}/contacts/{pat}/erase", app.base))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(format!("{{\"a\": \"{}\"}}", "x".repeat(3 << 20)))
        .send()
        .await
        .unwrap();
    assert!(huge.status().is_client_error(), "{}", huge.status());
    // Bodies with fields are refused.
    let r = app.post(&format!("/customers/{t}/contacts/{pat}/erase"), &key, json!({ "force": true })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // Both contacts are still there.
    assert_eq!(app.get(&format!("/customers/{t}/contacts/{pat}"), &key).await.status, StatusCode::OK);
    assert_eq!(app.get(&format!("/customers/{o}/contacts/{theirs}"), &okey).await.status, StatusCode::OK);
    assert_eq!(app.get(&format!("/customers/{t}/contacts/{pat}/export"), &key).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_unsubscribe_link_in_an_erased_persons_old_email_names_nobody_and_writes_nothing() {
    let app = spawn_with(with_webhooks()).await;
    let (t, key, pat, _, _) = pat_with_history(&app).await;
    let r = app.post(&format!("/customers/{t}/contacts/{pat}/erase"), &key, json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let suppressions = app.get(&format!("/customers/{t}/suppressions"), &key).await.body;

    let accepted = app.mock().accepted();
    let email = accepted.iter().find(|e| e.to[0] == PAT && e.subject.starts_with("Hello")).unwrap();
    let header = email.headers.get("List-Unsubscribe").unwrap();
    let path = url::Url::parse(header.trim_start_matches('<').trim_end_matches('>')).unwrap().path().to_owned();
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/customers/{t}/suppressions"), &key).await.body, suppressions);
}
