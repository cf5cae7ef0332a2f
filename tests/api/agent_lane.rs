//! Issue 20, section 4: fair shares of the agent. Agent runs have a lane of
//! their own (no rule of another tenant waits behind a model), run
//! concurrently with at most 2 per tenant and tenants in turn; model calls are
//! budgeted per tenant per UTC day (the operator may change a tenant's budget;
//! the tenant may not); the tokens of each answer are stored per run and
//! summed per tenant in `/metrics` and on the operator's dashboard.

use std::time::{Duration, Instant};

use mailroom::mock::llm::{MockLlm, MockLlmConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::automations::{
    agent_app, agent_rule, engine, follow_up_template, options, post_event, rule, runs, settled_runs,
};
use crate::helpers::{spawn_with, TestApp, ADMIN_KEY};

/// A verified customer with `n` contacts and a campaign sent to them:
/// (customer, key, [(contact id, provider email id)]).
async fn tenant_with_campaign(
    app: &TestApp,
    name: &str,
    domain: &str,
    n: usize,
    manual_outbox: bool,
) -> (String, String, Vec<(String, String)>) {
    let (t, key) = app.verified_tenant(name, domain).await;
    let mut contacts = Vec::new();
    for i in 0..n {
        let email = format!("{name}-{i}@example.org").to_lowercase();
        let id = app.add_contact(&t, &key, json!({ "email": email })).await;
        contacts.push((id, email));
    }
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    if manual_outbox {
        while app.outbox.try_dispatch_once().await.unwrap() != mailroom::outbox::Step::Empty {}
    } else {
        app.drain().await;
    }
    let accepted = app.mock().accepted();
    let sent = contacts
        .into_iter()
        .map(|(id, email)| {
            let s = accepted.iter().find(|s| s.to.first() == Some(&email)).expect("the campaign reached the contact");
            (id, s.id.clone())
        })
        .collect();
    (t, key, sent)
}

async fn click(app: &TestApp, svix: &str, email_id: &str) {
    post_event(app, svix, "email.clicked", email_id, json!({ "click": { "link": "https://example.com/a" } })).await;
}

async fn tags(app: &TestApp, t: &str, key: &str, contact: &str) -> Vec<Value> {
    let c = app.get(&format!("/customers/{t}/contacts/{contact}"), key).await;
    c.body["tags"].as_array().cloned().unwrap_or_default()
}

// Fails on the old main: runs were carried out one after another, so another
// tenant's `add_tag` (and its agent run) waited for all twenty decisions.
#[tokio::test]
async fn one_tenants_agent_backlog_holds_up_neither_another_tenants_rules_nor_its_agent() {
    // Every decision takes 6 s; the other tenant's tag must come within 4 s and
    // its own decision within 12 s (20 runs ahead of it, one after another, take 120 s;
    // taken oldest first on 8 lanes, without a per-tenant limit, 18 s).
    let llm = MockLlm::start(MockLlmConfig { port: 0, delay_ms: 6_000, ..MockLlmConfig::default() }).await.unwrap();
    let app = agent_app(&llm, "openai", &[("MAILROOM_LLM_TIMEOUT_MS", "60000")]).await;
    let (a, a_key, a_sent) = tenant_with_campaign(&app, "Busy", "busy.example", 20, false).await;
    let (b, b_key, b_sent) = tenant_with_campaign(&app, "Quiet", "quiet.example", 2, false).await;
    let a_template = follow_up_template(&app, &a, &a_key).await;
    let b_template = follow_up_template(&app, &b, &b_key).await;
    rule(&app, &a, &a_key, agent_rule("email.clicked", &a_template, Value::Null)).await;
    let b_agent = rule(&app, &b, &b_key, agent_rule("email.clicked", &b_template, Value::Null)).await;
    rule(
        &app,
        &b,
        &b_key,
        json!({ "name": "opened", "trigger": { "event": "email.opened" }, "actions": [{ "type": "add_tag", "tag": "opened" }] }),
    )
    .await;
    for (i, (_, email_id)) in a_sent.iter().enumerate() {
        click(&app, &format!("busy-{i}"), email_id).await;
    }
    crate::helpers::wait_for("the busy tenant's decisions to start", Duration::from_secs(20), || async {
        llm.requests() >= 2
    })
    .await;

    let start = Instant::now();
    post_event(&app, "quiet-open", "email.opened", &b_sent[0].1, json!({})).await;
    click(&app, "quiet-click", &b_sent[1].1).await;
    while !tags(&app, &b, &b_key, &b_sent[0].0).await.contains(&json!("opened")) {
        assert!(start.elapsed() < Duration::from_secs(4), "the other tenant's add_tag waited behind the model");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    loop {
        let r = runs(&app, &b, &b_key, &b_agent).await;
        if r.first().is_some_and(|r| r["status"] == "done") {
            assert_eq!(r[0]["agent"]["tool"], "add_tag", "{}", r[0]);
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(12), "the other tenant's agent run waited its turn too long");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Concurrent, but never more than 2 of the busy tenant at once (2 + the quiet one's).
    assert!(llm.max_in_flight() >= 2, "agent runs were not carried out concurrently");
    assert!(llm.max_in_flight() <= 3, "one tenant had more than 2 runs in flight: {}", llm.max_in_flight());
}

// Step by step: the local lane leaves agent runs alone; the agent lane claims
// tenants in turn (a newcomer first), at most 2 in flight each.
#[tokio::test]
async fn agent_runs_are_claimed_tenants_in_turn_at_most_two_each() {
    let llm = MockLlm::start(MockLlmConfig { port: 0, ..MockLlmConfig::default() }).await.unwrap();
    let url = llm.url();
    let env = [("MAILROOM_LLM_URL", url.as_str()), ("MAILROOM_LLM_MODEL", "mock-1")];
    let app = spawn_with(options(&env, false)).await;
    let (a, a_key, a_sent) = tenant_with_campaign(&app, "Alpha", "alpha.example", 4, true).await;
    let (b, b_key, b_sent) = tenant_with_campaign(&app, "Beta", "beta.example", 3, true).await;
    let (c, c_key, c_sent) = tenant_with_campaign(&app, "Gamma", "gamma.example", 1, true).await;
    for (t, key) in [(&a, &a_key), (&b, &b_key), (&c, &c_key)] {
        let template = follow_up_template(&app, t, key).await;
        rule(&app, t, key, agent_rule("email.clicked", &template, Value::Null)).await;
    }
    let local = rule(
        &app,
        &a,
        &a_key,
        json!({ "name": "clicked", "trigger": { "event": "email.clicked" }, "actions": [{ "type": "add_tag", "tag": "clicked" }] }),
    )
    .await;
    for (i, (_, email_id)) in a_sent.iter().enumerate() {
        click(&app, &format!("a-{i}"), email_id).await;
    }
    for (i, (_, email_id)) in b_sent.iter().enumerate() {
        click(&app, &format!("b-{i}"), email_id).await;
    }
    // The four `add_tag` runs were done at ingestion; the local lane leaves
    // the seven agent runs alone.
    let db = app._db.url.clone();
    let local_lane = engine(&app, &db, &env);
    assert_eq!(local_lane.step().await.unwrap(), 0);
    assert_eq!(runs(&app, &a, &a_key, &local).await.len(), 4);
    assert!(runs(&app, &a, &a_key, &local).await.iter().all(|r| r["status"] == "done"));
    assert_eq!(llm.requests(), 0);

    let store = &app.store;
    let claim = || async { store.claim_agent_run(600_000, 2).await.unwrap() };
    let tenant_of = |r: &Option<mailroom::store::ClaimedRun>| r.as_ref().map(|r| r.tenant_id.clone());
    let mut held = Vec::new();
    for expected in [&a, &b, &a, &b] {
        let r = claim().await;
        assert_eq!(tenant_of(&r).as_ref(), Some(expected));
        held.push(r.unwrap());
    }
    assert!(claim().await.is_none(), "each tenant has 2 in flight: nothing more is claimed");
    // One of Alpha's ends: Alpha's next run is claimable again.
    let end = |r: mailroom::store::ClaimedRun| async move {
        assert!(store.save_run(&r, "[]", mailroom::store::RunProgress::End { status: "done" }).await.unwrap());
    };
    end(held.remove(0)).await;
    let r = claim().await;
    assert_eq!(tenant_of(&r).as_ref(), Some(&a));
    held.push(r.unwrap());
    assert!(claim().await.is_none());
    // A newcomer is served first; then Beta (its turn is older than Alpha's), then Alpha.
    click(&app, "c-0", &c_sent[0].1).await;
    end(held.remove(0)).await; // Beta's
    end(held.remove(0)).await; // Alpha's
    for expected in [&c, &b, &a] {
        let r = claim().await;
        assert_eq!(tenant_of(&r).as_ref(), Some(expected));
    }
    assert!(claim().await.is_none(), "every run is claimed");
}

// Fails on the old main: model calls were not limited at all.
#[tokio::test]
async fn past_the_daily_budget_the_fallback_runs_and_the_run_shows_budget_exhausted() {
    let llm = MockLlm::start(MockLlmConfig { port: 0, ..MockLlmConfig::default() }).await.unwrap();
    let app = agent_app(&llm, "openai", &[("MAILROOM_AGENT_DAILY_CALLS", "2")]).await;
    let (t, key, sent) = tenant_with_campaign(&app, "Thrifty", "thrifty.example", 6, false).await;
    let template = follow_up_template(&app, &t, &key).await;
    let a =
        rule(&app, &t, &key, agent_rule("email.clicked", &template, json!({ "type": "add_tag", "tag": "fallback" })))
            .await;
    for (i, (_, email_id)) in sent.iter().take(3).enumerate() {
        click(&app, &format!("c-{i}"), email_id).await;
        settled_runs(&app, &t, &key, &a, i + 1).await;
    }
    assert_eq!(llm.requests(), 2, "the third call is past the budget: not made");
    let of = |all: &[Value], i: usize| {
        all.iter().find(|r| r["trigger"]["contact_id"] == json!(sent[i].0)).unwrap()["agent"]["outcome"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let all = runs(&app, &t, &key, &a).await;
    assert!(of(&all, 0).starts_with("done") && of(&all, 1).starts_with("done"), "{all:?}");
    let exhausted = of(&all, 2);
    assert!(exhausted.starts_with("budget_exhausted"), "{exhausted}");
    assert!(exhausted.contains("fallback add_tag"), "{exhausted}");
    assert_eq!(tags(&app, &t, &key, &sent[2].0).await, vec![json!("fallback")]);

    // The budget is the operator's to change, never the customer's.
    let path = format!("/customers/{t}");
    let r = app.patch(&path, &key, json!({ "agent_daily_calls": 1000 })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "forbidden", "{}", r.body);
    let r = app.patch(&path, &key, json!({ "name": "Renamed", "agent_daily_calls": null })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(app.get(&path, &key).await.body["name"], "Thrifty", "nothing changed");
    for bad in [json!(-1), json!(1.5), json!("3"), json!(10_000_001), json!(true)] {
        let r = app.patch(&path, ADMIN_KEY, json!({ "agent_daily_calls": bad })).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", r.body);
        assert!(r.body["error"]["message"].as_str().is_some(), "{}", r.body);
    }
    let r = app.patch(&path, ADMIN_KEY, json!({ "agent_daily_call": 3 })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "unknown field: {}", r.body);
    assert_eq!(app.get(&path, &key).await.body["agent_daily_calls"], Value::Null);
    let r = app.patch(&path, ADMIN_KEY, json!({ "agent_daily_calls": 3 })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["agent_daily_calls"], 3);
    assert_eq!(app.get(&path, &key).await.body["agent_daily_calls"], 3);

    // Three today: one more call, then the fourth is past it again.
    click(&app, "c-3", &sent[3].1).await;
    settled_runs(&app, &t, &key, &a, 4).await;
    click(&app, "c-4", &sent[4].1).await;
    let all = settled_runs(&app, &t, &key, &a, 5).await;
    assert_eq!(llm.requests(), 3);
    assert!(of(&all, 3).starts_with("done"), "{}", of(&all, 3));
    assert!(of(&all, 4).starts_with("budget_exhausted"), "{}", of(&all, 4));
    // A new UTC day, a new budget; null puts the default back.
    app.advance(Duration::from_secs(86_400));
    let r = app.patch(&path, ADMIN_KEY, json!({ "agent_daily_calls": null })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["agent_daily_calls"], Value::Null);
    click(&app, "c-5", &sent[5].1).await;
    let all = settled_runs(&app, &t, &key, &a, 6).await;
    assert!(of(&all, 5).starts_with("done"), "{}", of(&all, 5));
    assert_eq!(llm.requests(), 4);
}

/// The value of the `/metrics` sample named `name` whose labels include all of `labels`.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
        .find_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
}

/// The operator's tenant list, signed in with the admin key.
async fn operator_tenants_page(app: &TestApp) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let cookies = |r: &reqwest::Response| {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let login = http.get(format!("{}/ui/login", app.base)).send().await.unwrap();
    let jar = cookies(&login);
    let html = login.text().await.unwrap();
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    let csrf = html[at..].split('"').next().unwrap().to_owned();
    let r = http
        .post(format!("{}/ui/login", app.base))
        .header("cookie", &jar)
        .form(&[("key", ADMIN_KEY), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = cookies(&r);
    let page = http.get(format!("{}/ui/tenants", app.base)).header("cookie", session).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

// Fails on the old main: the answer's `usage` was dropped.
#[tokio::test]
async fn tokens_of_each_answer_are_stored_per_run_and_summed_per_tenant() {
    for api in ["openai", "anthropic"] {
        let llm = MockLlm::start(MockLlmConfig { port: 0, ..MockLlmConfig::default() }).await.unwrap();
        let app = agent_app(&llm, api, &[]).await;
        let (t, key, sent) = tenant_with_campaign(&app, "Counted", "counted.example", 2, false).await;
        let template = follow_up_template(&app, &t, &key).await;
        let a = rule(&app, &t, &key, agent_rule("email.clicked", &template, Value::Null)).await;
        click(&app, "c-0", &sent[0].1).await;
        click(&app, "c-1", &sent[1].1).await;
        let all = settled_runs(&app, &t, &key, &a, 2).await;
        let (mut input, mut output) = (0, 0);
        for r in &all {
            let (i, o) = (r["agent"]["input_tokens"].as_i64(), r["agent"]["output_tokens"].as_i64());
            assert!(i.is_some_and(|i| i > 0) && o.is_some_and(|o| o > 0), "{api}: {r}");
            input += i.unwrap();
            output += o.unwrap();
        }
        let (mock_input, mock_output) = llm.tokens();
        assert_eq!((input, output), (mock_input as i64, mock_output as i64), "{api}: what the model reported");

        let metrics = app.http.get(format!("{}/metrics", app.base)).bearer_auth(ADMIN_KEY).send().await.unwrap();
        let metrics = metrics.text().await.unwrap();
        let tenant = format!("tenant=\"{t}\"");
        assert_eq!(
            sample(&metrics, "mailroom_agent_tokens_total", &[&tenant, "kind=\"input\""]),
            Some(input as f64),
            "{api}"
        );
        assert_eq!(
            sample(&metrics, "mailroom_agent_tokens_total", &[&tenant, "kind=\"output\""]),
            Some(output as f64),
            "{api}"
        );
        assert_eq!(sample(&metrics, "mailroom_agent_calls_total", &[&tenant, "outcome=\"answered\""]), Some(2.0));

        let page = operator_tenants_page(&app).await;
        assert!(page.contains("Model tokens"), "{page}");
        // Numbers with thousands separators, each cell labelled for phones.
        let tokens = (input + output).to_string();
        let grouped: Vec<String> =
            tokens.as_bytes().rchunks(3).rev().map(|c| String::from_utf8(c.to_vec()).unwrap()).collect();
        let cell = format!("data-label=\"Model tokens\">{}</td>", grouped.join(","));
        assert!(page.contains(&cell), "{api}: {cell} in {page}");
        assert!(page.contains("2 of 1,000"), "{api}: {page}");
    }
}
