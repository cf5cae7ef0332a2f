//! The README's content walkthrough in the dashboard: templates with a live
//! preview, a campaign from a template to a dynamic segment, a message found
//! by its recipient, the events listing, a campaign's figures, an import that
//! shows rows written; and the same pages' hostile cases over plain HTTP.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::browser::Browser;
use crate::helpers::{spawn_with, Options, TestApp};
use crate::http::signed_in;

/// Waits up to 20 s until `script` (a JS expression's body, returning a
/// string) gives a value containing `want`.
async fn wait_js(b: &Browser, script: &str, want: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = b.client().execute(script, vec![]).await.unwrap();
        let seen = v.as_str().unwrap_or_default().to_owned();
        if seen.contains(want) {
            return seen;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {want:?} from {script}; saw {seen:?}");
        // The browser's own pace: its preview updates as its scripts run.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

/// A tenant with a verified domain, two contacts with a `plan`, a dynamic
/// segment of the pro plan, and a template of another tenant.
async fn setup(app: &TestApp) -> (String, String, String, String, String) {
    let (t, key) = app.verified_tenant("Acme", "acme.example").await;
    let (other, other_key) = app.verified_tenant("Other", "other.example").await;
    app.add_contact(
        &t,
        &key,
        json!({ "email": "Ada@example.com", "first_name": "Ada", "tags": ["premium"], "attributes": { "plan": "pro" } }),
    )
    .await;
    app.add_contact(
        &t,
        &key,
        json!({ "email": "grace@example.com", "first_name": "Grace", "attributes": { "plan": "free" } }),
    )
    .await;
    let seg = app
        .post(
            &format!("/customers/{t}/segments"),
            &key,
            json!({ "name": "Pro plan", "filter": { "all": [{ "attribute": "plan", "op": "eq", "value": "pro" }] } }),
        )
        .await;
    assert_eq!(seg.status, StatusCode::CREATED, "{}", seg.body);
    let seg = seg.body["id"].as_str().unwrap().to_owned();
    let theirs = app
        .post(
            &format!("/customers/{other}/templates"),
            &other_key,
            json!({ "name": "Theirs", "subject": "Secret", "html": "<p>secret</p>" }),
        )
        .await;
    let theirs = theirs.body["id"].as_str().unwrap().to_owned();
    (t, key, seg, other, theirs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_is_written_with_a_live_preview_and_sent_to_a_dynamic_segment_in_a_browser() {
    let Some(b) = Browser::start("content").await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key, seg, other, theirs) = setup(&app).await;
    b.open("/ui/login").await;
    b.sign_in(&key).await;

    // The list shows the starters; a new template's preview follows the typing.
    b.open(&format!("/ui/t/{t}/templates")).await;
    b.wait_text("main table", "Password reset").await;
    b.check_page("templates").await;
    b.click("main .head a.btn").await;
    b.wait_title("New template").await;
    b.mark_page().await;
    b.fill("#tpl-name", "Spring news").await;
    b.fill("#tpl-subject", "{{ first_name | default('Hello') }}, spring is here").await;
    b.fill(
        "#tpl-html",
        "<h1>Spring at {{ tenant.name }}</h1><p>Plan: {{ contact.attributes.plan }}. Code: <b>{{ code }}</b></p>",
    )
    .await;
    b.fill("#tpl-variables", r#"{"code": "SPRING"}"#).await;
    wait_js(&b, "return document.getElementById('preview-html').srcdoc;", "Code: <b>SPRING</b>").await;
    b.wait_text("#preview-subject", "Hello, spring is here").await;
    b.wait_text("#preview-text", "Spring at Acme").await;
    // The rendered html lives in a sandboxed frame, never in the page itself.
    let sandbox = b.client().execute("return document.getElementById('preview-html').getAttribute('sandbox');", vec![]);
    assert_eq!(sandbox.await.unwrap(), json!(""), "a sandbox allowing nothing");
    assert!(!b.text("main form").await.contains("Code: SPRING"));
    // For a contact of the tenant, with its attributes.
    b.fill("#tpl-contact", "ada@example.com").await;
    b.wait_text("#preview-subject", "Ada, spring is here").await;
    wait_js(&b, "return document.getElementById('preview-html').srcdoc;", "Plan: pro").await;
    // A script in the html does not run: the frame is sandboxed.
    b.fill("#tpl-html", "<p>scripted</p><script>top.document.title = 'pwned'; document.title = 'pwned';</script>")
        .await;
    wait_js(&b, "return document.getElementById('preview-html').srcdoc;", "scripted").await;
    // Wall-clock on purpose: time for a script in the preview to run, were it allowed to.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(b.client().execute("return document.title;", vec![]).await.unwrap(), json!("New template · mailroom"));
    // A template error is shown as such, and the preview recovers once it is fixed.
    b.fill("#tpl-html", "<p>{{ code </p>").await;
    b.wait_text("#preview-error", "html").await;
    assert_eq!(
        b.client().execute("return document.getElementById('preview-error').hidden;", vec![]).await.unwrap(),
        json!(false)
    );
    b.check_page("template-error").await;
    b.fill("#tpl-html", "<h1>Spring at {{ tenant.name }}</h1><p>Code: <b>{{ code }}</b></p>").await;
    wait_js(&b, "return document.getElementById('preview-error').hidden ? 'ok' : 'error';", "ok").await;
    assert!(b.page_is_marked().await, "the preview came without a reload");
    b.check_page("template-new").await;
    b.click("#save-template").await;
    b.wait_text(".notice", "Template created").await;
    let url = b.client().current_url().await.unwrap();
    let tpl = url.path().rsplit('/').next().unwrap().to_owned();
    b.wait_text("main .head", "Version 1").await;
    b.check_page("template-edit").await;
    // A change is a new version.
    b.fill("#tpl-subject", "{{ first_name | default('Hello') }}, spring is here!").await;
    b.click("#save-template").await;
    b.wait_text(".notice", "saved as a new version").await;
    b.wait_text("main .head", "Version 2").await;

    // Compose from the template ("use in a campaign"), with variables, to the dynamic segment.
    b.click("#use-template").await;
    b.wait_title("New campaign").await;
    let chosen = b.client().execute("return document.getElementById('template_id').value;", vec![]).await.unwrap();
    assert_eq!(chosen, json!(tpl));
    let hidden = "return document.querySelector('[data-content=inline]').hidden ? 'hidden' : 'shown';";
    assert_eq!(b.client().execute(hidden, vec![]).await.unwrap(), json!("hidden"), "inline fields hidden");
    b.click("#content-inline").await;
    assert_eq!(b.client().execute(hidden, vec![]).await.unwrap(), json!("shown"));
    b.click("#content-template").await;
    b.fill("#variables", r#"{"code": "SPRING"}"#).await;
    b.click(&format!("fieldset input[value='segment:{seg}']")).await;
    b.check_page("compose-template").await;
    b.click("form[action$='/campaigns/confirm'] button[type=submit]").await;
    b.wait_text("h1", "Send to 1 recipient?").await;
    b.wait_text("main .facts", "Spring news").await;
    b.wait_text("#send-preview summary", "Hello, spring is here!").await;
    b.click("#send-preview summary").await;
    b.check_page("confirm-send-template").await;
    b.click("#confirm-send").await;
    b.wait_text(".notice", "Campaign queued").await;
    b.wait_text("[data-live=delivered_total]", "1").await;
    let cid = b.client().current_url().await.unwrap().path().rsplit('/').next().unwrap().to_owned();
    let campaign = app.get(&format!("/customers/{t}/campaigns/{cid}"), &key).await;
    assert_eq!(campaign.body["template_version"], json!(2), "{}", campaign.body);
    // The campaign's figures, from the stats the API answers.
    b.open(&format!("/ui/t/{t}/campaigns/{cid}")).await;
    b.wait_text("#figures", "Delivery rate").await;
    b.wait_text("#figures", "Delivery rate100.0%").await;
    b.wait_text("main", "From the template Spring news, version 2").await;
    b.check_page("campaign-figures").await;

    // A contact's page links to what was sent to it.
    b.open(&format!("/ui/t/{t}/contacts?q=ada")).await;
    b.click("main table a").await;
    b.wait_title("Ada@example.com").await;
    b.click("#contact-messages").await;
    b.wait_text("#recipient-messages", "Ada@example.com").await;
    // The message, found by its recipient's address (in any case), then its timeline.
    b.open(&format!("/ui/t/{t}/messages")).await;
    b.fill("#message-to", "ADA@example.com").await;
    b.click("form[aria-label='By recipient'] button").await;
    b.wait_text("#recipient-messages", "Ada@example.com").await;
    b.check_page("messages-by-address").await;
    b.click("#recipient-messages a[href*='/messages/']").await;
    b.wait_text(".timeline", "delivered").await;
    // The unsubscribe link the email carries, as the API shows it.
    let link = b.text("#unsubscribe-link").await;
    assert!(link.starts_with("http") && link.contains("/u/"), "{link}");

    // The events, newest first, filtered by type.
    b.open(&format!("/ui/t/{t}/events")).await;
    b.wait_text("#events", "delivered").await;
    b.check_page("events").await;
    b.click("#ev-type option[value='email.delivered']").await;
    b.click("form[aria-label='Filter events'] button").await;
    b.wait_text("#events", "delivered").await;
    assert!(!b.text("#events").await.contains("sent"), "only deliveries");

    // Another tenant's template does not exist here, under either tenant's path.
    for path in [format!("/ui/t/{t}/templates/{theirs}"), format!("/ui/t/{other}/templates/{theirs}")] {
        assert_eq!(b.status_of(&path).await, 404, "{path}");
    }
    b.open(&format!("/ui/t/{t}/templates/{theirs}")).await;
    b.wait_title("Not found").await;

    // Deleting asks first.
    b.open(&format!("/ui/t/{t}/templates/{tpl}")).await;
    b.click("main .head a[href$='/delete']").await;
    b.wait_title("Delete Spring news").await;
    b.check_page("template-delete").await;
    b.click("#confirm-delete").await;
    b.wait_text(".notice", "Template deleted").await;
    assert!(!b.text("main table").await.contains("Spring news"));
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_shows_the_rows_written_as_they_commit_and_the_new_pages_pass_in_the_dark() {
    let Some(b) = Browser::start_with("content-dark", true).await else { return };
    let app = spawn_with(Options::default()).await;
    b.set_base(&app.base);
    let (t, key, _, _, _) = setup(&app).await;
    b.open("/ui/login").await;
    b.sign_in(&key).await;

    // 4,500 rows: three chunks commit, and the page says so as each does.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("many.csv");
    let mut body = String::from("email,first_name,plan\n");
    for i in 0..4_500 {
        body.push_str(&format!("person{i}@example.net,P{i},pro\n"));
    }
    std::fs::write(&csv, body).unwrap();
    b.open(&format!("/ui/t/{t}/contacts/import")).await;
    b.client()
        .execute(
            "window.__seen = []; new MutationObserver(function (records) { records.forEach(function (r) { \
             window.__seen.push(r.addedNodes.length ? r.addedNodes[0].textContent : r.target.textContent); }); })\
             .observe(document.getElementById('import-status'), {childList: true, characterData: true, subtree: true}); \
             return true;",
            vec![],
        )
        .await
        .unwrap();
    b.client().find(Locator::Css("#csv-file")).await.unwrap().send_keys(csv.to_str().unwrap()).await.unwrap();
    b.click("#import-form button[type=submit]").await;
    b.wait_text("#import-status", "Done: 4500 created").await;
    let seen = b.client().execute("return window.__seen;", vec![]).await.unwrap();
    let seen: Vec<String> = serde_json::from_value::<Vec<Value>>(seen)
        .unwrap()
        .into_iter()
        .map(|v| v.as_str().unwrap_or_default().to_owned())
        .collect();
    // Before the report, a count of rows already committed, short of the whole file.
    let partial = seen.iter().filter_map(|s| s.split(" rows written").next().filter(|_| s.contains(" rows written")));
    let partial: Vec<u64> = partial.filter_map(|n| n.parse().ok()).collect();
    assert!(partial.iter().any(|n| *n > 0 && *n < 4_500), "{seen:?}");
    assert!(b.dark_scheme().await);
    b.check_page("import-rows").await;

    // The new pages in the dark scheme (contrast included).
    b.open(&format!("/ui/t/{t}/templates")).await;
    b.check_page("templates").await;
    b.click("main table a").await;
    b.wait_text("#preview-subject", "").await;
    b.check_page("template").await;
    b.open(&format!("/ui/t/{t}/events")).await;
    b.check_page("events-empty").await;
    b.open(&format!("/ui/t/{t}/messages?to=nobody@example.com")).await;
    b.wait_text("main", "Nothing sent to nobody@example.com").await;
    b.check_page("messages-none").await;
    b.finish().await;
}

#[tokio::test]
async fn template_forms_refuse_a_missing_token_and_show_bad_input_on_the_page() {
    let app = spawn_with(Options::default()).await;
    let (t, key, _, other, theirs) = setup(&app).await;
    let (c, csrf) = signed_in(&app, &key).await;
    let url = format!("{}/ui/t/{t}/templates", app.base);
    let form = |name: &'static str, subject: &'static str, html: &str| {
        vec![("name", name.to_owned()), ("subject", subject.to_owned()), ("html", html.to_owned())]
    };
    let post = |fields: Vec<(&'static str, String)>, with_token: bool| {
        let c = c.clone();
        let url = url.clone();
        let csrf = csrf.clone();
        async move {
            let mut fields: Vec<(&str, String)> = fields;
            if with_token {
                fields.push(("csrf", csrf));
            }
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            c.post(url, &pairs).await
        }
    };
    // No token: refused, nothing saved.
    let r = post(form("Sneaky", "s", "<p>x</p>"), false).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let listed = app.get(&format!("/customers/{t}/templates"), &key).await;
    assert!(!listed.body.to_string().contains("Sneaky"));
    // Hostile input: a page that says what is wrong, with a 4xx, and the text kept.
    for (fields, status, says) in [
        (form("Nul", "s", "<p>a\0b</p>"), StatusCode::UNPROCESSABLE_ENTITY, "NUL"),
        (form("Header", "Hi\r\nBcc: x@example.com", "<p>x</p>"), StatusCode::UNPROCESSABLE_ENTITY, "one line"),
        (form("Broken", "s", "<p>{{ code </p>"), StatusCode::UNPROCESSABLE_ENTITY, "html"),
        (form("", "s", "<p>x</p>"), StatusCode::UNPROCESSABLE_ENTITY, "name"),
        (form("Huge", "s", &"x".repeat(1_100_000)), StatusCode::PAYLOAD_TOO_LARGE, "html"),
    ] {
        let r = post(fields, true).await;
        assert_eq!(r.status(), status);
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let page = r.text().await.unwrap();
        assert!(page.contains("Not saved") && page.contains(says), "{says}: {}", &page[..page.len().min(3000)]);
    }
    // The no-script preview renders without saving; bad variables are named.
    let mut fields = form("Draft", "Hi {{ first_name }}", "<p>{{ code }}</p>");
    fields.extend([("variables", r#"{"code": "<b>"}"#.to_owned()), ("action", "preview".to_owned())]);
    let r = post(fields, true).await;
    assert_eq!(r.status(), StatusCode::OK);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let page = r.text().await.unwrap();
    // Escaped twice: once by the template (a value in html), once for the srcdoc attribute.
    assert!(page.contains("&amp;lt;b&amp;gt;"), "{page}");
    // The editor's policy lets the preview's inline styles apply, and nothing else.
    for part in
        ["style-src 'self' 'unsafe-inline'", "script-src 'self'", "default-src 'self'", "frame-ancestors 'none'"]
    {
        assert!(csp.contains(part), "{csp}");
    }
    let mut fields = form("Draft", "Hi", "<p>x</p>");
    fields.extend([("variables", "{not json".to_owned()), ("action", "preview".to_owned())]);
    let page = post(fields, true).await.text().await.unwrap();
    assert!(page.contains("not valid JSON"), "{page}");
    // The live preview: JSON in, JSON out; without a token, refused.
    let live = format!("{url}/preview");
    let r = c
        .post(live.clone(), &[("subject", "Hi"), ("html", "<p>{{ code }}</p>"), ("variables", "[1]"), ("csrf", &csrf)])
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let j: Value = r.json().await.unwrap();
    assert!(j["error"]["message"].as_str().unwrap().contains("JSON object"), "{j}");
    assert!(j["error"]["code"].is_string(), "the API's error envelope: {j}");
    let r = c
        .post(live.clone(), &[("subject", "Hi"), ("html", "<p>{{ code }}</p>"), ("variables", r#"{"code": 7}"#)])
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c
        .post(
            live,
            &[("subject", "Hi"), ("html", "<p>{{ code }}</p>"), ("variables", r#"{"code": 7}"#), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let j: Value = r.json().await.unwrap();
    assert!(j["html"].as_str().unwrap().trim_end().starts_with("<p>7</p>"), "{j}");
    // Another tenant's template: 404 to read, save or delete, and it stays.
    for path in [format!("/ui/t/{t}/templates/{theirs}"), format!("/ui/t/{other}/templates/{theirs}")] {
        assert_eq!(c.get(format!("{}{path}", app.base)).await.status(), StatusCode::NOT_FOUND, "{path}");
        let r = c
            .post(format!("{}{path}", app.base), &[("name", "Mine"), ("subject", "s"), ("html", "h"), ("csrf", &csrf)])
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let r = c.post(format!("{}{path}/delete", app.base), &[("csrf", &csrf)]).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}/delete");
    }
    let still = app.get(&format!("/customers/{other}/templates/{theirs}"), crate::helpers::ADMIN_KEY).await;
    assert_eq!(still.body["name"], json!("Theirs"));
    // A delete without its token is refused.
    let mine = app.get(&format!("/customers/{t}/templates"), &key).await;
    let mine = mine.body[0]["id"].as_str().unwrap().to_owned();
    let r = c.post(format!("{url}/{mine}/delete"), &[("csrf", "forged")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn composing_from_a_template_checks_its_variables_and_lookups_refuse_bad_input() {
    let app = spawn_with(Options::default()).await;
    let (t, key, seg, _, theirs) = setup(&app).await;
    let (c, csrf) = signed_in(&app, &key).await;
    let tpl = app.get(&format!("/customers/{t}/templates"), &key).await;
    let tpl = tpl.body[0]["id"].as_str().unwrap().to_owned();
    let audience = format!("segment:{seg}");
    let confirm = format!("{}/ui/t/{t}/campaigns/confirm", app.base);
    for (variables, template, says) in [
        ("{oops", tpl.as_str(), "not valid JSON"),
        ("[1, 2]", tpl.as_str(), "JSON object"),
        ("{\"a\": \"\\u0000\"}", tpl.as_str(), "NUL"),
        ("", "", "choose the template"),
    ] {
        let form = [
            ("csrf", csrf.as_str()),
            ("content", "template"),
            ("template_id", template),
            ("variables", variables),
            ("audience", audience.as_str()),
        ];
        let r = c.post(confirm.clone(), &form).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{variables}");
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    // Another tenant's template is not there to send.
    let form =
        [("csrf", csrf.as_str()), ("content", "template"), ("template_id", theirs.as_str()), ("audience", "all")];
    let r = c.post(confirm.clone(), &form).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.post(format!("{}/ui/t/{t}/campaigns", app.base), &form).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A good one: confirmed, then queued without a token refused.
    let form = [
        ("csrf", csrf.as_str()),
        ("content", "template"),
        ("template_id", tpl.as_str()),
        ("variables", "{\"order_id\": \"A-1\"}"),
        ("audience", audience.as_str()),
    ];
    // The template saved again between the confirmation and the send: the
    // send is refused rather than mail a version nobody previewed.
    let page = c.post(confirm.clone(), &form).await.text().await.unwrap();
    let shown = page.split("name=\"template_version\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let edit = app.patch(&format!("/customers/{t}/templates/{tpl}"), &key, json!({ "subject": "Changed" })).await;
    assert_eq!(edit.status, StatusCode::OK, "{}", edit.body);
    let mut stale = form.to_vec();
    stale.push(("template_version", shown.as_str()));
    let r = c.post(format!("{}/ui/t/{t}/campaigns", app.base), &stale).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert!(r.text().await.unwrap().contains("review the send again"));
    assert_eq!(app.get(&format!("/customers/{t}/campaigns"), &key).await.body, json!([]));
    let r = c.post(confirm, &form).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("Send to 1 recipient?"));
    let r = c.post(format!("{}/ui/t/{t}/campaigns", app.base), &form[1..]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = c.post(format!("{}/ui/t/{t}/campaigns", app.base), &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let at = r.headers()["location"].to_str().unwrap();
    let cid = at.split("/campaigns/").nth(1).unwrap().split('?').next().unwrap().to_owned();
    // By address: campaign mail (through its contact) and transactional mail
    // (to an address that is no contact), in any case, newest first.
    let single = app.send_single(&t, &key, "Kim@Example.com").await;
    let to_ada = app.send_single(&t, &key, "ada@example.com").await;
    let page = c.get(format!("{}/ui/t/{t}/messages?to=kim@example.COM", app.base)).await.text().await.unwrap();
    assert!(page.contains(&single) && page.contains("transactional"), "{page}");
    let page = c.get(format!("{}/ui/t/{t}/messages?to=ADA@example.com", app.base)).await.text().await.unwrap();
    let (newest, campaign) = (page.find(&to_ada).unwrap(), page.find(&format!("/campaigns/{cid}")).unwrap());
    assert!(newest < campaign, "the transactional email, sent last, comes first");
    // Lookups: a bad address and a bad cursor are said so, as pages.
    for to in ["not-an-address", "a%00b@example.com", "a%0d%0ab@example.com", &"x".repeat(5000)] {
        let r = c.get(format!("{}/ui/t/{t}/messages?to={to}", app.base)).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{to}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    }
    let r = c.get(format!("{}/ui/t/{t}/events?cursor=garbage", app.base)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("cursor"));
    let r = c.get(format!("{}/ui/t/{t}/events?type=%00", app.base)).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn the_events_page_pages_back_with_its_cursor_keeping_the_filter() {
    let app = spawn_with(Options::default()).await;
    let (t, key, _, _, _) = setup(&app).await;
    app.import_contacts(&t, &key, 30, "many.example").await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    app.drain().await;
    // 32 messages: sent and delivered events, more than one page of 50.
    app.settle_until("the events", || async {
        let e = app.get(&format!("/customers/{t}/events?limit=1000"), &key).await;
        e.body.as_array().map_or(0, Vec::len) >= 64
    })
    .await;
    let (c, _) = signed_in(&app, &key).await;
    let first = c.get(format!("{}/ui/t/{t}/events", app.base)).await.text().await.unwrap();
    assert!(first.contains("id=\"next-page\""), "a next page link");
    let next = first.split("rel=\"next\"").next().unwrap();
    let href =
        next.rsplit("href=\"").next().unwrap().split('"').next().unwrap().replace("&amp;", "&").replace("&#x2f;", "/");
    assert!(href.contains("cursor="), "{href}");
    let second = c.get(format!("{}{href}", app.base)).await;
    assert_eq!(second.status(), StatusCode::OK);
    let second = second.text().await.unwrap();
    assert!(second.contains(">Newest<"), "the second page links back");
    // Every page says how many there are in all.
    assert!(first.contains("id=\"event-total\">"), "a total");
    // With a type filter, the cursor link keeps it.
    let delivered = c.get(format!("{}/ui/t/{t}/events?type=email.delivered", app.base)).await.text().await.unwrap();
    assert!(!delivered.contains("id=\"next-page\""), "32 deliveries fit one page");
    // By the name people use, with the API's name beside it.
    assert!(delivered.contains("badge ok\">Delivered") && delivered.contains(">email.delivered<"));
}

#[tokio::test]
async fn a_file_import_answers_its_progress_line_by_line_and_needs_the_token() {
    let app = spawn_with(Options::default()).await;
    let (t, key, _, _, _) = setup(&app).await;
    let (c, csrf) = signed_in(&app, &key).await;
    let url = format!("{}/ui/t/{t}/contacts/import", app.base);
    let upload = |body: String, token: Option<&str>| {
        let mut req =
            c.http.post(url.clone()).header("cookie", c.header()).header("content-type", "text/csv").body(body);
        if let Some(token) = token {
            req = req.header("x-csrf-token", token);
        }
        req.send()
    };
    let mut csv = String::from("email,first_name\n");
    for i in 0..4_100 {
        csv.push_str(&format!("p{i}@example.net,P{i}\n"));
    }
    csv.push_str("not-an-address,X\n");
    // Without the token: refused, nothing written.
    let r = upload(csv.clone(), None).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = upload(csv.clone(), Some("forged")).await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let listed = app.get(&format!("/customers/{t}/contacts?limit=10"), &key).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 2, "{}", listed.body);
    // With it: a line per committed chunk, rising, then the report.
    let r = upload(csv, Some(&csrf)).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("application/x-ndjson"));
    let lines: Vec<Value> = r.text().await.unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let (last, progress) = lines.split_last().unwrap();
    assert!(progress.len() >= 2, "{lines:?}");
    let written: Vec<u64> = progress.iter().map(|l| l["progress"]["created"].as_u64().unwrap()).collect();
    assert!(written.windows(2).all(|w| w[0] < w[1]) && written.last() == Some(&4_100), "{written:?}");
    assert_eq!(last["report"]["created"], json!(4_100));
    assert_eq!(last["report"]["rejected"], json!(1));
    assert_eq!(last["report"]["errors"][0]["line"], json!(4_102));
    // A file that cannot be imported at all says why, in its last line.
    let r = upload("name,plan\nAda,pro\n".into(), Some(&csrf)).await.unwrap();
    let text = r.text().await.unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert!(last["error"].as_str().unwrap().contains("email"), "{text}");
}
