//! Automations' emails about a topic (issue 23, section 1: "checked when the
//! audience is resolved and again at claim, for automation sends too"): the
//! action's own topic, or the topic of the campaign whose email triggered the
//! rule; checked when the email is queued and again when it is claimed; its
//! one-click unsubscribe leaves that topic only.

use mailroom::mock::llm::{MockLlm, MockLlmConfig};
use mailroom::outbox::Step;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{standing, topic};
use crate::automations::{
    agent_app, agent_rule, engine, follow_up_template, options, post_event, rule, runs, settled_runs,
};
use crate::helpers::{spawn_on, spawn_with, TestApp, TestDb};

/// A verified customer with the `opt_out` topic "News" and the `opt_in`
/// topic "Offers", contacts `a`, `b` and `c` at `example.org`, and a
/// campaign to News sent to them all: the provider's email id of each.
struct Fixture {
    t: String,
    key: String,
    news: String,
    offers: String,
    contacts: Vec<String>,
    emails: Vec<String>,
}

async fn fixture(app: &TestApp) -> Fixture {
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(app, &t, &key, json!({ "name": "News", "default": "opt_out" })).await;
    let offers = topic(app, &t, &key, json!({ "name": "Offers" })).await;
    let mut contacts = Vec::new();
    for name in ["a", "b", "c"] {
        contacts.push(app.add_contact(&t, &key, json!({ "email": format!("{name}@example.org") })).await);
    }
    let r = app
        .post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>", "topic_id": news }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert_eq!(r.body["sent_to"], 3, "{}", r.body);
    if app.runs_workers {
        app.drain().await;
    } else {
        while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    }
    let accepted = app.mock().accepted();
    let emails = ["a", "b", "c"]
        .iter()
        .map(|n| {
            let to = format!("{n}@example.org");
            accepted.iter().find(|e| e.to.first() == Some(&to)).expect("the campaign's email").id.clone()
        })
        .collect();
    Fixture { t, key, news, offers, contacts, emails }
}

