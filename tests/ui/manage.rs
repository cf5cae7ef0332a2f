//! Managing a tenant from the dashboard: webhook endpoints (secret shown
//! once, a test event delivered, rotation, replay, deletion), automations
//! written with the form (one fires; an agent rule without a model is
//! refused on the page), the suppression list (a complaint needs force),
//! reputation (the tenant's page; the operator resumes a paused tenant), and
//! the plain-HTTP rules of these forms: CSRF, the SSRF guard, hostile input,
//! other tenants' ids.

use std::sync::Mutex;
use std::time::Duration;

use fantoccini::Locator;
use reqwest::redirect::Policy;
use reqwest::StatusCode;
use serde_json::json;

use crate::browser::Browser;
use crate::common::webhook_receiver::Receiver;
use crate::helpers::{spawn_with, Options, TestApp, ADMIN_KEY};

/// Webhooks to local addresses allowed (tests only), retries fast.
fn local_webhooks() -> Options {
    Options {
        env: vec![
            ("MAILROOM_ALLOW_PRIVATE_WEBHOOKS".into(), "true".into()),
            ("MAILROOM_WEBHOOK_RETRY_SCALE".into(), "0.001".into()),
        ],
        ..Options::default()
    }
}

/// Selects the option `value` of the `<select>` matching `css`.
async fn choose(b: &Browser, css: &str, value: &str) {
    b.client().find(Locator::Css(css)).await.unwrap().select_by_value(value).await.unwrap();
}

