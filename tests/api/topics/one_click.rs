//! One-click unsubscribe (RFC 8058) from a campaign that targets a topic:
//! it leaves that topic only; everything is a second, explicit step.

use mailroom::outbox::Step;
use reqwest::StatusCode;
use serde_json::json;

use super::{standing, topic};
use crate::helpers::{spawn_with, Options, TestApp};

/// The path (`/u/...`) of the one-click link in the email sent to `to`.
fn link_to(app: &TestApp, to: &str) -> String {
    link_in(app, to, None)
}

/// The path of the one-click link in the email sent to `to` (with that subject, if given).
fn link_in(app: &TestApp, to: &str, subject: Option<&str>) -> String {
    let accepted = app.mock().accepted();
    let email = accepted
        .iter()
        .find(|e| e.to[0] == to && subject.map_or(true, |s| e.subject == s))
        .expect("an email to the address");
    let header = email.headers.get("List-Unsubscribe").expect("List-Unsubscribe header");
    let url = header.trim_start_matches('<').trim_end_matches('>');
    url::Url::parse(url).expect("a URL").path().to_owned()
}

async fn post(app: &TestApp, path: &str, body: impl Into<reqwest::Body>) -> (StatusCode, String) {
    let r = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn one_click_from_a_topic_campaign_leaves_that_topic_and_offers_everything_as_a_second_step() {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(&app, &t, &key, json!({ "name": "News", "default": "opt_out" })).await;
    topic(&app, &t, &key, json!({ "name": "Offers", "default": "opt_out" })).await;
    let c = app.add_contact(&t, &key, json!({ "email": "pat@example.org" })).await;
    let r = app
        .post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>", "topic_id": news }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    let path = link_to(&app, "pat@example.org");

    let page = app.http.get(format!("{}{path}", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("<strong>News</strong>"), "the page names the topic: {page}");
    let subscribed = |n: &str| (n.to_owned(), "subscribed".to_owned(), true);
    assert_eq!(standing(&app, &t, &key, &c).await, [subscribed("News"), subscribed("Offers")], "a GET changes nothing");

    let (status, page) = post(&app, &path, "List-Unsubscribe=One-Click").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Unsubscribe from everything"), "{page}");
    assert_eq!(
        standing(&app, &t, &key, &c).await,
        [("News".to_owned(), "unsubscribed".to_owned(), false), subscribed("Offers")],
        "that topic only"
    );
    let contact = app.get(&format!("/customers/{t}/contacts/{c}"), &key).await;
    assert_eq!(contact.body["status"], "subscribed", "still subscribed to the rest: {}", contact.body);
    let suppressed = app.get(&format!("/customers/{t}/suppressions"), &key).await;
    assert!(suppressed.body.as_array().unwrap().is_empty(), "{}", suppressed.body);
    // Again: harmless.
    assert_eq!(post(&app, &path, "List-Unsubscribe=One-Click").await.0, StatusCode::OK);

    // The second step: everything.
    let (status, page) = post(&app, &path, "scope=all").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("will not send you marketing email again"), "{page}");
    let contact = app.get(&format!("/customers/{t}/contacts/{c}"), &key).await;
    assert_eq!(contact.body["status"], "unsubscribed", "{}", contact.body);
}

#[tokio::test]
async fn one_click_from_a_campaign_without_a_topic_still_means_everything() {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    topic(&app, &t, &key, json!({ "name": "News", "default": "opt_out" })).await;
    let c = app.add_contact(&t, &key, json!({ "email": "pat@example.org" })).await;
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    let path = link_to(&app, "pat@example.org");
    let (status, page) = post(&app, &path, "List-Unsubscribe=One-Click").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("Unsubscribe from everything"), "{page}");
    let contact = app.get(&format!("/customers/{t}/contacts/{c}"), &key).await;
    assert_eq!(contact.body["status"], "unsubscribed", "{}", contact.body);
}

/// The figures a campaign's leavers show: its `unsubscribed`, on the
/// campaign, its stats and the customer's series.
async fn unsubscribed_figures(app: &TestApp, t: &str, key: &str, campaign: &str) -> [i64; 3] {
    let c = app.get(&format!("/customers/{t}/campaigns/{campaign}"), key).await;
    let s = app.get(&format!("/customers/{t}/campaigns/{campaign}/stats"), key).await;
    let series = app.get(&format!("/customers/{t}/stats?from=2026-01-01T00:00:00Z"), key).await;
    assert_eq!(series.status, StatusCode::OK, "{}", series.body);
    [&c.body["unsubscribed"], &s.body["unsubscribed"], &series.body["totals"]["unsubscribed"]]
        .map(|v| v.as_i64().unwrap_or_else(|| panic!("a figure: {v}")))
}

