//! The dashboard's rules checked over plain HTTP (these run without a
//! browser): session cookies, CSRF, tenant isolation, and staying out of the
//! API's OpenAPI document and error envelope.

use reqwest::redirect::Policy;
use reqwest::StatusCode;

use crate::helpers::{spawn_with, Options, TestApp, ADMIN_KEY};

/// A browser-like client: keeps the cookies it is given, follows no redirects.
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) http: reqwest::Client,
    cookies: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl Client {
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

    pub(crate) fn header(&self) -> String {
        self.cookies.lock().unwrap().iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    pub(crate) async fn get(&self, url: String) -> reqwest::Response {
        let r = self.http.get(url).header("cookie", self.header()).send().await.unwrap();
        self.keep(&r);
        r
    }

    pub(crate) async fn post(&self, url: String, form: &[(&str, &str)]) -> reqwest::Response {
        let r = self.http.post(url).header("cookie", self.header()).form(form).send().await.unwrap();
        self.keep(&r);
        r
    }
}

fn client() -> Client {
    Client { http: reqwest::Client::builder().redirect(Policy::none()).build().unwrap(), cookies: Default::default() }
}

pub(crate) fn hidden_csrf(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// Signs in with `key`; returns the client and the session's CSRF token.
pub(crate) async fn signed_in(app: &TestApp, key: &str) -> (Client, String) {
    let c = client();
    let login = c.get(format!("{}/ui/login", app.base)).await.text().await.unwrap();
    let r = c.post(format!("{}/ui/login", app.base), &[("key", key), ("csrf", &hidden_csrf(&login))]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let home = r.headers()["location"].to_str().unwrap().to_owned();
    let page = c.get(format!("{}{home}", app.base)).await;
    let page = if page.status() == StatusCode::SEE_OTHER {
        let to = page.headers()["location"].to_str().unwrap().to_owned();
        c.get(format!("{}{to}", app.base)).await
    } else {
        page
    };
    let csrf = hidden_csrf(&page.text().await.unwrap());
    (c, csrf)
}

#[tokio::test]
async fn the_session_cookie_is_httponly_strict_expiring_and_secure_under_https() {
    let app = spawn_with(Options {
        env: vec![("PUBLIC_URL".into(), "https://mail.example.com".into())],
        ..Options::default()
    })
    .await;
    let c = client();
    let login = c.get(format!("{}/ui/login", app.base)).await.text().await.unwrap();
    let r = c.post(format!("{}/ui/login", app.base), &[("key", ADMIN_KEY), ("csrf", &hidden_csrf(&login))]).await;
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("mailroom_session="))
        .expect("a session cookie")
        .to_owned();
    for part in ["HttpOnly", "SameSite=Strict", "Secure", "Max-Age=43200", "Path=/ui"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(!cookie.contains(ADMIN_KEY));
}

#[tokio::test]
async fn a_wrong_key_does_not_sign_in_and_a_login_without_its_token_is_refused() {
    let app = spawn_with(Options::default()).await;
    let c = client();
    let login = c.get(format!("{}/ui/login", app.base)).await.text().await.unwrap();
    let r = c.post(format!("{}/ui/login", app.base), &[("key", "mr_not_a_key"), ("csrf", &hidden_csrf(&login))]).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client().post(format!("{}/ui/login", app.base), &[("key", ADMIN_KEY)]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn forms_without_the_session_token_are_refused_and_change_nothing() {
    let app = spawn_with(Options::default()).await;
    let (c, csrf) = signed_in(&app, ADMIN_KEY).await;
    let r = c.post(format!("{}/ui/tenants", app.base), &[("name", "Nope")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"), "a page, not JSON");
    let r = c.post(format!("{}/ui/tenants", app.base), &[("name", "Nope"), ("csrf", "forged")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let listed = app.get("/customers", ADMIN_KEY).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 0, "{}", listed.body);
    let r = c.post(format!("{}/ui/tenants", app.base), &[("name", "Yes"), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_tenant_session_sees_only_its_own_tenant() {
    let app = spawn_with(Options::default()).await;
    let (mine, key) = app.verified_tenant("Mine", "mine.example").await;
    let (theirs, _) = app.verified_tenant("Theirs", "theirs.example").await;
    let (c, csrf) = signed_in(&app, &key).await;
    assert_eq!(c.get(format!("{}/ui/t/{mine}", app.base)).await.status(), StatusCode::OK);
    for path in [
        format!("/ui/t/{theirs}"),
        format!("/ui/t/{theirs}/contacts"),
        format!("/ui/t/{theirs}/campaigns"),
        "/ui/tenants".into(),
        format!("/ui/tenants/{theirs}"),
        "/ui/dead-letters".into(),
    ] {
        let r = c.get(format!("{}{path}", app.base)).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let r =
        c.post(format!("{}/ui/t/{theirs}/contacts", app.base), &[("email", "x@example.com"), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn revoking_the_key_ends_its_sessions_and_signing_out_ends_the_session() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let (c, _) = signed_in(&app, &key).await;
    let keys = app.get(&format!("/customers/{t}/api-keys"), ADMIN_KEY).await;
    let key_id = keys.body[0]["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/customers/{t}/api-keys/{key_id}"), ADMIN_KEY).await;
    let r = c.get(format!("{}/ui/t/{t}", app.base)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "back to the login page");

    let (c, csrf) = signed_in(&app, ADMIN_KEY).await;
    let r = c.post(format!("{}/ui/logout", app.base), &[("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c.get(format!("{}/ui/tenants", app.base)).await;
    assert_eq!(r.headers()["location"], "/ui/login");
}

#[tokio::test]
async fn the_dashboard_stays_out_of_the_openapi_document_and_its_pages_stay_html() {
    let app = spawn_with(Options::default()).await;
    let doc = reqwest::get(format!("{}/openapi.json", app.base)).await.unwrap().text().await.unwrap();
    assert!(!doc.contains("/ui"), "the dashboard's routes are not API");
    let r = reqwest::get(format!("{}/ui/no-such-page", app.base)).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = r.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let css = reqwest::get(format!("{}/ui/assets/app.css", app.base)).await.unwrap();
    assert_eq!(css.status(), StatusCode::OK);
    // The API's own 404 is still JSON.
    let api = reqwest::get(format!("{}/no-such-route", app.base)).await.unwrap();
    assert!(api.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
}

#[tokio::test]
async fn a_campaign_scheduled_from_the_dashboard_can_be_paused_resumed_and_cancelled() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    app.add_contact(&t, &key, serde_json::json!({ "email": "ada@example.com" })).await;
    let (c, csrf) = signed_in(&app, &key).await;
    // A month ahead, in the form's `datetime-local` shape (scheduling is
    // limited to a year ahead).
    let later = mailroom::domain::rfc3339(mailroom::domain::now_ms() + 30 * 86_400_000);
    let later = &later[..16];
    let form = [
        ("csrf", csrf.as_str()),
        ("subject", "Later"),
        ("html", "<p>Hi</p>"),
        ("text", ""),
        ("audience", "all"),
        ("tag", ""),
        ("scheduled_at", later),
    ];
    let confirm = c.post(format!("{}/ui/t/{t}/campaigns/confirm", app.base), &form).await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let page = confirm.text().await.unwrap();
    assert!(page.contains("Send to 1 recipient?") && page.contains(">Schedule<"), "{page}");
    let r = c.post(format!("{}/ui/t/{t}/campaigns", app.base), &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = r.headers()["location"].to_str().unwrap().to_owned();
    let cid = at.trim_start_matches(&format!("/ui/t/{t}/campaigns/")).split('?').next().unwrap().to_owned();
    let status = || async {
        app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await.body["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(status().await, "scheduled");
    for (action, after) in [("pause", "paused"), ("resume", "scheduled"), ("cancel", "cancelled")] {
        let r = c.post(format!("{}/ui/t/{t}/campaigns/{cid}/{action}", app.base), &[("csrf", csrf.as_str())]).await;
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{action}");
        assert_eq!(status().await, after, "after {action}");
    }
    // A resume of a campaign that is not paused is refused with the API's reason, as a page.
    let r = c.post(format!("{}/ui/t/{t}/campaigns/{cid}/resume", app.base), &[("csrf", csrf.as_str())]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("only a paused campaign can be resumed"));
}

#[tokio::test]
async fn a_contact_edited_from_the_dashboard_is_checked_like_the_api_checks_it() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let id = app.add_contact(&t, &key, serde_json::json!({ "email": "ada@example.com" })).await;
    app.add_contact(&t, &key, serde_json::json!({ "email": "taken@example.com" })).await;
    let (c, csrf) = signed_in(&app, &key).await;
    let url = format!("{}/ui/t/{t}/contacts/{id}", app.base);
    let edit = |email: &'static str, tags: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("email", email.into()),
            ("first_name", "Ada".into()),
            ("last_name", "".into()),
            ("tags", tags.into()),
        ]
    };
    let form = edit("ADA@example.com", "vip, beta");
    let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(c.post(url.clone(), &pairs).await.status(), StatusCode::SEE_OTHER);
    let got = app.get(&format!("/customers/{t}/contacts/{id}"), &key).await;
    assert_eq!(got.body["first_name"], "Ada");
    assert_eq!(got.body["tags"], serde_json::json!(["beta", "vip"]));
    for (email, tags, status) in [
        ("taken@example.com", "", StatusCode::CONFLICT),
        ("not an address", "", StatusCode::UNPROCESSABLE_ENTITY),
        ("ada@example.com", "bad tag!", StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let form = edit(email, tags);
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = c.post(url.clone(), &pairs).await;
        assert_eq!(r.status(), status, "{email} {tags}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
}

#[tokio::test]
async fn the_webhooks_page_lists_endpoints_without_their_secrets() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let created = app
        .post(
            &format!("/customers/{t}/webhooks"),
            &key,
            serde_json::json!({ "url": "https://93.184.216.34/mailroom-hook", "event_types": ["email.delivered"] }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let secret = created.body["secret"].as_str().unwrap_or_default().to_owned();
    let (c, _) = signed_in(&app, &key).await;
    let page = c.get(format!("{}/ui/t/{t}/webhooks", app.base)).await.text().await.unwrap();
    assert!(page.contains("93.184.216.34") && page.contains("mailroom-hook"), "{page}");
    assert!(secret.is_empty() || !page.contains(&secret), "the signing secret stays off the page");
}

#[tokio::test]
async fn an_audience_the_compose_form_does_not_know_is_refused_not_read_as_everyone() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    app.add_contact(&t, &key, serde_json::json!({ "email": "ada@example.com" })).await;
    let (c, csrf) = signed_in(&app, &key).await;
    for audience in ["segmnet:x", "", "tag"] {
        let form =
            [("csrf", csrf.as_str()), ("subject", "S"), ("html", "<p>H</p>"), ("audience", audience), ("tag", "")];
        let r = c.post(format!("{}/ui/t/{t}/campaigns", app.base), &form).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{audience:?}");
    }
    let campaigns = app.get(&format!("/customers/{t}/campaigns"), &key).await;
    assert_eq!(campaigns.body, serde_json::json!([]));
}

#[tokio::test]
async fn a_starter_automation_is_switched_on_and_off_from_the_dashboard_and_only_with_the_token() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let (theirs, their_key) = app.verified_tenant("B", "b.example").await;
    let rule_of = |tenant: String, key: String| {
        let app = &app;
        async move {
            let rules = app.get(&format!("/customers/{tenant}/automations"), &key).await;
            let rule = rules.body.as_array().unwrap().iter().find(|r| r["starter"] == "tag_clickers").unwrap().clone();
            (rule["id"].as_str().unwrap().to_owned(), rule["enabled"].as_bool().unwrap())
        }
    };
    let (rule, enabled) = rule_of(t.clone(), key.clone()).await;
    assert!(!enabled, "starter rules come switched off");
    let (c, csrf) = signed_in(&app, &key).await;
    let list = c.get(format!("{}/ui/t/{t}/automations", app.base)).await;
    assert_eq!(list.status(), StatusCode::OK);
    let html = list.text().await.unwrap();
    assert!(html.contains("Tag clickers as engaged") && html.contains("Tag the contact “engaged”"), "{html}");
    assert!(html.contains(">starter<") && html.contains(">disabled<"), "{html}");

    let url = format!("{}/ui/t/{t}/automations/{rule}/switch", app.base);
    for form in [vec![("to", "on")], vec![("to", "on"), ("csrf", "forged")]] {
        let r = c.post(url.clone(), &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
    assert!(!rule_of(t.clone(), key.clone()).await.1, "a refused form changes nothing");

    let r = c.post(url.clone(), &[("to", "on"), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/ui/t/{t}/automations?done=automation_enabled").as_str());
    assert!(rule_of(t.clone(), key.clone()).await.1, "switched on, as the API sees it");
    let html = c.get(format!("{}/ui/t/{t}/automations?done=automation_enabled", app.base)).await.text().await.unwrap();
    assert!(html.contains("Automation switched on.") && html.contains(">enabled<"), "{html}");

    let detail = c.get(format!("{}/ui/t/{t}/automations/{rule}", app.base)).await;
    assert_eq!(detail.status(), StatusCode::OK);
    assert!(detail.text().await.unwrap().contains("No runs yet"));

    let r = c.post(url.clone(), &[("to", "off"), ("csrf", &csrf), ("back", "detail")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/ui/t/{t}/automations/{rule}?done=automation_disabled").as_str());
    assert!(!rule_of(t.clone(), key.clone()).await.1);

    // Another tenant's rule is not there for this session, by either path.
    let (their_rule, _) = rule_of(theirs.clone(), their_key.clone()).await;
    for path in [
        format!("/ui/t/{t}/automations/{their_rule}"),
        format!("/ui/t/{theirs}/automations/{their_rule}"),
        format!("/ui/t/{theirs}/automations"),
        format!("/ui/t/{t}/automations/not-an-id"),
    ] {
        assert_eq!(c.get(format!("{}{path}", app.base)).await.status(), StatusCode::NOT_FOUND, "{path}");
    }
    for path in [
        format!("/ui/t/{t}/automations/{their_rule}/switch"),
        format!("/ui/t/{theirs}/automations/{their_rule}/switch"),
    ] {
        let r = c.post(format!("{}{path}", app.base), &[("to", "on"), ("csrf", &csrf)]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert!(!rule_of(theirs, their_key).await.1, "the other tenant's rule is unchanged");
}

#[tokio::test]
async fn a_rules_runs_are_shown_with_their_trigger_and_steps() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "acme.com").await;
    app.add_contact(&t, &key, serde_json::json!({ "email": "ada@example.org" })).await;
    let rules = app.get(&format!("/customers/{t}/automations"), &key).await;
    let rule = rules.body.as_array().unwrap().iter().find(|r| r["starter"] == "tag_clickers").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (c, csrf) = signed_in(&app, &key).await;
    let r = c.post(format!("{}/ui/t/{t}/automations/{rule}/switch", app.base), &[("to", "on"), ("csrf", &csrf)]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let sent =
        app.post(&format!("/customers/{t}/send"), &key, serde_json::json!({ "subject": "s", "html": "h" })).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    app.drain().await;
    let email_id = app.mock().accepted()[0].id.clone();
    let r = app.webhook("msg_click_1", &crate::helpers::event("email.clicked", &email_id, serde_json::json!({}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.settle_until("a settled run", || async {
        let runs = app.get(&format!("/customers/{t}/automations/{rule}/runs"), &key).await;
        runs.body.as_array().is_some_and(|d| d.len() == 1 && d[0]["status"] != "pending")
    })
    .await;
    let html = c.get(format!("{}/ui/t/{t}/automations/{rule}", app.base)).await.text().await.unwrap();
    assert!(html.contains("email.clicked") && html.contains(">add_tag<"), "{html}");
    assert!(html.contains(">done<") && !html.contains("No runs yet"), "{html}");
    // The run's email links to its message's page, named by its recipient's address.
    assert!(html.contains("/messages/") && html.contains("ada@example.org"), "{html}");
    assert!(!html.contains(&format!(">{email_id}<")), "the run shows a message id: {html}");
    // Past the last page there is nothing older.
    let run_id = app.get(&format!("/customers/{t}/automations/{rule}/runs"), &key).await.body[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let older = c.get(format!("{}/ui/t/{t}/automations/{rule}?before={run_id}", app.base)).await;
    assert_eq!(older.status(), StatusCode::OK);
    assert!(older.text().await.unwrap().contains("No older runs"));
}

#[tokio::test]
async fn one_transactional_email_is_sent_from_the_messages_page_as_the_api_would() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let (c, csrf) = signed_in(&app, &key).await;
    let url = format!("{}/ui/t/{t}/messages", app.base);
    // Written inline: queued, and the page of the new message opens.
    let r = c
        .post(
            url.clone(),
            &[("csrf", &csrf), ("to", "ada@example.com"), ("subject", "Your receipt"), ("html", "<p>Thanks</p>")],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let email_id = location.rsplit('/').next().unwrap().to_owned();
    assert!(location.starts_with(&format!("/ui/t/{t}/messages/")), "{location}");
    let m = app.get(&format!("/customers/{t}/messages/{email_id}"), &key).await;
    assert_eq!(m.status, StatusCode::OK, "{}", m.body);
    assert_eq!(m.body["to"], "ada@example.com", "{}", m.body);
    // From a template, with its variables.
    let templates = app.get(&format!("/customers/{t}/templates"), &key).await;
    let template = templates.body[0]["id"].as_str().unwrap().to_owned();
    let r = c
        .post(
            url.clone(),
            &[
                ("csrf", &csrf),
                ("to", "kim@example.com"),
                ("template_id", &template),
                ("variables", r#"{"code": "X1"}"#),
            ],
        )
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // Refused input is explained on the page, what was typed kept; nothing queued.
    for (form, status, says) in [
        (
            vec![("to", "not an address"), ("subject", "S"), ("html", "<p>x</p>")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "not an address",
        ),
        (
            vec![("to", "a@example.com"), ("subject", ""), ("html", "")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "a@example.com",
        ),
        (
            vec![("to", "a@example.com"), ("template_id", &template), ("variables", "[1]")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "JSON object",
        ),
        (
            vec![("to", "a@example.com"), ("subject", "S\u{0}"), ("html", "<p>x</p>")],
            StatusCode::UNPROCESSABLE_ENTITY,
            "a@example.com",
        ),
    ] {
        let mut pairs = vec![("csrf", csrf.as_str())];
        pairs.extend(form);
        let r = c.post(url.clone(), &pairs).await;
        assert_eq!(r.status(), status, "{pairs:?}");
        let body = r.text().await.unwrap();
        assert!(body.contains("id=\"send-error\"") && body.contains(says), "{pairs:?}: {body}");
    }
    // Without the session's token: refused, nothing queued.
    let r = c.post(url.clone(), &[("to", "eve@example.com"), ("subject", "S"), ("html", "<p>x</p>")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let count = app.store.count_rows("messages").await.unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn a_contact_joins_and_leaves_static_segments_from_its_page() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let (other, other_key) = app.verified_tenant("B", "b.example").await;
    let ada = app.add_contact(&t, &key, serde_json::json!({ "email": "ada@example.com" })).await;
    let vip = app.post(&format!("/customers/{t}/segments"), &key, serde_json::json!({ "name": "VIP" })).await;
    let vip = vip.body["id"].as_str().unwrap().to_owned();
    let dynamic = app
        .post(
            &format!("/customers/{t}/segments"),
            &key,
            serde_json::json!({ "name": "Tagged", "filter": { "tag": "x" } }),
        )
        .await;
    let dynamic = dynamic.body["id"].as_str().unwrap().to_owned();
    let foreign =
        app.post(&format!("/customers/{other}/segments"), &other_key, serde_json::json!({ "name": "Theirs" })).await;
    let foreign = foreign.body["id"].as_str().unwrap().to_owned();
    let (c, csrf) = signed_in(&app, &key).await;
    let page_url = format!("{}/ui/t/{t}/contacts/{ada}", app.base);
    let page = c.get(page_url.clone()).await.text().await.unwrap();
    assert!(page.contains(&format!("<option value=\"{vip}\">VIP</option>")), "{page}");
    assert!(!page.contains(&dynamic), "a dynamic segment is not offered");
    let url = format!("{page_url}/segments");
    let r = c.post(url.clone(), &[("csrf", &csrf), ("segment_id", &vip), ("action", "add")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(member_count(&app, &t, &key, &vip).await, 1);
    let page = c.get(page_url.clone()).await.text().await.unwrap();
    assert!(page.contains("id=\"joined-segments\"") && page.contains("Remove from VIP"), "{page}");
    // Another tenant's segment, a dynamic one, an unknown action, no token: refused, nothing changes.
    let r = c.post(url.clone(), &[("csrf", &csrf), ("segment_id", &foreign), ("action", "add")]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.post(url.clone(), &[("csrf", &csrf), ("segment_id", &dynamic), ("action", "add")]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = c.post(url.clone(), &[("csrf", &csrf), ("segment_id", &vip), ("action", "drop")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = c.post(url.clone(), &[("segment_id", &vip), ("action", "remove")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(member_count(&app, &t, &key, &vip).await, 1);
    let r = c.post(url.clone(), &[("csrf", &csrf), ("segment_id", &vip), ("action", "remove")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(member_count(&app, &t, &key, &vip).await, 0);
}

async fn member_count(app: &TestApp, t: &str, key: &str, sid: &str) -> serde_json::Value {
    app.get(&format!("/customers/{t}/segments/{sid}"), key).await.body["contact_count"].clone()
}