/// Opens `path` again until `css` contains `text` (for what the worker does meanwhile).
async fn reload_until(b: &Browser, path: &str, css: &str, text: &str) {
    let script = format!(
        "var e = document.querySelector({}); return e ? e.textContent : '';",
        serde_json::to_string(css).unwrap()
    );
    for _ in 0..100 {
        b.open(path).await;
        let seen = b.client().execute(&script, vec![]).await.unwrap();
        if seen.as_str().is_some_and(|s| s.contains(text)) {
            return;
        }
        // The browser's own pace (and the workers', which run in the background here).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{text:?} never appeared in {css} on {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_manages_webhooks_automations_and_suppressions_in_the_browser() {
    let Some(b) = Browser::start("manage").await else { return };
    let app = spawn_with(local_webhooks()).await;
    b.set_base(&app.base);
    let receiver = Receiver::start().await;
    let (acme, key) = app.verified_tenant("Acme", "acme.test").await;
    let (other, other_key) = app.verified_tenant("Other", "other.test").await;
    let theirs = app
        .post(
            &format!("/customers/{other}/webhooks"),
            &other_key,
            json!({ "url": receiver.url, "event_types": ["email.sent"] }),
        )
        .await;
    let their_endpoint = theirs.body["id"].as_str().unwrap().to_owned();
    let their_rule = app.get(&format!("/customers/{other}/automations"), &other_key).await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    b.open("/ui/login").await;
    b.sign_in(&key).await;

    // Webhooks: a refused URL is explained on the form, which keeps what was typed.
    let hooks = format!("/ui/t/{acme}/webhooks");
    b.open(&hooks).await;
    b.check_page("webhooks-empty").await;
    b.fill("#new-url", "ftp://example.com/hook").await;
    b.click("#endpoint-form input[value='email.delivered']").await;
    b.click("#endpoint-form button[type=submit]").await;
    b.wait_text("#form-error", "http").await;
    assert_eq!(
        b.client().find(Locator::Css("#new-url")).await.unwrap().prop("value").await.unwrap().unwrap(),
        "ftp://example.com/hook"
    );
    b.check_page("webhooks-refused").await;

    // Created: the secret is on the answering page, once, and in no URL.
    b.fill("#new-url", &receiver.url).await;
    b.fill("#new-description", "orders app").await;
    b.click("#endpoint-form input[value='campaign.sent']").await;
    b.click("#endpoint-form button[type=submit]").await;
    b.wait_text("#new-secret", "Signing secret").await;
    let secret = b.text("#endpoint-secret").await;
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert!(!b.client().current_url().await.unwrap().as_str().contains(&secret));
    b.check_page("webhook-secret").await;
    let endpoint = app.get(&format!("/customers/{acme}/webhooks"), &key).await.body[0].clone();
    let wid = endpoint["id"].as_str().unwrap().to_owned();
    assert_eq!(endpoint["event_types"], json!(["email.delivered", "campaign.sent"]));
    assert_eq!(endpoint["description"], "orders app");
    let page = format!("{hooks}/{wid}");
    b.open(&page).await;
    assert!(!b.client().source().await.unwrap().contains(&secret), "the secret is shown once");

    // A test event reaches the receiver, and its delivery shows on the page.
    b.click("#send-test").await;
    b.wait_text(".notice", "Test event queued").await;
    reload_until(&b, &page, "#deliveries ~ .table-wrap tbody, main table tbody", "delivered").await;
    assert!(receiver.types().contains(&"webhook.test".to_owned()), "{:?}", receiver.types());
    b.check_page("webhook").await;
    // Replayed under the same id.
    b.click("main form[action*='/replay'] button").await;
    b.wait_text(".notice", "Delivery queued again").await;
    app.settle_until("the replay", || async { receiver.types().iter().filter(|t| *t == "webhook.test").count() == 2 })
        .await;

    // Rotation shows the new secret once.
    b.click("#rotate-secret").await;
    b.wait_text("#new-secret", "New signing secret").await;
    let rotated = b.text("#endpoint-secret").await;
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    b.check_page("webhook-rotated").await;

    // Edited, disabled, enabled.
    b.open(&page).await;
    b.fill("#edit-description", "orders").await;
    b.click("#endpoint-form input[value='email.bounced']").await;
    b.click("#endpoint-form button[type=submit]").await;
    b.wait_text(".notice", "Endpoint saved").await;
    let got = app.get(&format!("/customers/{acme}/webhooks/{wid}"), &key).await.body;
    assert_eq!(got["event_types"], json!(["email.delivered", "email.bounced", "campaign.sent"]), "{got}");
    assert_eq!(got["description"], "orders");
    b.click("main form[action$='/switch'] button").await;
    b.wait_text(".notice", "Endpoint disabled").await;
    assert_eq!(app.get(&format!("/customers/{acme}/webhooks/{wid}"), &key).await.body["enabled"], false);
    b.click("main form[action$='/switch'] button").await;
    b.wait_text(".notice", "Endpoint enabled").await;

    // Automations: an email.delivered → add_tag rule from the form fires on a campaign.
    let autos = format!("/ui/t/{acme}/automations");
    b.open(&format!("{autos}/new")).await;
    b.check_page("automation-new").await;
    b.fill("#rule-name", "Tag delivered VIPs").await;
    choose(&b, "#rule-event", "email.delivered").await;
    b.fill("#rule-tag", "vip").await;
    choose(&b, "#a0-type", "add_tag").await;
    b.fill("#a0-tag", "delivered-once").await;
    b.click("#rule-form button[type=submit]").await;
    b.wait_text(".notice", "Automation created").await;
    let rule_page = b.client().current_url().await.unwrap().path().to_owned();
    let rid = rule_page.rsplit('/').next().unwrap().to_owned();
    let rule = app.get(&format!("/customers/{acme}/automations/{rid}"), &key).await.body;
    assert_eq!(rule["trigger"], json!({ "event": "email.delivered", "tag": "vip" }), "{rule}");
    assert_eq!(rule["actions"], json!([{ "type": "add_tag", "tag": "delivered-once" }]));
    assert_eq!(rule["enabled"], true);
    let contact = app.add_contact(&acme, &key, json!({ "email": "delivered@resend.dev", "tags": ["vip"] })).await;
    let sent = app.post(&format!("/customers/{acme}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>" })).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    app.settle_until("the rule's tag", || async {
        let c = app.get(&format!("/customers/{acme}/contacts/{contact}"), &key).await.body;
        c["tags"].as_array().is_some_and(|t| t.contains(&json!("delivered-once")))
    })
    .await;
    reload_until(&b, &rule_page, "main", "done").await;
    b.check_page("automation-fired").await;

    // Edited through the same form; the send_template fields appear for that kind,
    // with a topic (the triggering campaign's unless one is chosen).
    let news = app.post(&format!("/customers/{acme}/topics"), &key, json!({ "name": "News" })).await;
    assert_eq!(news.status, StatusCode::CREATED, "{}", news.body);
    let news = news.body["id"].as_str().unwrap().to_owned();
    b.open(&format!("{rule_page}/edit")).await;
    assert_eq!(
        b.client().find(Locator::Css("#a0-tag")).await.unwrap().prop("value").await.unwrap().unwrap(),
        "delivered-once"
    );
    b.check_page("automation-edit").await;
    let template =
        app.get(&format!("/customers/{acme}/templates"), &key).await.body[0]["id"].as_str().unwrap().to_owned();
    choose(&b, "#a1-type", "send_template").await;
    choose(&b, "#a1-template", &template).await;
    b.fill("#a1-delay", "2d").await;
    choose(&b, "#a1-topic", &news).await;
    b.js_value("document.getElementById('a1-type').scrollIntoView(); return null;").await;
    b.check_page("automation-topic").await;
    b.click("#rule-form button[type=submit]").await;
    b.wait_text(".notice", "Automation saved").await;
    let rule = app.get(&format!("/customers/{acme}/automations/{rid}"), &key).await.body;
    assert_eq!(
        rule["actions"][1],
        json!({ "type": "send_template", "template_id": template, "delay": "2d", "topic_id": news }),
        "{rule}"
    );
    b.wait_text("main", "if subscribed to the topic “News”").await;

    // The domain's refusals are shown on the form: a bad delay, then an agent without a model.
    b.open(&format!("{rule_page}/edit")).await;
    b.fill("#a1-delay", "soon").await;
    b.click("#rule-form button[type=submit]").await;
    b.wait_text("#form-error", "Action 2 delay").await;
    b.open(&format!("{autos}/new")).await;
    b.fill("#rule-name", "Agent").await;
    choose(&b, "#rule-event", "email.complained").await;
    choose(&b, "#a0-type", "agent").await;
    b.fill("#a0-instructions", "Alert the team about spam reports.").await;
    b.fill("#a0-allowed-tags", "complained-once, watch").await;
    choose(&b, "#f-type", "notify").await;
    b.fill("#f-message", "the agent could not decide").await;
    b.click("#rule-form button[type=submit]").await;
    b.wait_text("#form-error", "MAILROOM_LLM_URL").await;
    assert_eq!(
        b.client().find(Locator::Css("#a0-instructions")).await.unwrap().prop("value").await.unwrap().unwrap(),
        "Alert the team about spam reports."
    );
    b.check_page("automation-agent-refused").await;

    // Deleted after a confirmation.
    b.open(&format!("{rule_page}/delete")).await;
    b.check_page("automation-delete").await;
    b.click("#confirm-delete").await;
    b.wait_text(".notice", "Automation deleted").await;
    assert_eq!(app.get(&format!("/customers/{acme}/automations/{rid}"), &key).await.status, StatusCode::NOT_FOUND);

    // Suppressions: added one per line (a bad line is explained), removed; a complaint needs force.
    let supp = format!("/ui/t/{acme}/suppressions");
    b.open(&supp).await;
    b.fill("#suppress-emails", "ann@example.com\nnot-an-address\n").await;
    b.click("#suppress-form button[type=submit]").await;
    b.wait_text("#form-error", "Address 2").await;
    b.check_page("suppressions-refused").await;
    b.fill("#suppress-emails", "ann@example.com\n\nBob@Example.com\n").await;
    b.click("#suppress-form button[type=submit]").await;
    b.wait_text(".notice", "Addresses suppressed").await;
    b.wait_text("main table", "bob@example.com").await;
    let tid = mailroom::domain::TenantId::from_stored(acme.clone());
    app.store.add_suppressions(&tid, &["spam@example.com".to_owned()], "complained", "test").await.unwrap();
    b.open(&supp).await;
    b.check_page("suppressions-managed").await;
    b.click("main form input[value='ann@example.com'] ~ button").await;
    b.wait_text(".notice", "removed").await;
    b.click("main form input[value='spam@example.com'] ~ button").await;
    b.wait_title("Remove a complaint").await;
    let listed = app.get(&format!("/customers/{acme}/suppressions"), &key).await.body.to_string();
    assert!(listed.contains("spam@example.com"), "not removed without force: {listed}");
    b.check_page("suppression-force").await;
    b.click("#confirm-force").await;
    b.wait_text(".notice", "removed").await;
    let listed = app.get(&format!("/customers/{acme}/suppressions"), &key).await.body.to_string();
    assert!(!listed.contains("spam@example.com") && !listed.contains("ann@") && listed.contains("bob@"), "{listed}");

    // Reputation: the tenant's own page; the operator's list does not exist for it.
    b.open(&format!("/ui/t/{acme}/reputation")).await;
    b.wait_text("#reputation-state", "not judged (under 200 sent)").await;
    b.check_page("reputation").await;

    // The webhook endpoint deleted after a confirmation.
    b.open(&format!("{page}/delete")).await;
    b.check_page("webhook-delete").await;
    b.click("#confirm-delete").await;
    b.wait_text(".notice", "Endpoint deleted").await;
    assert_eq!(app.get(&format!("/customers/{acme}/webhooks/{wid}"), &key).await.status, StatusCode::NOT_FOUND);

    // Another tenant's pages and ids do not exist for this session.
    for path in [
        format!("/ui/t/{other}/webhooks"),
        format!("/ui/t/{other}/reputation"),
        format!("/ui/t/{other}/automations/new"),
        format!("/ui/t/{acme}/webhooks/{their_endpoint}"),
        format!("/ui/t/{acme}/webhooks/{their_endpoint}/delete"),
        format!("/ui/t/{acme}/automations/{their_rule}/edit"),
        format!("/ui/t/{acme}/automations/{their_rule}/delete"),
        "/ui/reputation".to_owned(),
    ] {
        assert_eq!(b.status_of(&path).await, 404, "{path}");
    }
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_resumes_a_paused_tenant_from_the_reputation_list() {
    // In the dark colour scheme: the state badges' and the resume form's contrast is checked there too.
    let Some(b) = Browser::start_with("reputation-dark", true).await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (paused, _) = app.verified_tenant("Spammy", "spammy.test").await;
    let (fine, _) = app.verified_tenant("Fine", "fine.test").await;
    pause(&app, &paused).await;

    b.open("/ui/login").await;
    b.sign_in(ADMIN_KEY).await;
    b.open("/ui/tenants").await;
    b.check_page("tenants-health").await;
    b.open("/ui/reputation").await;
    b.wait_text("main tbody tr:first-child", "Spammy").await;
    b.wait_text("main tbody tr:first-child", "paused").await;
    b.check_page("reputations").await;
    b.open(&format!("/ui/t/{paused}/reputation")).await;
    b.wait_text("#reputation-state", "paused").await;
    b.check_page("reputation-paused").await;

    b.open("/ui/reputation").await;
    b.fill(&format!("#note-{paused}"), "list cleaned").await;
    b.click("main form.resume-form button").await;
    b.wait_text(".notice", "Campaign mail resumed").await;
    b.open(&format!("/ui/t/{paused}/reputation")).await;
    // Resumed: the window starts again, too little mail in it to judge.
    b.wait_text("#reputation-state", "not judged (under 200 sent)").await;
    b.wait_text("#history ~ .table-wrap", "list cleaned").await;
    b.wait_text("#history ~ .table-wrap", "admin").await;
    assert!(b.dark_scheme().await, "the page is in the dark scheme");
    b.check_page("reputation-resumed").await;
    let r = app.get(&format!("/customers/{paused}/reputation"), ADMIN_KEY).await.body;
    assert_eq!(r["state"], "ok", "{r}");
    assert_eq!(app.get(&format!("/customers/{fine}/reputation"), ADMIN_KEY).await.body["state"], "ok");
    b.finish().await;
}

/// Puts a tenant in `paused`, as the guard does past Resend's limits.
async fn pause(app: &TestApp, tenant: &str) {
    app.store
        .execute_raw(&format!(
            "INSERT INTO tenant_reputation (tenant_id, state, changed_at) VALUES ('{tenant}', 'paused', {})",
            mailroom::domain::now_ms()
        ))
        .await
        .unwrap();
}

// ---- The same forms over plain HTTP (no browser needed). ----

/// A browser-like client: keeps its cookies, follows no redirects.
struct Session {
    http: reqwest::Client,
    base: String,
    cookies: Mutex<Vec<(String, String)>>,
    csrf: String,
}

impl Session {
    async fn open(app: &TestApp, key: &str) -> Session {
        let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
        let mut s = Session { http, base: app.base.clone(), cookies: Mutex::default(), csrf: String::new() };
        let login = s.get("/ui/login").await.text().await.unwrap();
        let token = hidden_csrf(&login);
        let r = s.post_raw("/ui/login", &[("key", key), ("csrf", &token)]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        // `/ui` leads to the session's home page, whose sign-out form carries the token.
        let home = s.get("/ui").await;
        let to = home.headers()["location"].to_str().unwrap().to_owned();
        let page = s.get(&to).await.text().await.unwrap();
        s.csrf = hidden_csrf(&page);
        s
    }

    fn keep(&self, r: &reqwest::Response) {
        let mut jar = self.cookies.lock().unwrap();
        for v in r.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            jar.retain(|(name, _)| name != k);
            if !v.is_empty() {
                jar.push((k.to_owned(), v.to_owned()));
            }
        }
    }

    fn cookie(&self) -> String {
        self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        let r = self.http.get(format!("{}{path}", self.base)).header("cookie", self.cookie()).send().await.unwrap();
        self.keep(&r);
        r
    }

    async fn post_raw(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", self.cookie())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep(&r);
        r
    }

    /// Posts `form` with this session's CSRF token.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String) {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(form);
        let r = self.post_raw(path, &all).await;
        (r.status(), r.text().await.unwrap())
    }
}

