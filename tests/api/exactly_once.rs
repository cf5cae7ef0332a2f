//! Every recipient exactly once, nothing after cancel: the outbox under the
//! faults that used to break that promise (issue 8, section A).

use std::time::Duration;

use futures::StreamExt;

use mailroom::mock::{AcceptedEmail, Faults, MockConfig};
use mailroom::outbox::Step;
use mailroom::store::{Settlement, IDEMPOTENCY_WINDOW_MS};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{event, spawn_with, wait_for, Options, TestApp};

fn resend(run_worker: bool, faults: Faults, env: &[(&str, &str)]) -> Options {
    Options {
        resend: true,
        run_worker,
        mock: MockConfig { faults, ..MockConfig::default() },
        env: env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Options::default()
    }
}

fn message_tag(e: &AcceptedEmail) -> String {
    e.tags.iter().find(|t| t.name == "message").map(|t| t.value.clone()).unwrap_or_default()
}

async fn message(app: &TestApp, t: &str, key: &str, id: &str) -> Value {
    let m = app.get(&format!("/customers/{t}/messages/{id}"), key).await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.body);
    m.body
}

/// Ids of a campaign's messages (via the store, whatever their status).
async fn campaign_messages(app: &TestApp, t: &str, cid: &str) -> Vec<String> {
    let rows =
        app.store.campaign_message_ids(&mailroom::domain::TenantId::from_stored(t.to_owned()), cid).await.unwrap();
    assert!(!rows.is_empty());
    rows
}

