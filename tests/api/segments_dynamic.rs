//! Dynamic segments and filters over HTTP: every operator gives the answers
//! written once here, on SQLite and on PostgreSQL alike.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{event, spawn_app, spawn_with, Options, TestApp};

/// The fixture: six contacts of one customer. `f` is unsubscribed.
async fn fixture(app: &TestApp) -> (String, String) {
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let contacts = [
        json!({"email": "a@example.org", "first_name": "Alice", "tags": ["premium"],
               "attributes": {"plan": "pro", "seats": 5, "vip": true}}),
        json!({"email": "b@example.org", "first_name": "bob", "last_name": "Brown",
               "attributes": {"plan": "free", "seats": 1, "vip": false}}),
        json!({"email": "c@example.org", "first_name": "Carol", "tags": ["premium", "beta"],
               "attributes": {"plan": "team", "seats": 20}}),
        json!({"email": "d@example.org"}),
        json!({"email": "E@Example.org", "tags": ["beta"], "attributes": {"plan": "Pro", "seats": "5"}}),
        json!({"email": "f@example.org", "first_name": "Fay", "attributes": {"plan": "pro", "seats": 7}}),
    ];
    for c in contacts {
        app.add_contact(&t, &key, c).await;
    }
    // Attributes the API refuses today (nested objects, null) may still be
    // stored from before attributes were checked: filters must cope.
    for (email, attributes) in [
        ("c@example.org", r#"{"plan": "team", "seats": 20, "nested": {"plan": "pro"}}"#),
        ("e@example.org", r#"{"plan": "Pro", "seats": "5", "note": null}"#),
    ] {
        app.store
            .execute_raw(&format!("UPDATE contacts SET attributes = '{attributes}' WHERE email_normalized = '{email}'"))
            .await
            .unwrap();
    }
    let f = app.get(&format!("/customers/{t}/contacts?limit=10"), &key).await;
    let fid = f.body.as_array().unwrap().iter().find(|c| c["email"] == "f@example.org").unwrap()["id"].clone();
    let r = app
        .patch(&format!("/customers/{t}/contacts/{}", fid.as_str().unwrap()), &key, json!({"is_subscribed": false}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    (t, key)
}

/// The letters (`a`..`f`) of the contacts a dynamic segment with this filter holds now.
async fn members(app: &TestApp, t: &str, key: &str, filter: &Value) -> BTreeSet<char> {
    let s = app.post(&format!("/customers/{t}/segments"), key, json!({"name": "dyn", "filter": filter})).await;
    assert_eq!(s.status, StatusCode::CREATED, "{filter}: {}", s.body);
    assert_eq!(s.body["dynamic"], true);
    let sid = s.body["id"].as_str().unwrap();
    let g = app.get(&format!("/customers/{t}/segments/{sid}"), key).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.body);
    let found: BTreeSet<char> = g.body["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["email"].as_str().unwrap().to_ascii_lowercase().chars().next().unwrap())
        .collect();
    assert_eq!(g.body["contact_count"].as_u64(), Some(found.len() as u64), "{filter}");
    app.delete(&format!("/customers/{t}/segments/{sid}"), key).await;
    found
}

async fn audience(app: &TestApp, t: &str, key: &str, body: Value) -> Value {
    let r = app.post(&format!("/customers/{t}/audience"), key, body.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{body}: {}", r.body);
    r.body["count"].clone()
}

fn set(letters: &str) -> BTreeSet<char> {
    letters.chars().collect()
}

#[tokio::test]
async fn every_operator_selects_exactly_the_expected_contacts() {
    let app = spawn_app().await;
    let (t, key) = fixture(&app).await;
    let cases: Vec<(Value, &str)> = vec![
        // strings compare with strings only, byte-wise ("Pro" < "free" < "pro" < "team")
        (json!({"attribute": "plan", "op": "eq", "value": "pro"}), "af"),
        (json!({"attribute": "plan", "op": "ne", "value": "pro"}), "bce"),
        (json!({"not": {"attribute": "plan", "op": "eq", "value": "pro"}}), "bcde"),
        (json!({"attribute": "plan", "op": "lt", "value": "pro"}), "be"),
        (json!({"attribute": "plan", "op": "lte", "value": "pro"}), "abef"),
        (json!({"attribute": "plan", "op": "gt", "value": "pro"}), "c"),
        (json!({"attribute": "plan", "op": "gte", "value": "team"}), "c"),
        (json!({"attribute": "plan", "op": "contains", "value": "r"}), "abef"),
        (json!({"attribute": "plan", "op": "starts_with", "value": "P"}), "e"),
        (json!({"attribute": "plan", "op": "exists"}), "abcef"),
        (json!({"not": {"attribute": "plan", "op": "exists"}}), "d"),
        (json!({"attribute": "plan", "op": "in", "value": ["pro", "team"]}), "acf"),
        // numbers compare with numbers only, numerically ("5" is a string)
        (json!({"attribute": "seats", "op": "eq", "value": 5}), "a"),
        (json!({"attribute": "seats", "op": "eq", "value": 5.0}), "a"),
        (json!({"attribute": "seats", "op": "eq", "value": "5"}), "e"),
        (json!({"attribute": "seats", "op": "gt", "value": 4}), "acf"),
        (json!({"attribute": "seats", "op": "lte", "value": 5}), "ab"),
        (json!({"attribute": "seats", "op": "lt", "value": 10.5}), "abf"),
        (json!({"attribute": "seats", "op": "gte", "value": 20}), "c"),
        (json!({"attribute": "seats", "op": "in", "value": [1, 20, "5"]}), "bce"),
        (json!({"attribute": "seats", "op": "ne", "value": 5}), "bcef"),
        // booleans
        (json!({"attribute": "vip", "op": "eq", "value": true}), "a"),
        (json!({"attribute": "vip", "op": "eq", "value": false}), "b"),
        (json!({"attribute": "vip", "op": "ne", "value": true}), "b"),
        // JSON null counts as missing; a nested object is not a string
        (json!({"attribute": "note", "op": "exists"}), ""),
        (json!({"attribute": "nested", "op": "exists"}), "c"),
        (json!({"attribute": "nested", "op": "eq", "value": "pro"}), ""),
        (json!({"attribute": "missing", "op": "lt", "value": 100}), ""),
        // tags and combinators
        (json!({"tag": "premium"}), "ac"),
        (json!({"all": [{"tag": "premium"}, {"tag": "beta"}]}), "c"),
        (json!({"any": [{"tag": "beta"}, {"attribute": "plan", "op": "eq", "value": "free"}]}), "bce"),
        (json!({"not": {"any": [{"tag": "beta"}, {"tag": "premium"}]}}), "bdf"),
        (
            json!({"all": [{"not": {"tag": "premium"}}, {"any": [{"attribute": "seats", "op": "gt", "value": 0}, {"field": "first_name", "op": "eq", "value": "Fay"}]}]}),
            "bf",
        ),
        // fields
        (json!({"field": "first_name", "op": "eq", "value": "Alice"}), "a"),
        (json!({"field": "first_name", "op": "lt", "value": "a"}), "acf"),
        (json!({"field": "first_name", "op": "starts_with", "value": "b"}), "b"),
        (json!({"field": "first_name", "op": "contains", "value": "a"}), "cf"),
        (json!({"field": "first_name", "op": "exists"}), "abcf"),
        (json!({"field": "first_name", "op": "ne", "value": "bob"}), "acf"),
        (json!({"field": "last_name", "op": "in", "value": ["Brown", "Green"]}), "b"),
        (json!({"field": "email", "op": "eq", "value": "A@EXAMPLE.ORG"}), "a"),
        (json!({"field": "email", "op": "eq", "value": "e@example.org"}), "e"),
        (json!({"field": "email", "op": "starts_with", "value": "C@"}), "c"),
        (json!({"field": "email", "op": "contains", "value": "example"}), "abcdef"),
        (json!({"field": "status", "op": "eq", "value": "unsubscribed"}), "f"),
        (json!({"field": "status", "op": "in", "value": ["subscribed", "bounced"]}), "abcde"),
        (json!({"field": "created_at", "op": "lt", "value": 0}), ""),
        (json!({"field": "created_at", "op": "gte", "value": "2000-01-01T00:00:00Z"}), "abcdef"),
        (json!({"field": "created_at", "op": "gt", "value": "2999-01-01T00:00:00+02:00"}), ""),
    ];
    for (filter, expected) in cases {
        let expected = set(expected);
        assert_eq!(members(&app, &t, &key, &filter).await, expected, "{filter}");
        let mailable = expected.iter().filter(|c| **c != 'f').count();
        assert_eq!(audience(&app, &t, &key, json!({ "filter": filter })).await, json!(mailable), "{filter}");
    }
    // The tag and segment forms of the body, and the query form, still count.
    assert_eq!(audience(&app, &t, &key, json!({"tag": "premium"})).await, json!(2));
    assert_eq!(audience(&app, &t, &key, json!({})).await, json!(5));
    assert_eq!(app.get(&format!("/customers/{t}/audience?tag=beta"), &key).await.body["count"], json!(2));
}

#[tokio::test]
async fn hostile_attribute_names_are_refused_and_hostile_values_match_nothing() {
    let app = spawn_app().await;
    let (t, key) = fixture(&app).await;
    let hostile = ["plan'; DROP TABLE contacts;--", "$.x", "plan\"", "plan' OR '1'='1", "plän", "a.b", "x[0]", ""];
    for name in hostile {
        for body in [json!({"filter": {"attribute": name, "op": "eq", "value": 1}})] {
            let r = app.post(&format!("/customers/{t}/audience"), &key, body).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {}", r.body);
            assert_eq!(r.body["error"]["code"], "invalid_filter");
            assert!(r.body["error"]["message"].as_str().unwrap().contains("filter.attribute"), "{}", r.body);
        }
    }
    let values = ["plan'; DROP TABLE contacts;--", "$.x", "' OR '1'='1", "\"pro\"", "pro' --", "ünï☃", "%", "_", "\\"];
    for value in values {
        for op in ["eq", "lt", "contains", "starts_with"] {
            let filter = json!({"attribute": "plan", "op": op, "value": value});
            let count = audience(&app, &t, &key, json!({ "filter": filter })).await;
            let expected = match (op, value) {
                // Byte order: these sort before every plan but "Pro" and lowercase ones.
                ("lt", v) if v > "team" => 4,
                ("lt", v) if v > "pro" => 3,
                ("lt", v) if v > "free" => 2,
                ("lt", v) if v > "Pro" => 1,
                _ => 0,
            };
            assert_eq!(count, json!(expected), "{filter}");
        }
        let filter = json!({"field": "first_name", "op": "eq", "value": value});
        assert_eq!(audience(&app, &t, &key, json!({ "filter": filter })).await, json!(0));
    }
    // A value is data: a contact whose attribute is the hostile text matches it exactly.
    app.add_contact(
        &t,
        &key,
        json!({"email": "x@example.org", "attributes": {"plan": "plan'; DROP TABLE contacts;--"}}),
    )
    .await;
    let filter = json!({"attribute": "plan", "op": "eq", "value": "plan'; DROP TABLE contacts;--"});
    assert_eq!(audience(&app, &t, &key, json!({ "filter": filter })).await, json!(1));
    assert_eq!(app.store.count_rows("contacts").await.unwrap(), 7, "the contacts table survives");
}

#[tokio::test]
async fn invalid_filters_are_422_with_their_path_never_5xx() {
    let app = spawn_app().await;
    let (t, key) = fixture(&app).await;
    let deep = (0..11).fold(json!({"tag": "a"}), |f, _| json!({ "not": f }));
    let many: Vec<Value> = (0..51).map(|i| json!({"tag": format!("t{i}")})).collect();
    let cases = [
        (
            json!({"all": [{"tag": "a"}, {"tag": "b"}, {"attribute": "x", "op": "like", "value": 1}]}),
            "filter.all[2].op",
        ),
        (json!({"any": [{"tag": "a", "extra": true}]}), "filter.any[0].extra"),
        (json!({"attribute": "plan", "op": "eq", "value": {"a": 1}}), "filter.value"),
        (json!({"attribute": "plan", "op": "in", "value": []}), "filter.value"),
        (json!({"attribute": "plan", "op": "gt", "value": false}), "filter.value"),
        (json!({"field": "phone", "op": "eq", "value": "1"}), "filter.field"),
        (json!({"field": "created_at", "op": "lt", "value": "last tuesday"}), "filter.value"),
        (json!({"event": "read"}), "filter.event"),
        (json!({"event": "opened", "within_days": -1}), "filter.within_days"),
        (json!({"tag": 5}), "filter.tag"),
        (json!("premium"), "filter"),
        (json!({"all": []}), "filter.all"),
        (deep, "filter.not.not"),
        (json!({ "any": many }), "filter.any[50]"),
    ];
    let seg = app.post(&format!("/customers/{t}/segments"), &key, json!({"name": "d", "filter": {"tag": "a"}})).await;
    let sid = seg.body["id"].as_str().unwrap().to_owned();
    for (filter, path) in cases {
        let attempts = [
            app.post(&format!("/customers/{t}/segments"), &key, json!({"name": "x", "filter": filter})).await,
            app.post(&format!("/customers/{t}/audience"), &key, json!({ "filter": filter })).await,
            app.post(&format!("/customers/{t}/send"), &key, json!({"subject": "s", "html": "h", "filter": filter}))
                .await,
            app.patch(&format!("/customers/{t}/segments/{sid}"), &key, json!({ "filter": filter })).await,
        ];
        for r in attempts {
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{filter}: {}", r.body);
            assert_eq!(r.body["error"]["code"], "invalid_filter", "{}", r.body);
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(&format!("`{path}")), "{path} not in {message}");
        }
    }
    // Unknown fields and mixed targeting are refused too.
    let r = app.post(&format!("/customers/{t}/audience"), &key, json!({"filtre": {"tag": "a"}})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = app.post(&format!("/customers/{t}/audience"), &key, json!({"filter": {"tag": "a"}, "tag": "a"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let r = app
        .post(
            &format!("/customers/{t}/send"),
            &key,
            json!({"subject": "s", "html": "h", "tag": "a", "filter": {"tag": "a"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(app.store.count_rows("campaigns").await.unwrap(), 0);
}

#[tokio::test]
async fn a_dynamic_segment_shows_its_filter_refuses_members_and_can_be_patched() {
    let app = spawn_app().await;
    let (t, key) = fixture(&app).await;
    let filter = json!({"attribute": "plan", "op": "eq", "value": "pro"});
    let s = app.post(&format!("/customers/{t}/segments"), &key, json!({"name": "pros", "filter": filter})).await;
    assert_eq!(s.status, StatusCode::CREATED, "{}", s.body);
    let sid = s.body["id"].as_str().unwrap().to_owned();
    let g = app.get(&format!("/customers/{t}/segments/{sid}"), &key).await;
    assert_eq!(g.body["filter"], filter);
    assert_eq!(g.body["dynamic"], true);
    assert_eq!(g.body["contact_count"], 2);
    let list = app.get(&format!("/customers/{t}/segments"), &key).await;
    assert_eq!(list.body[0]["dynamic"], true, "{}", list.body);

    let contacts = app.get(&format!("/customers/{t}/contacts"), &key).await;
    let any_id = contacts.body[0]["id"].clone();
    let r = app.post(&format!("/customers/{t}/segments/{sid}/contacts"), &key, json!({"contact_ids": [any_id]})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "dynamic_segment");

    let r = app
        .patch(&format!("/customers/{t}/segments/{sid}"), &key, json!({"name": "teams", "filter": {"tag": "premium"}}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"], "teams");
    let g = app.get(&format!("/customers/{t}/segments/{sid}"), &key).await;
    assert_eq!(g.body["filter"], json!({"tag": "premium"}));
    assert_eq!(g.body["contact_count"], 2);

    // A static segment stays static: it takes members, not a filter.
    let st = app.post(&format!("/customers/{t}/segments"), &key, json!({"name": "static"})).await;
    assert_eq!(st.body["dynamic"], false);
    assert!(st.body.get("filter").is_none());
    let st_id = st.body["id"].as_str().unwrap();
    let r = app.patch(&format!("/customers/{t}/segments/{st_id}"), &key, json!({"filter": {"tag": "premium"}})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    let r =
        app.post(&format!("/customers/{t}/segments/{st_id}/contacts"), &key, json!({"contact_ids": [any_id]})).await;
    assert_eq!(r.body["added_count"], 1, "{}", r.body);
    let r = app.patch(&format!("/customers/{t}/segments/{st_id}"), &key, json!({"nam": "x"})).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_send_to_a_dynamic_segment_queues_exactly_its_mailable_matches() {
    let app = spawn_with(Options { run_worker: false, ..Options::default() }).await;
    let (t, key) = fixture(&app).await;
    let filter = json!({"any": [{"attribute": "plan", "op": "eq", "value": "pro"}, {"tag": "beta"}]});
    let s = app.post(&format!("/customers/{t}/segments"), &key, json!({"name": "d", "filter": filter})).await;
    let sid = s.body["id"].as_str().unwrap();
    let r =
        app.post(&format!("/customers/{t}/send"), &key, json!({"subject": "s", "html": "h", "segment_id": sid})).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    // a, c, e match and are subscribed; f matches but unsubscribed.
    assert_eq!(r.body["sent_to"], 3);
    let cid = r.body["campaign_id"].as_str().unwrap();
    let c = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    assert_eq!(c.body["targeting"], json!({"segment_id": sid, "filter": filter}), "{}", c.body);
    let tenant = mailroom::domain::TenantId::from_stored(t.clone());
    let mut to = Vec::new();
    for id in app.store.campaign_message_ids(&tenant, cid).await.unwrap() {
        to.push(app.store.message(&tenant, &id).await.unwrap().unwrap().to_email);
    }
    to.sort();
    assert_eq!(to, ["E@Example.org", "a@example.org", "c@example.org"]);

    let r = app
        .post(
            &format!("/customers/{t}/send"),
            &key,
            json!({"subject": "s", "html": "h", "filter": {"field": "first_name", "op": "eq", "value": "bob"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["sent_to"], 1);
    let none = json!({"subject": "s", "html": "h", "filter": {"attribute": "plan", "op": "eq", "value": "gold"}});
    let r = app.post(&format!("/customers/{t}/send"), &key, none).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "no_recipients");
}

#[tokio::test]
async fn a_filter_never_reaches_another_customers_contacts_or_segments() {
    let app = spawn_app().await;
    let (a, key_a) = fixture(&app).await;
    let (b, key_b) = app.verified_tenant("B", "bravo.com").await;
    for i in 0..3 {
        app.add_contact(
            &b,
            &key_b,
            json!({"email": format!("b{i}@example.org"), "tags": ["premium"], "attributes": {"plan": "pro"}}),
        )
        .await;
    }
    let pro = json!({"attribute": "plan", "op": "eq", "value": "pro"});
    assert_eq!(audience(&app, &a, &key_a, json!({ "filter": pro })).await, json!(1));
    assert_eq!(audience(&app, &b, &key_b, json!({ "filter": pro })).await, json!(3));
    assert_eq!(audience(&app, &a, &key_a, json!({"filter": {"tag": "premium"}})).await, json!(2));
    let seg_b = app.post(&format!("/customers/{b}/segments"), &key_b, json!({"name": "b", "filter": pro})).await;
    let sid_b = seg_b.body["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/customers/{a}/segments/{sid_b}"), &key_a).await.status, StatusCode::NOT_FOUND);
    let r = app.post(&format!("/customers/{a}/audience"), &key_a, json!({ "segment_id": sid_b })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app
        .post(&format!("/customers/{a}/send"), &key_a, json!({"subject": "s", "html": "h", "segment_id": sid_b}))
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.patch(&format!("/customers/{a}/segments/{sid_b}"), &key_a, json!({"name": "mine"})).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // B's key cannot count A's audience.
    let r = app.post(&format!("/customers/{a}/audience"), &key_b, json!({ "filter": pro })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
}

#[tokio::test]
async fn engagement_filters_follow_delivery_events() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    for who in ["a", "b", "c"] {
        app.add_contact(&t, &key, json!({"email": format!("{who}@example.org")})).await;
    }
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({"subject": "s", "html": "h"})).await;
    let campaign = r.body["campaign_id"].as_str().unwrap().to_owned();
    app.drain().await;
    let email_id = |who: &str| {
        let to = format!("{who}@example.org");
        app.mock().accepted().into_iter().find(|e| e.to.contains(&to)).unwrap().id
    };
    let opened = json!({"event": "opened"});
    assert_eq!(members(&app, &t, &key, &opened).await, set(""));
    app.webhook("e1", &event("email.delivered", &email_id("a"), json!({}))).await;
    app.webhook("e2", &event("email.opened", &email_id("a"), json!({}))).await;
    app.webhook("e3", &event("email.delivered", &email_id("b"), json!({}))).await;
    assert_eq!(members(&app, &t, &key, &opened).await, set("a"));
    assert_eq!(members(&app, &t, &key, &json!({"not": opened})).await, set("bc"));
    assert_eq!(members(&app, &t, &key, &json!({"event": "delivered"})).await, set("ab"));
    assert_eq!(
        members(&app, &t, &key, &json!({"event": "opened", "campaign_id": campaign, "within_days": 1})).await,
        set("a")
    );
    let other = "0190f0e0-0000-7000-8000-000000000001";
    assert_eq!(members(&app, &t, &key, &json!({"event": "opened", "campaign_id": other})).await, set(""));
    assert_eq!(audience(&app, &t, &key, json!({"filter": {"not": opened}})).await, json!(2));
    // A complaint after the open: the message now shows `complained`, and the
    // open is still remembered through its webhook event.
    app.webhook("e4", &event("email.complained", &email_id("a"), json!({}))).await;
    assert_eq!(members(&app, &t, &key, &opened).await, set("a"));
    assert_eq!(members(&app, &t, &key, &json!({"event": "complained"})).await, set("a"));
    assert_eq!(members(&app, &t, &key, &json!({"event": "bounced"})).await, set(""));
    // The complainer is no longer mailable, whatever the filter.
    assert_eq!(audience(&app, &t, &key, json!({ "filter": opened })).await, json!(0));
}

// Invariant 6 at the edge of exact numbers: stored attributes past 2^53 compare
// alike on both databases against any number a filter may hold, and a filter
// number past ±(2^53 - 1) (where SQLite, exact, and PostgreSQL, as doubles,
// would disagree) is refused by path.
#[tokio::test]
async fn numbers_past_the_safe_integers_select_alike_on_both_databases() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    for (email, n) in [
        ("big@example.org", json!(9_007_199_254_740_993_i64)),
        ("low@example.org", json!(i64::MIN)),
        ("edge@example.org", json!(9_007_199_254_740_991_i64)),
    ] {
        app.add_contact(&t, &key, json!({ "email": email, "attributes": { "n": n } })).await;
    }
    let safe = 9_007_199_254_740_991_i64;
    for (filter, count) in [
        (json!({"attribute": "n", "op": "gt", "value": safe}), 1),
        (json!({"attribute": "n", "op": "gte", "value": safe}), 2),
        (json!({"attribute": "n", "op": "lte", "value": safe}), 2),
        (json!({"attribute": "n", "op": "eq", "value": safe}), 1),
        (json!({"attribute": "n", "op": "lt", "value": -safe}), 1),
        (json!({"attribute": "n", "op": "in", "value": [safe, -safe]}), 1),
    ] {
        assert_eq!(audience(&app, &t, &key, json!({ "filter": filter })).await, json!(count), "{filter}");
    }
    for value in [json!(9_007_199_254_740_993_i64), json!(i64::MIN), json!(1e300)] {
        let filter = json!({"attribute": "n", "op": "eq", "value": value});
        let r = app.post(&format!("/customers/{t}/audience"), &key, json!({ "filter": filter })).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{value}: {}", r.body);
        assert!(r.body["error"]["message"].as_str().unwrap().contains("filter.value"), "{}", r.body);
    }
}