/// A form's fields (the CSRF token aside).
type Form<'a> = Vec<(&'a str, &'a str)>;

fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_management_forms_refuse_a_post_without_its_csrf_token_and_change_nothing() {
    let app = spawn_with(local_webhooks()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.test").await;
    let hook = app
        .post(
            &format!("/customers/{t}/webhooks"),
            &key,
            json!({ "url": "http://127.0.0.1:9/h", "event_types": ["email.sent"] }),
        )
        .await;
    let wid = hook.body["id"].as_str().unwrap().to_owned();
    let rid = app.get(&format!("/customers/{t}/automations"), &key).await.body[0]["id"].as_str().unwrap().to_owned();
    app.post(&format!("/customers/{t}/suppressions"), &key, json!({ "emails": ["kept@example.com"] })).await;
    let tenant = Session::open(&app, &key).await;
    let admin = Session::open(&app, ADMIN_KEY).await;
    let posts: Vec<(&Session, String, Form)> = vec![
        (&tenant, format!("/ui/t/{t}/webhooks"), vec![("url", "http://127.0.0.1:9/x"), ("event_types", "email.sent")]),
        (
            &tenant,
            format!("/ui/t/{t}/webhooks/{wid}"),
            vec![("url", "http://127.0.0.1:9/y"), ("event_types", "email.sent")],
        ),
        (&tenant, format!("/ui/t/{t}/webhooks/{wid}/switch"), vec![("to", "off")]),
        (&tenant, format!("/ui/t/{t}/webhooks/{wid}/rotate"), vec![]),
        (&tenant, format!("/ui/t/{t}/webhooks/{wid}/test"), vec![]),
        (&tenant, format!("/ui/t/{t}/webhooks/{wid}/delete"), vec![]),
        (
            &tenant,
            format!("/ui/t/{t}/automations"),
            vec![("name", "x"), ("event", "email.opened"), ("a0_type", "suppress")],
        ),
        (
            &tenant,
            format!("/ui/t/{t}/automations/{rid}/edit"),
            vec![("name", "x"), ("event", "email.opened"), ("a0_type", "suppress")],
        ),
        (&tenant, format!("/ui/t/{t}/automations/{rid}/delete"), vec![]),
        (&tenant, format!("/ui/t/{t}/suppressions"), vec![("emails", "new@example.com")]),
        (&tenant, format!("/ui/t/{t}/suppressions/remove"), vec![("email", "kept@example.com")]),
        (&admin, format!("/ui/t/{t}/reputation/resume"), vec![("note", "x")]),
    ];
    let before = (
        app.get(&format!("/customers/{t}/webhooks"), &key).await.body,
        app.get(&format!("/customers/{t}/automations"), &key).await.body,
        app.get(&format!("/customers/{t}/suppressions"), &key).await.body,
    );
    for (session, path, form) in &posts {
        for csrf in ["", "not-the-token"] {
            let mut all = vec![("csrf", csrf)];
            all.extend_from_slice(form);
            let r = session.post_raw(path, &all).await;
            assert_eq!(r.status(), StatusCode::FORBIDDEN, "{path} with csrf {csrf:?}");
            assert!(r.text().await.unwrap().contains("Form expired"), "{path}");
        }
    }
    let after = (
        app.get(&format!("/customers/{t}/webhooks"), &key).await.body,
        app.get(&format!("/customers/{t}/automations"), &key).await.body,
        app.get(&format!("/customers/{t}/suppressions"), &key).await.body,
    );
    assert_eq!(before, after);
}

#[tokio::test]
async fn webhook_forms_apply_the_ssrf_guard_and_refuse_hostile_input_on_the_page() {
    // Private addresses are not allowed here, as in production.
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.test").await;
    let s = Session::open(&app, &key).await;
    let path = format!("/ui/t/{t}/webhooks");
    let long = "x".repeat(600);
    let huge_url = format!("https://example.com/{}", "a".repeat(5000));
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("url", "http://127.0.0.1:9/hook"), ("event_types", "email.sent")], "url"),
        (vec![("url", "http://169.254.169.254/latest"), ("event_types", "email.sent")], "url"),
        (vec![("url", "http://10.1.2.3/hook"), ("event_types", "email.sent")], "url"),
        (vec![("url", "javascript:alert(1)"), ("event_types", "email.sent")], "url"),
        (vec![("url", "https://example.com/h"), ("event_types", "email.nope")], "email.nope"),
        (vec![("url", "https://example.com/h")], "event_types"),
        (vec![("url", "https://example.com/h"), ("event_types", "email.sent"), ("description", "a\0b")], "description"),
        (vec![("url", "https://example.com/h"), ("event_types", "email.sent"), ("description", &long)], "description"),
        (vec![("url", &huge_url), ("event_types", "email.sent")], ""),
        (vec![("url", "https://exa\u{0}mple.com/h"), ("event_types", "email.sent")], ""),
    ];
    for (form, mentions) in &cases {
        let (status, body) = s.post(&path, form).await;
        assert!(status.is_client_error(), "{form:?}: {status}");
        assert!(body.contains("id=\"form-error\""), "{form:?}: the error is on the form's page");
        assert!(body.contains(mentions), "{form:?}: {body}");
    }
    assert_eq!(app.get(&format!("/customers/{t}/webhooks"), &key).await.body, json!([]));
    // The edit form is guarded the same way (the endpoint is stored directly: no DNS here).
    let tid = mailroom::domain::TenantId::from_stored(t.clone());
    let types = ["email.sent".to_owned()];
    let new = mailroom::store::NewEndpoint {
        url: "https://hooks.example.com/h",
        description: None,
        event_types: &types,
        enabled: true,
        secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    };
    let wid = app.store.create_endpoint(&tid, new, 20).await.unwrap().unwrap().id;
    for url in ["http://127.0.0.1:9/hook", "http://[::1]/hook", "http://169.254.169.254/"] {
        let (status, body) = s.post(&format!("{path}/{wid}"), &[("url", url), ("event_types", "email.sent")]).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        assert!(body.contains("id=\"form-error\"") && body.contains("public addresses"), "{url}: {body}");
    }
    let stored = app.get(&format!("/customers/{t}/webhooks/{wid}"), &key).await.body;
    assert_eq!(stored["url"], "https://hooks.example.com/h");
    // A form that cannot be read is a page too, not a 500.
    let r = s
        .http
        .post(format!("{}{path}", app.base))
        .header("cookie", s.cookie())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=%ZZ&url=%")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
}

