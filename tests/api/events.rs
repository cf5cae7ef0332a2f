//! Issue 10 (1): every Resend event stored and listed, filters and cursors,
//! tenant isolation, soft-bounce suppression, domain events holding campaigns.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{event, spawn_with, Options, TestApp, ADMIN_KEY};

/// A customer, `n` contacts, one campaign sent through the mock:
/// (app, customer, key, campaign id, [(contact id, provider email id)]).
pub async fn sent_campaign_to(n: usize) -> (TestApp, String, String, String, Vec<(String, String)>) {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let mut contacts = Vec::new();
    for i in 0..n {
        contacts.push(app.add_contact(&t, &key, json!({ "email": format!("r{i}@example.org") })).await);
    }
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let campaign = r.body["campaign_id"].as_str().unwrap().to_owned();
    app.drain().await;
    let mut pairs = Vec::new();
    for sent in app.mock().accepted() {
        let email = sent.to.first().cloned().unwrap_or_default();
        let i: usize = email.trim_start_matches('r').split('@').next().unwrap().parse().unwrap();
        pairs.push((contacts[i].clone(), sent.id.clone()));
    }
    pairs.sort();
    assert_eq!(pairs.len(), n);
    (app, t, key, campaign, pairs)
}

/// An event at `at` (RFC 3339).
pub fn event_at(kind: &str, email_id: &str, extra: Value, at: &str) -> Value {
    let mut e = event(kind, email_id, extra);
    e["created_at"] = json!(at);
    e
}

async fn all_events(app: &TestApp, t: &str, key: &str, query: &str, limit: usize) -> Vec<Value> {
    let sep = if query.is_empty() { "" } else { "&" };
    app.get_all(&format!("/customers/{t}/events?limit={limit}{sep}{query}"), key).await
}

#[tokio::test]
async fn every_resend_event_type_is_accepted_and_listed_with_its_details() {
    let (app, t, key, campaign, pairs) = sent_campaign_to(1).await;
    let (contact, id) = pairs[0].clone();
    let sent = app.mock().accepted()[0].clone();
    let message = sent.tags.iter().find(|t| t.name == "message").unwrap().value.clone();
    let kinds = [
        ("email.sent", json!({})),
        ("email.scheduled", json!({})),
        ("email.delivery_delayed", json!({})),
        ("email.delivered", json!({})),
        ("email.opened", json!({})),
        ("email.clicked", json!({ "click": { "link": "https://acme.com/offer" } })),
        ("email.bounced", json!({ "bounce": { "type": "Transient", "subType": "MailboxFull" } })),
        ("email.complained", json!({})),
        ("email.failed", json!({ "failed": { "reason": "reached_daily_quota" } })),
        ("email.suppressed", json!({})),
    ];
    for (i, (kind, extra)) in kinds.iter().enumerate() {
        let at = format!("2026-11-20T10:{i:02}:00.000Z");
        let r = app.webhook(&format!("evt-{i}"), &event_at(kind, &id, extra.clone(), &at)).await;
        assert_eq!(r.status, StatusCode::OK, "{kind}: {}", r.body);
    }
    let listed = all_events(&app, &t, &key, "", 100).await;
    assert_eq!(listed.len(), kinds.len());
    // Newest first, by the event's own time.
    for (j, e) in listed.iter().enumerate() {
        let i = kinds.len() - 1 - j;
        assert_eq!(e["id"], format!("evt-{i}"));
        assert_eq!(e["type"], kinds[i].0);
        assert_eq!(e["email_id"], message.as_str());
        assert_eq!(e["provider_email_id"], id.as_str());
        assert_eq!(e["campaign_id"], campaign.as_str());
        assert_eq!(e["contact_id"], contact.as_str());
        assert_eq!(e["created_at"], format!("2026-11-20T10:{i:02}:00Z"));
    }
    let click = listed.iter().find(|e| e["type"] == "email.clicked").unwrap();
    assert_eq!(click["link"], "https://acme.com/offer");
    let bounce = listed.iter().find(|e| e["type"] == "email.bounced").unwrap();
    assert_eq!(bounce["bounce_type"], "Transient");
    // Domain events are stored too (they belong to no message, so to no customer's list).
    let d = app.webhook("dom-1", &json!({ "type": "domain.created", "created_at": "2026-11-20T10:00:00Z", "data": { "id": "nope", "status": "not_started" } })).await;
    assert_eq!(d.status, StatusCode::OK);
}

