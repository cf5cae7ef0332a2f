use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{event, now_secs, spawn_with, Options, TestApp, WEBHOOK_SECRET};

/// A customer, one contact, one campaign sent through the mock: (app, customer, key, contact id, provider email id).
async fn sent_campaign(email: &str) -> (TestApp, String, String, String, String) {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let contact = app.add_contact(&t, &key, json!({ "email": email })).await;
    app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    app.drain().await;
    let id = app.mock().accepted()[0].id.clone();
    (app, t, key, contact, id)
}

async fn message_status(app: &TestApp, t: &str, key: &str) -> Value {
    let campaigns = app.get(&format!("/customers/{t}/campaigns"), key).await;
    campaigns.body[0]["counts"].clone()
}

#[tokio::test]
async fn a_signed_event_is_accepted_and_moves_the_message_forward() {
    let (app, t, key, _, id) = sent_campaign("a@example.org").await;
    let r = app.webhook("msg_1", &event("email.delivered", &id, json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["received"], true);
    assert_eq!(r.body["type"], "email.delivered");
    assert_eq!(message_status(&app, &t, &key).await["delivered"], 1);
    app.webhook("msg_2", &event("email.opened", &id, json!({}))).await;
    app.webhook("msg_3", &event("email.clicked", &id, json!({ "click": { "link": "https://x" } }))).await;
    assert_eq!(message_status(&app, &t, &key).await["clicked"], 1);
}

#[tokio::test]
async fn tampered_stale_unsigned_and_wrongly_signed_events_are_refused() {
    let (app, t, key, contact, id) = sent_campaign("a@example.org").await;
    let body = event("email.bounced", &id, json!({ "bounce": { "type": "Permanent" } }));
    let raw = body.to_string();
    let sig =
        standardwebhooks::Webhook::new(WEBHOOK_SECRET).unwrap().sign("msg_t", now_secs(), raw.as_bytes()).unwrap();
    let tampered = raw.replace("Permanent", "Permanent ");
    let url = format!("{}/webhooks/resend", app.base);
    let r = app
        .http
        .post(&url)
        .header("svix-id", "msg_t")
        .header("svix-timestamp", now_secs().to_string())
        .header("svix-signature", &sig)
        .body(tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let stale = app.webhook_signed("msg_s", &body, WEBHOOK_SECRET, now_secs() - 600).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    let wrong = app.webhook_signed("msg_w", &body, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", now_secs()).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let unsigned = app.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(unsigned.status(), StatusCode::BAD_REQUEST);

    let c = app.get(&format!("/customers/{t}/contacts/{contact}"), &key).await;
    assert_eq!(c.body["status"], "subscribed", "no refused event had an effect");
    assert_eq!(app.store.count_rows("webhook_events").await.unwrap(), 0);
}

#[tokio::test]
async fn either_secret_verifies_while_one_is_rotated() {
    let old = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let app =
        spawn_with(Options { webhook_secret: Some(format!("{WEBHOOK_SECRET},{old}")), ..Options::default() }).await;
    let e = event("email.delivered", "unknown", json!({}));
    assert_eq!(app.webhook_signed("m1", &e, WEBHOOK_SECRET, now_secs()).await.status, StatusCode::OK);
    assert_eq!(app.webhook_signed("m2", &e, old, now_secs()).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_duplicate_event_is_applied_once() {
    let (app, _t, _key, _, id) = sent_campaign("a@example.org").await;
    let e = event("email.delivered", &id, json!({}));
    let first = app.webhook("msg_dup", &e).await;
    let second = app.webhook("msg_dup", &e).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(first.body["duplicate"], false);
    assert_eq!(second.body["duplicate"], true);
    assert_eq!(app.store.count_rows("webhook_events").await.unwrap(), 1);
}

#[tokio::test]
async fn a_delivered_after_a_bounce_does_not_undo_it() {
    let (app, t, key, contact, id) = sent_campaign("a@example.org").await;
    app.webhook("e1", &event("email.bounced", &id, json!({ "bounce": { "type": "Permanent", "subType": "General" } })))
        .await;
    app.webhook("e2", &event("email.delivered", &id, json!({}))).await;
    app.webhook("e3", &event("email.opened", &id, json!({}))).await;
    let counts = message_status(&app, &t, &key).await;
    assert_eq!(counts["bounced"], 1, "{counts}");
    assert_eq!(counts["delivered"], 0);
    let c = app.get(&format!("/customers/{t}/contacts/{contact}"), &key).await;
    assert_eq!(c.body["status"], "bounced");
}

#[tokio::test]
async fn a_transient_bounce_records_but_does_not_suppress() {
    let (app, t, key, contact, id) = sent_campaign("a@example.org").await;
    let r = app
        .webhook(
            "e1",
            &event("email.bounced", &id, json!({ "bounce": { "type": "Transient", "subType": "MailboxFull" } })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let c = app.get(&format!("/customers/{t}/contacts/{contact}"), &key).await;
    assert_eq!(c.body["status"], "subscribed");
}

#[tokio::test]
async fn a_complaint_unsubscribes_and_suppresses_for_that_customer() {
    let (app, t, key, contact, id) = sent_campaign("a@example.org").await;
    app.webhook("c1", &event("email.complained", &id, json!({}))).await;
    let c = app.get(&format!("/customers/{t}/contacts/{contact}"), &key).await;
    assert_eq!(c.body["status"], "complained");
    assert_eq!(c.body["is_subscribed"], false);
    let resub = app.patch(&format!("/customers/{t}/contacts/{contact}"), &key, json!({ "is_subscribed": true })).await;
    assert_eq!(resub.status, StatusCode::CONFLICT);
    let single = app
        .post(
            &format!("/customers/{t}/send/single"),
            &key,
            json!({ "to_email": "A@example.org", "subject": "s", "html": "h" }),
        )
        .await;
    assert_eq!(single.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(single.body["error"]["code"], "recipient_suppressed");
}

#[tokio::test]
async fn a_bounce_unsubscribes_only_the_sending_customers_contact() {
    let (app, t, key, contact, id) = sent_campaign("shared@example.org").await;
    let (u, key_u) = app.verified_tenant("B", "b.example.com").await;
    let other = app.add_contact(&u, &key_u, json!({ "email": "shared@example.org" })).await;
    app.webhook(
        "b1",
        &event("email.bounced", &id, json!({ "to": ["shared@example.org"], "bounce": { "type": "Permanent" } })),
    )
    .await;
    assert_eq!(app.get(&format!("/customers/{t}/contacts/{contact}"), &key).await.body["status"], "bounced");
    let theirs = app.get(&format!("/customers/{u}/contacts/{other}"), &key_u).await;
    assert_eq!(theirs.body["status"], "subscribed", "side effects go through the message's own customer");
    let send = app.post(&format!("/customers/{u}/send"), &key_u, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(send.body["sent_to"], 1);
}

#[tokio::test]
async fn events_for_unknown_emails_are_stored_and_acknowledged() {
    let (app, ..) = sent_campaign("a@example.org").await;
    let r = app.webhook("u1", &event("email.delivered", "not-ours", json!({}))).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(app.store.count_rows("webhook_events").await.unwrap(), 1);
    let fixtures: Value = serde_json::from_str(include_str!("../fixtures/resend-webhook-events.json")).unwrap();
    for (i, (name, body)) in fixtures.as_object().unwrap().iter().filter(|(n, _)| !n.starts_with('_')).enumerate() {
        let r = app.webhook(&format!("fx{i}"), body).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.body);
    }
}

#[tokio::test]
async fn without_a_secret_resend_mode_refuses_events() {
    let app = spawn_with(Options { resend: true, webhook_secret: None, ..Options::default() }).await;
    let r = app.webhook("x", &event("email.delivered", "a", json!({}))).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.store.count_rows("webhook_events").await.unwrap(), 0);
}

#[tokio::test]
async fn webhooks_signed_and_sent_by_the_mock_are_applied() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    app.mock().set_webhook(&format!("{}/webhooks/resend", app.base), WEBHOOK_SECRET);
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let bounced = app.add_contact(&t, &key, json!({ "email": "bounced@resend.dev" })).await;
    let fine = app.add_contact(&t, &key, json!({ "email": "delivered@resend.dev" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    app.settle_until("the mock's webhooks", || async {
        let counts = message_status(&app, &t, &key).await;
        counts["bounced"] == 1 && counts["delivered"] == 1
    })
    .await;
    assert_eq!(app.get(&format!("/customers/{t}/contacts/{bounced}"), &key).await.body["status"], "bounced");
    assert_eq!(app.get(&format!("/customers/{t}/contacts/{fine}"), &key).await.body["status"], "subscribed");
}

// C1 — fails on the old main: one failing event answered 503 for every event
// committed with it (a storage failure is simulated with a trigger).
#[tokio::test]
async fn one_event_that_cannot_be_stored_does_not_fail_the_others_stored_with_it() {
    let app = crate::helpers::spawn_app().await;
    let poison = match app.store.backend() {
        mailroom::store::Backend::Sqlite => "CREATE TRIGGER poison BEFORE INSERT ON webhook_events \
             WHEN NEW.svix_id = 'evt-poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
            .to_owned(),
        mailroom::store::Backend::Postgres => "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
             IF NEW.svix_id = 'evt-poison' THEN RAISE EXCEPTION 'poisoned'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER poison BEFORE INSERT ON webhook_events FOR EACH ROW EXECUTE FUNCTION poison()"
            .to_owned(),
    };
    app.store.execute_raw(&poison).await.unwrap();
    let body = crate::helpers::event("email.delivered", "re-x", json!({}));
    let ids: Vec<String> =
        (0..40).map(|i| if i == 20 { "evt-poison".to_owned() } else { format!("evt-ok-{i}") }).collect();
    let answers = futures::future::join_all(ids.iter().map(|id| app.webhook(id, &body))).await;
    for (id, r) in ids.iter().zip(&answers) {
        if id == "evt-poison" {
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "the provider will retry it: {}", r.body);
        } else {
            assert_eq!(r.status, StatusCode::OK, "{id}: {}", r.body);
        }
    }
    assert_eq!(app.store.count_rows("webhook_events").await.unwrap(), 39);
}

// C1 — fails on the old main on PostgreSQL: a NUL in an event was a 5xx.
#[tokio::test]
async fn an_event_with_a_nul_character_is_refused_with_422() {
    let app = crate::helpers::spawn_app().await;
    let body = crate::helpers::event("email.delivered", "re-\u{0}x", json!({}));
    let r = app.webhook("evt-nul", &body).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
}

// Invariants 5 and 11 inside one group commit: several events for one message
// in the same transaction leave the highest-ranked status, and a svix-id that
// appears twice in the group is stored and applied once.
#[tokio::test]
async fn events_for_one_message_in_one_group_keep_the_highest_status_and_dedupe() {
    let (app, t, key, _, id) = sent_campaign("g@example.org").await;
    let kinds = [
        ("grp-1", "email.delivered"),
        ("grp-2", "email.bounced"),
        ("grp-3", "email.opened"),
        ("grp-1", "email.delivered"),
        ("grp-4", "email.delivered"),
    ];
    let mut parsed = Vec::new();
    for (svix, kind) in kinds {
        let extra = if kind == "email.bounced" { json!({ "bounce": { "type": "Permanent" } }) } else { json!({}) };
        let body = serde_json::to_vec(&event(kind, &id, extra)).unwrap();
        parsed.push(mailroom::delivery_events::parse_event(svix, &body).unwrap());
    }
    let refs: Vec<&mailroom::store::IncomingEvent> = parsed.iter().collect();
    let targets = app.store.event_targets(&refs).await.unwrap();
    let group: Vec<_> = parsed.iter().zip(targets).collect();
    let outcomes = app.store.apply_events(&group).await.unwrap();
    use mailroom::store::EventOutcome::{Applied, Duplicate};
    assert_eq!(outcomes[0], Applied { message_found: true });
    assert_eq!(outcomes[3], Duplicate, "the second grp-1 in the same group");
    assert_eq!(app.store.count_rows("webhook_events").await.unwrap(), 4);
    let counts = message_status(&app, &t, &key).await;
    assert_eq!(counts["bounced"], 1, "{counts}");
    assert_eq!(counts["delivered"], 0, "{counts}");
    let contacts = app.get(&format!("/customers/{t}/contacts"), &key).await;
    assert_eq!(contacts.body[0]["status"], "bounced", "{}", contacts.body);
    assert_eq!(contacts.body[0]["is_subscribed"], false);
}

// A bounce and a complaint about one address in the same group commit, in
// either order: one suppression, `complained`, and the contact complained
// (the group's suppressions are one statement, which may not touch a row twice).
#[tokio::test]
async fn a_bounce_and_a_complaint_in_one_group_leave_the_complaint() {
    for order in [["email.bounced", "email.complained"], ["email.complained", "email.bounced"]] {
        let (app, t, key, _, id) = sent_campaign("both@example.org").await;
        let mut parsed = Vec::new();
        for (i, kind) in order.iter().enumerate() {
            let extra = if *kind == "email.bounced" { json!({ "bounce": { "type": "Permanent" } }) } else { json!({}) };
            let body = serde_json::to_vec(&event(kind, &id, extra)).unwrap();
            parsed.push(mailroom::delivery_events::parse_event(&format!("both-{i}"), &body).unwrap());
        }
        let refs: Vec<&mailroom::store::IncomingEvent> = parsed.iter().collect();
        let targets = app.store.event_targets(&refs).await.unwrap();
        let group: Vec<_> = parsed.iter().zip(targets).collect();
        app.store.apply_events(&group).await.unwrap();
        let list = app.get(&format!("/customers/{t}/suppressions"), &key).await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.body);
        let rows = list.body.as_array().unwrap();
        assert_eq!(rows.len(), 1, "{order:?}: {}", list.body);
        assert_eq!(rows[0]["reason"], "complained", "{order:?}: {}", list.body);
        let contacts = app.get(&format!("/customers/{t}/contacts"), &key).await;
        assert_eq!(contacts.body[0]["status"], "complained", "{order:?}: {}", contacts.body);
    }
}
