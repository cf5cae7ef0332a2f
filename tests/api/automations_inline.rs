//! Issue 21: a rule's local effects (tags, suppression, alerts) are carried
//! out by event ingestion, in the events' transaction, set-based for the
//! group: visible when the webhook is answered, once per (email, event type,
//! rule), within the message's tenant, each firing with a finished run. Rules
//! that send, wait or ask a model are still queued for the worker.

use mailroom::mock::llm::{MockLlm, MockLlmConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::automations::{agent_rule, campaign, follow_up_template, options, post_event, rule, runs};
use crate::helpers::spawn_with;
use crate::tenant_webhooks::{endpoint, Receiver};

async fn contact_tags(app: &crate::helpers::TestApp, t: &str, key: &str, contact: &str) -> Value {
    let c = app.get(&format!("/customers/{t}/contacts/{contact}"), key).await;
    assert_eq!(c.status, StatusCode::OK, "{}", c.body);
    c.body["tags"].clone()
}

async fn queued_alerts(app: &crate::helpers::TestApp, t: &str, key: &str, w: &str) -> Vec<Value> {
    let r = app.get(&format!("/customers/{t}/webhooks/{w}/deliveries"), key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let all = r.body.as_array().cloned().unwrap_or_default();
    all.into_iter().filter(|d| d.to_string().contains("automation.alert")).collect()
}

// No worker runs in this app: whatever is there when the webhook is answered
// was done by ingestion.
#[tokio::test]
async fn local_effects_are_visible_when_the_webhook_is_answered_with_a_finished_run_per_firing() {
    let app = spawn_with(options(&[], false)).await;
    let (t, key, _cid, sent) = campaign(&app, 3, true).await;
    let rx = Receiver::start().await;
    let (w, _) = endpoint(&app, &t, &key, &rx.url, &["automation.alert"]).await;
    let tagging = rule(
        &app,
        &t,
        &key,
        json!({ "name": "engaged", "trigger": { "event": "email.clicked" },
        "actions": [{ "type": "add_tag", "tag": "engaged" }, { "type": "remove_tag", "tag": "new" }] }),
    )
    .await;
    let alerting = rule(
        &app,
        &t,
        &key,
        json!({ "name": "alert", "trigger": { "event": "email.clicked" },
        "actions": [{ "type": "notify", "message": "a click" }] }),
    )
    .await;
    let suppressing = rule(
        &app,
        &t,
        &key,
        json!({ "name": "quiet", "trigger": { "event": "email.opened" }, "actions": [{ "type": "suppress" }] }),
    )
    .await;
    let (clicker, opener) = (&sent[0], &sent[1]);
    post_event(&app, "c-1", "email.clicked", &clicker.1, json!({ "click": { "link": "https://acme.com/x" } })).await;
    post_event(&app, "o-1", "email.opened", &opener.1, json!({})).await;

    assert_eq!(contact_tags(&app, &t, &key, &clicker.0).await, json!(["engaged"]));
    assert_eq!(contact_tags(&app, &t, &key, &opener.0).await, json!(["new"]), "the opener was not tagged");
    let s = app.get(&format!("/customers/{t}/suppressions"), &key).await;
    assert!(s.body.to_string().contains(&opener.2), "{}", s.body);
    assert!(!s.body.to_string().contains(&clicker.2), "{}", s.body);
    let alerts = queued_alerts(&app, &t, &key, &w).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    // Each firing wrote its run, finished, with what it did.
    let tag_runs = runs(&app, &t, &key, &tagging).await;
    assert_eq!(tag_runs.len(), 1);
    assert_eq!(tag_runs[0]["status"], "done", "{}", tag_runs[0]);
    let steps = tag_runs[0]["steps"].to_string();
    assert!(steps.contains("tagged `engaged`") && steps.contains("untagged `new`"), "{steps}");
    let alert_runs = runs(&app, &t, &key, &alerting).await;
    assert_eq!(alert_runs[0]["status"], "done");
    assert!(alert_runs[0]["steps"].to_string().contains("queued for 1 endpoint"), "{}", alert_runs[0]);
    let quiet_runs = runs(&app, &t, &key, &suppressing).await;
    assert_eq!(quiet_runs[0]["status"], "done");
    assert!(quiet_runs[0]["steps"].to_string().contains("the address is suppressed"), "{}", quiet_runs[0]);
    // The tag counts follow (the audience of `engaged` is the clicker).
    let r = app.get(&format!("/customers/{t}/contacts?tag=engaged"), &key).await;
    assert_eq!(r.body.as_array().map(Vec::len), Some(1), "{}", r.body);
    // The alert reaches the endpoint through the webhook worker, signed, with the run's id.
    app.settle().await;
    let got = crate::tenant_webhooks::received_at_least(&app, &rx, 1).await;
    let body: Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!(body["type"], "automation.alert");
    assert_eq!(body["data"]["run_id"], alert_runs[0]["id"]);
    assert_eq!(body["data"]["event"]["contact_id"], json!(clicker.0));
}

#[tokio::test]
async fn a_rule_acts_once_per_email_and_event_type_whatever_is_replayed_or_arrives_together() {
    let app = spawn_with(options(&[], false)).await;
    let (t, key, _cid, sent) = campaign(&app, 2, true).await;
    let rx = Receiver::start().await;
    let (w, _) = endpoint(&app, &t, &key, &rx.url, &["automation.alert"]).await;
    let toggling = rule(
        &app,
        &t,
        &key,
        json!({ "name": "toggle", "trigger": { "event": "email.clicked" },
        "actions": [{ "type": "add_tag", "tag": "clicked" }, { "type": "notify", "message": "click" }] }),
    )
    .await;
    // The same event three times, and another click of the same email.
    for svix in ["c-1", "c-1", "c-2", "c-1"] {
        post_event(&app, svix, "email.clicked", &sent[0].1, json!({ "click": { "link": "https://acme.com/x" } })).await;
    }
    // Concurrent clicks of the other email, under different svix ids: they
    // may land in one group; the rule still fires once.
    let posts = (0..8).map(|i| {
        let app = &app;
        let id = sent[1].1.clone();
        async move {
            post_event(
                app,
                &format!("d-{i}"),
                "email.clicked",
                &id,
                json!({ "click": { "link": "https://acme.com/y" } }),
            )
            .await
        }
    });
    futures::future::join_all(posts).await;
    let all = runs(&app, &t, &key, &toggling).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|r| r["status"] == "done" && r["steps"].to_string().contains("tagged `clicked`")));
    assert_eq!(queued_alerts(&app, &t, &key, &w).await.len(), 2);
    for (contact, _, _) in &sent {
        assert_eq!(contact_tags(&app, &t, &key, contact).await, json!(["new", "clicked"]));
    }
    // Removed by hand, the tag is not put back by a replay.
    let r = app.patch(&format!("/customers/{t}/contacts/{}", sent[0].0), &key, json!({ "tags": ["new"] })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    post_event(&app, "c-3", "email.clicked", &sent[0].1, json!({ "click": { "link": "https://acme.com/z" } })).await;
    assert_eq!(contact_tags(&app, &t, &key, &sent[0].0).await, json!(["new"]));
    assert_eq!(runs(&app, &t, &key, &toggling).await.len(), 2);
}

#[tokio::test]
async fn a_rule_never_touches_another_tenants_contact_with_the_same_address() {
    let app = spawn_with(options(&[], false)).await;
    let (t, key, _cid, sent) = campaign(&app, 1, true).await;
    let (u, key_u) = app.verified_tenant("B", "bolt.com").await;
    let theirs = app.add_contact(&u, &key_u, json!({ "email": sent[0].2, "tags": ["new"] })).await;
    rule(
        &app,
        &t,
        &key,
        json!({ "name": "x", "trigger": { "event": "email.clicked" },
        "actions": [{ "type": "add_tag", "tag": "engaged" }, { "type": "remove_tag", "tag": "new" }, { "type": "suppress" }] }),
    )
    .await;
    // The other tenant has a rule on clicks too: not its message, so it does not fire.
    let their_rule = rule(
        &app,
        &u,
        &key_u,
        json!({ "name": "y", "trigger": { "event": "email.clicked" }, "actions": [{ "type": "add_tag", "tag": "theirs" }] }),
    )
    .await;
    post_event(&app, "c-1", "email.clicked", &sent[0].1, json!({ "click": { "link": "https://acme.com/x" } })).await;
    assert_eq!(contact_tags(&app, &t, &key, &sent[0].0).await, json!(["engaged"]));
    assert_eq!(contact_tags(&app, &u, &key_u, &theirs).await, json!(["new"]));
    let s = app.get(&format!("/customers/{u}/suppressions"), &key_u).await;
    assert!(!s.body.to_string().contains(&sent[0].2), "{}", s.body);
    assert!(runs(&app, &u, &key_u, &their_rule).await.is_empty());
}

#[tokio::test]
async fn rules_that_wait_send_or_ask_a_model_are_queued_and_a_send_keeps_its_checks() {
    let llm = MockLlm::start(MockLlmConfig { port: 0, ..MockLlmConfig::default() }).await.unwrap();
    let url = llm.url();
    // No worker runs in the background: what is seen before `settle` is ingestion's.
    let env = [("MAILROOM_LLM_URL", url.as_str()), ("MAILROOM_LLM_MODEL", "mock-1")];
    let app = spawn_with(options(&env, false)).await;
    let (t, key, _cid, sent) = campaign(&app, 3, true).await;
    let template = follow_up_template(&app, &t, &key).await;
    let delayed = rule(
        &app,
        &t,
        &key,
        json!({ "name": "later", "trigger": { "event": "email.opened" },
        "actions": [{ "type": "send_template", "template_id": template, "delay": "2d" }, { "type": "add_tag", "tag": "later" }] }),
    )
    .await;
    let late = rule(
        &app,
        &t,
        &key,
        json!({ "name": "late", "trigger": { "event": "email.delivery_delayed" },
        "actions": [{ "type": "add_tag", "tag": "late" }] }),
    )
    .await;
    let agent = rule(&app, &t, &key, agent_rule("email.opened", &template, Value::Null)).await;
    // Tag first (at ingestion), then the email (the worker, through the send path).
    let tag_then_send = rule(
        &app,
        &t,
        &key,
        json!({ "name": "tag and mail", "trigger": { "event": "email.clicked" },
        "actions": [{ "type": "add_tag", "tag": "followed" }, { "type": "send_template", "template_id": template }] }),
    )
    .await;
    // The third contact's address is suppressed: its email is refused at the send path.
    let r = app.post(&format!("/customers/{t}/suppressions"), &key, json!({ "emails": [sent[2].2] })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    post_event(&app, "o-0", "email.opened", &sent[0].1, json!({})).await;
    post_event(&app, "d-0", "email.delivery_delayed", &sent[0].1, json!({})).await;
    for (i, s) in sent.iter().enumerate().skip(1) {
        post_event(&app, &format!("c-{i}"), "email.clicked", &s.1, json!({ "click": { "link": "https://acme.com" } }))
            .await;
    }
    for r in [&delayed, &late, &agent] {
        let queued = runs(&app, &t, &key, r).await;
        assert_eq!(queued.len(), 1);
        assert_eq!(queued[0]["status"], "pending", "{}", queued[0]);
    }
    assert_eq!(contact_tags(&app, &t, &key, &sent[0].0).await, json!(["new"]));
    let mailing = runs(&app, &t, &key, &tag_then_send).await;
    assert_eq!(mailing.len(), 2);
    assert!(mailing.iter().all(|r| r["status"] == "pending" && r["steps"].to_string().contains("tagged `followed`")));
    for s in &sent[1..] {
        assert_eq!(contact_tags(&app, &t, &key, &s.0).await, json!(["new", "followed"]));
    }
    app.settle().await;
    app.drain().await;
    let done = runs(&app, &t, &key, &tag_then_send).await;
    assert!(done.iter().all(|r| r["status"] == "done"), "{done:?}");
    let mailed = |to: &str| {
        app.mock()
            .accepted()
            .iter()
            .filter(|s| s.to.first().map(String::as_str) == Some(to) && s.subject != "s")
            .count()
    };
    assert_eq!(mailed(&sent[1].2), 1, "{done:?}");
    assert_eq!(mailed(&sent[2].2), 0, "the suppressed address is not mailed: {done:?}");
    let refused = done.iter().find(|r| r["trigger"]["contact_id"] == json!(sent[2].0)).unwrap();
    assert!(refused["steps"].to_string().contains("suppressed; not mailed"), "{refused}");
}

/// A customer's deletion takes its rules' runs with it.
#[tokio::test]
async fn deleting_a_customer_deletes_its_rules_runs() {
    let app = spawn_with(options(&[], false)).await;
    let (t, key, _cid, sent) = campaign(&app, 1, true).await;
    let tagging = rule(
        &app,
        &t,
        &key,
        json!({ "name": "engaged", "trigger": { "event": "email.opened" }, "actions": [{ "type": "add_tag", "tag": "x" }] }),
    )
    .await;
    post_event(&app, "o-1", "email.opened", &sent[0].1, json!({})).await;
    assert_eq!(runs(&app, &t, &key, &tagging).await.len(), 1);
    assert_eq!(app.store.count_rows("automation_runs").await.unwrap(), 1);
    let r = app.delete(&format!("/customers/{t}"), crate::helpers::ADMIN_KEY).await;
    assert!(r.status.is_success(), "{} {}", r.status, r.body);
    assert_eq!(app.store.count_rows("automation_runs").await.unwrap(), 0);
}