#[tokio::test]
async fn filters_and_cursor_pagination_cover_every_event_once() {
    let (app, t, key, campaign, pairs) = sent_campaign_to(2).await;
    let kinds = ["email.delivered", "email.opened", "email.clicked"];
    let mut sent = Vec::new();
    for i in 0..25 {
        let (_, id) = &pairs[i % 2];
        let kind = kinds[i % 3];
        // Several events share a time: the svix id breaks the tie.
        let at = format!("2026-11-20T11:{:02}:00Z", i / 2);
        let r = app.webhook(&format!("p-{i:02}"), &event_at(kind, id, json!({}), &at)).await;
        assert_eq!(r.status, StatusCode::OK);
        sent.push((format!("p-{i:02}"), kind, at));
    }
    for limit in [1, 7, 10, 100] {
        let listed = all_events(&app, &t, &key, "", limit).await;
        let ids: Vec<&str> = listed.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids.len(), 25, "limit {limit}");
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 25, "no event twice");
        let mut expected: Vec<&(String, &str, String)> = sent.iter().collect();
        expected.sort_by(|a, b| (&b.2, &b.0).cmp(&(&a.2, &a.0)));
        assert_eq!(ids, expected.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(), "newest first");
    }
    let opened = all_events(&app, &t, &key, "type=email.opened", 3).await;
    assert_eq!(opened.len(), sent.iter().filter(|e| e.1 == "email.opened").count());
    assert!(opened.iter().all(|e| e["type"] == "email.opened"));
    let windowed = all_events(&app, &t, &key, "since=2026-11-20T11:03:00Z&until=2026-11-20T11:05:00Z", 2).await;
    assert_eq!(windowed.len(), 4, "minutes 3 and 4, two events each: {windowed:?}");
    let contact = &pairs[0].0;
    let theirs = all_events(&app, &t, &key, &format!("contact_id={contact}"), 5).await;
    assert_eq!(theirs.len(), 13);
    assert!(theirs.iter().all(|e| e["contact_id"] == contact.as_str()));
    let by_campaign = all_events(&app, &t, &key, &format!("campaign_id={campaign}&type=email.clicked"), 4).await;
    assert_eq!(by_campaign.len(), sent.iter().filter(|e| e.1 == "email.clicked").count());
    let other = uuid::Uuid::now_v7();
    assert!(all_events(&app, &t, &key, &format!("campaign_id={other}"), 5).await.is_empty());

    for bad in [
        "typo=1",
        "since=yesterday",
        "until=2026-13-01T00:00:00Z",
        "limit=0",
        "limit=1001",
        "cursor=%%%",
        "cursor=bm90LWEtY3Vyc29y",
        "campaign_id=not-an-id",
        "type=DROP%20TABLE",
    ] {
        let r = app.get(&format!("/customers/{t}/events?{bad}"), &key).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "validation_error", "{bad}");
    }
}

#[tokio::test]
async fn a_customer_sees_only_its_own_events() {
    let (app, t, key, campaign, pairs) = sent_campaign_to(1).await;
    app.webhook("iso-1", &event("email.delivered", &pairs[0].1, json!({}))).await;
    let (u, key_u) = app.verified_tenant("B", "b.example.com").await;
    assert_eq!(all_events(&app, &t, &key, "", 10).await.len(), 1);
    assert!(all_events(&app, &u, &key_u, "", 10).await.is_empty());
    assert!(all_events(&app, &u, &key_u, &format!("campaign_id={campaign}"), 10).await.is_empty());
    assert!(all_events(&app, &u, &key_u, &format!("contact_id={}", pairs[0].0), 10).await.is_empty());
    let r = app.get(&format!("/customers/{t}/events"), &key_u).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let admin = app.get(&format!("/customers/{t}/events"), ADMIN_KEY).await;
    assert_eq!(admin.body.as_array().unwrap().len(), 1, "a bare array: {}", admin.body);
    assert!(admin.headers.get("link").is_none(), "one page only");
}

fn transient() -> Value {
    json!({ "bounce": { "type": "Transient", "subType": "MailboxFull" } })
}

async fn contact_status(app: &TestApp, t: &str, key: &str, contact: &str) -> Value {
    app.get(&format!("/customers/{t}/contacts/{contact}"), key).await.body["status"].clone()
}

#[tokio::test]
async fn the_third_transient_bounce_within_the_window_suppresses_and_the_second_does_not() {
    let (app, t, key, _, pairs) = sent_campaign_to(1).await;
    let (contact, id) = pairs[0].clone();
    let now = mailroom::domain::now_ms();
    let old = mailroom::domain::rfc3339(now - 40 * 86_400_000);
    let recent = mailroom::domain::rfc3339(now - 86_400_000);
    // Two old ones (outside 30 days) do not count.
    for i in 0..2 {
        app.webhook(&format!("old-{i}"), &event_at("email.bounced", &id, transient(), &old)).await;
    }
    app.webhook("soft-1", &event_at("email.bounced", &id, transient(), &recent)).await;
    // An undetermined and a duplicate delivery of the same svix id do not count either.
    app.webhook("soft-1", &event_at("email.bounced", &id, transient(), &recent)).await;
    app.webhook("und-1", &event_at("email.bounced", &id, json!({ "bounce": { "type": "Undetermined" } }), &recent))
        .await;
    app.webhook("soft-2", &event_at("email.bounced", &id, transient(), &recent)).await;
    assert_eq!(contact_status(&app, &t, &key, &contact).await, "subscribed", "two transient bounces");
    let list = app.get(&format!("/customers/{t}/suppressions"), &key).await;
    assert_eq!(list.body.as_array().unwrap().len(), 0);

    app.webhook("soft-3", &event_at("email.bounced", &id, transient(), &recent)).await;
    assert_eq!(contact_status(&app, &t, &key, &contact).await, "soft_bounced", "the third");
    let list = app.get(&format!("/customers/{t}/suppressions?reason=soft_bounced"), &key).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1, "{}", list.body);
    assert_eq!(list.body[0]["email"], "r0@example.org");
    // No more campaign mail for them.
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_ne!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}

