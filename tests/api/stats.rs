//! Issue 10 (2): analytics from maintained counters equal a recount of the raw
//! events, whatever the duplicates and the order; who may read them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::events::{event_at, sent_campaign_to};
use crate::helpers::ADMIN_KEY;

const LINKS: [&str; 3] = ["https://acme.com/a", "https://acme.com/b", "https://acme.com/c"];

#[tokio::test]
async fn campaign_and_customer_stats_equal_a_recount_of_the_raw_events() {
    let (app, t, key, campaign, pairs) = sent_campaign_to(12).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(10);
    // (svix id, provider email id, type, extra, time)
    let mut events: Vec<(String, String, &str, Value, String)> = Vec::new();
    for (m, (_, id)) in pairs.iter().enumerate() {
        let mut add = |kind: &'static str, extra: Value, rng: &mut rand::rngs::StdRng| {
            let at = format!("2026-11-20T{:02}:{:02}:00Z", 8 + rng.gen_range(0..4), rng.gen_range(0..60));
            events.push((format!("r-{m}-{}", unique_suffix(kind, rng)), id.clone(), kind, extra, at));
        };
        if rng.gen_bool(0.2) {
            add("email.sent", json!({}), &mut rng);
        }
        if rng.gen_bool(0.3) {
            add("email.delivery_delayed", json!({}), &mut rng);
        }
        match rng.gen_range(0..10) {
            0 => add("email.bounced", json!({ "bounce": { "type": "Permanent", "subType": "General" } }), &mut rng),
            1 => add("email.bounced", json!({ "bounce": { "type": "Transient", "subType": "MailboxFull" } }), &mut rng),
            2 => add("email.failed", json!({ "failed": { "reason": "x" } }), &mut rng),
            _ => {
                add("email.delivered", json!({}), &mut rng);
                for _ in 0..rng.gen_range(0..4) {
                    add("email.opened", json!({}), &mut rng);
                }
                for _ in 0..rng.gen_range(0..3) {
                    let link = LINKS[rng.gen_range(0..LINKS.len())];
                    add("email.clicked", json!({ "click": { "link": link } }), &mut rng);
                }
                if rng.gen_bool(0.15) {
                    add("email.complained", json!({}), &mut rng);
                }
            }
        }
    }
    // Out of order, and some delivered again under the same svix id (Resend's retries).
    events.shuffle(&mut rng);
    let mut deliveries = events.clone();
    for e in events.iter().filter(|_| rng.gen_bool(0.3)) {
        deliveries.push(e.clone());
    }
    deliveries.shuffle(&mut rng);
    // Concurrently, so that group commits mix them.
    for chunk in deliveries.chunks(16) {
        let bodies: Vec<(&String, Value)> =
            chunk.iter().map(|(svix, id, kind, extra, at)| (svix, event_at(kind, id, extra.clone(), at))).collect();
        let answers = futures::future::join_all(bodies.iter().map(|(svix, body)| app.webhook(svix, body))).await;
        for r in answers {
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        }
    }

    // The recount: messages (distinct) per figure, from the raw events.
    let mut by: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut links: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (_, id, kind, extra, _) in &events {
        let figure = match *kind {
            "email.delivered" => "delivered",
            "email.delivery_delayed" => "delivery_delayed",
            "email.opened" => "unique_opens",
            "email.clicked" => "unique_clicks",
            "email.complained" => "complained",
            "email.failed" => "failed",
            "email.bounced" => {
                by.entry("bounced").or_default().insert(id);
                if extra["bounce"]["type"] == "Permanent" {
                    "bounced_hard"
                } else {
                    "bounced_soft"
                }
            }
            _ => continue,
        };
        by.entry(figure).or_default().insert(id);
        if *kind == "email.clicked" {
            links.entry(extra["click"]["link"].as_str().unwrap()).or_default().insert(id);
        }
    }
    let n = |k: &str| by.get(k).map_or(0, BTreeSet::len) as i64;

    let s = app.get(&format!("/customers/{t}/campaigns/{campaign}/stats"), &key).await;
    assert_eq!(s.status, StatusCode::OK, "{}", s.body);
    let b = &s.body;
    assert_eq!(b["recipients"], 12);
    assert_eq!(b["sent"], 12, "every message was accepted by the provider");
    for k in [
        "delivered",
        "delivery_delayed",
        "unique_opens",
        "unique_clicks",
        "bounced",
        "bounced_hard",
        "bounced_soft",
        "complained",
        "failed",
    ] {
        assert_eq!(b[k], n(k), "{k}: {b}");
    }
    assert_eq!(b["unsubscribed"], 0);
    let rate = |a: i64, d: i64| if d == 0 { 0.0 } else { a as f64 / d as f64 };
    assert_eq!(b["rates"]["delivery_rate"].as_f64().unwrap(), rate(n("delivered"), 12));
    assert_eq!(b["rates"]["open_rate"].as_f64().unwrap(), rate(n("unique_opens"), n("delivered")));
    assert_eq!(b["rates"]["click_rate"].as_f64().unwrap(), rate(n("unique_clicks"), n("delivered")));
    assert_eq!(b["rates"]["bounce_rate"].as_f64().unwrap(), rate(n("bounced"), 12));
    assert_eq!(b["rates"]["complaint_rate"].as_f64().unwrap(), rate(n("complained"), n("delivered")));
    let top: HashMap<String, i64> = b["top_links"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["link"].as_str().unwrap().to_owned(), l["unique_clicks"].as_i64().unwrap()))
        .collect();
    assert_eq!(top.len(), links.len(), "{b}");
    for (link, ids) in &links {
        assert_eq!(top[*link], ids.len() as i64, "{link}");
    }

    // The stored events say the same (the listing is the raw record).
    let stored = app.get_all(&format!("/customers/{t}/events?limit=50"), &key).await.len();
    assert_eq!(stored, events.len(), "each svix id stored once");

    // The customer's series adds up to the same figures, in the events' hours.
    let r = app.get(&format!("/customers/{t}/stats?from=2026-11-19T00:00:00Z&bucket=hour"), &key).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let totals = &r.body["totals"];
    for k in ["recipients", "sent", "delivered", "unique_opens", "unique_clicks", "bounced", "complained", "failed"] {
        assert_eq!(totals[k], b[k], "{k}: {totals}");
    }
    let buckets = r.body["buckets"].as_array().unwrap();
    let delivered_at_8_to_11: i64 = buckets
        .iter()
        .filter(|x| {
            x["start"].as_str().unwrap().starts_with("2026-11-20T0")
                || x["start"].as_str().unwrap().starts_with("2026-11-20T1")
        })
        .filter(|x| {
            let h: i64 = x["start"].as_str().unwrap()[11..13].parse().unwrap();
            (8..12).contains(&h)
        })
        .map(|x| x["delivered"].as_i64().unwrap())
        .sum();
    assert_eq!(delivered_at_8_to_11, n("delivered"), "delivered in the hours the events name");
    let days = app.get(&format!("/customers/{t}/stats?from=2026-11-19T00:00:00Z"), &key).await;
    assert_eq!(days.body["bucket"], "day");
    assert_eq!(days.body["totals"]["delivered"], b["delivered"]);
    let nov20 = days.body["buckets"].as_array().unwrap().iter().find(|x| x["start"] == "2026-11-20T00:00:00Z").unwrap();
    assert_eq!(nov20["delivered"], b["delivered"]);

    // The operator's view across customers includes this one.
    let all = app.get("/stats?from=2026-11-19T00:00:00Z", ADMIN_KEY).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.body["totals"]["delivered"], b["delivered"]);
}

