//! The outbox against the Resend mock: exactly once per recipient through
//! faults, crashes and several workers; priorities; suppression at claim time.

use std::collections::HashMap;

use mailroom::mock::{Faults, MockConfig};
use mailroom::outbox::Step;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_on, spawn_with, Options, TestApp, TestDb};

fn resend(run_worker: bool) -> Options {
    Options { resend: true, run_worker, ..Options::default() }
}

/// Asserts the mock accepted exactly one email for each of `n` recipients.
fn assert_exactly_once(app: &TestApp, n: usize) {
    let mut per_recipient: HashMap<String, usize> = HashMap::new();
    for e in app.mock().accepted() {
        for to in e.to {
            *per_recipient.entry(to).or_default() += 1;
        }
    }
    let dupes: Vec<_> = per_recipient.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(dupes.is_empty(), "duplicates: {dupes:?}");
    assert_eq!(per_recipient.len(), n, "every recipient got mail");
}

#[tokio::test]
async fn a_20000_recipient_campaign_reaches_the_provider_exactly_once_in_batches_of_at_most_100() {
    let app = spawn_with(resend(true)).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 20_000, "example.org").await;
    let r = app
        .post(
            &format!("/customers/{t}/send"),
            &key,
            json!({ "subject": "Hi {{first_name}}", "html": "<p>{{first_name}}</p>" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["sent_to"], 20_000);
    app.drain().await;
    assert_exactly_once(&app, 20_000);
    let stats = app.mock().stats();
    assert!(stats.largest_batch <= 100);
    assert_eq!(stats.accepted_requests, 200);
    let sample = app.mock().accepted().into_iter().find(|e| e.to[0] == "user42@example.org").unwrap();
    assert_eq!(sample.subject, "Hi U42");
    let keys: std::collections::HashSet<_> =
        app.mock().accepted().into_iter().filter_map(|e| e.idempotency_key).collect();
    assert_eq!(keys.len(), 200, "one idempotency key per batch");
}

#[tokio::test]
async fn through_5xx_429_and_dropped_connections_every_recipient_gets_one_email() {
    let faults = Faults { fail_rate: 0.10, throttle_rate: 0.05, drop_rate: 0.05, ..Faults::default() };
    let app = spawn_with(Options { mock: MockConfig { faults, ..MockConfig::default() }, ..resend(true) }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 5_000, "example.org").await;
    app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    app.drain().await;
    assert_exactly_once(&app, 5_000);
    let stats = app.mock().stats();
    assert!(stats.http_5xx > 0 && stats.dropped > 0, "faults were injected: {stats:?}");
    let counts = app.get(&format!("/customers/{t}/campaigns"), &key).await.body[0]["counts"].clone();
    assert_eq!(counts["sent"], 5_000, "{counts}");
    assert_eq!(counts["dead"], 0, "nothing was dead-lettered");
}

#[tokio::test]
async fn a_batch_accepted_before_the_connection_dropped_is_retried_with_its_key_and_not_sent_twice() {
    let app = spawn_with(resend(false)).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 150, "example.org").await;
    app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;

    app.mock().set_faults(Faults { drop_rate: 1.0, ..Faults::default() });
    assert_eq!(app.outbox.try_dispatch_once().await.unwrap(), Step::Dispatched { messages: 150, sent: false });
    assert_eq!(app.mock().accepted_count(), 150, "the provider did accept both batches");
    app.mock().set_faults(Faults::default());
    // Past the (short, test-configured) backoff, the same batches go again.
    app.advance(std::time::Duration::from_secs(1));
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    assert_eq!(app.store.outbox_depth().await.unwrap(), 0, "the retries");
    assert_eq!(app.mock().stats().replayed, 2, "the provider recognised both keys");
    assert_exactly_once(&app, 150);
}

