//! The default sender from the dashboard's sending settings: set by the
//! tenant through the same use case as `PATCH /customers/{id}`, used by the
//! next send that names no sender, shown on the compose form; refused with a
//! reason on the page when not on the verified domain; another tenant's
//! session and a form without its token change nothing. Over plain HTTP.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_with, Options, ADMIN_KEY};
use crate::http::signed_in;

#[tokio::test]
async fn a_tenant_sets_its_default_sender_in_the_dashboard_and_the_next_send_comes_from_it() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.test").await;
    app.add_contact(&t, &key, json!({ "email": "ada@example.org" })).await;
    let (s, csrf) = signed_in(&app, &key).await;
    let settings = format!("{}/ui/t/{t}/settings", app.base);
    let page = s.get(settings.clone()).await.text().await.unwrap();
    assert!(page.contains("id=\"default-from\" class=\"wrap\">hello@acme.test<"), "the fallback, said: {page}");
    assert!(page.contains("aria-current=\"page\">Sending settings</a>"), "in the menu: {page}");

    let r = s
        .post(settings.clone(), &[("csrf", &csrf), ("from_name", " Acme News "), ("from_address", "news@acme.test")])
        .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], format!("/ui/t/{t}/settings?done=sender_saved"));
    let expected = "\"Acme News\" <news@acme.test>";
    assert_eq!(app.get(&format!("/customers/{t}"), &key).await.body["default_from"], expected, "the API's too");
    let page = s.get(settings.clone()).await.text().await.unwrap();
    assert!(page.contains("&quot;Acme News&quot; &lt;news@acme.test&gt;"), "{page}");
    let compose = s.get(format!("{}/ui/t/{t}/campaigns/new", app.base)).await.text().await.unwrap();
    assert!(compose.contains("id=\"default-from\" class=\"wrap\">&quot;Acme News&quot; &lt;news@acme.test&gt;<"));

    // A campaign sent from the dashboard with its From left empty comes from it.
    let form = [
        ("csrf", csrf.as_str()),
        ("content", "inline"),
        ("subject", "Spring"),
        ("html", "<p>Hi</p>"),
        ("audience", "all"),
        ("from", ""),
    ];
    let r = s.post(format!("{}/ui/t/{t}/campaigns", app.base), &form).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    app.drain().await;
    let froms: Vec<String> = app.mock().accepted().into_iter().map(|a| a.from).collect();
    assert_eq!(froms, [expected]);

    // Emptied, mail comes from hello@ the domain again.
    let r = s.post(settings, &[("csrf", &csrf), ("from_name", ""), ("from_address", "")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get(&format!("/customers/{t}"), &key).await.body["default_from"], "hello@acme.test");
}

#[tokio::test]
async fn a_default_sender_off_the_verified_domain_is_refused_on_the_page_and_changes_nothing() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.test").await;
    let (s, csrf) = signed_in(&app, &key).await;
    let settings = format!("{}/ui/t/{t}/settings", app.base);
    let before = app.get(&format!("/customers/{t}"), &key).await.body;
    for (name, address, says) in [
        ("Acme", "news@other.test", "The From address must be an address on the verified domain acme.test"),
        ("Acme", "not an address", "The From address"),
        ("Acme\r\nBcc: x@evil.test", "news@acme.test", "The From name must not contain control characters"),
        ("Acme", "news@acme.test\0", "The From address"),
    ] {
        let r = s.post(settings.clone(), &[("csrf", &csrf), ("from_name", name), ("from_address", address)]).await;
        let status = r.status();
        let body = r.text().await.unwrap();
        assert!(status.is_client_error(), "{address:?}: {status}");
        assert!(body.contains("id=\"form-error\""), "{address:?}: the reason on the form's page: {body}");
        assert!(body.contains(says), "{address:?} should say {says}: {body}");
        assert_eq!(app.get(&format!("/customers/{t}"), &key).await.body, before, "nothing changed");
    }
    // What was typed is kept on the page.
    let r = s.post(settings, &[("csrf", &csrf), ("from_name", "Acme"), ("from_address", "news@other.test")]).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.text().await.unwrap().contains("value=\"news@other.test\""));
}

#[tokio::test]
async fn another_tenant_cannot_set_the_default_sender_and_the_form_needs_its_token() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.test").await;
    let (_, other_key) = app.verified_tenant("Other", "other.test").await;
    let settings = format!("{}/ui/t/{t}/settings", app.base);
    let before = app.get(&format!("/customers/{t}"), &key).await.body;
    let (theirs, their_csrf) = signed_in(&app, &other_key).await;
    assert_eq!(theirs.get(settings.clone()).await.status(), StatusCode::NOT_FOUND);
    let r = theirs.post(settings.clone(), &[("csrf", &their_csrf), ("from_address", "news@acme.test")]).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (mine, _) = signed_in(&app, &key).await;
    for token in ["", "forged"] {
        let r = mine.post(settings.clone(), &[("csrf", token), ("from_address", "news@acme.test")]).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "token {token:?}");
    }
    assert_eq!(app.get(&format!("/customers/{t}"), &key).await.body, before);
    // The operator may set it for the tenant.
    let (admin, admin_csrf) = signed_in(&app, ADMIN_KEY).await;
    let r = admin.post(settings, &[("csrf", &admin_csrf), ("from_address", "news@acme.test")]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.get(&format!("/customers/{t}"), &key).await.body["default_from"], "news@acme.test");
}