async fn send_campaign(app: &TestApp, t: &str, key: &str, n: usize) -> String {
    app.import_contacts(t, key, n, "example.org").await;
    let r = app.post(&format!("/customers/{t}/send"), key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    r.body["campaign_id"].as_str().unwrap().to_owned()
}

async fn step(app: &TestApp) -> Step {
    app.outbox.try_dispatch_once().await.unwrap()
}

// A1 — fails on the old main: the deleted campaign's rows were gone, the retry
// built `UPDATE ... CASE id ELSE ...` with no WHEN arm, and the batch looped.
#[tokio::test]
async fn a_batch_awaiting_retry_when_its_campaign_is_deleted_is_settled_and_never_sent_again() {
    let app = spawn_with(resend(false, Faults { fail_rate: 1.0, ..Faults::default() }, &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let cid = send_campaign(&app, &t, &key, 3).await;
    assert_eq!(step(&app).await, Step::Dispatched { messages: 3, sent: false });
    assert_eq!(app.delete(&format!("/customers/{t}/campaigns/{cid}"), &key).await.status, StatusCode::NO_CONTENT);
    app.mock().set_faults(Faults::default());
    app.advance(Duration::from_millis(100));
    assert_eq!(step(&app).await, Step::Empty);
    assert_eq!(step(&app).await, Step::Empty);
    assert_eq!(app.mock().stats().send_requests, 1);
    assert_eq!(app.mock().accepted_count(), 0);
    for id in campaign_messages(&app, &t, &cid).await {
        assert_eq!(message(&app, &t, &key, &id).await["status"], "cancelled");
    }
}

// A1 — fails on the old main (the answer was recorded with no ids, or looped).
#[tokio::test]
async fn an_answer_without_ids_is_recorded_as_an_error_on_the_batch_not_a_resend_loop() {
    let app = spawn_with(resend(false, Faults { empty_answers: true, ..Faults::default() }, &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let cid = send_campaign(&app, &t, &key, 3).await;
    assert_eq!(step(&app).await, Step::Dispatched { messages: 3, sent: false });
    app.advance(Duration::from_millis(100));
    assert_eq!(step(&app).await, Step::Empty);
    assert_eq!(app.mock().stats().send_requests, 1);
    for id in campaign_messages(&app, &t, &cid).await {
        let m = message(&app, &t, &key, &id).await;
        assert_eq!(m["status"], "dead", "{m}");
        assert!(m["last_error"].as_str().unwrap().contains("0 ids for 3 emails"), "{m}");
    }
}

// A2 — fails on the old main: the lease ran out during the slow call, another
// loop claimed the batch and sent it again.
#[tokio::test]
async fn a_provider_slower_than_the_lease_gets_one_request_and_the_message_is_sent() {
    let faults = Faults { latency_ms: 2_500, ..Faults::default() };
    let app = spawn_with(resend(true, faults, &[("MAILROOM_LEASE_SECS", "1")])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let id = app.send_single(&t, &key, "a@example.org").await;
    app.drain().await;
    let m = message(&app, &t, &key, &id).await;
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(m["attempts"], 1, "{m}");
    assert_eq!(app.mock().stats().send_requests, 1, "{:?}", app.mock().stats());
}

// A2 — only the holder of the current claim records an outcome.
#[tokio::test]
async fn a_worker_that_lost_its_claim_cannot_overwrite_the_new_holders_outcome() {
    let app = spawn_with(resend(false, Faults::default(), &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let id = app.send_single(&t, &key, "a@example.org").await;
    // A worker claims with a lease that is already over (it stalled)...
    let stale =
        app.store.claim_new_batch(0, 1, usize::MAX, app.outbox.renderer()).await.unwrap().unwrap().batches.remove(0);
    // ...another claims the batch again, sends it and records it.
    assert_eq!(step(&app).await, Step::Dispatched { messages: 1, sent: true });
    assert_eq!(message(&app, &t, &key, &id).await["status"], "sent");
    // The stale worker's failure arrives late: it is not recorded.
    let recorded = app.store.fail_batch(Settlement { batch: &stale, error: "timeout" }).await.unwrap();
    assert!(!recorded);
    let ids = vec!["other-id".to_owned()];
    assert_eq!(app.store.complete_batches(&[(&stale, ids.as_slice())]).await.unwrap(), 0);
    let m = message(&app, &t, &key, &id).await;
    assert_eq!(m["status"], "sent");
    assert_ne!(m["provider_id"], "other-id");
}

// A3 — fails on the old main: `dead` outranked `delivered`.
#[tokio::test]
async fn a_dead_letter_the_provider_reports_delivered_shows_as_delivered() {
    let faults = Faults { reject: vec!["a@example.org".into()], ..Faults::default() };
    let app = spawn_with(resend(true, faults, &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let id = app.send_single(&t, &key, "a@example.org").await;
    app.drain().await;
    assert_eq!(message(&app, &t, &key, &id).await["status"], "dead");
    // Accepted after all (the answer was lost): the provider's events say so.
    let body = event("email.delivered", "re-provider-id", json!({ "tags": { "message": id } }));
    assert_eq!(app.webhook("evt-late-delivery", &body).await.status, StatusCode::OK);
    let m = message(&app, &t, &key, &id).await;
    assert_eq!(m["status"], "delivered", "{m}");
    assert_eq!(m["provider_id"], "re-provider-id");
}

// A4 — fails on the old main: the retry was scheduled past the key's lifetime.
#[tokio::test]
async fn a_retry_that_would_fall_outside_the_24h_key_window_becomes_a_dead_letter_instead() {
    let faults = Faults { fail_rate: 1.0, ..Faults::default() };
    let app = spawn_with(resend(false, faults, &[("MAILROOM_RETRY_BASE_MS", "600000")])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let id = app.send_single(&t, &key, "a@example.org").await;
    assert_eq!(step(&app).await, Step::Dispatched { messages: 1, sent: false });
    // The 5xx may have been accepted: pretend that was almost a day ago, and the retry is due now.
    let since = mailroom::domain::now_ms() - IDEMPOTENCY_WINDOW_MS + 15 * 60_000;
    app.store.execute_raw(&format!("UPDATE batches SET uncertain_since = {since}, due_at = 0")).await.unwrap();
    // Sent once more inside the window; the next retry (20-40 min on) would fall outside it.
    assert_eq!(step(&app).await, Step::Dispatched { messages: 1, sent: false });
    assert_eq!(app.mock().stats().send_requests, 2);
    let m = message(&app, &t, &key, &id).await;
    assert_eq!(m["status"], "dead", "{m}");
    assert!(m["last_error"].as_str().unwrap().contains("idempotency window"), "{m}");
}

// A4 — a batch whose worker vanished a day ago is not resent under its old key.
#[tokio::test]
async fn a_batch_left_unanswered_for_a_day_goes_to_the_dead_letters_unsent() {
    let app = spawn_with(resend(false, Faults::default(), &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let id = app.send_single(&t, &key, "a@example.org").await;
    let lost =
        app.store.claim_new_batch(0, 1, usize::MAX, app.outbox.renderer()).await.unwrap().unwrap().batches.remove(0);
    let day_ago = mailroom::domain::now_ms() - IDEMPOTENCY_WINDOW_MS - 3_600_000;
    app.store
        .execute_raw(&format!("UPDATE batches SET updated_at = {day_ago} WHERE id = '{}'", lost.id))
        .await
        .unwrap();
    assert_eq!(step(&app).await, Step::Settled { status: "dead", messages: 1 });
    assert_eq!(app.mock().stats().send_requests, 0);
    let m = message(&app, &t, &key, &id).await;
    assert_eq!(m["status"], "dead");
    // A reviewed retry goes out under a new key.
    let retry = app.post(&format!("/customers/{t}/dead-letters/{id}/retry"), &key, json!({})).await;
    assert_eq!(retry.body["requeued"], 1);
    assert_eq!(step(&app).await, Step::Dispatched { messages: 1, sent: true });
    assert_ne!(
        app.mock().accepted()[0].idempotency_key.as_deref(),
        Some(format!("mailroom-batch-{}", lost.id).as_str())
    );
}

// A4 — fails on the old main: the pending retry went out after the cancel.
#[tokio::test]
async fn cancelling_a_campaign_during_backoff_stops_its_pending_retries() {
    let app = spawn_with(resend(false, Faults { fail_rate: 1.0, ..Faults::default() }, &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let cid = send_campaign(&app, &t, &key, 3).await;
    assert_eq!(step(&app).await, Step::Dispatched { messages: 3, sent: false });
    let c = app.post(&format!("/customers/{t}/campaigns/{cid}/cancel"), &key, json!({})).await;
    assert!(c.status.is_success(), "{}", c.body);
    app.mock().set_faults(Faults::default());
    app.advance(Duration::from_millis(100));
    assert_eq!(step(&app).await, Step::Empty);
    assert_eq!(app.mock().accepted_count(), 0);
    let view = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    assert_eq!(view.body["counts"]["cancelled"], 3, "{}", view.body);
}

// A4 — fails on the old main: the dead letter of a cancelled campaign was requeued and sent.
#[tokio::test]
async fn a_dead_letter_of_a_cancelled_campaign_is_not_retried() {
    let faults = Faults { reject: vec!["user1@example.org".into()], ..Faults::default() };
    let app = spawn_with(resend(false, faults, &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let cid = send_campaign(&app, &t, &key, 3).await;
    step(&app).await;
    app.post(&format!("/customers/{t}/campaigns/{cid}/cancel"), &key, json!({})).await;
    app.mock().set_faults(Faults::default());
    let r = app.post(&format!("/customers/{t}/campaigns/{cid}/dead-letters/retry"), &key, json!({})).await;
    assert_eq!(r.body["requeued"], 0, "{}", r.body);
    assert_eq!(step(&app).await, Step::Empty);
    assert_eq!(app.mock().accepted_count(), 2);
}

// A4 — two retries of one dead letter at once requeue it once.
#[tokio::test]
async fn a_dead_letter_retried_twice_at_once_is_sent_once() {
    let faults = Faults { reject: vec!["a@example.org".into()], ..Faults::default() };
    let app = spawn_with(resend(false, faults, &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let id = app.send_single(&t, &key, "a@example.org").await;
    step(&app).await;
    app.mock().set_faults(Faults::default());
    let path = format!("/customers/{t}/dead-letters/{id}/retry");
    let (a, b) = tokio::join!(app.post(&path, &key, json!({})), app.post(&path, &key, json!({})));
    let requeued = a.body["requeued"].as_i64().unwrap_or(0) + b.body["requeued"].as_i64().unwrap_or(0);
    assert_eq!(requeued, 1, "{} {}", a.body, b.body);
    while step(&app).await != Step::Empty {}
    assert_eq!(app.mock().accepted_count(), 1);
}

// A4 — fails on the old main: the old campaign's dead letter stayed retryable
// after a resume had already mailed its recipient.
#[tokio::test]
async fn after_a_resume_the_old_campaigns_dead_letters_cannot_send_a_second_copy() {
    let faults = Faults { reject: vec!["user1@example.org".into()], ..Faults::default() };
    let app = spawn_with(resend(false, faults, &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let old = send_campaign(&app, &t, &key, 3).await;
    step(&app).await;
    app.mock().set_faults(Faults::default());
    let resumed = app
        .post(
            &format!("/customers/{t}/send"),
            &key,
            json!({ "subject": "s", "html": "h", "resume_from_campaign_id": old }),
        )
        .await;
    assert_eq!(resumed.body["sent_to"], 1, "{}", resumed.body);
    let r = app.post(&format!("/customers/{t}/campaigns/{old}/dead-letters/retry"), &key, json!({})).await;
    assert_eq!(r.body["requeued"], 0, "{}", r.body);
    while step(&app).await != Step::Empty {}
    let to_user1 = app.mock().accepted().iter().filter(|e| e.to[0] == "user1@example.org").count();
    assert_eq!(to_user1, 1);
}

// A5 — fails on the old main: deleting the campaign deleted its messages, so
// the late complaint found nothing and suppressed nobody.
#[tokio::test]
async fn a_complaint_on_a_deleted_campaigns_email_still_suppresses_and_counts() {
    let app = spawn_with(resend(false, Faults::default(), &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let cid = send_campaign(&app, &t, &key, 2).await;
    while step(&app).await != Step::Empty {}
    let sent = app.mock().accepted().into_iter().find(|e| e.to[0] == "user0@example.org").unwrap();
    assert_eq!(app.delete(&format!("/customers/{t}/campaigns/{cid}"), &key).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await.status, StatusCode::NOT_FOUND);
    let list = app.get(&format!("/customers/{t}/campaigns"), &key).await;
    assert_eq!(list.body, json!([]));

    let r = app.webhook("evt-complaint", &event("email.complained", &sent.id, json!({}))).await;
    assert_eq!(r.status, StatusCode::OK);
    let m = message(&app, &t, &key, &message_tag(&sent)).await;
    assert_eq!(m["status"], "complained");
    assert_eq!(m["events"].as_array().unwrap().len(), 1);
    let contacts = app.get(&format!("/customers/{t}/contacts?limit=10"), &key).await;
    let user0 = contacts.body.as_array().unwrap().iter().find(|c| c["email"] == "user0@example.org").unwrap().clone();
    assert_eq!(user0["status"], "complained", "{user0}");
    // And no later campaign reaches them.
    let again = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s2", "html": "h" })).await;
    assert_eq!(again.body["sent_to"], 1, "{}", again.body);
}

// A6 — fails on the old main: the other requests got 409 `idempotency_key_in_use`
// (and after 60 s a slow first request could be taken over and sent twice).
#[tokio::test]
async fn twenty_concurrent_sends_with_one_key_create_one_campaign_and_get_one_answer() {
    let app = spawn_with(resend(false, Faults::default(), &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.import_contacts(&t, &key, 2_000, "example.org").await;
    let url = format!("{}/customers/{t}/send", app.base);
    let body = json!({ "subject": "s", "html": "h" }).to_string();
    let requests = (0..20).map(|i| {
        let (http, url, key, body) = (app.http.clone(), url.clone(), key.clone(), body.clone());
        async move {
            let req = http
                .post(url)
                .bearer_auth(key)
                .header("idempotency-key", "launch-1")
                .header("content-type", "application/json");
            let req = if i == 0 {
                // One slow client: its body trickles in.
                let chunks =
                    body.into_bytes().chunks(4).map(|c| Ok::<_, std::io::Error>(c.to_vec())).collect::<Vec<_>>();
                let stream = futures::stream::iter(chunks).then(|c| async move {
                    // Wall-clock on purpose: the client is slow while the others race it.
                    tokio::time::sleep(Duration::from_millis(40)).await;
                    c
                });
                req.body(reqwest::Body::wrap_stream(stream))
            } else {
                req.body(body)
            };
            let res = req.send().await.unwrap();
            let status = res.status();
            (status, res.json::<Value>().await.unwrap())
        }
    });
    let answers = futures::future::join_all(requests).await;
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
            body["campaign_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    let list = app.get(&format!("/customers/{t}/campaigns"), &key).await;
    assert_eq!(list.body.as_array().unwrap().len(), 1);
    assert_eq!(app.store.outbox_depth().await.unwrap(), 2_000);
}

// A7 — fails on the old main: re-claiming after the lease counted an attempt.
#[tokio::test]
async fn a_crashed_workers_claim_does_not_use_up_an_attempt() {
    let app = spawn_with(resend(false, Faults::default(), &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let id = app.send_single(&t, &key, "a@example.org").await;
    // Claimed, then the worker died before calling the provider.
    app.store.claim_new_batch(0, 1, usize::MAX, app.outbox.renderer()).await.unwrap();
    assert_eq!(step(&app).await, Step::Dispatched { messages: 1, sent: true });
    let m = message(&app, &t, &key, &id).await;
    assert_eq!(m["status"], "sent");
    assert_eq!(m["attempts"], 1, "{m}");
}

// A7 — fails on the old main: one failing write lost every batch of the step.
#[tokio::test]
async fn one_failing_database_write_does_not_lose_the_other_batches_results() {
    let app = spawn_with(resend(false, Faults::default(), &[("MAILROOM_LEASE_SECS", "1")])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let cid = send_campaign(&app, &t, &key, 250).await;
    let poison = match app.store.backend() {
        mailroom::store::Backend::Sqlite => {
            "CREATE TRIGGER poison BEFORE UPDATE OF status ON messages \
             WHEN NEW.to_email = 'user5@example.org' AND NEW.status = 'sent' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
                .to_owned()
        }
        mailroom::store::Backend::Postgres => "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
             IF NEW.to_email = 'user5@example.org' AND NEW.status = 'sent' THEN RAISE EXCEPTION 'poisoned'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER poison BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION poison()"
            .to_owned(),
    };
    app.store.execute_raw(&poison).await.unwrap();
    let _ = app.outbox.try_dispatch_once().await;
    assert_eq!(app.mock().accepted_count(), 250, "one claim sent all three batches");
    let view = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    let sent = view.body["counts"]["sent"].as_i64().unwrap();
    assert!((150..250).contains(&sent), "the two healthy batches were recorded: {}", view.body);

    let drop = match app.store.backend() {
        mailroom::store::Backend::Sqlite => "DROP TRIGGER poison",
        mailroom::store::Backend::Postgres => "DROP TRIGGER poison ON messages; DROP FUNCTION poison()",
    };
    app.store.execute_raw(drop).await.unwrap();
    app.advance(Duration::from_millis(1_100));
    while step(&app).await != Step::Empty {}
    let view = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    assert_eq!(view.body["counts"]["sent"], 250, "{}", view.body);
    assert_eq!(app.mock().accepted_count(), 250, "the unrecorded batch was resent under its key, not delivered twice");
}

// Invariant 10 with every fault at once (the acceptance run, in-process
// here; `pipeline.rs` kills real processes).
#[tokio::test]
async fn under_slow_answers_5xx_429_and_drops_with_two_workers_every_recipient_once_and_no_accepted_dead() {
    let faults =
        Faults { latency_ms: 1_200, fail_rate: 0.10, throttle_rate: 0.05, drop_rate: 0.05, ..Faults::default() };
    let app =
        spawn_with(resend(true, faults.clone(), &[("MAILROOM_LEASE_SECS", "1"), ("MAILROOM_MAX_ATTEMPTS", "4")])).await;
    let second = crate::helpers::spawn_on(
        crate::helpers::TestDb::shared(&app._db.url),
        Options {
            env: vec![
                ("RESEND_BASE_URL".into(), app.mock().url()),
                ("MAILROOM_PROVIDER".into(), "resend".into()),
                ("RESEND_API_KEY".into(), "re_test_key".into()),
                ("MAILROOM_LEASE_SECS".into(), "1".into()),
                ("MAILROOM_MAX_ATTEMPTS".into(), "4".into()),
                // Processes sharing a database render the same links (a batch
                // one of them claims again is sent as the other sent it).
                ("PUBLIC_URL".into(), app.base.clone()),
            ],
            ..Options::default()
        },
    )
    .await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let cid = send_campaign(&app, &t, &key, 1_500).await;
    app.drain().await;
    second.drain().await;
    let accepted = app.mock().accepted();
    let mut seen = std::collections::HashMap::new();
    for e in &accepted {
        *seen.entry(e.to[0].clone()).or_insert(0) += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "no duplicates");
    for e in &accepted {
        let m = message(&app, &t, &key, &message_tag(e)).await;
        assert_ne!(m["status"], "dead", "accepted by the provider yet shown dead: {m}");
    }
    let view = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    let dead = view.body["counts"]["dead"].as_i64().unwrap();
    assert_eq!(seen.len() as i64 + dead, 1_500, "{}", view.body);
}

// Nothing after cancel, with several loops and slow answers in flight.
#[tokio::test]
async fn nothing_is_sent_after_a_cancel_but_what_was_already_in_flight() {
    let faults = Faults { latency_ms: 300, ..Faults::default() };
    let app = spawn_with(resend(true, faults, &[("MAILROOM_SEND_RATE", "20")])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let cid = send_campaign(&app, &t, &key, 3_000).await;
    wait_for("the campaign to be under way", Duration::from_secs(20), || async { app.mock().accepted_count() >= 300 })
        .await;
    let c = app.post(&format!("/customers/{t}/campaigns/{cid}/cancel"), &key, json!({})).await;
    assert!(c.status.is_success());
    let view = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    let counts = &view.body["counts"];
    let handed_over = counts["sent"].as_i64().unwrap() + counts["sending"].as_i64().unwrap();
    app.drain().await;
    let after = app.mock().accepted_count() as i64;
    assert!(after <= handed_over, "{after} accepted, but only {handed_over} were sent or in flight at the cancel");
    let view = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    assert_eq!(view.body["status"], "cancelled");
    assert_eq!(view.body["counts"]["sent"].as_i64().unwrap(), after, "{}", view.body);
}

// The provider's `email.sent` can outrun the outbox's record of the provider's
// acceptance (the webhook arrives while the send call is still answering). The
// message is counted sent once, whichever of the two comes first, and ends sent.
#[tokio::test]
async fn an_email_sent_event_before_the_outbox_records_acceptance_is_counted_once() {
    let faults = Faults { latency_ms: 1_500, ..Faults::default() };
    let app = spawn_with(resend(true, faults, &[])).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let id = app.send_single(&t, &key, "early@example.org").await;
    wait_for("the send call", Duration::from_secs(10), || async {
        message(&app, &t, &key, &id).await["status"] == "sending"
    })
    .await;
    // Found by the tag mailroom put on the email: its provider id is not recorded yet.
    let at = mailroom::domain::rfc3339(mailroom::domain::now_ms());
    let body = crate::events::event_at("email.sent", "early-provider-id", json!({ "tags": { "message": id } }), &at);
    let r = app.webhook("evt-early-sent", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.drain().await;
    assert_eq!(app.mock().stats().send_requests, 1);
    assert_eq!(message(&app, &t, &key, &id).await["status"], "sent");
    let from = mailroom::domain::rfc3339(mailroom::domain::now_ms() - 86_400_000);
    let stats = app.get(&format!("/customers/{t}/stats?from={from}"), &key).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.body);
    assert_eq!(stats.body["totals"]["sent"], 1, "{}", stats.body);
}