/// `sent` counts a message once, whoever reports it first: here Resend's
/// `email.sent` for one email is stored while its batch waits for a retry
/// (the provider accepted it, the answer was lost), before the outbox records
/// the acceptance; the outbox then counts only the two others.
#[tokio::test]
async fn an_email_reported_sent_before_the_outbox_records_its_acceptance_counts_as_sent_once() {
    let app = spawn_with(resend(false)).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 3, "example.org").await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    let campaign = r.body["campaign_id"].as_str().unwrap().to_owned();
    app.mock().set_faults(Faults { drop_rate: 1.0, ..Faults::default() });
    assert_eq!(app.outbox.try_dispatch_once().await.unwrap(), Step::Dispatched { messages: 3, sent: false });
    let first = app.mock().accepted()[0].clone();
    let message = first.tags.iter().find(|t| t.name == "message").map(|t| t.value.clone()).unwrap();
    let sent = crate::helpers::event("email.sent", &first.id, json!({ "tags": { "message": message } }));
    assert_eq!(app.webhook("msg_sent_before_recorded", &sent).await.status, StatusCode::OK);
    app.mock().set_faults(Faults::default());
    app.advance(std::time::Duration::from_secs(1));
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    assert_eq!(app.store.outbox_depth().await.unwrap(), 0);
    let stats = app.get(&format!("/customers/{t}/campaigns/{campaign}/stats"), &key).await;
    assert_eq!(stats.body["sent"], 3, "{}", stats.body);
}

#[tokio::test]
async fn a_batch_claimed_by_a_worker_that_died_is_sent_once_its_lease_runs_out_and_not_before() {
    let app = spawn_with(resend(false)).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 250, "example.org").await;
    app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    // Two workers claim and record a batch each, then die before calling the
    // provider: one lease still runs, the other has run out.
    let held = app
        .store
        .claim_new_batch(60_000, 1, usize::MAX, app.outbox.renderer())
        .await
        .unwrap()
        .unwrap()
        .batches
        .remove(0);
    let expired =
        app.store.claim_new_batch(0, 1, usize::MAX, app.outbox.renderer()).await.unwrap().unwrap().batches.remove(0);

    assert_eq!(app.outbox.try_dispatch_once().await.unwrap(), Step::Dispatched { messages: 100, sent: true });
    let sent = app.mock().accepted();
    assert!(
        sent.iter().all(|e| e.idempotency_key.as_deref() == Some(expired.idempotency_key.as_str())),
        "the expired batch went out under its recorded key"
    );
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    assert_eq!(app.mock().accepted_count(), 150, "the held batch is not stolen while its lease runs");
    assert!(app.mock().accepted().iter().all(|e| e.idempotency_key.as_deref() != Some(held.idempotency_key.as_str())));
}

#[tokio::test]
async fn two_workers_on_one_database_send_each_recipient_once() {
    let db = TestDb::new().await;
    let url = db.url.clone();
    let first = spawn_on(db, resend(true)).await;
    let (t, key) = first.verified_tenant("A", "acme.com").await;
    first.import_contacts(&t, &key, 2_000, "example.org").await;
    // A second process against the same database and the same provider account.
    let second_db = TestDb::shared(&url);
    let second = spawn_on(
        second_db,
        Options {
            env: vec![
                ("RESEND_BASE_URL".into(), first.mock().url()),
                // Processes sharing a database render the same links.
                ("PUBLIC_URL".into(), first.base.clone()),
            ],
            ..resend(true)
        },
    )
    .await;
    first.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    first.drain().await;
    assert_exactly_once(&first, 2_000);
    assert!(second.mock().accepted_count() == 0, "both used the first mock");
}

