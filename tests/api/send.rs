use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{event, spawn_app, spawn_with, Options, ADMIN_KEY};

/// The seed article's whole flow, through the Resend provider against the mock.
#[tokio::test]
async fn the_seed_flow_works_end_to_end_through_resend() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let c = app.post("/customers/", ADMIN_KEY, json!({ "name": "Acme" })).await;
    assert_eq!(c.status, StatusCode::CREATED);
    let cid = c.body["id"].as_str().unwrap().to_owned();
    let key = app.post(&format!("/customers/{cid}/api-keys"), ADMIN_KEY, json!({})).await.body["key"]
        .as_str()
        .unwrap()
        .to_owned();

    let d = app.post(&format!("/customers/{cid}/domains"), &key, json!({ "domain_name": "acme.com" })).await;
    assert_eq!(d.status, StatusCode::CREATED, "{}", d.body);
    assert!(!d.body["dns_records"].as_array().unwrap().is_empty());
    assert!(d.body["resend_domain_id"].is_string());
    assert!(d.body["next_step"].as_str().unwrap().contains("verify"));
    let early = app.post(&format!("/customers/{cid}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST, "unverified domain cannot send");
    let v = app.post(&format!("/customers/{cid}/domains/verify"), &key, json!({})).await;
    assert_eq!(v.body["verified"], true);
    let st = app.get(&format!("/customers/{cid}/domains/status"), &key).await;
    assert_eq!(st.body["status"], "verified");

    let premium = app
        .add_contact(&cid, &key, json!({ "email": "premium@acme.com", "first_name": "Ada", "tags": ["premium"] }))
        .await;
    app.add_contact(&cid, &key, json!({ "email": "free@acme.com", "tags": ["free"] })).await;
    let bouncer = app.add_contact(&cid, &key, json!({ "email": "gone@acme.com", "tags": ["free"] })).await;

    // To a tag.
    let r = app
        .post(
            &format!("/customers/{cid}/send"),
            &key,
            json!({ "subject": "VIP {{first_name}}", "html": "<p>Hi {{first_name}}</p>", "tag": "premium" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["sent_to"], 1);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["from"], "hello@acme.com");
    assert_eq!(r.body["status"], "queued");
    // To a segment (which wins over the tag).
    let sid = app.post(&format!("/customers/{cid}/segments"), &key, json!({ "name": "s" })).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(&format!("/customers/{cid}/segments/{sid}/contacts"), &key, json!({ "contact_ids": [bouncer] })).await;
    let seg = app
        .post(
            &format!("/customers/{cid}/send"),
            &key,
            json!({ "subject": "S", "html": "h", "segment_id": sid, "tag": "premium" }),
        )
        .await;
    assert_eq!(seg.body["sent_to"], 1);
    // To everyone.
    let all = app.post(&format!("/customers/{cid}/send"), &key, json!({ "subject": "All", "html": "h" })).await;
    assert_eq!(all.body["sent_to"], 3);
    app.drain().await;

    let accepted = app.mock().accepted();
    assert_eq!(accepted.len(), 5);
    let vip = accepted.iter().find(|e| e.subject.starts_with("VIP")).unwrap();
    assert_eq!(vip.to, vec!["premium@acme.com"]);
    assert_eq!(vip.subject, "VIP Ada");
    // The content as written, then the unsubscribe footer campaign mail carries.
    let html = vip.html.as_deref().unwrap();
    assert!(html.starts_with("<p>Hi Ada</p>\n<p"), "{html}");
    assert!(html.contains("/u/"), "{html}");
    assert!(vip.tags.iter().any(|t| t.name == "tenant" && t.value == cid));
    assert!(vip.tags.iter().any(|t| t.name == "campaign"));
    for e in &accepted {
        assert_eq!(e.authorization, "Bearer re_test_key");
        assert!(e.user_agent.starts_with("mailroom/"));
        assert!(e.idempotency_key.is_some(), "every send carries an Idempotency-Key");
        assert_eq!(e.from, "hello@acme.com");
    }
    let segment_mail = accepted.iter().find(|e| e.subject == "S").unwrap();
    assert_eq!(segment_mail.to, vec!["gone@acme.com"]);

    // Campaign history, newest first.
    let hist = app.get(&format!("/customers/{cid}/campaigns"), &key).await;
    let subjects: Vec<&str> = hist.body.as_array().unwrap().iter().map(|c| c["subject"].as_str().unwrap()).collect();
    assert_eq!(subjects, vec!["All", "S", "VIP {{first_name}}"]);
    assert_eq!(hist.body[0]["status"], "sent");
    assert_eq!(hist.body[0]["counts"]["sent"], 3);

    // A bounce webhook unsubscribes the contact.
    let provider_id = &accepted.iter().find(|e| e.subject == "S").unwrap().id;
    let b = app
        .webhook(
            "msg_bounce_1",
            &event("email.bounced", provider_id, json!({ "bounce": { "type": "Permanent", "subType": "General" } })),
        )
        .await;
    assert_eq!(b.status, StatusCode::OK, "{}", b.body);
    let gone = app.get(&format!("/customers/{cid}/contacts/{bouncer}"), &key).await;
    assert_eq!(gone.body["status"], "bounced");
    assert_eq!(gone.body["is_subscribed"], false);
    let ada = app.get(&format!("/customers/{cid}/contacts/{premium}"), &key).await;
    assert_eq!(ada.body["is_subscribed"], true);
    let again = app.post(&format!("/customers/{cid}/send"), &key, json!({ "subject": "Again", "html": "h" })).await;
    assert_eq!(again.body["sent_to"], 2, "the bounced contact is no longer in the audience");
}

#[tokio::test]
async fn sending_needs_a_verified_domain_recipients_and_a_known_segment() {
    let app = spawn_app().await;
    let c = app.post("/customers", ADMIN_KEY, json!({ "name": "Acme" })).await.body["id"].as_str().unwrap().to_owned();
    let none = app.post(&format!("/customers/{c}/send"), ADMIN_KEY, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(none.status, StatusCode::BAD_REQUEST);
    assert_eq!(none.body["error"]["code"], "domain_not_verified");

    let (t, key) = app.verified_tenant("B", "b.example.com").await;
    let empty = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert_eq!(empty.body["error"]["code"], "no_recipients");
    assert_eq!(
        app.get(&format!("/customers/{t}/campaigns"), &key).await.body,
        json!([]),
        "nothing recorded for a refused send"
    );
    let seg = app
        .post(
            &format!("/customers/{t}/send"),
            &key,
            json!({ "subject": "s", "html": "h", "segment_id": uuid::Uuid::now_v7().to_string() }),
        )
        .await;
    assert_eq!(seg.status, StatusCode::NOT_FOUND);
    app.add_contact(&t, &key, json!({ "email": "a@example.org", "tags": ["x"] })).await;
    let no_tag =
        app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h", "tag": "y" })).await;
    assert_eq!(no_tag.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_from_address_must_be_on_the_verified_domain() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let bad = app
        .post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h", "from": "ceo@evil.com" }))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(bad.body["error"]["code"], "invalid_from");
    let ok = app
        .post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h", "from": "news@acme.com" }))
        .await;
    assert_eq!(ok.status, StatusCode::ACCEPTED);
    assert_eq!(ok.body["from"], "news@acme.com");
    app.drain().await;
    assert_eq!(app.mock().accepted()[0].from, "news@acme.com");
}

#[tokio::test]
async fn a_first_name_is_html_escaped_in_html_and_there_stands_in_for_none() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.add_contact(&t, &key, json!({ "email": "x@example.org", "first_name": "<script>alert(1)</script>" })).await;
    app.add_contact(&t, &key, json!({ "email": "y@example.org" })).await;
    app.post(
        &format!("/customers/{t}/send"),
        &key,
        json!({ "subject": "Hi {{first_name}}", "html": "<b>{{ first_name }}</b>", "text": "Hi {{first_name}}" }),
    )
    .await;
    app.drain().await;
    let sent = app.mock().accepted();
    let x = sent.iter().find(|e| e.to[0] == "x@example.org").unwrap();
    assert!(x.html.as_deref().unwrap().starts_with("<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>\n"));
    assert!(!x.html.as_deref().unwrap().contains("<script>"));
    let y = sent.iter().find(|e| e.to[0] == "y@example.org").unwrap();
    assert_eq!(y.subject, "Hi there");
    assert!(y.text.as_deref().unwrap().starts_with("Hi there\n\n--\nUnsubscribe: "), "text gets the footer too");
}

#[tokio::test]
async fn a_transactional_email_is_queued_sent_and_traceable() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let r = app
        .post(&format!("/customers/{t}/send/single"), &key, json!({ "to_email": "ada@example.org", "subject": "Reset", "html": "<p>x</p>", "tags": [{ "name": "kind", "value": "reset" }] }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["to"], "ada@example.org");
    assert_eq!(r.body["status"], "queued");
    let id = r.body["email_id"].as_str().unwrap().to_owned();
    app.drain().await;
    let sent = app.mock().accepted();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].tags.iter().any(|t| t.name == "message" && t.value == id));
    assert!(sent[0].tags.iter().any(|t| t.name == "kind" && t.value == "reset"));
    let m = app.get(&format!("/customers/{t}/messages/{id}"), &key).await;
    assert_eq!(m.body["status"], "sent");
    assert_eq!(m.body["provider_id"], sent[0].id.as_str());
    assert_eq!(m.body["attempts"], 1);
    let bad = app
        .post(&format!("/customers/{t}/send/single"), &key, json!({ "to_email": "nope", "subject": "s", "html": "h" }))
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_sends_once() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let body = json!({ "subject": "s", "html": "h" });
    let path = format!("/customers/{t}/send");
    let first = app.post_with_headers(&path, &key, &[("Idempotency-Key", "k1")], &body).await;
    let second = app.post_with_headers(&path, &key, &[("Idempotency-Key", "k1")], &body).await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_eq!(first.body, second.body);
    let changed = app
        .post_with_headers(&path, &key, &[("Idempotency-Key", "k1")], &json!({ "subject": "other", "html": "h" }))
        .await;
    assert_eq!(changed.status, StatusCode::CONFLICT);
    assert_eq!(changed.body["error"]["code"], "idempotency_key_reused");
    app.drain().await;
    assert_eq!(app.mock().accepted_count(), 1);
    assert_eq!(app.get(&format!("/customers/{t}/campaigns"), &key).await.body.as_array().unwrap().len(), 1);

    // Keys are per customer: another customer's k1 is its own.
    let (u, key_u) = app.verified_tenant("B", "b.example.com").await;
    app.add_contact(&u, &key_u, json!({ "email": "b@example.org" })).await;
    let other =
        app.post_with_headers(&format!("/customers/{u}/send"), &key_u, &[("Idempotency-Key", "k1")], &body).await;
    assert_eq!(other.status, StatusCode::ACCEPTED);
    assert_ne!(other.body["campaign_id"], first.body["campaign_id"]);

    // A refused request leaves its key unused: the corrected request may use it.
    let single = format!("/customers/{t}/send/single");
    let bad = app
        .post_with_headers(
            &single,
            &key,
            &[("Idempotency-Key", "k2")],
            &json!({ "to_email": "x@example.org", "subject": "", "html": "h" }),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    let good = app
        .post_with_headers(
            &single,
            &key,
            &[("Idempotency-Key", "k2")],
            &json!({ "to_email": "x@example.org", "subject": "s", "html": "h" }),
        )
        .await;
    assert_eq!(good.status, StatusCode::ACCEPTED, "{}", good.body);
    assert!(good.headers.get("idempotent-replayed").is_none());
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_campaign_and_never_500() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 200, "example.org").await;
    let body = json!({ "subject": "race", "html": "h" });
    let path = format!("/customers/{t}/send");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, url, key, body) = (app.http.clone(), format!("{}{path}", app.base), key.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let r =
                http.post(url).bearer_auth(key).header("Idempotency-Key", "race-key").json(&body).send().await.unwrap();
            let status = r.status();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        // The key is reserved in the send's own transaction: later requests
        // wait for it and replay its answer.
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        ids.insert(body["campaign_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1, "one campaign, whatever the interleaving");
    assert_eq!(app.store.count_rows("campaigns").await.unwrap(), 1);
    assert_eq!(app.store.count_rows("messages").await.unwrap(), 200);
}

#[tokio::test]
async fn the_domain_re_check_settles_a_pending_domain_without_polling() {
    let app = spawn_with(Options {
        resend: true,
        env: vec![("MAILROOM_DOMAIN_POLL_SECS".into(), "1".into())],
        ..Options::default()
    })
    .await;
    let c = app.post("/customers", ADMIN_KEY, json!({ "name": "Acme" })).await.body["id"].as_str().unwrap().to_owned();
    let d = app.post(&format!("/customers/{c}/domains"), ADMIN_KEY, json!({ "domain_name": "acme.com" })).await;
    let domain_id = d.body["resend_domain_id"].as_str().unwrap().to_owned();
    // The provider verifies on its own (as DNS propagates); nobody calls /verify.
    let http = reqwest::Client::new();
    http.post(format!("{}/domains/{domain_id}/verify", app.mock().url()))
        .bearer_auth("re_x")
        .header("user-agent", "t")
        .send()
        .await
        .unwrap();
    app.settle_until("the domain to be seen as verified", || async {
        app.store.tenant(&mailroom::domain::TenantId::from_stored(c.clone())).await.unwrap().unwrap().domain_verified()
    })
    .await;
}

#[tokio::test]
async fn the_audience_count_matches_what_a_send_reaches() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.add_contact(&t, &key, json!({ "email": "a@example.org", "tags": ["vip"] })).await;
    app.add_contact(&t, &key, json!({ "email": "b@example.org", "tags": ["vip"] })).await;
    let gone = app.add_contact(&t, &key, json!({ "email": "c@example.org", "tags": ["vip"] })).await;
    app.patch(&format!("/customers/{t}/contacts/{gone}"), &key, json!({ "is_subscribed": false })).await;
    let count = app.get(&format!("/customers/{t}/audience?tag=vip"), &key).await;
    assert_eq!(count.status, StatusCode::OK);
    assert_eq!(count.body["count"], 2);
    assert_eq!(app.get(&format!("/customers/{t}/audience"), &key).await.body["count"], 2);
    let sent =
        app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h", "tag": "vip" })).await;
    assert_eq!(sent.body["sent_to"], 2);
    let unknown = app.get(&format!("/customers/{t}/audience?segment_id={}", uuid::Uuid::now_v7()), &key).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // An address suppressed before it became a contact is not counted either.
    let r = app
        .post(
            &format!("/customers/{t}/send/single"),
            &key,
            json!({ "to_email": "d@example.org", "subject": "s", "html": "h" }),
        )
        .await;
    let email_id = r.body["email_id"].as_str().unwrap().to_owned();
    app.drain().await;
    let bounce = event(
        "email.bounced",
        "unknown-provider-id",
        json!({ "tags": { "message": email_id }, "bounce": { "type": "Permanent" } }),
    );
    assert_eq!(app.webhook("b-d", &bounce).await.status, StatusCode::OK);
    let late = app.add_contact(&t, &key, json!({ "email": "D@example.org", "tags": ["vip"] })).await;
    assert_eq!(app.get(&format!("/customers/{t}/audience?tag=vip"), &key).await.body["count"], 2);
    let sid = app.post(&format!("/customers/{t}/segments"), &key, json!({ "name": "s" })).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(&format!("/customers/{t}/segments/{sid}/contacts"), &key, json!({ "contact_ids": [late, gone] })).await;
    assert_eq!(app.get(&format!("/customers/{t}/audience?segment_id={sid}"), &key).await.body["count"], 0);
    let again =
        app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h", "tag": "vip" })).await;
    assert_eq!(again.body["sent_to"], 2, "the count and the send agree");
}

#[tokio::test]
async fn a_spent_provider_budget_is_seen_in_the_rate_limit_headers() {
    use mailroom::provider::DeliveryProvider;
    let mock =
        mailroom::mock::MockResend::start(mailroom::mock::MockConfig { port: 0, rate_limit: 2, ..Default::default() })
            .await
            .unwrap();
    let provider = mailroom::provider::resend::ResendProvider::new(&mock.url(), "re_k").unwrap();
    let email = |to: &str| json!({ "from": "a@acme.com", "to": [to], "subject": "s", "html": "h" }).to_string();
    // Wait for the start of a second so both requests fall in one window.
    let ms = mailroom::domain::now_ms() % 1000;
    if ms > 500 {
        // Wall-clock on purpose: the provider's rate window is the real second.
        tokio::time::sleep(std::time::Duration::from_millis((1000 - ms) as u64)).await;
    }
    provider.send_email("k1", &email("x@example.org")).await.unwrap();
    assert_eq!(provider.exhausted_until_ms(), None, "one of two left");
    provider.send_email("k2", &email("y@example.org")).await.unwrap();
    let until = provider.exhausted_until_ms().expect("the budget is spent");
    assert!(until > mailroom::domain::now_ms() && until % 1000 == 0, "held until the next second");
}

// D — the per-tag count is maintained by triggers: it must never drift.
#[tokio::test]
async fn the_maintained_tag_count_stays_exact_through_edits_deletes_imports_and_tenant_deletion() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let (u, key_u) = app.verified_tenant("B", "b.example.com").await;
    let count = |tenant: String, k: String| {
        let app = &app;
        async move { app.get(&format!("/customers/{tenant}/audience?tag=vip"), &k).await.body["count"].as_i64().unwrap() }
    };
    let listed = |tenant: String, k: String| {
        let app = &app;
        async move {
            app.get(&format!("/customers/{tenant}/contacts?tag=vip&limit=1000"), &k)
                .await
                .body
                .as_array()
                .unwrap()
                .len() as i64
        }
    };
    let a = app.add_contact(&t, &key, json!({ "email": "a@example.org", "tags": ["vip", "x"] })).await;
    let b = app.add_contact(&t, &key, json!({ "email": "b@example.org", "tags": ["vip"] })).await;
    app.add_contact(&u, &key_u, json!({ "email": "a@example.org", "tags": ["vip"] })).await;
    assert_eq!(count(t.clone(), key.clone()).await, 2);
    // Tags replaced, the same tag given twice, removed.
    app.patch(&format!("/customers/{t}/contacts/{a}"), &key, json!({ "tags": ["x"] })).await;
    app.patch(&format!("/customers/{t}/contacts/{a}"), &key, json!({ "tags": ["vip", "vip"] })).await;
    app.patch(&format!("/customers/{t}/contacts/{b}"), &key, json!({ "tags": [] })).await;
    assert_eq!(count(t.clone(), key.clone()).await, 1);
    // Import, some new, some existing.
    let contacts: Vec<_> = (0..30).map(|i| json!({ "email": format!("i{i}@example.org"), "tags": ["vip"] })).collect();
    app.post(&format!("/customers/{t}/contacts/import"), &key, json!({ "contacts": contacts })).await;
    app.post(&format!("/customers/{t}/contacts/import"), &key, json!({ "contacts": contacts })).await;
    assert_eq!(count(t.clone(), key.clone()).await, 31);
    // A deleted contact leaves the count (through the cascade).
    app.delete(&format!("/customers/{t}/contacts/{a}"), &key).await;
    assert_eq!(count(t.clone(), key.clone()).await, 30);
    assert_eq!(count(t.clone(), key.clone()).await, listed(t.clone(), key.clone()).await);
    // The other tenant's count is its own, and survives the first tenant's deletion.
    app.delete(&format!("/customers/{t}"), ADMIN_KEY).await;
    assert_eq!(count(u.clone(), key_u.clone()).await, 1);
    let sent =
        app.post(&format!("/customers/{u}/send"), &key_u, json!({ "subject": "s", "html": "h", "tag": "vip" })).await;
    assert_eq!(sent.body["sent_to"], 1);
}
