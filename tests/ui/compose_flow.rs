//! The compose page's send flow over plain HTTP: Back from the confirmation
//! keeps what was entered, a preview of inline content, and a test send.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_with, Options};
use crate::http::signed_in;

#[tokio::test]
async fn back_from_the_confirmation_keeps_the_form() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    app.add_contact(&t, &key, json!({ "email": "ada@example.com", "tags": ["vip"] })).await;
    let (c, csrf) = signed_in(&app, &key).await;
    let form = [
        ("csrf", csrf.as_str()),
        ("content", "inline"),
        ("subject", "Spring <sale>"),
        ("html", "<p>Hi {{first_name}}</p>"),
        ("text", "Hi there"),
        ("audience", "tag"),
        ("tag", "vip"),
        ("scheduled_at", "2027-03-04T05:06"),
    ];
    let confirm = c.post(format!("{}/ui/t/{t}/campaigns/confirm", app.base), &form).await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let confirm = confirm.text().await.unwrap();
    let back_button = confirm.split("id=\"back-to-compose\"").next().unwrap().rsplit("<button").next().unwrap();
    assert!(back_button.contains("/campaigns/new\""), "Back posts the form back: {back_button}");
    // What the confirmation's Back button posts: its hidden fields.
    let back = c.post(format!("{}/ui/t/{t}/campaigns/new", app.base), &form).await;
    assert_eq!(back.status(), StatusCode::OK);
    let page = back.text().await.unwrap();
    assert!(page.contains("value=\"Spring &lt;sale&gt;\""), "the subject is kept");
    assert!(page.contains(">&lt;p&gt;Hi {{first_name}}&lt;&#x2f;p&gt;</textarea>"), "the html is kept");
    assert!(page.contains("value=\"tag\" checked"), "the audience is kept");
    assert!(page.contains("name=\"tag\" class=\"inline\" value=\"vip\""), "the tag is kept");
    assert!(page.contains("value=\"2027-03-04T05:06\""), "the time is kept");
    assert_eq!(app.get(&format!("/customers/{t}/campaigns"), &key).await.body, json!([]), "nothing was sent");
}

#[tokio::test]
async fn the_compose_page_previews_inline_content_and_sends_a_test_to_own_addresses_only() {
    let app = spawn_with(Options { resend: true, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("A", "a.example").await;
    let (c, csrf) = signed_in(&app, &key).await;
    let url = format!("{}/ui/t/{t}/campaigns/new", app.base);
    let content = |action: &'static str, to: &'static str| {
        vec![
            ("csrf", csrf.clone()),
            ("content", "inline".into()),
            ("subject", "Hi {{first_name}}".into()),
            ("html", "<p>Hello {{first_name}}</p>".into()),
            ("audience", "all".into()),
            ("action", action.into()),
            ("test_to", to.into()),
        ]
    };
    let post = |form: Vec<(&'static str, String)>| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let r = c.post(url, &form).await;
            assert_eq!(r.status(), StatusCode::OK);
            r.text().await.unwrap()
        }
    };
    let preview = post(content("preview", "")).await;
    assert!(preview.contains("id=\"compose-preview-result\""), "{preview}");
    assert!(preview.contains("“Hi there”"), "the subject for a sample contact");
    assert!(preview.contains("srcdoc=\"&lt;p&gt;Hello there&lt;"), "the body for a sample contact: {preview}");

    let refused = post(content("test", "someone@elsewhere.example")).await;
    assert!(refused.contains("id=\"compose-error\""), "{refused}");
    assert!(refused.contains("value=\"someone@elsewhere.example\""), "the form is kept");
    let too_many =
        post(content("test", "a@a.example, b@a.example c@a.example,d@a.example e@a.example f@a.example")).await;
    assert!(too_many.contains("id=\"compose-error\""));
    app.drain().await;
    assert!(app.mock().accepted().is_empty());

    let sent = post(content("test", "boss@a.example")).await;
    assert!(sent.contains("Test sent to boss@a.example"), "{sent}");
    app.drain().await;
    let accepted = app.mock().accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].subject, "[Test] Hi there");
    assert_eq!(accepted[0].from, "hello@a.example");
    assert_eq!(app.get(&format!("/customers/{t}/campaigns"), &key).await.body, json!([]));
}
