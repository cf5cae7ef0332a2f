use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, ADMIN_KEY};

#[tokio::test]
async fn customers_are_created_listed_renamed_and_deleted_with_everything_they_own() {
    let app = spawn_app().await;
    let (a, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let list = app.get("/customers", ADMIN_KEY).await;
    assert_eq!(list.body[0]["domain"], "acme.example.com");
    assert_eq!(list.body[0]["domain_verified"], true);
    let renamed = app.patch(&format!("/customers/{a}"), &key, json!({ "name": "Acme Ltd" })).await;
    assert_eq!(renamed.body["name"], "Acme Ltd");

    let contact = app.add_contact(&a, &key, json!({ "email": "ada@example.org", "tags": ["t"] })).await;
    let seg = app.post(&format!("/customers/{a}/segments"), &key, json!({ "name": "s" })).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(&format!("/customers/{a}/segments/{seg}/contacts"), &key, json!({ "contact_ids": [contact] })).await;
    app.post(&format!("/customers/{a}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    app.drain().await;

    assert_eq!(app.delete(&format!("/customers/{a}"), ADMIN_KEY).await.status, StatusCode::NO_CONTENT);
    for table in
        ["contacts", "contact_tags", "segments", "segment_members", "campaigns", "messages", "batches", "api_keys"]
    {
        assert_eq!(app.store.count_rows(table).await.unwrap(), 0, "{table} still holds rows of the deleted customer");
    }
}

#[tokio::test]
async fn contacts_have_the_documented_fields_and_can_be_changed_and_deleted() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let r = app
        .post(&format!("/customers/{t}/contacts"), &key, json!({ "email": "Ada@Example.org", "first_name": "Ada", "last_name": "L", "tags": ["vip", "news"], "attributes": { "plan": "pro" } }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    for field in
        ["id", "email", "first_name", "last_name", "tags", "attributes", "is_subscribed", "status", "created_at"]
    {
        assert!(r.body.get(field).is_some(), "missing {field}");
    }
    assert_eq!(r.body["is_subscribed"], true);
    assert_eq!(r.body["status"], "subscribed");
    assert_eq!(r.body["attributes"]["plan"], "pro");
    let id = r.body["id"].as_str().unwrap();

    let p = app
        .patch(
            &format!("/customers/{t}/contacts/{id}"),
            &key,
            json!({ "first_name": null, "tags": ["vip"], "is_subscribed": false }),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.body);
    assert_eq!(p.body["first_name"], serde_json::Value::Null);
    assert_eq!(p.body["tags"], json!(["vip"]));
    assert_eq!(p.body["status"], "unsubscribed");
    assert_eq!(p.body["last_name"], "L", "absent fields stay");

    let tagged = app.get(&format!("/customers/{t}/contacts?tag=news"), &key).await;
    assert_eq!(tagged.body.as_array().unwrap().len(), 0, "tag index follows edits");

    assert_eq!(app.delete(&format!("/customers/{t}/contacts/{id}"), &key).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/customers/{t}/contacts/{id}"), &key).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_duplicate_email_is_409_whatever_its_case_and_an_invalid_one_422() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    app.add_contact(&t, &key, json!({ "email": "ada@example.org" })).await;
    let dup = app.post(&format!("/customers/{t}/contacts"), &key, json!({ "email": "ADA@example.ORG" })).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);
    assert_eq!(dup.body["error"]["code"], "contact_exists");
    let bad = app.post(&format!("/customers/{t}/contacts"), &key, json!({ "email": "not-an-email" })).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["error"]["code"], "invalid_email");
    // The same address under another customer is a different contact.
    let (u, key_u) = app.verified_tenant("Other", "other.example.com").await;
    app.add_contact(&u, &key_u, json!({ "email": "ada@example.org" })).await;
}

#[tokio::test]
async fn contacts_list_pages_with_a_link_header_and_filters_by_tag() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    for i in 0..5 {
        let tags = if i % 2 == 0 { json!(["even"]) } else { json!([]) };
        app.add_contact(&t, &key, json!({ "email": format!("c{i}@example.org"), "tags": tags })).await;
    }
    let mut seen = Vec::new();
    let mut next = Some(format!("/customers/{t}/contacts?limit=2"));
    while let Some(path) = next {
        let page = app.get(&path, &key).await;
        assert_eq!(page.status, StatusCode::OK);
        for c in page.body.as_array().unwrap() {
            seen.push(c["email"].as_str().unwrap().to_owned());
        }
        next = page.headers.get("link").map(|l| {
            let l = l.to_str().unwrap();
            assert!(l.ends_with("rel=\"next\""));
            l[1..l.find('>').unwrap()].to_owned()
        });
    }
    assert_eq!(seen, (0..5).map(|i| format!("c{i}@example.org")).collect::<Vec<_>>());
    let even = app.get(&format!("/customers/{t}/contacts?tag=even"), &key).await;
    assert_eq!(even.body.as_array().unwrap().len(), 3);
    for bad in ["limit=0", "limit=1001", "limit=x", "after=nope"] {
        let r = app.get(&format!("/customers/{t}/contacts?{bad}"), &key).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
}

#[tokio::test]
async fn segments_count_members_and_skip_other_customers_contacts() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let (u, key_u) = app.verified_tenant("Other", "other.example.com").await;
    let mine = app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let theirs = app.add_contact(&u, &key_u, json!({ "email": "b@example.org" })).await;
    let seg = app.post(&format!("/customers/{t}/segments"), &key, json!({ "name": "VIP" })).await;
    assert_eq!(seg.status, StatusCode::CREATED);
    let sid = seg.body["id"].as_str().unwrap();
    let garbage = app
        .post(
            &format!("/customers/{t}/segments/{sid}/contacts"),
            &key,
            json!({ "contact_ids": [mine, theirs, "garbage"] }),
        )
        .await;
    assert_eq!(garbage.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", garbage.body);
    assert!(garbage.body["error"]["message"].as_str().unwrap().contains("contact_ids[2]"), "{}", garbage.body);
    let added = app
        .post(&format!("/customers/{t}/segments/{sid}/contacts"), &key, json!({ "contact_ids": [mine, theirs] }))
        .await;
    assert_eq!(added.status, StatusCode::OK);
    assert_eq!(added.body["added_count"], 1);
    let again =
        app.post(&format!("/customers/{t}/segments/{sid}/contacts"), &key, json!({ "contact_ids": [mine] })).await;
    assert_eq!(again.body["added_count"], 0);
    let list = app.get(&format!("/customers/{t}/segments"), &key).await;
    assert_eq!(list.body[0]["contact_count"], 1);
    let one = app.get(&format!("/customers/{t}/segments/{sid}"), &key).await;
    assert_eq!(one.body["contacts"][0]["id"], mine.as_str());
    assert_eq!(app.delete(&format!("/customers/{t}/segments/{sid}"), &key).await.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("/customers/{t}/contacts/{mine}"), &key).await.status,
        StatusCode::OK,
        "contacts outlive their segment"
    );
}

#[tokio::test]
async fn import_adds_many_contacts_and_skips_existing_ones() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let r = app
        .post(&format!("/customers/{t}/contacts/import"), &key, json!({ "contacts": [{ "email": "A@example.org" }, { "email": "b@example.org", "tags": ["x"] }, { "email": "b@example.org" }] }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({ "created": 1, "skipped": 2 }));
    let bad = app
        .post(
            &format!("/customers/{t}/contacts/import"),
            &key,
            json!({ "contacts": [{ "email": "c@example.org" }, { "email": "nope" }] }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.body["error"]["message"].as_str().unwrap().contains("contacts[1]"));
    assert_eq!(
        app.get(&format!("/customers/{t}/contacts"), &key).await.body.as_array().unwrap().len(),
        2,
        "a rejected import stores nothing"
    );
}

#[tokio::test]
async fn a_contact_is_found_by_its_address_in_any_case_and_only_by_its_own_customer() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let ada = app.add_contact(&t, &key, json!({ "email": "Ada@Example.org", "tags": ["vip"] })).await;
    app.add_contact(&t, &key, json!({ "email": "bob@example.org" })).await;
    for query in [
        "email=ada@example.org",
        "email=ADA%40EXAMPLE.ORG",
        "email=%20ada@example.org%20",
        "email=ada@example.org&tag=vip",
    ] {
        let r = app.get(&format!("/customers/{t}/contacts?{query}"), &key).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
        let found = r.body.as_array().unwrap();
        assert_eq!(found.len(), 1, "{query}: {}", r.body);
        assert_eq!(found[0]["id"], ada.as_str());
        assert_eq!(found[0]["email"], "Ada@Example.org", "as it was given");
        assert!(r.headers.get("link").is_none());
    }
    for query in ["email=nobody@example.org", "email=ada@example.org&tag=other"] {
        let r = app.get(&format!("/customers/{t}/contacts?{query}"), &key).await;
        assert_eq!(r.status, StatusCode::OK, "{query}");
        assert_eq!(r.body, json!([]), "{query}: the same shape, empty");
    }
    // Another customer's key finds nothing of this customer, and its own list has no Ada.
    let (u, key_u) = app.verified_tenant("Other", "other.example.com").await;
    let r = app.get(&format!("/customers/{t}/contacts?email=ada@example.org"), &key_u).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = app.get(&format!("/customers/{u}/contacts?email=ada@example.org"), &key_u).await;
    assert_eq!(r.body, json!([]));
    let r = app.get(&format!("/customers/{t}/contacts?email=ada@example.org"), ADMIN_KEY).await;
    assert_eq!(r.body.as_array().unwrap().len(), 1, "the admin key reaches every customer");
}

#[tokio::test]
async fn a_hostile_address_lookup_gets_a_clear_4xx_in_the_error_envelope() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    app.add_contact(&t, &key, json!({ "email": "ada@example.org" })).await;
    let huge = "a".repeat(20_000);
    let long_local = format!("{}@example.org", "a".repeat(300));
    for bad in [
        "email=",
        "email=ada%00@example.org",
        "email=ada@example.org%00",
        "email=ada%0d%0aBcc:%20x@example.org",
        "email=%1b%5b31mada@example.org",
        "email=ada%E2%80%A8@example.org",
        "email=not-an-address",
        "email=%27%20OR%201%3D1%20--",
        "email=%25",
        &format!("email={long_local}"),
        &format!("email={huge}"),
    ] {
        let r = app.get(&format!("/customers/{t}/contacts?{bad}"), &key).await;
        let shown: String = bad.chars().take(60).collect();
        assert!(r.status.is_client_error(), "{shown}: {} {}", r.status, r.body);
        assert!(r.body["error"]["code"].is_string(), "{shown}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.len() < 1_000, "{shown}: the message does not echo a huge value");
        assert!(!message.chars().any(char::is_control), "{shown}: no control character echoed: {message:?}");
    }
    let r = app.get(&format!("/customers/{t}/contacts?email=ada@example.org&email=bob@example.org"), &key).await;
    assert!(r.status.is_client_error(), "a repeated email: {}", r.status);
}

#[tokio::test]
async fn a_field_of_the_wrong_type_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let r =
        app.post(&format!("/customers/{t}/contacts"), &key, json!({ "email": "a@example.org", "tags": "vip" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("tags: invalid type: string \"vip\", expected a list"), "{message}");
    let r = app
        .post(&format!("/customers/{t}/contacts"), &key, json!({ "email": "a@example.org", "tags": ["x", 1] }))
        .await;
    assert!(r.body["error"]["message"].as_str().unwrap().starts_with("tags[1]: "), "{}", r.body);
}