async fn choose(app: &TestApp, f: &Fixture, contact: usize, topic: &str, state: &str) {
    let body = json!({ "topics": [{ "id": topic, "state": state }] });
    let r = app.patch(&format!("/customers/{}/contacts/{}/topics", f.t, f.contacts[contact]), &f.key, body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// The follow-ups (anything but the campaign's subject `s`) the provider accepted for `to`.
fn follow_ups(app: &TestApp, to: &str) -> usize {
    app.mock().accepted().iter().filter(|e| e.to.first().map(String::as_str) == Some(to) && e.subject != "s").count()
}

/// The run of the contact, and its first step.
fn run_of<'a>(runs: &'a [Value], contact: &str) -> (&'a Value, &'a Value) {
    let run = runs.iter().find(|r| r["trigger"]["contact_id"] == json!(contact)).expect("a run of the contact");
    (run, &run["steps"][0])
}

async fn follow_up_rule(app: &TestApp, f: &Fixture, send: Value) -> String {
    let mut action = json!({ "type": "send_template", "template_id": follow_up_template(app, &f.t, &f.key).await });
    action.as_object_mut().unwrap().extend(send.as_object().unwrap().clone());
    rule(app, &f.t, &f.key, json!({ "name": "follow up", "trigger": { "event": "email.opened" }, "actions": [action] }))
        .await
}

#[tokio::test]
async fn a_follow_up_to_a_topic_campaign_reaches_only_contacts_still_subscribed_to_the_topic() {
    let app = spawn_with(options(&[], true)).await;
    let f = fixture(&app).await;
    let follow = follow_up_rule(&app, &f, json!({})).await;
    // `b` leaves News after the campaign; `a` stays.
    choose(&app, &f, 1, &f.news, "unsubscribed").await;
    post_event(&app, "o-a", "email.opened", &f.emails[0], json!({})).await;
    post_event(&app, "o-b", "email.opened", &f.emails[1], json!({})).await;
    let done = settled_runs(&app, &f.t, &f.key, &follow, 2).await;
    let (_, sent) = run_of(&done, &f.contacts[0]);
    assert_eq!(sent["outcome"], "done", "{sent}");
    let (run, refused) = run_of(&done, &f.contacts[1]);
    assert_eq!(refused["outcome"], "cancelled", "unmailable: {run}");
    assert!(
        refused["detail"].as_str().unwrap().contains("not subscribed to topic “News”"),
        "the step says why: {refused}"
    );
    app.drain().await;
    assert_eq!(follow_ups(&app, "a@example.org"), 1);
    assert_eq!(follow_ups(&app, "b@example.org"), 0);
}

#[tokio::test]
async fn a_follow_up_names_its_own_topic_which_must_be_the_customers() {
    let app = spawn_with(options(&[], true)).await;
    let f = fixture(&app).await;
    // Another customer's topic, an unknown one and a malformed one are refused, on create and on change.
    let (other, other_key) = app.verified_tenant("Other", "other.com").await;
    let theirs = topic(&app, &other, &other_key, json!({ "name": "Theirs", "default": "opt_out" })).await;
    let template = follow_up_template(&app, &f.t, &f.key).await;
    let path = format!("/customers/{}/automations", f.t);
    let before = app.get(&path, &f.key).await.body;
    for (id, says) in [
        (theirs.clone(), format!("no such topic: {theirs}")),
        (mailroom::domain::new_id(), "no such topic".to_owned()),
        ("news".to_owned(), "actions[0].topic_id is not a topic id".to_owned()),
    ] {
        let body = json!({ "name": "x", "trigger": { "event": "email.opened" },
            "actions": [{ "type": "send_template", "template_id": template, "topic_id": id }] });
        let r = app.post(&path, &f.key, body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{id}: {}", r.body);
        assert!(r.body["error"]["message"].as_str().unwrap().contains(&says), "{says}: {}", r.body);
    }
    assert_eq!(app.get(&path, &f.key).await.body, before, "nothing was created");
    // Offers (opt_in) on a follow-up to News mail: the action's topic wins over the campaign's.
    let follow = follow_up_rule(&app, &f, json!({ "topic_id": f.offers })).await;
    let shown = app.get(&format!("{path}/{follow}"), &f.key).await;
    assert_eq!(shown.body["actions"][0]["topic_id"], f.offers.as_str(), "{}", shown.body);
    let r = app
        .patch(
            &format!("{path}/{follow}"),
            &f.key,
            json!({ "actions": [{ "type": "send_template", "template_id": template, "topic_id": theirs }] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    choose(&app, &f, 0, &f.offers, "subscribed").await;
    post_event(&app, "o-a", "email.opened", &f.emails[0], json!({})).await;
    post_event(&app, "o-b", "email.opened", &f.emails[1], json!({})).await;
    let done = settled_runs(&app, &f.t, &f.key, &follow, 2).await;
    assert_eq!(run_of(&done, &f.contacts[0]).1["outcome"], "done");
    let (_, refused) = run_of(&done, &f.contacts[1]);
    assert_eq!(refused["outcome"], "cancelled", "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("topic “Offers”"), "{refused}");
    app.drain().await;
    assert_eq!((follow_ups(&app, "a@example.org"), follow_ups(&app, "b@example.org")), (1, 0));
    // The topic is deleted: the rule's sends are skipped, saying so.
    assert_eq!(
        app.delete(&format!("/customers/{}/topics/{}", f.t, f.offers), &f.key).await.status,
        StatusCode::NO_CONTENT
    );
    post_event(&app, "o-c", "email.opened", &f.emails[2], json!({})).await;
    let done = settled_runs(&app, &f.t, &f.key, &follow, 3).await;
    let (_, skipped) = run_of(&done, &f.contacts[2]);
    assert_eq!(
        (skipped["outcome"].as_str(), skipped["detail"].as_str()),
        (Some("skipped"), Some("the topic was deleted"))
    );
    app.drain().await;
    assert_eq!(follow_ups(&app, "c@example.org"), 0);
}

#[tokio::test]
async fn a_queued_follow_up_is_dropped_at_claim_when_its_contact_left_the_topic_meanwhile() {
    let db = TestDb::new().await;
    let url = db.url.clone();
    let app = spawn_on(db, options(&[], false)).await;
    let f = fixture(&app).await;
    let follow = follow_up_rule(&app, &f, json!({})).await;
    for (i, email) in f.emails.iter().enumerate() {
        post_event(&app, &format!("o-{i}"), "email.opened", email, json!({})).await;
    }
    // The engine queues the three follow-ups; the outbox has not claimed them.
    assert_eq!(engine(&app, &url, &[]).step().await.unwrap(), 3);
    let done = runs(&app, &f.t, &f.key, &follow).await;
    let queued: Vec<String> = f
        .contacts
        .iter()
        .map(|c| {
            let (_, step) = run_of(&done, c);
            let detail = step["detail"].as_str().unwrap();
            assert!(detail.starts_with("email ") && detail.ends_with(" queued"), "{step}");
            detail.trim_start_matches("email ").trim_end_matches(" queued").to_owned()
        })
        .collect();
    // Meanwhile `a` leaves News, and `b` unsubscribes from everything.
    choose(&app, &f, 0, &f.news, "unsubscribed").await;
    let r = app
        .patch(&format!("/customers/{}/contacts/{}", f.t, f.contacts[1]), &f.key, json!({ "is_subscribed": false }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    assert_eq!(follow_ups(&app, "a@example.org") + follow_ups(&app, "b@example.org"), 0, "checked again at claim");
    assert_eq!(follow_ups(&app, "c@example.org"), 1);
    for (id, status) in queued.iter().zip(["suppressed", "suppressed", "sent"]) {
        let m = app.get(&format!("/customers/{}/messages/{id}", f.t), &f.key).await;
        assert_eq!(m.status, StatusCode::OK, "{}", m.body);
        assert_eq!(m.body["status"], status, "as a campaign's message blocked at claim: {}", m.body);
    }
}

#[tokio::test]
async fn one_click_from_a_follow_up_about_a_topic_leaves_that_topic_only() {
    let app = spawn_with(options(&[], true)).await;
    let f = fixture(&app).await;
    let follow = follow_up_rule(&app, &f, json!({})).await;
    post_event(&app, "o-a", "email.opened", &f.emails[0], json!({})).await;
    settled_runs(&app, &f.t, &f.key, &follow, 1).await;
    app.drain().await;
    let accepted = app.mock().accepted();
    let email = accepted.iter().find(|e| e.to[0] == "a@example.org" && e.subject != "s").expect("the follow-up");
    let header = email.headers.get("List-Unsubscribe").expect("List-Unsubscribe header");
    let path = url::Url::parse(header.trim_start_matches('<').trim_end_matches('>')).unwrap().path().to_owned();
    let page = app.http.get(format!("{}{path}", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<strong>News</strong>"), "the page names the topic: {page}");
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let s = |n: &str, st: &str, d: bool| (n.to_owned(), st.to_owned(), d);
    assert_eq!(
        standing(&app, &f.t, &f.key, &f.contacts[0]).await,
        [s("News", "unsubscribed", false), s("Offers", "unsubscribed", true)],
        "News only; Offers stays at its default"
    );
    let contact = app.get(&format!("/customers/{}/contacts/{}", f.t, f.contacts[0]), &f.key).await;
    assert_eq!(contact.body["status"], "subscribed", "still subscribed to the rest: {}", contact.body);
    let suppressed = app.get(&format!("/customers/{}/suppressions", f.t), &f.key).await;
    assert!(suppressed.body.as_array().unwrap().is_empty(), "{}", suppressed.body);
}

#[tokio::test]
async fn the_agents_follow_up_to_a_topic_campaign_keeps_to_the_topic() {
    let llm = MockLlm::start(MockLlmConfig { port: 0, ..MockLlmConfig::default() }).await.unwrap();
    let app = agent_app(&llm, "openai", &[]).await;
    let f = fixture(&app).await;
    let template = follow_up_template(&app, &f.t, &f.key).await;
    let agent = rule(
        &app,
        &f.t,
        &f.key,
        agent_rule("email.opened", &template, json!({ "type": "add_tag", "tag": "not-followed" })),
    )
    .await;
    choose(&app, &f, 1, &f.news, "unsubscribed").await;
    post_event(&app, "o-a", "email.opened", &f.emails[0], json!({})).await;
    post_event(&app, "o-b", "email.opened", &f.emails[1], json!({})).await;
    let done = settled_runs(&app, &f.t, &f.key, &agent, 2).await;
    let outcome = |c: usize| run_of(&done, &f.contacts[c]).0["agent"]["outcome"].as_str().unwrap().to_owned();
    assert!(outcome(0).starts_with("done"), "{}", outcome(0));
    assert!(outcome(1).starts_with("refused: the contact is not subscribed to topic “News”"), "{}", outcome(1));
    assert!(outcome(1).contains("fallback add_tag"), "{}", outcome(1));
    app.drain().await;
    assert_eq!((follow_ups(&app, "a@example.org"), follow_ups(&app, "b@example.org")), (1, 0));
}
