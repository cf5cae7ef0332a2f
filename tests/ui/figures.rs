//! One truth per figure: the operator's health column says what the
//! reputation guard says (its thresholds, minimum volume and settings), and a
//! campaign's funnel, its figures, its live poll and the API's stats read the
//! same counters while it sends and after. Over plain HTTP.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{event, spawn_with, Options, TestApp, ADMIN_KEY};
use crate::http::{signed_in, Client};

/// The text of the first element carrying `attr` (e.g. `data-live="sent_total"`), tags removed.
fn text_of(html: &str, attr: &str) -> String {
    let at = html.find(attr).unwrap_or_else(|| panic!("no {attr} on the page"));
    let rest = &html[at..];
    let open = rest.find('>').unwrap() + 1;
    let tag = html[..at].rsplit('<').next().unwrap().split_whitespace().next().unwrap();
    let close = rest.find(&format!("</{tag}>")).unwrap();
    let mut out = String::new();
    let mut in_tag = false;
    for c in rest[open..close].chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.trim().to_owned()
}

/// The operator's tenant list row of `name`.
fn tenant_row(page: &str, name: &str) -> String {
    page.split("<tr>").find(|r| r.contains(&format!(">{name}</a>"))).unwrap_or_else(|| panic!("no {name}")).to_owned()
}