#[tokio::test]
async fn a_permanent_rejection_fails_the_message_with_the_reason_and_is_not_retried() {
    let faults = Faults { reject: vec!["bad@example.org".into()], ..Faults::default() };
    let app = spawn_with(Options { mock: MockConfig { faults, ..MockConfig::default() }, ..resend(true) }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let r = app
        .post(
            &format!("/customers/{t}/send/single"),
            &key,
            json!({ "to_email": "bad@example.org", "subject": "s", "html": "h" }),
        )
        .await;
    let id = r.body["email_id"].as_str().unwrap().to_owned();
    app.drain().await;
    let m = app.get(&format!("/customers/{t}/messages/{id}"), &key).await;
    assert_eq!(m.body["status"], "dead");
    assert_eq!(m.body["attempts"], 1, "permanent errors skip retries");
    assert!(m.body["last_error"].as_str().unwrap().contains("validation_error"), "{}", m.body);
    assert_eq!(app.mock().stats().send_requests, 1);
}

#[tokio::test]
async fn retryable_failures_give_up_after_the_configured_attempts() {
    let faults = Faults { fail_rate: 1.0, ..Faults::default() };
    let app = spawn_with(Options {
        mock: MockConfig { faults, ..MockConfig::default() },
        env: vec![("MAILROOM_MAX_ATTEMPTS".into(), "3".into())],
        ..resend(true)
    })
    .await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let r = app
        .post(
            &format!("/customers/{t}/send/single"),
            &key,
            json!({ "to_email": "a@example.org", "subject": "s", "html": "h" }),
        )
        .await;
    let id = r.body["email_id"].as_str().unwrap().to_owned();
    app.drain().await;
    let m = app.get(&format!("/customers/{t}/messages/{id}"), &key).await;
    assert_eq!(m.body["status"], "dead");
    assert_eq!(m.body["attempts"], 3);
    assert_eq!(app.mock().stats().send_requests, 3);
}

#[tokio::test]
async fn a_contact_unsubscribed_after_queueing_gets_no_campaign_mail() {
    let app = spawn_with(resend(false)).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let stays = app.add_contact(&t, &key, json!({ "email": "stays@example.org" })).await;
    let leaves = app.add_contact(&t, &key, json!({ "email": "leaves@example.org" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(r.body["sent_to"], 2);
    app.patch(&format!("/customers/{t}/contacts/{leaves}"), &key, json!({ "is_subscribed": false })).await;
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    let sent = app.mock().accepted();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, vec!["stays@example.org"]);
    let counts = app.get(&format!("/customers/{t}/campaigns"), &key).await.body[0]["counts"].clone();
    assert_eq!(counts["suppressed"], 1);
    let _ = stays;
}

#[tokio::test]
async fn transactional_mail_is_claimed_before_queued_campaign_mail() {
    let app = spawn_with(resend(false)).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 300, "example.org").await;
    app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "campaign", "html": "h" })).await;
    app.post(
        &format!("/customers/{t}/send/single"),
        &key,
        json!({ "to_email": "reset@example.org", "subject": "reset", "html": "h" }),
    )
    .await;
    assert_eq!(app.outbox.try_dispatch_once().await.unwrap(), Step::Dispatched { messages: 1, sent: true });
    assert_eq!(app.mock().accepted()[0].subject, "reset");
}

#[tokio::test]
async fn campaign_emails_split_out_of_a_batch_too_large_keep_campaign_priority() {
    // Three emails are over the provider's body limit together, not alone: 413, then split.
    let faults = Faults { max_body_bytes: 600, ..Faults::default() };
    let app = spawn_with(Options { mock: MockConfig { faults, ..MockConfig::default() }, ..resend(false) }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 3, "example.org").await;
    app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(app.outbox.try_dispatch_once().await.unwrap(), Step::Dispatched { messages: 3, sent: false });
    // The batch was split: its emails now go one by one, but they are still campaign mail.
    let split = app
        .store
        .claim_new_batch(60_000, 1, usize::MAX, app.outbox.renderer())
        .await
        .unwrap()
        .unwrap()
        .batches
        .remove(0);
    assert_eq!(split.shape, mailroom::store::BatchShape::CampaignSingle);
    app.post(
        &format!("/customers/{t}/send/single"),
        &key,
        json!({ "to_email": "r@example.org", "subject": "s", "html": "h" }),
    )
    .await;
    let tx = app
        .store
        .claim_new_batch(60_000, 1, usize::MAX, app.outbox.renderer())
        .await
        .unwrap()
        .unwrap()
        .batches
        .remove(0);
    assert_eq!(tx.shape, mailroom::store::BatchShape::Transactional);
}