#[tokio::test]
async fn only_the_operator_resumes_and_a_tenant_reaches_no_other_tenants_forms() {
    let app = spawn_with(local_webhooks()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.test").await;
    let (other, other_key) = app.verified_tenant("Other", "other.test").await;
    pause(&app, &t).await;
    let theirs = app
        .post(
            &format!("/customers/{other}/webhooks"),
            &other_key,
            json!({ "url": "http://127.0.0.1:9/h", "event_types": ["email.sent"] }),
        )
        .await;
    let their_wid = theirs.body["id"].as_str().unwrap().to_owned();
    let s = Session::open(&app, &key).await;
    // Its own tenant's resume: not for a tenant's session.
    let (status, _) = s.post(&format!("/ui/t/{t}/reputation/resume"), &[("note", "me")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("/customers/{t}/reputation"), &key).await.body["state"], "paused");
    // Another tenant's forms and ids answer 404 and change nothing.
    for (path, form) in [
        (format!("/ui/t/{other}/webhooks"), vec![("url", "http://127.0.0.1:9/x"), ("event_types", "email.sent")]),
        (format!("/ui/t/{t}/webhooks/{their_wid}/rotate"), vec![]),
        (format!("/ui/t/{t}/webhooks/{their_wid}/delete"), vec![]),
        (format!("/ui/t/{other}/webhooks/{their_wid}/test"), vec![]),
        (format!("/ui/t/{other}/suppressions"), vec![("emails", "x@example.com")]),
        (format!("/ui/t/{other}/automations"), vec![("name", "x"), ("event", "email.opened"), ("a0_type", "suppress")]),
    ] {
        let (status, body) = s.post(&path, &form).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
    let listed = app.get(&format!("/customers/{other}/webhooks"), &other_key).await.body;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(app.get(&format!("/customers/{other}/suppressions"), &other_key).await.body, json!([]));
    // The operator resumes it.
    let admin = Session::open(&app, ADMIN_KEY).await;
    let (status, _) = admin.post(&format!("/ui/t/{t}/reputation/resume"), &[("note", "list cleaned")]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(app.get(&format!("/customers/{t}/reputation"), &key).await.body["state"], "ok");
    // A second resume: not paused any more, said on a page.
    let (status, body) = admin.post(&format!("/ui/t/{t}/reputation/resume"), &[]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(body.contains("not `paused`"), "{body}");
}

#[tokio::test]
async fn the_operators_health_table_shows_each_tenants_guard_figures_and_dead_letters() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.test").await;
    let (quiet, _) = app.verified_tenant("Quiet", "quiet.test").await;
    for email in ["delivered@resend.dev", "bounced@resend.dev"] {
        app.add_contact(&t, &key, json!({ "email": email })).await;
    }
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.settle_until("the sandbox's events", || async {
        let stats = app.get(&format!("/customers/{t}/stats?bucket=day"), &key).await.body.to_string();
        stats.contains("\"bounced\":1") && stats.contains("\"delivered\":1")
    })
    .await;
    let tid = mailroom::domain::TenantId::from_stored(t.clone());
    assert!(app.store.dead_letters_per_tenant().await.unwrap().is_empty());
    // A dead letter counts for its tenant only.
    app.store
        .execute_raw(&format!("UPDATE messages SET status = 'dead' WHERE tenant_id = '{}'", tid.as_str()))
        .await
        .unwrap();
    let dead = app.store.dead_letters_per_tenant().await.unwrap();
    assert_eq!(dead.get(t.as_str()), Some(&2));
    assert!(!dead.contains_key(quiet.as_str()), "a tenant without dead letters is absent");
    let admin = Session::open(&app, ADMIN_KEY).await;
    let page = admin.get("/ui/tenants").await.text().await.unwrap();
    let row = page.split("<tr>").find(|r| r.contains("Acme")).unwrap();
    let cells: Vec<&str> = row
        .split("<td class=\"num\"")
        .skip(1)
        .map(|c| c.split_once('>').unwrap().1.split('<').next().unwrap().trim())
        .collect();
    // The reputation guard's window (sent, delivered, hard-bounce and complaint
    // rates), the dead letters, then the model calls of the day (of the budget) and the tokens used.
    assert_eq!(cells, ["2", "1", "50.00%", "0.00%", "2", "0 of 1,000", "0"], "{row}");
    assert!(row.contains("not judged (under 200 sent)"), "two sent are too few to judge: {row}");
}

#[tokio::test]
async fn automation_and_suppression_forms_explain_hostile_input_on_the_page() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.test").await;
    let s = Session::open(&app, &key).await;
    let rules = format!("/ui/t/{t}/automations");
    let before = app.get(&format!("/customers/{t}/automations"), &key).await.body;
    let template = app.get(&format!("/customers/{t}/templates"), &key).await.body[0]["id"].as_str().unwrap().to_owned();
    let (other, other_key) = app.verified_tenant("Other", "other.test").await;
    let their_topic = app.post(&format!("/customers/{other}/topics"), &other_key, json!({ "name": "Theirs" })).await;
    let their_topic = their_topic.body["id"].as_str().unwrap().to_owned();
    let huge = "i".repeat(5000);
    let rule = |extra: Vec<(&'static str, String)>| {
        let mut form: Vec<(&'static str, String)> = vec![
            ("name", "Rule".into()),
            ("event", "email.opened".into()),
            ("a0_type", "add_tag".into()),
            ("a0_tag", "x".into()),
        ];
        for (k, v) in extra {
            form.retain(|(name, _)| *name != k);
            form.push((k, v));
        }
        form
    };
    let cases: Vec<(Vec<(&'static str, String)>, &str)> = vec![
        (rule(vec![("name", "a\0b".into())]), "name"),
        (rule(vec![("name", "x".repeat(300))]), "name"),
        (rule(vec![("event", "email.nope".into())]), "trigger.event"),
        (rule(vec![("a0_type", "rm -rf".into())]), "Action 1"),
        (rule(vec![("a0_tag", "bad\u{2028}tag".into())]), "Action 1 tag"),
        (rule(vec![("a0_type", "".into())]), "actions"),
        (rule(vec![("hours", "soon".into())]), "whole number"),
        (rule(vec![("hours", "5".into())]), "delivery_delayed"),
        (rule(vec![("link", "https://x.test/".into())]), "email.clicked"),
        (rule(vec![("campaign_id", "00000000-0000-0000-0000-000000000000".into())]), "campaign"),
        (rule(vec![("a0_type", "send_template".into()), ("a0_template", "nope".into())]), "template"),
        (
            rule(vec![
                ("a0_type", "send_template".into()),
                ("a0_template", template.clone()),
                ("a0_topic", their_topic.clone()),
            ]),
            "no such topic",
        ),
        (
            rule(vec![
                ("a0_type", "send_template".into()),
                ("a0_template", template.clone()),
                ("a0_topic", "x".into()),
            ]),
            "Action 1 topic_id",
        ),
        (rule(vec![("a0_type", "agent".into()), ("a0_instructions", huge.clone())]), "instructions"),
        (rule(vec![("a0_type", "agent".into()), ("a0_instructions", "Decide.".into())]), "MAILROOM_LLM_URL"),
        (rule(vec![("f_type", "notify".into()), ("f_message", "no agent".into())]), "fallback"),
    ];
    for (form, mentions) in &cases {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, body) = s.post(&rules, &form).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{form:?}: {body}");
        assert!(body.contains("id=\"form-error\""), "{form:?}: the error is on the form's page");
        assert!(body.contains(mentions), "{form:?} should mention {mentions}: {body}");
    }
    assert_eq!(app.get(&format!("/customers/{t}/automations"), &key).await.body, before);

    let supp = format!("/ui/t/{t}/suppressions");
    let many = (0..1001).map(|i| format!("u{i}@example.com")).collect::<Vec<_>>().join("\n");
    for (emails, mentions) in
        [("ok@example.com\nnul\0@example.com", "Address 2"), ("\n\n", "1 to 1000"), (many.as_str(), "1 to 1000")]
    {
        let (status, body) = s.post(&supp, &[("emails", emails)]).await;
        assert!(status.is_client_error(), "{status}");
        assert!(body.contains("id=\"form-error\"") && body.contains(mentions), "{mentions}: {body}");
    }
    assert_eq!(app.get(&format!("/customers/{t}/suppressions"), &key).await.body, json!([]));
    // Removing what is not there, or is not an address: a 404 page.
    for email in ["nobody@example.com", "not an address\0"] {
        let (status, _) = s.post(&format!("{supp}/remove"), &[("email", email)]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{email:?}");
    }
}