/// A campaign from `t` to `delivered` addresses that the sandbox delivers and
/// `bounced` that it hard-bounces, its events applied.
async fn send_with_bounces(app: &TestApp, t: &str, key: &str, delivered: usize, bounced: usize) {
    for i in 0..delivered {
        app.add_contact(t, key, json!({ "email": format!("delivered+{i}@resend.dev") })).await;
    }
    for i in 0..bounced {
        app.add_contact(t, key, json!({ "email": format!("bounced+{i}@resend.dev") })).await;
    }
    let r = app.post(&format!("/customers/{t}/send"), key, json!({ "subject": "s", "html": "<p>h</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let sent = (delivered + bounced) as i64;
    app.settle_until("the sandbox's events", || async {
        let r = app.get(&format!("/customers/{t}/reputation"), key).await.body;
        r["window"]["sent"] == sent && r["window"]["hard_bounces"] == bounced as i64
    })
    .await;
}

/// What the three places say of `t`: the operator's tenant list (its health
/// cell and whole row), the tenant's reputation page, and the API.
async fn verdicts(app: &TestApp, admin: &Client, t: &str, name: &str) -> (String, String, String, Value) {
    let list = admin.get(format!("{}/ui/tenants", app.base)).await.text().await.unwrap();
    let row = tenant_row(&list, name);
    let health = text_of(&row, "data-label=\"Health\"");
    let page = admin.get(format!("{}/ui/t/{t}/reputation", app.base)).await.text().await.unwrap();
    let api = app.get(&format!("/customers/{t}/reputation"), ADMIN_KEY).await.body;
    (health, row, text_of(&page, "id=\"reputation-state\""), api)
}

#[tokio::test]
async fn three_bounces_of_ten_sends_are_not_judged_on_the_tenant_list_as_on_the_reputation_page() {
    let app = spawn_with(Options::default()).await;
    let (t, key) = app.verified_tenant("Acme", "acme.test").await;
    send_with_bounces(&app, &t, &key, 7, 3).await;
    let (admin, _) = signed_in(&app, ADMIN_KEY).await;
    let (health, row, page, api) = verdicts(&app, &admin, &t, "Acme").await;
    // 30% hard bounces, but 10 sent is under the guard's minimum of 200: not "bad".
    assert_eq!(api["verdict"], "not judged (under 200 sent)", "{api}");
    assert_eq!(health, "not judged (under 200 sent)", "{row}");
    assert_eq!(page, health);
    assert!(row.contains("30.00%"), "the guard's hard-bounce rate: {row}");
    let all = admin.get(format!("{}/ui/reputation", app.base)).await.text().await.unwrap();
    assert_eq!(text_of(&tenant_row(&all, "Acme"), "data-label=\"State\""), health, "the reputation list too");
}

#[tokio::test]
async fn with_enough_volume_the_tenant_list_shows_the_guards_verdict_under_its_configured_thresholds() {
    let env = [
        ("MAILROOM_REPUTATION_MIN_SENT", "10"),
        ("MAILROOM_REPUTATION_BOUNCE_WARNING_PERCENT", "20"),
        ("MAILROOM_REPUTATION_BOUNCE_PAUSE_PERCENT", "40"),
    ];
    let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let app = spawn_with(Options { env, ..Options::default() }).await;
    let (warned, warned_key) = app.verified_tenant("Warned", "warned.test").await;
    let (paused, paused_key) = app.verified_tenant("Paused", "paused.test").await;
    // 30%: past this guard's warning (20%), under its pause (40%); 50%: past its pause.
    send_with_bounces(&app, &warned, &warned_key, 7, 3).await;
    send_with_bounces(&app, &paused, &paused_key, 5, 5).await;
    let (admin, _) = signed_in(&app, ADMIN_KEY).await;
    for (t, name, expected) in [(&warned, "Warned", "warning"), (&paused, "Paused", "paused")] {
        app.settle_until("the guard's evaluation", || async {
            app.get(&format!("/customers/{t}/reputation"), ADMIN_KEY).await.body["state"] == expected
        })
        .await;
        let (health, row, page, api) = verdicts(&app, &admin, t, name).await;
        assert_eq!(api["state"], expected, "{api}");
        assert_eq!(api["verdict"], expected, "{api}");
        assert_eq!(health, expected, "{row}");
        assert_eq!(page, expected);
    }
}

/// A figure of the campaign page by its `data-live` name.
fn live_text(html: &str, key: &str) -> String {
    text_of(html, &format!("data-live=\"{key}\""))
}

/// The campaign page's funnel and figures, its live poll and the API's stats
/// agree, figure by figure.
async fn assert_one_truth(app: &TestApp, s: &Client, t: &str, key: &str, cid: &str) -> Value {
    let page = s.get(format!("{}/ui/t/{t}/campaigns/{cid}", app.base)).await.text().await.unwrap();
    let live: Value = s.get(format!("{}/ui/t/{t}/campaigns/{cid}/live", app.base)).await.json().await.unwrap();
    let stats = app.get(&format!("/customers/{t}/campaigns/{cid}/stats"), key).await.body;
    let n = |k: &str| stats[k].as_i64().unwrap().to_string();
    for (funnel, figure, api) in [
        ("queued_total", None, "recipients"),
        ("sent_total", Some("fig-sent"), "sent"),
        ("delivered_total", Some("fig-delivered"), "delivered"),
        ("opened_total", Some("fig-unique_opens"), "unique_opens"),
        ("clicked_total", Some("fig-unique_clicks"), "unique_clicks"),
    ] {
        let shown = live_text(&page, funnel);
        assert_eq!(shown, n(api), "the funnel's {funnel} against the API's {api}: {stats}");
        assert_eq!(live["figures"]["shown"][funnel], shown, "the poll's {funnel}");
        if let Some(figure) = figure {
            assert_eq!(live_text(&page, figure), shown, "the figures' {figure} against the funnel's {funnel}");
            assert_eq!(live["figures"]["shown"][figure], shown, "the poll's {figure}");
        }
    }
    for rate in ["delivery_rate", "open_rate", "bounce_rate"] {
        let figure = format!("fig-{rate}");
        assert_eq!(live["figures"]["shown"][&figure], live_text(&page, &figure), "{rate}");
    }
    stats
}

#[tokio::test]
async fn a_campaigns_funnel_figures_live_poll_and_api_stats_agree_while_it_sends_and_after() {
    // The test steps the worker itself: each check sees one moment of the send.
    let app = spawn_with(Options { resend: true, run_worker: false, ..Options::default() }).await;
    let (t, key) = app.verified_tenant("Acme", "acme.test").await;
    for i in 0..6 {
        app.add_contact(&t, &key, json!({ "email": format!("p{i}@example.org") })).await;
    }
    let r = app.post(&format!("/customers/{t}/send"), &key, json!({ "subject": "s", "html": "<p>h</p>" })).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let cid = r.body["campaign_id"].as_str().unwrap().to_owned();
    let (s, _) = signed_in(&app, &key).await;
    // Queued, nothing sent yet.
    assert_one_truth(&app, &s, &t, &key, &cid).await;
    app.drain().await;
    let ids: Vec<String> = app.mock().accepted().into_iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), 6);
    let stats = assert_one_truth(&app, &s, &t, &key, &cid).await;
    assert_eq!((stats["sent"].as_i64(), stats["delivered"].as_i64()), (Some(6), Some(0)));

    // Delivery events arrive after the last email went out: four delivered,
    // two of them opened, one clicked.
    for (i, id) in ids[..4].iter().enumerate() {
        let r = app.webhook(&format!("msg_d{i}"), &event("email.delivered", id, json!({}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let stats = assert_one_truth(&app, &s, &t, &key, &cid).await;
    assert_eq!(stats["delivered"], 4, "{stats}");
    for (i, id) in ids[..2].iter().enumerate() {
        let r = app.webhook(&format!("msg_o{i}"), &event("email.opened", id, json!({}))).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let clicked = event("email.clicked", &ids[0], json!({ "click": { "link": "https://acme.test/spring" } }));
    assert_eq!(app.webhook("msg_c0", &clicked).await.status, StatusCode::OK);
    // A repeat of an event already counted changes nothing anywhere.
    assert_eq!(app.webhook("msg_d0", &event("email.delivered", &ids[0], json!({}))).await.status, StatusCode::OK);
    let stats = assert_one_truth(&app, &s, &t, &key, &cid).await;
    assert_eq!((stats["delivered"].as_i64(), stats["unique_opens"].as_i64()), (Some(4), Some(2)), "{stats}");
    assert_eq!(stats["unique_clicks"], 1);
    let live: Value = s.get(format!("{}/ui/t/{t}/campaigns/{cid}/live", app.base)).await.json().await.unwrap();
    assert_eq!(live["settled"], true, "sent: the poll goes on, slower, for the events still to come");
    assert_eq!(live["figures"]["shown"]["fig-delivery_rate"], "66.7%");
}