#[tokio::test]
async fn leaving_a_campaigns_topic_counts_once_per_person_in_its_unsubscribed_figure() {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(&app, &t, &key, json!({ "name": "News", "default": "opt_out" })).await;
    for email in ["pat@example.org", "sam@example.org", "kim@example.org"] {
        app.add_contact(&t, &key, json!({ "email": email })).await;
    }
    let r = app
        .post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>", "topic_id": news }))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let campaign = r.body["campaign_id"].as_str().unwrap().to_owned();
    while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
    assert_eq!(unsubscribed_figures(&app, &t, &key, &campaign).await, [0; 3]);

    // Pat leaves the topic, twice: one person.
    let pat = link_to(&app, "pat@example.org");
    assert_eq!(post(&app, &pat, "List-Unsubscribe=One-Click").await.0, StatusCode::OK);
    assert_eq!(post(&app, &pat, "List-Unsubscribe=One-Click").await.0, StatusCode::OK);
    assert_eq!(unsubscribed_figures(&app, &t, &key, &campaign).await, [1; 3]);
    // Then from everything as well: still one person.
    assert_eq!(post(&app, &pat, "scope=all").await.0, StatusCode::OK);
    assert_eq!(unsubscribed_figures(&app, &t, &key, &campaign).await, [1; 3]);
    // Sam leaves everything at once; Kim only the topic.
    assert_eq!(post(&app, &link_to(&app, "sam@example.org"), "scope=all").await.0, StatusCode::OK);
    assert_eq!(post(&app, &link_to(&app, "kim@example.org"), "List-Unsubscribe=One-Click").await.0, StatusCode::OK);
    assert_eq!(unsubscribed_figures(&app, &t, &key, &campaign).await, [3; 3]);
    let listed = app.get(&format!("/customers/{t}/campaigns"), &key).await;
    let row = listed.body.as_array().unwrap().iter().find(|c| c["id"] == campaign.as_str()).unwrap().clone();
    assert_eq!(row["unsubscribed"], 3, "{row}");
}

/// Posts the preference centre of the email sent to `to` (of campaign
/// `subject`): the topics `shown`, ticked `kept`.
async fn save_preferences(app: &TestApp, to: &str, subject: &str, shown: &[&str], kept: &[&str]) {
    let path = link_in(app, to, Some(subject)).replacen("/u/", "/p/", 1);
    let mut body: Vec<String> = shown.iter().map(|t| format!("shown={t}")).collect();
    body.extend(kept.iter().map(|t| format!("topic={t}")));
    assert_eq!(post(app, &path, body.join("&")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn only_leaving_the_campaigns_own_topic_counts_and_the_series_adds_up_the_campaigns() {
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.com").await;
    let news = topic(&app, &t, &key, json!({ "name": "News", "default": "opt_out" })).await;
    let other = topic(&app, &t, &key, json!({ "name": "Other", "default": "opt_out" })).await;
    for email in ["pat@example.org", "sam@example.org"] {
        app.add_contact(&t, &key, json!({ "email": email })).await;
    }
    let campaign = |subject: &'static str, extra: serde_json::Value| {
        let (app, t, key) = (&app, t.clone(), key.clone());
        async move {
            let mut body = json!({ "subject": subject, "html": "<p>h</p>" });
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let r = app.post(&format!("/customers/{t}/send"), &key, body).await;
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
            while app.outbox.try_dispatch_once().await.unwrap() != Step::Empty {}
            r.body["campaign_id"].as_str().unwrap().to_owned()
        }
    };
    let on_news = campaign("about news", json!({ "topic_id": news })).await;
    let untopical = campaign("about nothing", json!({})).await;

    // Pat keeps News and leaves Other through the News campaign's page: not its topic.
    save_preferences(&app, "pat@example.org", "about news", &[&news, &other], &[&news]).await;
    // Sam leaves News through the campaign without a topic: not that campaign's doing.
    save_preferences(&app, "sam@example.org", "about nothing", &[&news], &[]).await;
    assert_eq!(unsubscribed_figures(&app, &t, &key, &on_news).await, [0; 3]);
    assert_eq!(unsubscribed_figures(&app, &t, &key, &untopical).await, [0; 3]);

    // Pat leaves News through its campaign, comes back and leaves again: once.
    save_preferences(&app, "pat@example.org", "about news", &[&news], &[]).await;
    save_preferences(&app, "pat@example.org", "about news", &[&news], &[&news]).await;
    save_preferences(&app, "pat@example.org", "about news", &[&news], &[]).await;
    assert_eq!(unsubscribed_figures(&app, &t, &key, &on_news).await, [1; 3]);
    // Sam leaves everything through the other campaign: one each, and the series adds them up.
    let path = link_in(&app, "sam@example.org", Some("about nothing"));
    assert_eq!(post(&app, &path, "List-Unsubscribe=One-Click").await.0, StatusCode::OK);
    assert_eq!(unsubscribed_figures(&app, &t, &key, &untopical).await[..2], [1, 1]);
    assert_eq!(unsubscribed_figures(&app, &t, &key, &on_news).await[..2], [1, 1]);
    let series = app.get(&format!("/customers/{t}/stats?from=2026-01-01T00:00:00Z"), &key).await;
    assert_eq!(series.body["totals"]["unsubscribed"], 2, "{}", series.body);
}