#[tokio::test]
async fn an_address_suppressed_after_queueing_gets_no_campaign_mail() {
    let app = spawn_with(resend(false)).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.add_contact(&t, &key, json!({ "email": "stays@example.org" })).await;
    app.add_contact(&t, &key, json!({ "email": "bounces@example.org" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(r.body["sent_to"], 2);
    // Before the campaign goes out, a transactional email to the same address hard-bounces.
    let tx = app
        .post(
            &format!("/customers/{t}/send/single"),
            &key,
            json!({ "to_email": "bounces@example.org", "subject": "s", "html": "h" }),
        )
        .await;
    assert_eq!(app.outbox.try_dispatch_once().await.unwrap(), Step::Dispatched { messages: 1, sent: true });
    let provider_id = app.mock().accepted()[0].id.clone();
    let bounce = crate::helpers::event(
        "email.bounced",
        &provider_id,
        json!({ "bounce": { "type": "Permanent", "subType": "General" } }),
    );
    assert_eq!(app.webhook("evt-bounce", &bounce).await.status, StatusCode::OK);
    let _ = tx;
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    let to: Vec<String> = app.mock().accepted().into_iter().skip(1).flat_map(|e| e.to).collect();
    assert_eq!(to, vec!["stays@example.org"], "checked again at claim time");
}

/// Renders as the outbox does, but first writes to the database, which it
/// could not do while a claim held the write lock.
struct WritesWhileRendering<'a> {
    app: &'a TestApp,
}

impl mailroom::store::RenderClaimed for WritesWhileRendering<'_> {
    async fn render_claimed(
        &self,
        messages: &[mailroom::store::ClaimedMessage],
    ) -> anyhow::Result<Vec<Result<String, String>>> {
        let name = mailroom::domain::new_id();
        let write = self.app.store.insert_setting_if_absent(&name, "x");
        tokio::time::timeout(std::time::Duration::from_secs(10), write)
            .await
            .expect("no write waits for a template to render")
            .expect("written");
        self.app.outbox.renderer().render_claimed(messages).await
    }
}

#[tokio::test]
async fn templates_render_outside_the_claims_write_transaction() {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>hi</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let claimed =
        app.store.claim_new_batch(60_000, 1, usize::MAX, &WritesWhileRendering { app: &app }).await.unwrap().unwrap();
    assert_eq!(claimed.batches.len(), 1);
}

#[tokio::test]
async fn a_claim_beside_a_busy_one_takes_transactional_mail_and_nothing_else() {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    for i in 0..3 {
        app.add_contact(&t, &key, json!({ "email": format!("c{i}@example.org") })).await;
    }
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>hi</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let renderer = app.outbox.renderer();
    assert!(app.store.claim_transactional(60_000, renderer).await.unwrap().is_none(), "campaign mail is not taken");
    let id = app.send_single(&t, &key, "reset@example.org").await;
    let claimed = app.store.claim_transactional(60_000, renderer).await.unwrap().expect("the transactional email");
    assert_eq!(claimed.batches.len(), 1);
    assert_eq!(claimed.batches[0].message_ids, vec![id]);
    assert!(app.store.claim_transactional(60_000, renderer).await.unwrap().is_none());
    // The campaign is claimed as ever.
    let campaign = app.store.claim_new_batch(60_000, 1, usize::MAX, renderer).await.unwrap().unwrap();
    assert_eq!(campaign.batches[0].message_ids.len(), 3);
}

/// Renders as the outbox does, after the customer suppresses an address: a
/// change that lands between a claim's render and its transaction.
struct SuppressesWhileRendering<'a> {
    app: &'a TestApp,
    tenant: String,
    key: String,
    email: &'static str,
}

impl mailroom::store::RenderClaimed for SuppressesWhileRendering<'_> {
    async fn render_claimed(
        &self,
        messages: &[mailroom::store::ClaimedMessage],
    ) -> anyhow::Result<Vec<Result<String, String>>> {
        let path = format!("/customers/{}/suppressions", self.tenant);
        let r = self.app.post(&path, &self.key, json!({ "emails": [self.email] })).await;
        assert!(r.status.is_success(), "{}", r.body);
        self.app.outbox.renderer().render_claimed(messages).await
    }
}

#[tokio::test]
async fn a_recipient_suppressed_while_its_claim_renders_is_not_mailed() {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    for email in ["keep@example.org", "stop@example.org"] {
        app.add_contact(&t, &key, json!({ "email": email })).await;
    }
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>hi</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let render = SuppressesWhileRendering { app: &app, tenant: t.clone(), key: key.clone(), email: "stop@example.org" };
    let claimed = app.store.claim_new_batch(60_000, 1, usize::MAX, &render).await.unwrap().unwrap();
    assert_eq!(claimed.suppressed, 1, "the transaction reads the suppression, not what the render saw");
    assert_eq!(claimed.batches.len(), 1);
    assert_eq!(claimed.batches[0].message_ids.len(), 1);
    assert!(!claimed.batches[0].payload.contains("stop@example.org"));
}
