//! Issue 10 (3): automations act on delivery events once per (rule, email,
//! event type), after the event is stored; delayed emails are durable and
//! cancelled by an unsubscribe; the agent step under its guardrails.

use std::sync::Arc;

use mailroom::mock::llm::{MockLlm, MockLlmConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::events::event_at;
use crate::helpers::{spawn_on, spawn_with, Options, TestApp, TestDb, ADMIN_KEY};
use crate::tenant_webhooks::{endpoint, received_at_least, verifies, Receiver};

const AT: &str = "2026-11-20T10:00:00Z";

pub(crate) fn options(env: &[(&str, &str)], run_worker: bool) -> Options {
    let mut all = vec![("MAILROOM_ALLOW_PRIVATE_WEBHOOKS", "true"), ("MAILROOM_WEBHOOK_RETRY_SCALE", "0.001")];
    all.extend_from_slice(env);
    Options {
        resend: true,
        run_worker,
        env: all.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..Options::default()
    }
}

/// A verified customer with `n` contacts (tagged `new`) and a campaign sent to
/// them: (customer, key, campaign, [(contact id, provider email id, address)]).
pub(crate) async fn campaign(
    app: &TestApp,
    n: usize,
    manual_outbox: bool,
) -> (String, String, String, Vec<(String, String, String)>) {
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let mut contacts = Vec::new();
    for i in 0..n {
        let email = format!("r{i}@example.org");
        let id = app.add_contact(&t, &key, json!({ "email": email, "tags": ["new"] })).await;
        contacts.push((id, email));
    }
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let cid = r.body["campaign_id"].as_str().unwrap().to_owned();
    if manual_outbox {
        while app.outbox.try_dispatch_once().await.unwrap() != mailroom::outbox::Step::Empty {}
    } else {
        app.drain().await;
    }
    let mut out = Vec::new();
    for (id, email) in contacts {
        let sent = app.mock().accepted().into_iter().find(|s| s.to.first() == Some(&email)).unwrap();
        out.push((id, sent.id.clone(), email));
    }
    (t, key, cid, out)
}

pub(crate) async fn follow_up_template(app: &TestApp, t: &str, key: &str) -> String {
    let list = app.get(&format!("/customers/{t}/templates"), key).await;
    let all = list.body.as_array().unwrap();
    all.iter().find(|x| x["name"] == "Follow-up").unwrap()["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn rule(app: &TestApp, t: &str, key: &str, body: Value) -> String {
    let r = app.post(&format!("/customers/{t}/automations"), key, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

pub(crate) async fn runs(app: &TestApp, t: &str, key: &str, rule: &str) -> Vec<Value> {
    app.get_all(&format!("/customers/{t}/automations/{rule}/runs"), key).await
}

/// Waits until the rule has `n` runs and none is pending; returns them.
pub(crate) async fn settled_runs(app: &TestApp, t: &str, key: &str, rule: &str, n: usize) -> Vec<Value> {
    app.settle_until(&format!("{n} settled run(s)"), || async {
        let r = runs(app, t, key, rule).await;
        r.len() >= n && r.iter().all(|x| x["status"] != "pending")
    })
    .await;
    runs(app, t, key, rule).await
}

pub(crate) async fn post_event(app: &TestApp, svix: &str, kind: &str, email_id: &str, extra: Value) {
    let r = app.webhook(svix, &event_at(kind, email_id, extra, AT)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

fn follow_ups(app: &TestApp, to: &str) -> usize {
    app.mock().accepted().iter().filter(|s| s.to.first().map(String::as_str) == Some(to) && s.subject != "s").count()
}

#[tokio::test]
async fn every_rule_type_fires_once_per_event_despite_duplicate_deliveries() {
    let app = spawn_with(options(&[], true)).await;
    let (t, key, _cid, sent) = campaign(&app, 4, false).await;
    let rx = Receiver::start().await;
    let (_, secret) = endpoint(&app, &t, &key, &rx.url, &["automation.alert"]).await;
    let template = follow_up_template(&app, &t, &key).await;
    let on_open = rule(
        &app,
        &t,
        &key,
        json!({ "name": "follow up", "trigger": { "event": "email.opened" },
        "actions": [{ "type": "send_template", "template_id": template }] }),
    )
    .await;
    let on_click = rule(
        &app,
        &t,
        &key,
        json!({ "name": "engaged", "trigger": { "event": "email.clicked" },
        "actions": [{ "type": "add_tag", "tag": "engaged" }, { "type": "remove_tag", "tag": "new" }] }),
    )
    .await;
    let on_bounce = rule(
        &app,
        &t,
        &key,
        json!({ "name": "bounce", "trigger": { "event": "email.bounced" },
        "actions": [{ "type": "suppress" }] }),
    )
    .await;
    let on_complaint = rule(
        &app,
        &t,
        &key,
        json!({ "name": "complaint", "trigger": { "event": "email.complained" },
        "actions": [{ "type": "notify", "message": "compliance alert" }] }),
    )
    .await;
    let (opener, clicker, bouncer, complainer) = (&sent[0], &sent[1], &sent[2], &sent[3]);
    // Each event delivered three times under its svix id, and a second open or
    // click of the same email under another svix id: the rules fire once.
    for round in 0..3 {
        post_event(&app, "o-1", "email.opened", &opener.1, json!({})).await;
        post_event(&app, "c-1", "email.clicked", &clicker.1, json!({ "click": { "link": "https://acme.com/x" } }))
            .await;
        post_event(&app, "b-1", "email.bounced", &bouncer.1, json!({ "bounce": { "type": "Permanent" } })).await;
        post_event(&app, "p-1", "email.complained", &complainer.1, json!({})).await;
        if round == 2 {
            post_event(&app, "o-2", "email.opened", &opener.1, json!({})).await;
            post_event(&app, "c-2", "email.clicked", &clicker.1, json!({ "click": { "link": "https://acme.com/y" } }))
                .await;
        }
    }
    for r in [&on_open, &on_click, &on_bounce, &on_complaint] {
        let runs = settled_runs(&app, &t, &key, r, 1).await;
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0]["status"], "done", "{}", runs[0]);
    }
    // Open → one follow-up email, rendered from the template.
    app.drain().await;
    assert_eq!(follow_ups(&app, &opener.2), 1);
    let follow = app.mock().accepted().into_iter().find(|s| s.subject.contains("A question about")).unwrap();
    assert_eq!(follow.to, vec![opener.2.clone()]);
    // Click → tagged, and the other tag gone.
    let c = app.get(&format!("/customers/{t}/contacts/{}", clicker.0), &key).await;
    assert_eq!(c.body["tags"], json!(["engaged"]), "{}", c.body);
    // Bounce → suppressed (the event itself does that too; the rule finds it done or does it).
    let s = app.get(&format!("/customers/{t}/suppressions"), &key).await;
    assert!(s.body.to_string().contains(&bouncer.2), "{}", s.body);
    // Complaint → one signed alert.
    let got = received_at_least(&app, &rx, 1).await;
    app.settle().await;
    let alerts: Vec<_> = rx.received().into_iter().filter(|(_, b)| b.contains("automation.alert")).collect();
    assert_eq!(alerts.len(), 1, "{got:?}");
    assert!(verifies(&secret, &alerts[0].0, &alerts[0].1));
    let body: Value = serde_json::from_str(&alerts[0].1).unwrap();
    assert_eq!(body["data"]["message"], "compliance alert");
    assert_eq!(body["data"]["event"]["contact_id"], json!(complainer.0));
    assert_eq!(body["data"]["event"]["type"], "email.complained");
}

#[tokio::test]
async fn runs_answer_a_json_array_and_page_with_a_link_header() {
    let app = spawn_with(options(&[], true)).await;
    let (t, key, _cid, sent) = campaign(&app, 3, false).await;
    let r = rule(
        &app,
        &t,
        &key,
        json!({ "name": "engaged", "trigger": { "event": "email.clicked" },
        "actions": [{ "type": "add_tag", "tag": "engaged" }] }),
    )
    .await;
    for (i, (_, email_id, _)) in sent.iter().enumerate() {
        let click = json!({ "click": { "link": "https://acme.com/x" } });
        post_event(&app, &format!("page-{i}"), "email.clicked", email_id, click).await;
    }
    settled_runs(&app, &t, &key, &r, 3).await;
    let first = app.get(&format!("/customers/{t}/automations/{r}/runs?limit=1"), &key).await;
    assert_eq!(first.body.as_array().map(Vec::len), Some(1), "a bare array: {}", first.body);
    let next = first.next_page().expect("a Link header to the next page");
    assert!(next.starts_with(&format!("/customers/{t}/automations/{r}/runs?limit=1&cursor=")), "{next}");
    let all = app.get_all(&format!("/customers/{t}/automations/{r}/runs?limit=1"), &key).await;
    let ids: std::collections::HashSet<&str> = all.iter().map(|run| run["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "each run once across the pages");
}

#[tokio::test]
async fn a_delayed_alert_fires_only_when_the_email_is_still_undelivered() {
    let app = spawn_with(options(&[], true)).await;
    let (t, key, _cid, sent) = campaign(&app, 2, false).await;
    let late = rule(
        &app,
        &t,
        &key,
        json!({ "name": "late", "trigger": { "event": "email.delivery_delayed",
        "no_delivery_within_hours": 1 }, "actions": [{ "type": "notify", "message": "still not delivered" }] }),
    )
    .await;
    // Both delayed just now; the second is delivered afterwards.
    let now = mailroom::domain::rfc3339(mailroom::domain::now_ms());
    for (svix, kind, id) in [
        ("d-0", "email.delivery_delayed", &sent[0].1),
        ("d-1", "email.delivery_delayed", &sent[1].1),
        ("d-1", "email.delivery_delayed", &sent[1].1),
        ("v-1", "email.delivered", &sent[1].1),
    ] {
        let r = app.webhook(svix, &event_at(kind, id, json!({}), &now)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let pending = runs(&app, &t, &key, &late).await;
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|r| r["status"] == "pending" && r["next_at"].is_string()), "{pending:?}");
    // An hour passes.
    app.store.execute_raw("UPDATE automation_runs SET due_at = 0 WHERE status = 'pending'").await.unwrap();
    let done = settled_runs(&app, &t, &key, &late, 2).await;
    let of = |contact: &str| done.iter().find(|r| r["trigger"]["contact_id"] == json!(contact)).unwrap().clone();
    assert_eq!(of(&sent[0].0)["status"], "done");
    let skipped = of(&sent[1].0);
    assert_eq!(skipped["status"], "skipped", "{skipped}");
    assert!(skipped["steps"].to_string().contains("delivered within 1 h"), "{skipped}");
}

/// The engine of a worker, driven by hand (the app runs none).
pub(crate) fn engine(app: &TestApp, db: &str, env: &[(&str, &str)]) -> mailroom::automations::Engine {
    let mut vars: Vec<(String, String)> = vec![("DATABASE_URL".into(), db.to_owned())];
    vars.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let config =
        mailroom::config::Config::from_lookup(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())).unwrap();
    mailroom::automations::Engine::new(app.store.clone(), Arc::new(tokio::sync::Notify::new()), &config).unwrap()
}

#[tokio::test]
async fn a_delayed_follow_up_survives_a_restart_and_an_unsubscribe_cancels_it() {
    let db = TestDb::new().await;
    let url = db.url.clone();
    let first = spawn_on(db, options(&[], false)).await;
    let (t, key, _cid, sent) = campaign(&first, 3, true).await;
    let template = follow_up_template(&first, &t, &key).await;
    let follow = rule(&first, &t, &key, json!({ "name": "follow up", "trigger": { "event": "email.opened" },
        "actions": [{ "type": "send_template", "template_id": template, "delay": "2d" }, { "type": "add_tag", "tag": "followed" }] }))
    .await;
    for (i, s) in sent.iter().enumerate() {
        post_event(&first, &format!("o-{i}"), "email.opened", &s.1, json!({})).await;
    }
    // The first process's engine parks the three runs for two days, then the process dies.
    let engine = engine(&first, &url, &[]);
    assert_eq!(engine.step().await.unwrap(), 3);
    drop(engine);
    let parked = runs(&first, &t, &key, &follow).await;
    assert!(
        parked.iter().all(|r| r["status"] == "pending" && r["steps"].to_string().contains("waiting")),
        "{parked:?}"
    );
    // Meanwhile one contact unsubscribes and another's address is suppressed.
    let r =
        first.patch(&format!("/customers/{t}/contacts/{}", sent[1].0), &key, json!({ "is_subscribed": false })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = first.post(&format!("/customers/{t}/suppressions"), &key, json!({ "emails": [sent[2].2] })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Two days pass; a new process on the same database takes over.
    first.store.execute_raw("UPDATE automation_runs SET due_at = 0 WHERE status = 'pending'").await.unwrap();
    let second = spawn_on(TestDb::shared(&url), options(&[], true)).await;
    let done = settled_runs(&second, &t, &key, &follow, 3).await;
    let of = |contact: &str| done.iter().find(|r| r["trigger"]["contact_id"] == json!(contact)).unwrap().clone();
    assert_eq!(of(&sent[0].0)["status"], "done", "{}", of(&sent[0].0));
    assert_eq!(of(&sent[1].0)["status"], "cancelled", "{}", of(&sent[1].0));
    assert_eq!(of(&sent[2].0)["status"], "cancelled", "{}", of(&sent[2].0));
    second.drain().await;
    assert_eq!(follow_ups(&second, &sent[0].2), 1);
    assert_eq!(follow_ups(&second, &sent[1].2) + follow_ups(&second, &sent[2].2), 0);
    // The cancelled runs stopped there: no tag after the email that was not sent.
    let c = second.get(&format!("/customers/{t}/contacts/{}", sent[1].0), &key).await;
    assert_eq!(c.body["tags"], json!(["new"]), "{}", c.body);
    let c = second.get(&format!("/customers/{t}/contacts/{}", sent[0].0), &key).await;
    assert_eq!(c.body["tags"], json!(["new", "followed"]), "{}", c.body);
}

#[tokio::test]
async fn runs_done_together_act_only_while_their_claim_holds() {
    let db = TestDb::new().await;
    let url = db.url.clone();
    let app = spawn_on(db, options(&[], false)).await;
    let (t, key, _cid, sent) = campaign(&app, 2, true).await;
    let tagging = rule(
        &app,
        &t,
        &key,
        json!({ "name": "tag openers", "trigger": { "event": "email.opened" },
        "actions": [{ "type": "add_tag", "tag": "opened" }, { "type": "notify", "message": "opened" }] }),
    )
    .await;
    for (i, s) in sent.iter().enumerate() {
        post_event(&app, &format!("o-{i}"), "email.opened", &s.1, json!({})).await;
    }
    // Ingestion did both rules' actions (issue 21). Runs still queued for the
    // worker's local lane (queued before an upgrade, say) are done there:
    // made so here, with the tags taken back.
    assert!(runs(&app, &t, &key, &tagging).await.iter().all(|r| r["status"] == "done"));
    app.store.execute_raw("UPDATE automation_runs SET status = 'pending', due_at = 0, log = '[]'").await.unwrap();
    for (contact, _, _) in &sent {
        let r = app.patch(&format!("/customers/{t}/contacts/{contact}"), &key, json!({ "tags": ["new"] })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    // A worker claims both runs and stalls past its lease; another takes them over.
    let stale = app.store.claim_runs(60_000, 10).await.unwrap();
    assert_eq!(stale.len(), 2);
    app.store.execute_raw("UPDATE automation_runs SET due_at = 0 WHERE status = 'pending'").await.unwrap();
    let current = app.store.claim_runs(60_000, 10).await.unwrap();
    assert_eq!(current.len(), 2);
    let mut batch = app.store.run_batch().await.unwrap();
    assert!(batch.still_claimed(&stale.iter().collect::<Vec<_>>()).await.unwrap().is_empty());
    assert_eq!(batch.still_claimed(&current.iter().collect::<Vec<_>>()).await.unwrap().len(), 2);
    drop(batch);
    // The new owner's engine does both in one batch: each action once, each run done.
    app.store.execute_raw("UPDATE automation_runs SET due_at = 0 WHERE status = 'pending'").await.unwrap();
    assert_eq!(engine(&app, &url, &[]).step().await.unwrap(), 2);
    let done = runs(&app, &t, &key, &tagging).await;
    assert!(done.iter().all(|r| r["status"] == "done"), "{done:?}");
    for (contact, _, _) in &sent {
        let c = app.get(&format!("/customers/{t}/contacts/{contact}"), &key).await;
        assert_eq!(c.body["tags"], json!(["new", "opened"]), "{}", c.body);
    }
    let steps: Vec<String> = done.iter().map(|r| r["steps"].to_string()).collect();
    assert!(steps.iter().all(|s| s.contains("tagged `opened`") && s.contains("automation.alert")), "{steps:?}");
}

#[tokio::test]
async fn a_rule_mails_a_contact_at_most_once_per_campaign() {
    let app = spawn_with(options(&[], true)).await;
    let (t, key, _cid, sent) = campaign(&app, 1, false).await;
    let template = follow_up_template(&app, &t, &key).await;
    let r = rule(
        &app,
        &t,
        &key,
        json!({ "name": "x", "trigger": { "event": "email.opened" },
        "actions": [{ "type": "send_template", "template_id": template }] }),
    )
    .await;
    let c = rule(
        &app,
        &t,
        &key,
        json!({ "name": "y", "trigger": { "event": "email.clicked" },
        "actions": [{ "type": "send_template", "template_id": template }] }),
    )
    .await;
    post_event(&app, "o", "email.opened", &sent[0].1, json!({})).await;
    settled_runs(&app, &t, &key, &r, 1).await;
    // The follow-up itself is opened: automations do not answer their own mail
    // with more mail, so no rule can loop.
    app.drain().await;
    let follow = app.mock().accepted().into_iter().find(|s| s.subject != "s").unwrap();
    post_event(&app, "o2", "email.opened", &follow.id, json!({})).await;
    // Another rule may mail the same contact for the same campaign.
    post_event(&app, "c", "email.clicked", &sent[0].1, json!({ "click": { "link": "https://acme.com" } })).await;
    let runs_x = settled_runs(&app, &t, &key, &r, 2).await;
    settled_runs(&app, &t, &key, &c, 1).await;
    app.drain().await;
    assert_eq!(follow_ups(&app, &sent[0].2), 2, "{runs_x:?}");
    assert!(runs_x.iter().any(|x| x["steps"].to_string().contains("no loops")), "{runs_x:?}");
    // A worker that died after queueing the email but before recording it: the
    // run is carried out again, and the email is not queued twice.
    app.store
        .execute_raw(&format!(
            "UPDATE automation_runs SET status = 'pending', step = 0, due_at = 0 WHERE automation_id = '{r}'"
        ))
        .await
        .unwrap();
    let again = settled_runs(&app, &t, &key, &r, 2).await;
    let first = again.iter().find(|x| x["trigger"]["event_id"] == "o").unwrap();
    assert!(first["steps"].to_string().contains("already mailed"), "{first}");
    app.drain().await;
    assert_eq!(follow_ups(&app, &sent[0].2), 2);
}

pub(crate) async fn agent_app(llm: &MockLlm, api: &str, extra: &[(&str, &str)]) -> TestApp {
    let url = llm.url();
    let mut env = vec![
        ("MAILROOM_LLM_URL", url.as_str()),
        ("MAILROOM_LLM_MODEL", "mock-1"),
        ("MAILROOM_LLM_API", api),
        ("MAILROOM_LLM_API_KEY", "sk-test"),
    ];
    env.extend_from_slice(extra);
    spawn_with(options(&env, true)).await
}

pub(crate) fn agent_rule(event: &str, template: &str, fallback: Value) -> Value {
    json!({ "name": "agent", "trigger": { "event": event },
        "actions": [{ "type": "agent", "instructions": "Decide what to do for this event.",
            "allowed_templates": [template], "allowed_tags": ["engaged"] }],
        "fallback": fallback })
}

#[tokio::test]
async fn the_agent_acts_through_the_mock_model_in_both_wire_formats_and_logs_its_decision() {
    for api in ["openai", "anthropic"] {
        let llm = MockLlm::start(MockLlmConfig { port: 0, ..MockLlmConfig::default() }).await.unwrap();
        let app = agent_app(&llm, api, &[]).await;
        let (t, key, _cid, sent) = campaign(&app, 2, false).await;
        let template = follow_up_template(&app, &t, &key).await;
        let on_click = rule(&app, &t, &key, agent_rule("email.clicked", &template, Value::Null)).await;
        let on_open = rule(&app, &t, &key, agent_rule("email.opened", &template, Value::Null)).await;
        post_event(&app, "c", "email.clicked", &sent[0].1, json!({ "click": { "link": "https://acme.com" } })).await;
        post_event(&app, "c", "email.clicked", &sent[0].1, json!({ "click": { "link": "https://acme.com" } })).await;
        post_event(&app, "o", "email.opened", &sent[1].1, json!({})).await;
        let click = settled_runs(&app, &t, &key, &on_click, 1).await;
        assert_eq!(click.len(), 1);
        let agent = &click[0]["agent"];
        assert_eq!(agent["tool"], "add_tag", "{api}: {}", click[0]);
        assert_eq!(agent["arguments"]["tag"], "engaged");
        assert!(agent["reason"].as_str().unwrap().contains("clicked"), "{agent}");
        assert!(agent["outcome"].as_str().unwrap().starts_with("done"), "{agent}");
        assert!(agent["latency_ms"].is_i64());
        let c = app.get(&format!("/customers/{t}/contacts/{}", sent[0].0), &key).await;
        assert!(c.body["tags"].as_array().unwrap().contains(&json!("engaged")), "{api}: {}", c.body);
        let open = settled_runs(&app, &t, &key, &on_open, 1).await;
        assert_eq!(open[0]["agent"]["tool"], "send_template", "{}", open[0]);
        app.drain().await;
        assert_eq!(follow_ups(&app, &sent[1].2), 1, "{api}");
        assert_eq!(llm.requests(), 2, "{api}: one decision per event, not per delivery");
        // The model never sees an address or a name.
        for body in llm.bodies() {
            let text = body.to_string();
            assert!(!text.contains("example.org"), "{api}: {text}");
            assert_eq!(body["model"], "mock-1");
        }
    }
}

// A clicked link can carry an address and a secret (a password-reset link):
// the model gets its scheme, host and path, with such path segments replaced.
#[tokio::test]
async fn the_model_sees_a_clicked_link_without_its_query_addresses_or_tokens() {
    let llm = MockLlm::start(MockLlmConfig { port: 0, ..MockLlmConfig::default() }).await.unwrap();
    let app = agent_app(&llm, "openai", &[]).await;
    let (t, key, _cid, sent) = campaign(&app, 2, false).await;
    let template = follow_up_template(&app, &t, &key).await;
    let on_click = rule(&app, &t, &key, agent_rule("email.clicked", &template, Value::Null)).await;
    let links = [
        "https://a-corp.com/reset?email=jane%40x.com&token=s3cr3tT0ken99887766",
        "https://a-corp.com/u/jane@x.com/4f9c2b7e1a8d3f60c2e9/reset",
    ];
    for (i, (link, to)) in links.iter().zip(&sent).enumerate() {
        post_event(&app, &format!("c-{i}"), "email.clicked", &to.1, json!({ "click": { "link": link } })).await;
    }
    settled_runs(&app, &t, &key, &on_click, 2).await;
    let seen: Vec<String> = llm.bodies().iter().map(Value::to_string).collect();
    assert_eq!(seen.len(), 2, "one decision per click");
    let all = seen.join("\n");
    for secret in ["jane", "x.com", "s3cr3tT0ken99887766", "4f9c2b7e1a8d3f60c2e9", "token=", "email="] {
        assert!(!all.contains(secret), "the model saw {secret:?}: {all}");
    }
    assert!(all.contains("https://a-corp.com/reset"), "{all}");
    assert!(all.contains("https://a-corp.com/u/redacted/redacted/reset"), "{all}");
}

#[tokio::test]
async fn the_agents_guardrails_refuse_and_the_fallback_runs() {
    let llm = MockLlm::start(MockLlmConfig { port: 0, ..MockLlmConfig::default() }).await.unwrap();
    let app = agent_app(&llm, "openai", &[("MAILROOM_AGENT_DAILY_CAP", "1")]).await;
    let (t, key, _cid, sent) = campaign(&app, 3, false).await;
    let rx = Receiver::start().await;
    endpoint(&app, &t, &key, &rx.url, &["automation.alert"]).await;
    let template = follow_up_template(&app, &t, &key).await;
    let fallback = json!({ "type": "notify", "message": "the agent could not act" });
    let a = rule(&app, &t, &key, agent_rule("email.opened", &template, fallback)).await;
    // Contact 0 is suppressed: the agent's send is refused. Contact 1 gets the
    // one send of the day; contact 2's is past the cap.
    let r = app.post(&format!("/customers/{t}/suppressions"), &key, json!({ "emails": [sent[0].2] })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    post_event(&app, "o0", "email.opened", &sent[0].1, json!({})).await;
    settled_runs(&app, &t, &key, &a, 1).await;
    post_event(&app, "o1", "email.opened", &sent[1].1, json!({})).await;
    settled_runs(&app, &t, &key, &a, 2).await;
    post_event(&app, "o2", "email.opened", &sent[2].1, json!({})).await;
    let all = settled_runs(&app, &t, &key, &a, 3).await;
    let of = |i: usize| all.iter().find(|r| r["trigger"]["contact_id"] == json!(sent[i].0)).unwrap()["agent"].clone();
    assert!(of(0)["outcome"].as_str().unwrap().starts_with("refused: the address is suppressed"), "{}", of(0));
    assert!(of(0)["outcome"].as_str().unwrap().contains("fallback notify"), "{}", of(0));
    assert!(of(1)["outcome"].as_str().unwrap().starts_with("done"), "{}", of(1));
    assert!(of(2)["outcome"].as_str().unwrap().contains("daily cap"), "{}", of(2));
    app.drain().await;
    assert_eq!(follow_ups(&app, &sent[0].2) + follow_ups(&app, &sent[2].2), 0);
    assert_eq!(follow_ups(&app, &sent[1].2), 1);
    let alerts = received_at_least(&app, &rx, 2).await;
    assert!(alerts.iter().all(|(_, b)| b.contains("the agent could not act")));
}

#[tokio::test]
async fn a_disallowed_template_a_malformed_answer_and_a_timeout_lead_to_the_fallback() {
    let not_allowed = json!({ "name": "send_template",
        "arguments": { "template_id": "0192f0c4-0000-7000-8000-000000000009", "reason": "why\u{0}\u{1b} not" } })
    .to_string();
    let extra_arg =
        json!({ "name": "add_tag", "arguments": { "tag": "engaged", "contact_id": "someone else" } }).to_string();
    let unknown_tool = json!({ "name": "drop_database", "arguments": {} }).to_string();
    let cases: Vec<(MockLlmConfig, &str, &str)> = vec![
        (
            MockLlmConfig { answer: Some(not_allowed), ..MockLlmConfig::default() },
            "refused: malformed tool call",
            "not a template this rule allows",
        ),
        (
            MockLlmConfig { answer: Some(extra_arg), ..MockLlmConfig::default() },
            "refused: malformed tool call",
            "unexpected argument",
        ),
        (
            MockLlmConfig { answer: Some(unknown_tool), ..MockLlmConfig::default() },
            "refused: malformed tool call",
            "not one of the tools",
        ),
        (MockLlmConfig { malformed: true, ..MockLlmConfig::default() }, "failed:", "malformed"),
        (MockLlmConfig { delay_ms: 3_000, ..MockLlmConfig::default() }, "failed:", "did not answer"),
    ];
    for (config, starts, contains) in cases {
        let llm = MockLlm::start(MockLlmConfig { port: 0, ..config }).await.unwrap();
        let app = agent_app(&llm, "anthropic", &[("MAILROOM_LLM_TIMEOUT_MS", "300")]).await;
        let (t, key, _cid, sent) = campaign(&app, 1, false).await;
        let template = follow_up_template(&app, &t, &key).await;
        let a = rule(
            &app,
            &t,
            &key,
            agent_rule("email.clicked", &template, json!({ "type": "add_tag", "tag": "fallback" })),
        )
        .await;
        post_event(&app, "c", "email.clicked", &sent[0].1, json!({ "click": { "link": "https://acme.com" } })).await;
        let run = settled_runs(&app, &t, &key, &a, 1).await.remove(0);
        let outcome = run["agent"]["outcome"].as_str().unwrap().to_owned();
        assert!(outcome.starts_with(starts) && outcome.contains(contains), "{outcome}");
        assert!(outcome.contains("fallback add_tag"), "{outcome}");
        let c = app.get(&format!("/customers/{t}/contacts/{}", sent[0].0), &key).await;
        assert_eq!(c.body["tags"], json!(["new", "fallback"]), "{contains}: {}", c.body);
        app.drain().await;
        assert_eq!(follow_ups(&app, &sent[0].2), 0, "{contains}");
    }
}

#[tokio::test]
async fn rules_are_validated_scoped_to_their_customer_and_agent_rules_need_a_model() {
    let app = spawn_with(options(&[], true)).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    let (u, key_u) = app.verified_tenant("B", "bolt.com").await;
    let mine = follow_up_template(&app, &t, &key).await;
    let theirs = follow_up_template(&app, &u, &key_u).await;
    // The starter rules are there, disabled.
    let list = app.get(&format!("/customers/{t}/automations"), &key).await;
    let starters: Vec<&Value> = list.body.as_array().unwrap().iter().collect();
    assert_eq!(starters.len(), 4, "{}", list.body);
    assert!(starters.iter().all(|s| s["enabled"] == false && s["starter"].is_string()));
    let follow = starters.iter().find(|s| s["starter"] == "follow_up_on_open").unwrap();
    assert_eq!(follow["actions"][0], json!({ "type": "send_template", "template_id": mine, "delay": "2d" }));
    let delayed = starters.iter().find(|s| s["starter"] == "alert_on_delay").unwrap();
    assert_eq!(delayed["trigger"]["no_delivery_within_hours"], 24);
    let path = format!("/customers/{t}/automations");
    let ok_actions = json!([{ "type": "add_tag", "tag": "x" }]);
    for (body, says) in [
        (
            json!({ "name": "x", "trigger": { "event": "email.opened" }, "actions": ok_actions, "colour": "red" }),
            "colour",
        ),
        (json!({ "name": "x", "trigger": { "event": "email.sent" }, "actions": ok_actions }), "trigger.event"),
        (json!({ "name": "x", "trigger": { "event": "email.opened" }, "actions": [{ "type": "rm -rf" }] }), "rm -rf"),
        (
            json!({ "name": "x", "trigger": { "event": "email.opened" },
            "actions": [{ "type": "send_template", "template_id": theirs }] }),
            "no such template",
        ),
        (
            json!({ "name": "x", "trigger": { "event": "email.opened" },
            "actions": [{ "type": "send_template", "template_id": mine, "delay": "1y" }] }),
            "delay",
        ),
        (json!({ "name": "x\u{0}", "trigger": { "event": "email.opened" }, "actions": ok_actions }), "name"),
        (
            json!({ "name": "x", "trigger": { "event": "email.opened", "campaign_id": "0192f0c4-0000-7000-8000-000000000009" },
            "actions": ok_actions }),
            "campaign",
        ),
        (
            json!({ "name": "x", "trigger": { "event": "email.opened" },
            "actions": [{ "type": "agent", "instructions": "go" }] }),
            "MAILROOM_LLM_URL",
        ),
    ] {
        let r = app.post(&path, &key, body.clone()).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.body);
        assert!(r.body.to_string().contains(says), "{says}: {}", r.body);
    }
    let a = rule(&app, &t, &key, json!({ "name": "x", "trigger": { "event": "email.opened" }, "actions": ok_actions }))
        .await;
    // Another customer cannot see, change, delete or list the runs of it.
    for (method, p) in [
        (reqwest::Method::GET, format!("/customers/{u}/automations/{a}")),
        (reqwest::Method::PATCH, format!("/customers/{u}/automations/{a}")),
        (reqwest::Method::DELETE, format!("/customers/{u}/automations/{a}")),
        (reqwest::Method::GET, format!("/customers/{u}/automations/{a}/runs")),
    ] {
        let body = (method == reqwest::Method::PATCH).then(|| json!({ "enabled": false }));
        let r = app.request(method, &p, Some(&key_u), body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}: {}", r.body);
    }
    let r = app.get(&format!("/customers/{t}/automations/{a}"), &key_u).await;
    assert!(r.status == StatusCode::FORBIDDEN || r.status == StatusCode::NOT_FOUND, "{}", r.body);
    // PATCH: switch off, rename; the admin may too.
    let r = app.patch(&format!("{path}/{a}"), ADMIN_KEY, json!({ "enabled": false, "name": "renamed" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((r.body["enabled"].clone(), r.body["name"].clone()), (json!(false), json!("renamed")));
    let r = app.patch(&format!("{path}/{a}"), &key, json!({ "fallback": { "type": "suppress" } })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "a fallback needs an agent: {}", r.body);
    // A rule whose template was deleted can still be switched off.
    let tpl = app
        .post(&format!("/customers/{t}/templates"), &key, json!({ "name": "gone", "subject": "s", "html": "<p>h</p>" }))
        .await;
    assert_eq!(tpl.status, StatusCode::CREATED, "{}", tpl.body);
    let tpl = tpl.body["id"].as_str().unwrap().to_owned();
    let b = rule(
        &app,
        &t,
        &key,
        json!({ "name": "x", "trigger": { "event": "email.opened" },
        "actions": [{ "type": "send_template", "template_id": tpl, "delay": " 3d" }] }),
    )
    .await;
    let shown = app.get(&format!("{path}/{b}"), &key).await;
    assert_eq!(shown.body["actions"][0]["delay"], "3d", "stored trimmed: {}", shown.body);
    assert_eq!(app.delete(&format!("/customers/{t}/templates/{tpl}"), &key).await.status, StatusCode::NO_CONTENT);
    let r = app.patch(&format!("{path}/{b}"), &key, json!({ "enabled": false })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // Likewise a rule whose trigger's campaign was deleted; another customer's
    // campaign cannot be a trigger.
    app.add_contact(&t, &key, json!({ "email": "c@example.com" })).await;
    app.add_contact(&u, &key_u, json!({ "email": "d@example.com" })).await;
    let send = json!({ "subject": "s", "html": "<p>h</p>" });
    let cid = app.post(&format!("/customers/{t}/send"), &key, send.clone()).await.body["campaign_id"].clone();
    let their_cid = app.post(&format!("/customers/{u}/send"), &key_u, send).await.body["campaign_id"].clone();
    let r = app
        .post(&path, &key, json!({ "name": "x", "trigger": { "event": "email.opened", "campaign_id": their_cid }, "actions": ok_actions }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.to_string().contains("no such campaign"), "{}", r.body);
    let c = rule(
        &app,
        &t,
        &key,
        json!({ "name": "x", "trigger": { "event": "email.opened", "campaign_id": cid }, "actions": ok_actions }),
    )
    .await;
    let cid = cid.as_str().unwrap();
    assert_eq!(app.delete(&format!("/customers/{t}/campaigns/{cid}"), &key).await.status, StatusCode::NO_CONTENT);
    let r = app.patch(&format!("{path}/{c}"), &key, json!({ "enabled": false })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = app
        .patch(&format!("{path}/{c}"), &key, json!({ "trigger": { "event": "email.opened", "campaign_id": cid } }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "a trigger given anew is checked: {}", r.body);
    let r = app.patch(&format!("{path}/{c}"), &key, json!({ "colour": 1 })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body.to_string().contains("colour"), "{}", r.body);
    assert_eq!(app.delete(&format!("{path}/{a}"), &key).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("{path}/{a}"), &key).await.status, StatusCode::NOT_FOUND);
    let r = app.get(&format!("{path}/not-an-id/runs"), &key).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
