//! Fair shares of the provider's rate (issue 20): tenants with due mail are
//! served in turn, by weight, transactional mail first and in turn too; a
//! tenant's slow template holds up only its own mail. Step by step where the
//! point is the order, on the clock where it is time.

use std::time::{Duration, Instant};

use mailroom::outbox::Step;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_with, Options, TestApp, ADMIN_KEY};

fn stepped() -> Options {
    Options { resend: true, run_worker: false, ..Options::default() }
}

/// A verified tenant with `n` contacts that has sent them a campaign with `subject`.
async fn campaign(app: &TestApp, name: &str, n: usize, subject: &str) -> (String, String) {
    let domain = format!("{}.com", name.to_lowercase());
    let (t, key) = app.verified_tenant(name, &domain).await;
    app.import_contacts(&t, &key, n, &format!("{}-people.org", name.to_lowercase())).await;
    send(app, &t, &key, subject).await;
    (t, key)
}

async fn send(app: &TestApp, t: &str, key: &str, subject: &str) {
    let r = app.post(&format!("/customers/{t}/send"), key, json!({ "subject": subject, "html": "<p>hi</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
}

/// Emails the provider accepted with this subject.
fn arrived(app: &TestApp, subject: &str) -> usize {
    app.mock().accepted().iter().filter(|e| e.subject == subject).count()
}

async fn step(app: &TestApp) -> Step {
    app.outbox.try_dispatch_once().await.unwrap()
}

#[tokio::test]
async fn small_campaigns_sent_behind_a_big_one_go_out_in_their_own_turns_not_after_it() {
    let app = spawn_with(stepped()).await;
    // 1,200 recipients: twelve requests, three claims of four.
    campaign(&app, "Big", 1_200, "big").await;
    for name in ["Bolt", "Cask", "Dune"] {
        campaign(&app, name, 20, &format!("small {name}")).await;
    }
    // One claim for whoever goes first, then one each: the big tenant's
    // backlog does not come before them.
    for _ in 0..4 {
        assert!(matches!(step(&app).await, Step::Dispatched { .. }));
    }
    for name in ["Bolt", "Cask", "Dune"] {
        assert_eq!(arrived(&app, &format!("small {name}")), 20, "{name}'s campaign went out in its turn");
    }
    assert!(arrived(&app, "big") <= 400, "the big tenant had one turn meanwhile");
    // Unused share flows back: alone again, the big tenant gets every turn.
    while step(&app).await != Step::Empty {}
    assert_eq!(arrived(&app, "big"), 1_200);
}

#[tokio::test]
async fn a_tenant_of_weight_two_gets_twice_the_requests_of_a_tenant_of_weight_one() {
    let app = spawn_with(stepped()).await;
    let (heavy, _) = campaign(&app, "Heavy", 4_000, "heavy").await;
    campaign(&app, "Light", 4_000, "light").await;
    let r = app.patch(&format!("/customers/{heavy}"), ADMIN_KEY, json!({ "send_weight": 2 })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["send_weight"], 2);
    // Each claim is four requests; over twelve claims, eight and four.
    for _ in 0..12 {
        step(&app).await;
    }
    let (heavy, light) = (arrived(&app, "heavy"), arrived(&app, "light"));
    assert_eq!((heavy, light), (3_200, 1_600), "by weight, 2:1");
}

#[tokio::test]
async fn a_tenants_campaigns_take_turns_too() {
    let app = spawn_with(stepped()).await;
    let (t, key) = campaign(&app, "Acme", 1_200, "first").await;
    step(&app).await;
    send(&app, &t, &key, "second").await;
    // The second campaign's 1,200 do not wait for the first's remaining 800.
    step(&app).await;
    step(&app).await;
    assert_eq!(arrived(&app, "second"), 400, "the second campaign had a turn");
    assert_eq!(arrived(&app, "first"), 800, "and so did the first again");
}

#[tokio::test]
async fn one_tenants_burst_of_single_sends_does_not_hold_back_anothers_transactional_email() {
    let app = spawn_with(stepped()).await;
    let (a, key_a) = app.verified_tenant("Acme", "acme.com").await;
    let (b, key_b) = app.verified_tenant("Bolt", "bolt.com").await;
    for i in 0..10 {
        app.send_single(&a, &key_a, &format!("user{i}@example.org")).await;
    }
    app.send_single(&b, &key_b, "reset@example.org").await;
    step(&app).await;
    step(&app).await;
    let to: Vec<String> = app.mock().accepted().into_iter().flat_map(|e| e.to).collect();
    assert!(to.contains(&"reset@example.org".to_owned()), "the other tenant's email went in the second turn: {to:?}");
}

#[tokio::test]
async fn only_the_operator_sets_a_tenants_weight() {
    let app = spawn_with(stepped()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let r = app.patch(&format!("/customers/{t}"), &key, json!({ "send_weight": 50 })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "forbidden");
    // Nor slipped in beside a change the tenant may make.
    let r = app.patch(&format!("/customers/{t}"), &key, json!({ "name": "Acme 2", "send_weight": 50 })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // Nor as null, nor with a value that is not a weight at all.
    for sent in [json!(null), json!("lots")] {
        let r = app.patch(&format!("/customers/{t}"), &key, json!({ "send_weight": sent })).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{sent}: {}", r.body);
    }
    let r = app.get(&format!("/customers/{t}"), &key).await;
    assert_eq!((r.body["send_weight"].clone(), r.body["name"].clone()), (json!(1), json!("Acme")));
    for bad in [json!(0), json!(-1), json!(1001), json!("2"), json!(1.5)] {
        let r = app.patch(&format!("/customers/{t}"), ADMIN_KEY, json!({ "send_weight": bad })).await;
        assert!(r.status.is_client_error(), "{bad}: {}", r.status);
        assert!(r.body["error"]["code"].is_string(), "{}", r.body);
    }
    let r = app.patch(&format!("/customers/{t}"), ADMIN_KEY, json!({ "send_weight": 3 })).await;
    assert_eq!(r.body["send_weight"], 3);
    // Null restores the default.
    let r = app.patch(&format!("/customers/{t}"), ADMIN_KEY, json!({ "send_weight": null })).await;
    assert_eq!(r.body["send_weight"], 1, "{}", r.body);
}

#[tokio::test]
async fn a_template_slow_for_one_tenants_data_does_not_hold_up_another_tenants_campaign() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (a, key_a) = app.verified_tenant("Acme", "acme.com").await;
    app.import_contacts(&a, &key_a, 10, "example.org").await;
    // Quick when saved (no `n`), up to the render deadline (2 s) for each of
    // the campaign's recipients.
    let slow = "{% set a = 'x' * 10000000 %}{% for i in range(n | default(0)) %}{% set b = a ~ 'y' %}{% endfor %}slow";
    let tpl = app
        .post(&format!("/customers/{a}/templates"), &key_a, json!({ "name": "Slow", "subject": "s", "html": slow }))
        .await;
    assert_eq!(tpl.status, StatusCode::CREATED, "{}", tpl.body);
    let r = app
        .post(
            &format!("/customers/{a}/send"),
            &key_a,
            json!({ "template_id": tpl.body["id"], "variables": { "n": 1_000_000 } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    // Wall-clock on purpose: the slow renders are under way when the other tenant sends.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (b, key_b) = app.verified_tenant("Bolt", "bolt.com").await;
    app.import_contacts(&b, &key_b, 20, "bolt-people.org").await;
    let sent = Instant::now();
    send(&app, &b, &key_b, "quick").await;
    while arrived(&app, "quick") < 20 {
        // Behind the slow tenant, this would take its ten recipients' render
        // deadlines, one after another (20 s and more).
        assert!(sent.elapsed() < Duration::from_secs(8), "the other tenant's campaign waited for the slow template");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
