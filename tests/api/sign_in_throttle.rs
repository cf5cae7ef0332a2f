//! Wrong keys are throttled per client address as well as per key (issue 20,
//! section 5). Fails on the old main: 30 different wrong keys from one client
//! were answered 401 each, as fast as they came. Behind a reverse proxy the
//! client is read from `X-Forwarded-For`, but only when the peer is a proxy in
//! `MAILROOM_TRUSTED_PROXIES`.

use reqwest::StatusCode;

use crate::helpers::{spawn_app, spawn_with, Options, Res, TestApp, ADMIN_KEY};

async fn get_from(app: &TestApp, path: &str, key: &str, forwarded_for: Option<&str>) -> Res {
    let mut req = app.http.get(format!("{}{path}", app.base)).bearer_auth(key);
    if let Some(xff) = forwarded_for {
        req = req.header("x-forwarded-for", xff);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    Res { status, headers, body: serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)) }
}

/// Tries `n` different wrong keys; the status of each answer.
async fn guess(app: &TestApp, n: usize, forwarded_for: impl Fn(usize) -> Option<String>) -> Vec<StatusCode> {
    let mut statuses = Vec::new();
    for i in 0..n {
        let r = get_from(app, "/customers", &format!("mr_guess_number_{i}"), forwarded_for(i).as_deref()).await;
        statuses.push(r.status);
    }
    statuses
}

fn assert_throttled(r: &Res) {
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(r.body["error"]["code"], "rate_limited", "in the JSON error envelope: {}", r.body);
}

fn behind_proxies(proxies: &str) -> Options {
    Options { env: vec![("MAILROOM_TRUSTED_PROXIES".into(), proxies.into())], ..Options::default() }
}

#[tokio::test]
async fn thirty_different_wrong_keys_from_one_client_are_throttled_and_so_is_its_right_key_then() {
    let app = spawn_app().await;
    let (t, key) = app.verified_tenant("Acme", "acme.example.com").await;
    let statuses = guess(&app, 30, |_| None).await;
    assert!(statuses[..20].iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert!(statuses[20..].iter().all(|s| *s == StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert_throttled(&get_from(&app, "/customers", "mr_guess_number_31", None).await);
    // The right keys too, so that a guesser learns nothing from the answer
    // until the minute is over.
    assert_throttled(&get_from(&app, "/customers", ADMIN_KEY, None).await);
    assert_throttled(&get_from(&app, &format!("/customers/{t}"), &key, None).await);
    // Public routes need no key and stay open.
    assert_eq!(app.request(reqwest::Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    let app = spawn_app().await;
    // A client claiming a new address each time is still one client.
    let statuses = guess(&app, 30, |i| Some(format!("198.51.100.{i}"))).await;
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert_throttled(&get_from(&app, "/customers", ADMIN_KEY, Some("203.0.113.200")).await);

    // Trusting some other proxy changes nothing for a peer that is not it.
    let app = spawn_with(behind_proxies("10.0.0.0/8")).await;
    let statuses = guess(&app, 30, |i| Some(format!("198.51.100.{i}"))).await;
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_client_is_the_right_most_forwarded_address_that_is_not_a_proxy() {
    // The test's own connections come from 127.0.0.1: the proxy in front.
    let app = spawn_with(behind_proxies("127.0.0.1, 10.0.0.0/8")).await;
    // The guesser writes its own X-Forwarded-For (a new address each time);
    // the proxies append the address they saw (203.0.113.7), then 10.0.0.2.
    let statuses = guess(&app, 30, |i| Some(format!("198.51.100.{i}, 203.0.113.7, 10.0.0.2"))).await;
    assert!(statuses[..20].iter().all(|s| *s == StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert_throttled(&get_from(&app, "/customers", ADMIN_KEY, Some("203.0.113.7")).await);
    assert_throttled(&get_from(&app, "/customers", ADMIN_KEY, Some("203.0.113.8, 203.0.113.7")).await);
    // Other clients behind the same proxy are not held up by it.
    assert_eq!(get_from(&app, "/customers", ADMIN_KEY, Some("203.0.113.8")).await.status, StatusCode::OK);
    assert_eq!(get_from(&app, "/customers", ADMIN_KEY, Some("203.0.113.7, 203.0.113.8")).await.status, StatusCode::OK);
    assert_eq!(get_from(&app, "/customers", ADMIN_KEY, None).await.status, StatusCode::OK, "the proxy itself");
}

/// Signs in to the dashboard with `key` from `forwarded_for`: the answer's status and Retry-After.
async fn dashboard_sign_in(app: &TestApp, key: &str, forwarded_for: &str) -> (StatusCode, Option<String>) {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = client.get(format!("{}/ui/login", app.base)).send().await.unwrap();
    let cookie = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let token = cookie.split_once('=').unwrap().1.to_owned();
    let r = client
        .post(format!("{}/ui/login", app.base))
        .header("cookie", &cookie)
        .header("x-forwarded-for", forwarded_for)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={key}&csrf={token}"))
        .send()
        .await
        .unwrap();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (r.status(), retry_after)
}

#[tokio::test]
async fn the_dashboard_sign_in_counts_and_obeys_the_same_per_client_throttle() {
    let app = spawn_with(behind_proxies("127.0.0.1")).await;
    for i in 0..20 {
        let (status, _) = dashboard_sign_in(&app, &format!("mr_guess_number_{i}"), "203.0.113.9").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "try {i}");
    }
    // The dashboard's wrong keys count for the API, and the API's for the dashboard.
    assert_throttled(&get_from(&app, "/customers", ADMIN_KEY, Some("203.0.113.9")).await);
    let (status, retry_after) = dashboard_sign_in(&app, ADMIN_KEY, "203.0.113.9").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after.is_some());
    guess(&app, 20, |_| Some("203.0.113.10".into())).await;
    assert_eq!(dashboard_sign_in(&app, ADMIN_KEY, "203.0.113.10").await.0, StatusCode::TOO_MANY_REQUESTS);
    // The operator, from anywhere else, signs in.
    assert_eq!(dashboard_sign_in(&app, ADMIN_KEY, "203.0.113.11").await.0, StatusCode::SEE_OTHER);
}
