//! Templates: versions, rendering rules for untrusted templates, previews, and
//! sends that name a template.

use mailroom::outbox::Step;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_with, Options, TestApp, ADMIN_KEY};

async fn app_with_tenant(run_worker: bool) -> (TestApp, String, String) {
    let app = spawn_with(Options { resend: true, run_worker, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    (app, t, key)
}

async fn create(app: &TestApp, t: &str, key: &str, body: Value) -> Value {
    let r = app.post(&format!("/customers/{t}/templates"), key, body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

async fn dispatch_all(app: &TestApp) {
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
}

#[tokio::test]
async fn every_new_tenant_starts_with_six_editable_templates() {
    let (app, t, key) = app_with_tenant(true).await;
    let list = app.get(&format!("/customers/{t}/templates"), &key).await;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<&str> = list.body.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 6, "{names:?}");
    let expected_names = [
        "Ticket confirmation",
        "Shipping notification",
        "Password reset",
        "Invitation",
        "Follow-up",
        "Confirm your subscription",
    ];
    for expected in expected_names {
        assert!(names.contains(&expected), "{expected} in {names:?}");
    }
    let shipping = list.body.as_array().unwrap().iter().find(|t| t["name"] == "Shipping notification").unwrap();
    assert!(shipping["html"].as_str().unwrap().contains("tracking_url"));
    let id = shipping["id"].as_str().unwrap();
    let edited = app.patch(&format!("/customers/{t}/templates/{id}"), &key, json!({ "subject": "Shipped!" })).await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["version"], 2);
    // Another tenant has its own six, and cannot see these.
    let (t2, key2) = app.verified_tenant("Other", "other.com").await;
    assert_eq!(app.get(&format!("/customers/{t2}/templates"), &key2).await.body.as_array().unwrap().len(), 6);
    assert_eq!(app.get(&format!("/customers/{t}/templates/{id}"), &key2).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/customers/{t2}/templates/{id}"), &key2).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_change_is_a_new_version_and_old_versions_stay_readable() {
    let (app, t, key) = app_with_tenant(true).await;
    let tpl =
        create(&app, &t, &key, json!({ "name": "News", "subject": "v1 {{ first_name }}", "html": "<p>one</p>" })).await;
    assert_eq!(tpl["version"], 1);
    let id = tpl["id"].as_str().unwrap();
    let v2 = app
        .patch(&format!("/customers/{t}/templates/{id}"), &key, json!({ "html": "<p>two</p>", "text": "two" }))
        .await;
    assert_eq!(v2.body["version"], 2);
    assert_eq!(v2.body["subject"], "v1 {{ first_name }}", "an absent field stays");
    let v3 = app.patch(&format!("/customers/{t}/templates/{id}"), &key, json!({ "text": null })).await;
    assert_eq!(v3.body["version"], 3);
    assert_eq!(v3.body["text"], Value::Null);
    let versions = app.get(&format!("/customers/{t}/templates/{id}/versions"), &key).await;
    let numbers: Vec<i64> = versions.body.as_array().unwrap().iter().map(|v| v["version"].as_i64().unwrap()).collect();
    assert_eq!(numbers, vec![3, 2, 1]);
    assert_eq!(versions.body[2]["html"], "<p>one</p>");
    assert_eq!(app.delete(&format!("/customers/{t}/templates/{id}"), &key).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/customers/{t}/templates/{id}"), &key).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn syntax_errors_name_the_part_line_and_column() {
    let (app, t, key) = app_with_tenant(true).await;
    let r = app
        .post(
            &format!("/customers/{t}/templates"),
            &key,
            json!({ "name": "Bad", "subject": "ok", "html": "<p>\n  {% if x %}unclosed</p>" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "invalid_template");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("`html` line "), "{message}");
    assert!(message.contains("column"), "{message}");
    let r = app
        .post(&format!("/customers/{t}/templates"), &key, json!({ "name": "Bad", "subject": "{{ x", "html": "h" }))
        .await;
    assert!(r.body["error"]["message"].as_str().unwrap().starts_with("`subject` line 1"), "{}", r.body);
    // Nothing was saved, and a bad edit leaves the template as it was.
    let good = create(&app, &t, &key, json!({ "name": "Good", "subject": "s", "html": "h" })).await;
    let id = good["id"].as_str().unwrap();
    let r = app.patch(&format!("/customers/{t}/templates/{id}"), &key, json!({ "html": "{% for %}" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.get(&format!("/customers/{t}/templates/{id}"), &key).await.body["version"], 1);
    assert_eq!(app.get(&format!("/customers/{t}/templates"), &key).await.body.as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn a_runaway_template_is_stopped_by_the_fuel_limit_with_a_clear_error() {
    let (app, t, key) = app_with_tenant(true).await;
    let html = "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}";
    let r = app
        .post(&format!("/customers/{t}/templates"), &key, json!({ "name": "Loop", "subject": "s", "html": html }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("fuel"), "{}", r.body);
    // Recursion through a macro stops too.
    let html = "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}";
    let r = app
        .post(&format!("/customers/{t}/templates"), &key, json!({ "name": "Rec", "subject": "s", "html": html }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
}

#[tokio::test]
async fn bad_template_input_is_refused_with_4xx() {
    let (app, t, key) = app_with_tenant(true).await;
    let path = format!("/customers/{t}/templates");
    for body in [
        json!({ "name": "x", "subject": "s", "html": "h", "extra": 1 }),
        json!({ "name": "", "subject": "s", "html": "h" }),
        json!({ "name": "x", "subject": "a\r\nBcc: v@x.org", "html": "h" }),
        json!({ "name": "x", "subject": "s", "html": "   " }),
        json!({ "name": "x", "subject": "s" }),
        json!({ "name": "x", "subject": "s", "html": "h\u{0}" }),
    ] {
        let r = app.post(&path, &key, body.clone()).await;
        assert!(r.status.is_client_error(), "{body}: {} {}", r.status, r.body);
        assert!(r.body["error"]["code"].is_string(), "{}", r.body);
    }
    let big = "x".repeat(600_000);
    let r = app.post(&path, &key, json!({ "name": "x", "subject": "s", "html": big })).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    let r = app.get(&format!("/customers/{t}/templates/not-an-id"), &key).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn values_are_escaped_in_html_but_not_in_subject_or_text() {
    let (app, t, key) = app_with_tenant(true).await;
    app.add_contact(&t, &key, json!({ "email": "ada@example.org", "first_name": "Ada <3" })).await;
    let tpl = create(
        &app,
        &t,
        &key,
        json!({ "name": "Order", "subject": "Order {{ order }} for {{ first_name }}",
                "html": "<p>{{ order }} {{ contact.first_name }} {{ missing.deeply.nested }}</p>",
                "text": "Order {{ variables.order }} for {{ first_name }}" }),
    )
    .await;
    let r = app
        .post(
            &format!("/customers/{t}/send/single"),
            &key,
            json!({ "to_email": "ada@example.org", "template_id": tpl["id"], "variables": { "order": "<b>A&B</b>" } }),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.drain().await;
    let sent = &app.mock().accepted()[0];
    assert_eq!(sent.subject, "Order <b>A&B</b> for Ada <3");
    assert_eq!(sent.html.as_deref(), Some("<p>&lt;b&gt;A&amp;B&lt;&#x2f;b&gt; Ada &lt;3 </p>"));
    assert_eq!(sent.text.as_deref(), Some("Order <b>A&B</b> for Ada <3"));
    assert!(sent.headers.is_empty(), "transactional mail has no unsubscribe headers: {:?}", sent.headers);
}

#[tokio::test]
async fn a_campaign_keeps_rendering_its_template_version_while_the_template_changes() {
    let (app, t, key) = app_with_tenant(false).await;
    // More than one dispatch step takes (4 requests of 100).
    app.import_contacts(&t, &key, 450, "example.org").await;
    let tpl =
        create(&app, &t, &key, json!({ "name": "N", "subject": "Version one", "html": "<p>one {{ n }}</p>" })).await;
    let id = tpl["id"].as_str().unwrap();
    let sent =
        app.post(&format!("/customers/{t}/send"), &key, json!({ "template_id": id, "variables": { "n": 7 } })).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let cid = sent.body["campaign_id"].as_str().unwrap().to_owned();
    // Part of the campaign goes out, then the template changes, then the rest goes.
    assert!(matches!(app.outbox.try_dispatch_once().await.unwrap(), Step::Dispatched { .. }));
    let v2 = app.patch(&format!("/customers/{t}/templates/{id}"), &key, json!({ "subject": "Version two" })).await;
    assert_eq!(v2.body["version"], 2);
    dispatch_all(&app).await;
    let accepted = app.mock().accepted();
    assert_eq!(accepted.len(), 450);
    assert!(accepted.iter().all(|e| e.subject == "Version one"), "every email of the campaign is version 1");
    assert!(accepted.iter().all(|e| e.html.as_deref().unwrap().starts_with("<p>one 7</p>")));
    assert!(accepted.iter().all(|e| e.text.as_deref().unwrap().contains("one 7")), "text derived from html");
    let campaign = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    assert_eq!(campaign.body["template_id"], id);
    assert_eq!(campaign.body["template_version"], 1);
    // The next campaign takes the new version.
    let next = app.post(&format!("/customers/{t}/send"), &key, json!({ "template_id": id })).await;
    dispatch_all(&app).await;
    let cid2 = next.body["campaign_id"].as_str().unwrap();
    assert_eq!(app.get(&format!("/customers/{t}/campaigns/{cid2}"), &key).await.body["template_version"], 2);
    assert!(app.mock().has_subject("Version two"));
}

#[tokio::test]
async fn a_send_takes_a_template_or_inline_content_but_not_both() {
    let (app, t, key) = app_with_tenant(true).await;
    app.add_contact(&t, &key, json!({ "email": "a@example.org" })).await;
    let tpl = create(&app, &t, &key, json!({ "name": "N", "subject": "s", "html": "h" })).await;
    let send = format!("/customers/{t}/send");
    let both = app.post(&send, &key, json!({ "template_id": tpl["id"], "subject": "s", "html": "h" })).await;
    assert_eq!(both.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", both.body);
    let neither = app.post(&send, &key, json!({})).await;
    assert_eq!(neither.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", neither.body);
    let vars_inline = app.post(&send, &key, json!({ "subject": "s", "html": "h", "variables": {} })).await;
    assert_eq!(vars_inline.status, StatusCode::UNPROCESSABLE_ENTITY);
    let bad_vars = app.post(&send, &key, json!({ "template_id": tpl["id"], "variables": [1] })).await;
    assert_eq!(bad_vars.status, StatusCode::UNPROCESSABLE_ENTITY);
    let unknown = app.post(&send, &key, json!({ "template_id": "01a20eb1-e502-7109-8af3-e707f8c190f1" })).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    // Another tenant's template is not found either.
    let (t2, key2) = app.verified_tenant("B", "b.com").await;
    app.add_contact(&t2, &key2, json!({ "email": "b@example.org" })).await;
    let theirs = app.post(&format!("/customers/{t2}/send"), &key2, json!({ "template_id": tpl["id"] })).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "{}", theirs.body);
}

#[tokio::test]
async fn a_preview_renders_for_a_contact_or_sample_variables() {
    let (app, t, key) = app_with_tenant(true).await;
    let contact = app
        .add_contact(
            &t,
            &key,
            json!({ "email": "p@example.org", "first_name": "Pat", "attributes": { "plan": "pro" } }),
        )
        .await;
    let tpl = create(
        &app,
        &t,
        &key,
        json!({ "name": "P", "subject": "Hi {{ first_name | default('there') }}",
                "html": "<p>{{ contact.attributes.plan }} {{ code }} <a href=\"{{ unsubscribe_url }}\">u</a> {{ tenant.name }}</p>" }),
    )
    .await;
    let path = format!("/customers/{t}/templates/{}/preview", tpl["id"].as_str().unwrap());
    let r = app.post(&path, &key, json!({ "contact_id": contact, "variables": { "code": "X1" } })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["subject"], "Hi Pat");
    let html = r.body["html"].as_str().unwrap();
    assert!(html.starts_with("<p>pro X1 <a href=\""), "{html}");
    assert!(html.ends_with("\">u</a> Acme</p>"), "{html}");
    assert!(r.body["text"].as_str().unwrap().contains("pro X1"), "{}", r.body);
    let sample = app.post(&path, &key, json!({})).await;
    assert_eq!(sample.body["subject"], "Hi there");
    let missing = app.post(&path, &key, json!({ "contact_id": "01a20eb1-e502-7109-8af3-e707f8c190f1" })).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let unknown = app.post(&path, &key, json!({ "contact": 1 })).await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    let admin = app.post(&path, ADMIN_KEY, json!({})).await;
    assert_eq!(admin.status, StatusCode::OK, "the operator may preview too");
}

#[tokio::test]
async fn inline_html_replaces_only_first_name_and_unsubscribe_url() {
    let (app, t, key) = app_with_tenant(true).await;
    app.add_contact(&t, &key, json!({ "email": "i@example.org", "first_name": "Ida" })).await;
    let html = "<p>{{first_name}} {{ other }} {% raw %} <a href=\"{{ unsubscribe_url }}\">out</a></p>";
    let r = app
        .post(&format!("/customers/{t}/send"), &key, json!({ "subject": "S {{unsubscribe_url}}", "html": html }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.drain().await;
    let e = &app.mock().accepted()[0];
    let url = e.headers["List-Unsubscribe"].trim_start_matches('<').trim_end_matches('>').to_owned();
    let html = e.html.as_deref().unwrap();
    let placed = format!("<p>Ida {{{{ other }}}} {{% raw %}} <a href=\"{url}\">out</a></p>\n");
    assert!(html.starts_with(&placed), "{html}");
    let footer = &html[placed.len()..];
    assert!(!footer.contains("/u/"), "the unsubscribe link is placed, so the footer does not add it: {footer}");
    assert!(footer.contains(&url.replacen("/u/", "/p/", 1)), "only the preferences link: {footer}");
    assert_eq!(e.subject, "S {{unsubscribe_url}}", "the subject keeps the seed's rule: only first_name");
}

#[tokio::test]
async fn a_template_that_runs_away_for_one_recipient_dead_letters_that_one_only() {
    let (app, t, key) = app_with_tenant(true).await;
    // Fine for the sample recipient (and for most data), so it is saved
    // (before the contact it runs away for exists: a save renders it for the
    // first contacts too).
    let html = "{% set n = contact.attributes.n | default(1) %}{% for i in range(n) %}{% for j in range(n) %}x{% endfor %}{% endfor %}";
    let tpl = create(&app, &t, &key, json!({ "name": "Grid", "subject": "s", "html": html })).await;
    app.add_contact(&t, &key, json!({ "email": "small@example.org", "attributes": { "n": 2 } })).await;
    app.add_contact(&t, &key, json!({ "email": "huge@example.org", "attributes": { "n": 100000 } })).await;
    // Data-dependent errors (a filter on a missing value) do not block saving either.
    create(&app, &t, &key, json!({ "name": "Round", "subject": "s", "html": "{{ total | round(2) }}" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "template_id": tpl["id"] })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.drain().await;
    let accepted = app.mock().accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].to, vec!["small@example.org"]);
    assert!(accepted[0].html.as_deref().unwrap().starts_with("xxxx"));
    let dead = app.get(&format!("/customers/{t}/dead-letters"), &key).await;
    let dead = dead.body.as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(dead[0]["last_error"].as_str().unwrap().contains("fuel"), "{dead:?}");
}

/// Doubles a 100 MB string a dozen times: 5 GB from a 120-byte template, in
/// a handful of instructions (fuel does not see it).
const MEMORY_BOMB: &str =
    "{% set a = 'x' * 100000000 %}{% set b = a~a~a~a~a~a~a~a~a~a %}{% set c = b~b %}{{ c|length }}";

#[tokio::test]
async fn a_template_that_grows_memory_without_bound_is_refused_and_the_server_lives_on() {
    let (app, t, key) = app_with_tenant(true).await;
    let started = std::time::Instant::now();
    let r = app
        .post(
            &format!("/customers/{t}/templates"),
            &key,
            json!({ "name": "Bomb", "subject": "s", "html": MEMORY_BOMB }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("MAILROOM_RENDER_MEMORY_MB"), "{}", r.body);
    // Fuel-cheap doubling in a loop: refused the same way.
    let doubling = "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}";
    let r = app
        .post(
            &format!("/customers/{t}/templates"),
            &key,
            json!({ "name": "Doubling", "subject": "s", "html": doubling }),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("memory"), "{}", r.body);
    // A bomb that only some data sets off is saved, and stopped when previewed with that data.
    let html = format!("{{% if boom %}}{MEMORY_BOMB}{{% endif %}}<p>hello</p>");
    let tpl = create(&app, &t, &key, json!({ "name": "Sometimes", "subject": "s", "html": html })).await;
    let preview = format!("/customers/{t}/templates/{}/preview", tpl["id"].as_str().unwrap());
    let r = app.post(&preview, &key, json!({ "variables": { "boom": true } })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("memory"), "{}", r.body);
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "{:?}", started.elapsed());
    // The server, and rendering, carry on (a new worker took the dead one's place).
    let ok = create(
        &app,
        &t,
        &key,
        json!({ "name": "Fine", "subject": "Hi {{ first_name | default('there') }}", "html": "<p>ok</p>" }),
    )
    .await;
    assert_eq!(ok["subject"], "Hi {{ first_name | default('there') }}");
    let r = app.post(&preview, &key, json!({ "variables": { "boom": false } })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["html"], "<p>hello</p>");
}

#[tokio::test]
async fn a_template_that_exhausts_memory_for_one_recipient_dead_letters_that_one_only() {
    let (app, t, key) = app_with_tenant(true).await;
    // Saved before its contacts exist (a save renders for the first contacts too).
    let html = format!("{{% if contact.attributes.boom %}}{MEMORY_BOMB}{{% endif %}}<p>hello</p>");
    let tpl = create(&app, &t, &key, json!({ "name": "Sometimes", "subject": "s", "html": html })).await;
    app.add_contact(&t, &key, json!({ "email": "calm@example.org" })).await;
    app.add_contact(&t, &key, json!({ "email": "boom@example.org", "attributes": { "boom": true } })).await;
    app.add_contact(&t, &key, json!({ "email": "quiet@example.org" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "template_id": tpl["id"] })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.drain().await;
    let mut to: Vec<String> = app.mock().accepted().iter().map(|e| e.to[0].clone()).collect();
    to.sort();
    assert_eq!(to, vec!["calm@example.org", "quiet@example.org"]);
    let dead = app.get(&format!("/customers/{t}/dead-letters"), &key).await;
    let dead = dead.body.as_array().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["to"], "boom@example.org", "{dead:?}");
    assert!(dead[0]["last_error"].as_str().unwrap().contains("memory"), "{dead:?}");
}

#[tokio::test]
async fn a_template_past_the_render_deadline_is_stopped() {
    let app = spawn_with(Options {
        resend: true,
        env: vec![("MAILROOM_RENDER_TIMEOUT_MS".into(), "200".into())],
        ..Options::default()
    })
    .await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    // Within fuel and memory, but seconds of work.
    let slow = "{% for i in range(3000) %}{{ ('ab' * 1000000) | replace('a', 'c') | length }}{% endfor %}";
    let r = app
        .post(&format!("/customers/{t}/templates"), &key, json!({ "name": "Slow", "subject": "s", "html": slow }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("MAILROOM_RENDER_TIMEOUT_MS"), "{}", r.body);
}

/// Resident memory of this process (the server runs inside the test), in MB.
fn rss_mb() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096 / (1024 * 1024)
}

#[tokio::test]
async fn templates_are_parsed_only_in_workers_so_parser_recursion_and_constant_folding_cannot_hurt_the_server() {
    let (app, t, key) = app_with_tenant(false).await;
    // A chain the parser recurses on, one level a term: it overflowed the
    // stack of a server thread, which aborted the whole server.
    let chain = format!("{{{{ 1{} }}}}", "+1".repeat(20_000));
    let r = app
        .post(&format!("/customers/{t}/templates"), &key, json!({ "name": "Chain", "subject": "s", "html": chain }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // minijinja folds constants while it compiles: 100 MB a template, kept in
    // the compiled-template cache, when compiled in the server.
    let before = rss_mb();
    for i in 0..6 {
        let html = format!("{{# {i} #}}{{{{ 'x' * 100000000 }}}}");
        let r = app
            .post(&format!("/customers/{t}/templates"), &key, json!({ "name": "Fold", "subject": "s", "html": html }))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    }
    let grown = rss_mb().saturating_sub(before);
    assert!(grown < 250, "the server grew by {grown} MB");
    let ok = create(&app, &t, &key, json!({ "name": "Fine", "subject": "s", "html": "<p>{{ 6 * 7 }}</p>" })).await;
    assert_eq!(ok["html"], "<p>{{ 6 * 7 }}</p>");
}

#[tokio::test]
async fn a_preview_abandoned_by_its_caller_never_answers_another_customers_preview() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (a, key_a) = app.verified_tenant("Acme", "acme.com").await;
    let (b, key_b) = app.verified_tenant("Bolt", "bolt.com").await;
    // Slow for a large n (each step copies 10 MB), quick when saved.
    let slow = "{% set a = 'x' * 10000000 %}{% for i in range(n | default(0)) %}{% set b = a ~ 'y' %}{% endfor %}A-PRIVATE {{ secret }}";
    let ta = create(&app, &a, &key_a, json!({ "name": "Slow", "subject": "A subject", "html": slow })).await;
    let tb = create(&app, &b, &key_b, json!({ "name": "Mine", "subject": "B subject", "html": "<p>B-OWN</p>" })).await;
    let url = |t: &str, id: &Value| format!("{}/customers/{t}/templates/{}/preview", app.base, id.as_str().unwrap());
    // Callers that give up (a closed tab, a proxy's timeout) on every worker.
    let impatient = reqwest::Client::builder().timeout(std::time::Duration::from_millis(300)).build().unwrap();
    let gave_up = (0..4).map(|i| {
        impatient
            .post(url(&a, &ta["id"]))
            .bearer_auth(&key_a)
            .json(&json!({ "variables": { "n": 300, "secret": format!("A-SECRET-{i}") } }))
            .send()
    });
    for r in futures::future::join_all(gave_up).await {
        assert!(r.is_err(), "the caller gave up before the answer");
    }
    for _ in 0..3 {
        let r = app.http.post(url(&b, &tb["id"])).bearer_auth(&key_b).json(&json!({})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["html"], "<p>B-OWN</p>", "{body}");
        assert_eq!(body["subject"], "B subject", "{body}");
    }
}

#[tokio::test]
async fn text_derived_from_html_is_bounded_and_a_claim_renders_only_what_its_requests_carry() {
    let app = spawn_with(Options {
        resend: true,
        env: vec![
            ("MAILROOM_MAX_HTML_BYTES".into(), "20000".into()),
            ("MAILROOM_MAX_BATCH_BYTES".into(), "4096".into()),
        ],
        ..Options::default()
    })
    .await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    // 15 KB of html becomes far more text (each cell a padded line).
    let cells = "<table><tr>{{ ('<td>a</td>' * 1500) | safe }}</tr></table>";
    let r = app
        .post(&format!("/customers/{t}/templates"), &key, json!({ "name": "Cells", "subject": "s", "html": cells }))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["error"]["message"].as_str().unwrap().contains("`text`"), "{}", r.body);
    // 3 KB an email from a tiny template: a claim of the whole campaign would
    // bring back more than its requests carry (4 × 4 KB); it takes a few at a
    // time, and every email goes.
    for i in 0..9 {
        app.add_contact(&t, &key, json!({ "email": format!("c{i}@example.org") })).await;
    }
    let big = create(&app, &t, &key, json!({ "name": "Big", "subject": "s", "html": "<p>{{ 'x' * 3000 }}</p>" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "template_id": big["id"] })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.drain().await;
    assert_eq!(app.mock().accepted().len(), 9);
}

#[tokio::test]
async fn variables_nested_as_deep_as_the_api_accepts_render() {
    let (app, t, key) = app_with_tenant(false).await;
    let tpl =
        create(&app, &t, &key, json!({ "name": "Deep", "subject": "s", "html": "<p>{{ d is defined }}</p>" })).await;
    let mut deep = json!(1);
    for _ in 0..120 {
        deep = json!({ "d": deep });
    }
    let r = app
        .post(
            &format!("/customers/{t}/templates/{}/preview", tpl["id"].as_str().unwrap()),
            &key,
            json!({ "variables": deep }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["html"], "<p>True</p>");
}

#[tokio::test]
async fn a_template_slow_for_a_whole_claim_is_rendered_in_smaller_jobs_and_loses_no_one() {
    let app = spawn_with(Options {
        resend: true,
        env: vec![("MAILROOM_RENDER_TIMEOUT_MS".into(), "500".into())],
        ..Options::default()
    })
    .await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    // Some milliseconds a recipient: a claim's 60 together take longer than
    // the deadline, each one alone far less (a fiftieth of it, so a loaded
    // machine does not push one render past it).
    let html = "{% set a = 'x' * 10000000 %}<p>{{ (a ~ 'y') | length }}</p>";
    let tpl = create(&app, &t, &key, json!({ "name": "Slowish", "subject": "s", "html": html })).await;
    app.import_contacts(&t, &key, 60, "example.org").await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "template_id": tpl["id"] })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.drain().await;
    let dead = app.get(&format!("/customers/{t}/dead-letters"), &key).await;
    assert_eq!(dead.body.as_array().map(Vec::len), Some(0), "{}", dead.body);
    assert_eq!(app.mock().accepted().len(), 60);
    assert!(app.mock().accepted().iter().all(|e| e.html.as_deref().unwrap_or("").starts_with("<p>10000001</p>")));
}

#[tokio::test]
async fn one_customers_slow_previews_take_turns_and_leave_a_worker_to_the_others() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (a, key_a) = app.verified_tenant("Acme", "acme.com").await;
    let (b, key_b) = app.verified_tenant("Bolt", "bolt.com").await;
    let slow = "{% set a = 'x' * 10000000 %}{% for i in range(n | default(0)) %}{% set b = a ~ 'y' %}{% endfor %}slow";
    let ta = create(&app, &a, &key_a, json!({ "name": "Slow", "subject": "s", "html": slow })).await;
    let tb = create(&app, &b, &key_b, json!({ "name": "Quick", "subject": "s", "html": "<p>quick</p>" })).await;
    let url = |t: &str, id: &Value| format!("{}/customers/{t}/templates/{}/preview", app.base, id.as_str().unwrap());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut theirs = Vec::new();
    // Each runs to the render deadline (2 s); four of them, on two workers.
    for _ in 0..4 {
        let (http, url, key, done) = (app.http.clone(), url(&a, &ta["id"]), key_a.clone(), done.clone());
        theirs.push(tokio::spawn(async move {
            let _ = http.post(url).bearer_auth(key).json(&json!({ "variables": { "n": 100000 } })).send().await;
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        }));
    }
    // Wall-clock on purpose: the first customer's renders are under way when the second asks.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = app.http.post(url(&b, &tb["id"])).bearer_auth(&key_b).json(&json!({})).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let before_mine = done.load(std::sync::atomic::Ordering::SeqCst);
    assert!(before_mine < 2, "the other customer's preview waited for {before_mine} of the first's");
    for t in theirs {
        t.await.unwrap();
    }
}