#[tokio::test]
async fn the_soft_bounce_limit_and_window_are_configurable() {
    let app = spawn_with(Options {
        resend: true,
        env: vec![("MAILROOM_SOFT_BOUNCE_LIMIT".into(), "2".into()), ("MAILROOM_SOFT_BOUNCE_DAYS".into(), "60".into())],
        ..Options::default()
    })
    .await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let contact = app.add_contact(&t, &key, json!({ "email": "r0@example.org" })).await;
    app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    app.drain().await;
    let id = app.mock().accepted()[0].id.clone();
    let old = mailroom::domain::rfc3339(mailroom::domain::now_ms() - 40 * 86_400_000);
    app.webhook("c-1", &event_at("email.bounced", &id, transient(), &old)).await;
    assert_eq!(contact_status(&app, &t, &key, &contact).await, "subscribed");
    app.webhook("c-2", &event_at("email.bounced", &id, transient(), &old)).await;
    assert_eq!(contact_status(&app, &t, &key, &contact).await, "soft_bounced");
}

fn domain_event(kind: &str, domain_id: &str, status: &str, at: &str) -> Value {
    json!({ "type": kind, "created_at": at, "data": { "id": domain_id, "name": "acme.com", "status": status, "records": [] } })
}

#[tokio::test]
async fn a_failing_domain_holds_campaigns_until_it_is_verified_again() {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let tenant = mailroom::domain::TenantId::from_stored(t.clone());
    let domain_id = app.store.tenant(&tenant).await.unwrap().unwrap().resend_domain_id.unwrap();
    app.add_contact(&t, &key, json!({ "email": "r0@example.org" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);

    let r = app
        .webhook("d-1", &domain_event("domain.updated", &domain_id, "temporary_failure", "2026-11-20T10:00:00Z"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // (Read without a refresh from the provider, which GET .../domains/status would do.)
    let status = app.get(&format!("/customers/{t}"), &key).await;
    assert_eq!(status.body["domain_verified"], false, "{}", status.body);
    assert_eq!(status.body["domain_status"], "temporary_failure");
    // New sends are refused; the queued campaign is held, not sent.
    let refused = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.body["error"]["code"], "domain_not_verified");
    for _ in 0..3 {
        app.outbox.try_dispatch_once().await.unwrap();
    }
    assert_eq!(app.mock().accepted_count(), 0, "a held campaign sends nothing");
    let c = app.get(&format!("/customers/{t}/campaigns"), &key).await;
    assert_eq!(c.body[0]["counts"]["queued"], 1, "{}", c.body);

    // An older event arriving late does not undo the newer one.
    app.webhook("d-0", &domain_event("domain.updated", &domain_id, "verified", "2026-11-20T09:00:00Z")).await;
    let status = app.get(&format!("/customers/{t}"), &key).await;
    assert_eq!(status.body["domain_status"], "temporary_failure");
    // Another tenant's domain events leave this one alone.
    app.webhook("d-x", &domain_event("domain.updated", "someone-else", "verified", "2026-11-20T11:00:00Z")).await;
    assert_eq!(app.get(&format!("/customers/{t}"), &key).await.body["domain_verified"], false);

    app.webhook("d-2", &domain_event("domain.updated", &domain_id, "verified", "2026-11-20T11:00:00Z")).await;
    assert_eq!(app.get(&format!("/customers/{t}"), &key).await.body["domain_verified"], true);
    let again = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s2", "html": "h" })).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    for _ in 0..3 {
        app.outbox.try_dispatch_once().await.unwrap();
    }
    assert_eq!(app.mock().accepted_count(), 1, "the new campaign goes; the held one waits for its re-check");

    app.webhook("d-3", &domain_event("domain.deleted", &domain_id, "", "2026-11-20T12:00:00Z")).await;
    let status = app.get(&format!("/customers/{t}"), &key).await;
    assert_eq!(status.body["domain_status"], "deleted");
    assert_eq!(status.body["domain_verified"], false);
}