/// A unique suffix per generated event.
fn unique_suffix(kind: &str, rng: &mut rand::rngs::StdRng) -> String {
    format!("{}-{}", kind.trim_start_matches("email."), rng.gen::<u32>())
}

#[tokio::test]
async fn stats_need_the_right_key_and_valid_parameters() {
    let (app, t, key, campaign, _) = sent_campaign_to(1).await;
    let (u, key_u) = app.verified_tenant("B", "b.example.com").await;
    assert_eq!(app.get("/stats", &key).await.status, StatusCode::FORBIDDEN, "a tenant key is not the admin's");
    assert_eq!(app.request(reqwest::Method::GET, "/stats", None, None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(app.get("/stats", ADMIN_KEY).await.status, StatusCode::OK);
    let theirs = app.get(&format!("/customers/{u}/campaigns/{campaign}/stats"), &key_u).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND, "another customer's campaign");
    assert_eq!(
        app.get(&format!("/customers/{t}/campaigns/{campaign}/stats"), &key_u).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.get(&format!("/customers/{t}/campaigns/nope/stats"), &key).await.status, StatusCode::NOT_FOUND);
    let fresh = app.get(&format!("/customers/{u}/stats"), &key_u).await;
    assert_eq!(fresh.status, StatusCode::OK);
    assert_eq!(fresh.body["buckets"].as_array().unwrap().len(), 8, "a week back, from the start of its first day");
    assert_eq!(fresh.body["totals"]["rates"]["open_rate"], 0.0, "0 when nothing was delivered");
    for bad in [
        "bucket=week",
        "from=monday",
        "to=2026-11-20",
        "from=2026-11-20T00:00:00Z&to=2026-11-19T00:00:00Z",
        "from=2020-01-01T00:00:00Z&bucket=hour",
        "range=7d",
    ] {
        let r = app.get(&format!("/customers/{t}/stats?{bad}"), &key).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", r.body);
        let r = app.get(&format!("/stats?{bad}"), ADMIN_KEY).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {}", r.body);
    }
}
