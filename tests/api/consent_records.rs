//! Consent records (issue 23, section 3): every change of a contact's
//! consent appends a record, never rewritten; the history newest first,
//! paged, the customer's own contacts only.

use mailroom::outbox::Step;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{event, spawn_app, spawn_with, Options, TestApp, ADMIN_KEY};

/// The contact's whole history (every page), newest first.
async fn history(app: &TestApp, t: &str, key: &str, contact: &str) -> Vec<Value> {
    app.get_all(&format!("/customers/{t}/contacts/{contact}/consent"), key).await
}

/// `(change, source)` of each record, newest first.
fn changes(records: &[Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| (r["change"].as_str().unwrap().to_owned(), r["source"].as_str().unwrap().to_owned()))
        .collect()
}

fn pair(change: &str, source: &str) -> (String, String) {
    (change.to_owned(), source.to_owned())
}

async fn topic(app: &TestApp, t: &str, key: &str, name: &str, default: &str) -> String {
    let r = app.post(&format!("/customers/{t}/topics"), key, json!({ "name": name, "default": default })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// The path (`/u/...`) of the one-click link in the email sent to `to`.
fn link_to(app: &TestApp, to: &str) -> String {
    let accepted = app.mock().accepted();
    let email = accepted.iter().find(|e| e.to[0] == to).expect("an email to the address");
    let header = email.headers.get("List-Unsubscribe").expect("List-Unsubscribe header");
    url::Url::parse(header.trim_start_matches('<').trim_end_matches('>')).expect("a URL").path().to_owned()
}

/// A mailbox provider's (or the page's) POST, from a browser-like client.
async fn one_click(app: &TestApp, path: &str, body: &'static str) {
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("user-agent", "Mozilla/5.0 (test)")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn each_change_through_the_api_appends_a_record_and_none_is_rewritten() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(&app, &t, &key, "News", "opt_in").await;
    let c = app
        .add_contact(&t, &key, json!({ "email": "pat@example.org", "topics": [{ "id": news, "state": "subscribed" }] }))
        .await;
    let first = history(&app, &t, &key, &c).await;
    assert_eq!(changes(&first), [pair("topic_subscribed", "api"), pair("created", "api")]);
    assert_eq!(first[0]["topic"], json!({ "id": news, "name": "News" }));
    assert_eq!(first[0]["client"], Value::Null, "the customer's server is not the person's client");

    let path = format!("/customers/{t}/contacts/{c}/topics");
    let r = app.patch(&path, &key, json!({ "topics": [{ "id": news, "state": "unsubscribed" }] })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The same choice again changes nothing, so records nothing.
    app.patch(&path, &key, json!({ "topics": [{ "id": news, "state": "unsubscribed" }] })).await;
    let contact = format!("/customers/{t}/contacts/{c}");
    assert_eq!(app.patch(&contact, &key, json!({ "is_subscribed": false })).await.status, StatusCode::OK);
    assert_eq!(app.patch(&contact, &key, json!({ "is_subscribed": true })).await.status, StatusCode::OK);
    assert_eq!(app.patch(&contact, &key, json!({ "first_name": "Pat" })).await.status, StatusCode::OK);

    let all = history(&app, &t, &key, &c).await;
    assert_eq!(
        changes(&all),
        [
            pair("resubscribed", "api"),
            pair("unsubscribed", "api"),
            pair("topic_unsubscribed", "api"),
            pair("topic_subscribed", "api"),
            pair("created", "api"),
        ]
    );
    assert_eq!(&all[3..], &first[..], "earlier records are never changed");
    // Compared as times, not strings: "…:01Z" sorts after "…:01.5Z" as text.
    let times: Vec<i64> =
        all.iter().map(|r| mailroom::domain::parse_rfc3339(r["at"].as_str().unwrap()).unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first: {times:?}");
}

#[tokio::test]
async fn the_history_comes_a_page_at_a_time_newest_first() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(&app, &t, &key, "News", "opt_in").await;
    let c = app.add_contact(&t, &key, json!({ "email": "pat@example.org" })).await;
    for state in ["subscribed", "unsubscribed", "subscribed", "unsubscribed"] {
        let r = app
            .patch(
                &format!("/customers/{t}/contacts/{c}/topics"),
                &key,
                json!({ "topics": [{ "id": news, "state": state }] }),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let all = history(&app, &t, &key, &c).await;
    assert_eq!(all.len(), 5);
    let mut paged = Vec::new();
    let mut next = Some(format!("/customers/{t}/contacts/{c}/consent?limit=2"));
    while let Some(path) = next {
        let r = app.get(&path, &key).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.as_array().unwrap().len() <= 2);
        paged.extend(r.body.as_array().unwrap().iter().cloned());
        next = r.next_page();
    }
    assert_eq!(paged, all);
    assert_eq!(changes(&all)[4], pair("created", "api"));
    assert_eq!(changes(&all)[0], pair("topic_unsubscribed", "api"));
}

#[tokio::test]
async fn another_customers_contact_has_no_history_here_and_bad_queries_are_refused() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let (other, other_key) = app.verified_tenant("Other", "other.com").await;
    let c = app.add_contact(&t, &key, json!({ "email": "pat@example.org" })).await;
    let theirs = app.add_contact(&other, &other_key, json!({ "email": "pat@example.org" })).await;
    let own = history(&app, &t, &key, &c).await;
    let r = app.get(&format!("/customers/{t}/contacts/{theirs}/consent"), &key).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = app.get(&format!("/customers/{other}/contacts/{c}/consent"), &key).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = app.get(&format!("/customers/{t}/contacts/not-an-id/consent"), &key).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let their_record = history(&app, &other, &other_key, &theirs).await[0]["id"].as_str().unwrap().to_owned();
    for query in ["?colour=red", "?limit=0", "?after=nope", &format!("?after={their_record}")] {
        let r = app.get(&format!("/customers/{t}/contacts/{c}/consent{query}"), &key).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {}", r.body);
        assert!(r.body["error"]["message"].is_string(), "{}", r.body);
    }
    assert_eq!(history(&app, &t, &key, &c).await, own);
}

#[tokio::test]
async fn one_click_from_a_topic_campaign_then_everything_records_the_campaign_and_the_client() {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(&app, &t, &key, "News", "opt_out").await;
    let c = app.add_contact(&t, &key, json!({ "email": "pat@example.org" })).await;
    let r = app
        .post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>", "topic_id": news }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let campaign = r.body["campaign_id"].as_str().unwrap().to_owned();
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    let path = link_to(&app, "pat@example.org");
    app.http.get(format!("{}{path}", app.base)).send().await.unwrap();
    assert_eq!(history(&app, &t, &key, &c).await.len(), 1, "a GET records nothing");

    one_click(&app, &path, "List-Unsubscribe=One-Click").await;
    one_click(&app, &path, "List-Unsubscribe=One-Click").await;
    one_click(&app, &path, "scope=all").await;
    let all = history(&app, &t, &key, &c).await;
    assert_eq!(
        changes(&all),
        [pair("unsubscribed", "one_click"), pair("topic_unsubscribed", "one_click"), pair("created", "api")],
        "the second click changed nothing"
    );
    for r in &all[..2] {
        assert_eq!(r["campaign_id"], campaign.as_str(), "{r}");
        assert_eq!(r["client"], json!({ "ip": "127.0.0.1", "user_agent": "Mozilla/5.0 (test)" }), "{r}");
    }
    assert_eq!(all[1]["topic"]["id"], news.as_str());
    assert_eq!(all[0]["topic"], Value::Null);
}

#[tokio::test]
async fn one_click_from_a_plain_campaign_records_an_unsubscribe_with_the_client() {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let c = app.add_contact(&t, &key, json!({ "email": "pat@example.org" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>" })).await;
    let campaign = r.body["campaign_id"].as_str().unwrap().to_owned();
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    one_click(&app, &link_to(&app, "pat@example.org"), "List-Unsubscribe=One-Click").await;
    let all = history(&app, &t, &key, &c).await;
    assert_eq!(changes(&all), [pair("unsubscribed", "one_click"), pair("created", "api")]);
    assert_eq!(all[0]["campaign_id"], campaign.as_str());
    assert_eq!(all[0]["client"]["user_agent"], "Mozilla/5.0 (test)");
    assert_eq!(all[0]["client"]["ip"], "127.0.0.1");
}

#[tokio::test]
async fn a_bounce_and_a_complaint_from_signed_webhooks_are_recorded_once_with_their_campaign() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let bounced = app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let complained = app.add_contact(&t, &key, json!({ "email": "b@example.org" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    let campaign = r.body["campaign_id"].as_str().unwrap().to_owned();
    app.drain().await;
    let id_of = |to: &str| app.mock().accepted().iter().find(|e| e.to[0] == to).unwrap().id.clone();
    let (a, b) = (id_of("a@example.org"), id_of("b@example.org"));
    let bounce = event("email.bounced", &a, json!({ "bounce": { "type": "Permanent", "subType": "General" } }));
    assert_eq!(app.webhook("e1", &bounce).await.status, StatusCode::OK);
    assert_eq!(app.webhook("e1", &bounce).await.status, StatusCode::OK, "a retry");
    assert_eq!(app.webhook("e2", &bounce).await.status, StatusCode::OK, "another bounce of a bounced contact");
    assert_eq!(app.webhook("e3", &event("email.complained", &b, json!({}))).await.status, StatusCode::OK);

    let a_records = history(&app, &t, &key, &bounced).await;
    assert_eq!(changes(&a_records), [pair("suppressed_bounce", "bounce"), pair("created", "api")]);
    assert_eq!(a_records[0]["campaign_id"], campaign.as_str());
    assert_eq!(a_records[0]["client"], Value::Null);
    let b_records = history(&app, &t, &key, &complained).await;
    assert_eq!(changes(&b_records), [pair("suppressed_complaint", "complaint"), pair("created", "api")]);
    assert_eq!(b_records[0]["campaign_id"], campaign.as_str());
}

#[tokio::test]
async fn contacts_from_before_consent_records_get_one_backfilled_record() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    // Seeded contacts are written without records, as every contact was before migration 0034.
    let tenant = mailroom::domain::TenantId::from_stored(t.clone());
    app.store.seed_contacts(&tenant, 3, "example.org", "old").await.unwrap();
    let contacts = app.get(&format!("/customers/{t}/contacts"), &key).await.body;
    let first = contacts[0]["id"].as_str().unwrap().to_owned();
    assert!(history(&app, &t, &key, &first).await.is_empty());

    assert_eq!(app.store.backfill_consent_records().await.unwrap(), 3, "one record per contact");
    for c in contacts.as_array().unwrap() {
        let records = history(&app, &t, &key, c["id"].as_str().unwrap()).await;
        assert_eq!(changes(&records), [pair("created", "before_consent_records")]);
        assert_eq!(records[0]["at"], c["created_at"], "at the contact's creation");
    }
}

async fn import(app: &TestApp, t: &str, key: &str, content_type: &str, body: &str) -> Value {
    let r = app
        .http
        .post(format!("{}/customers/{t}/contacts/import?on_conflict=update", app.base))
        .bearer_auth(key)
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

async fn contact_id(app: &TestApp, t: &str, key: &str, email: &str) -> String {
    let r = app.get(&format!("/customers/{t}/contacts?email={email}"), key).await;
    r.body[0]["id"].as_str().unwrap_or_else(|| panic!("{email}: {}", r.body)).to_owned()
}

#[tokio::test]
async fn an_import_records_each_new_contact_with_its_consented_at_and_consent_source() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let known = app.add_contact(&t, &key, json!({ "email": "known@example.org" })).await;
    let csv = "email,consented_at,consent_source,plan\n\
               a@example.org,2024-05-01T10:00:00Z,Spring fair sign-up sheet,pro\n\
               b@example.org,,,free\n\
               known@example.org,2020-01-01T00:00:00Z,old list,pro\n\
               bad@example.org,yesterday,,free\n";
    let report = import(&app, &t, &key, "text/csv", csv).await;
    assert_eq!((report["created"].as_u64(), report["updated"].as_u64()), (Some(2), Some(1)), "{report}");
    assert!(report.to_string().contains("consented_at"), "the bad time is reported: {report}");

    let a = history(&app, &t, &key, &contact_id(&app, &t, &key, "a@example.org").await).await;
    assert_eq!(changes(&a), [pair("imported", "import")]);
    assert_eq!(a[0]["at"], "2024-05-01T10:00:00Z");
    assert_eq!(a[0]["source_note"], "Spring fair sign-up sheet");
    let b = history(&app, &t, &key, &contact_id(&app, &t, &key, "b@example.org").await).await;
    assert_eq!(changes(&b), [pair("imported", "import")]);
    assert_eq!(b[0]["source_note"], Value::Null);
    assert_eq!(
        changes(&history(&app, &t, &key, &known).await),
        [pair("created", "api")],
        "an update changes no consent"
    );

    let ndjson =
        "{\"email\":\"c@example.org\",\"consented_at\":\"2023-03-03T03:03:03Z\",\"consent_source\":\"webinar\"}\n\
                  {\"email\":\"d@example.org\"}\n";
    let report = import(&app, &t, &key, "application/x-ndjson", ndjson).await;
    assert_eq!(report["created"].as_u64(), Some(2), "{report}");
    let c = history(&app, &t, &key, &contact_id(&app, &t, &key, "c@example.org").await).await;
    assert_eq!((c[0]["at"].as_str(), c[0]["source_note"].as_str()), (Some("2023-03-03T03:03:03Z"), Some("webinar")));
    let d = history(&app, &t, &key, &contact_id(&app, &t, &key, "d@example.org").await).await;
    assert_eq!(changes(&d), [pair("imported", "import")]);
}

#[tokio::test]
async fn deleting_a_customer_deletes_its_consent_records_and_their_client_details() {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let (other, other_key) = app.verified_tenant("Other", "other.com").await;
    app.add_contact(&other, &other_key, json!({ "email": "kept@example.org" })).await;
    app.add_contact(&t, &key, json!({ "email": "pat@example.org" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    one_click(&app, &link_to(&app, "pat@example.org"), "List-Unsubscribe=One-Click").await;
    assert_eq!(app.store.count_rows("consent_records").await.unwrap(), 3);
    assert_eq!(app.store.count_rows("consent_clients").await.unwrap(), 1);

    let r = app.delete(&format!("/customers/{t}"), ADMIN_KEY).await;
    assert!(r.status.is_success(), "{} {}", r.status, r.body);
    assert_eq!(app.store.count_rows("consent_records").await.unwrap(), 1, "the other customer's record stays");
    assert_eq!(app.store.count_rows("consent_clients").await.unwrap(), 0);
}
