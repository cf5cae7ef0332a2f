use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::Method;
use serde_json::json;

use super::server::{binary, BenchDb, Server};
use super::{BenchArgs, Figures};
use crate::domain::now_ms;
use crate::mock::{MockConfig, MockResend};

fn resend_env(mock: &MockResend, rate: u32) -> Vec<(&'static str, String)> {
    vec![
        ("RESEND_API_KEY", "re_bench".into()),
        ("RESEND_BASE_URL", mock.url()),
        ("MAILROOM_SEND_RATE", rate.to_string()),
        // The bench's own environment may override the worker's concurrency.
        ("MAILROOM_WORKER_CONCURRENCY", std::env::var("MAILROOM_WORKER_CONCURRENCY").unwrap_or_else(|_| "8".into())),
    ]
}

async fn import(server: &Server, tenant: &str, key: &str, n: usize) -> anyhow::Result<()> {
    import_at(server, tenant, key, n, "example.org").await
}

/// `n` contacts `user{i}@{domain}`.
async fn import_at(server: &Server, tenant: &str, key: &str, n: usize, domain: &str) -> anyhow::Result<()> {
    for start in (0..n).step_by(10_000) {
        let contacts: Vec<_> = (start..(start + 10_000).min(n))
            .map(|i| json!({ "email": format!("user{i}@{domain}"), "first_name": format!("U{i}") }))
            .collect();
        server
            .call(
                Method::POST,
                &format!("/customers/{tenant}/contacts/import"),
                key,
                Some(json!({ "contacts": contacts })),
            )
            .await?;
    }
    Ok(())
}

async fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let start = Instant::now();
    while !done() {
        anyhow::ensure!(start.elapsed() < timeout, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// CPU seconds this (load-generating) process has used so far.
fn own_cpu_s() -> f64 {
    cpu_s("self")
}

/// CPU seconds (user and system) process `pid` has used so far: the
/// server's work, which a noisy machine moves much less than its wall-clock
/// figures (compare builds by it with `--mailroom-bin`).
fn cpu_s(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// An N-recipient campaign from `POST /send` until the mock has every email.
pub async fn fanout(args: &BenchArgs) -> anyhow::Result<Figures> {
    let mock = MockResend::start(MockConfig { port: 0, ..MockConfig::default() }).await?;
    let db = BenchDb::new(args.database_url.as_deref()).await?;
    let server = Server::start(&binary(args.mailroom_bin.as_ref())?, &db, &resend_env(&mock, 0)).await?;
    let (tenant, key) = server.tenant().await?;
    import(&server, &tenant, &key, args.recipients).await?;
    let content = if args.template {
        let template = json!({
            "name": "bench",
            "subject": "Hi {{ first_name | default('there') }}",
            "html": "<h1>Hello {{ first_name | default('there') }}</h1>{% for k, v in contact.attributes | items %}\
                     <p>{{ k }}: {{ v }}</p>{% endfor %}<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a></p>",
        });
        let saved = server.call(Method::POST, &format!("/customers/{tenant}/templates"), &key, Some(template)).await?;
        json!({ "template_id": saved["id"] })
    } else {
        json!({ "subject": "Hi {{first_name}}", "html": "<p>Hello {{first_name}}</p>" })
    };
    let cpu_before = cpu_s(&server.pid().to_string());
    let started = Instant::now();
    let r = server.call(Method::POST, &format!("/customers/{tenant}/send"), &key, Some(content)).await?;
    let accept_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        r["sent_to"].as_u64() == Some(args.recipients as u64),
        "campaign reached {} not {}",
        r["sent_to"],
        args.recipients
    );
    wait_until("every email", Duration::from_secs(600), || mock.accepted_count() >= args.recipients).await?;
    let total_s = started.elapsed().as_secs_f64();
    let (_, peak) = server.rss_mb();
    let server_cpu = cpu_s(&server.pid().to_string()) - cpu_before;
    drop(server);
    db.remove().await;
    Ok(Figures::from([
        ("server_cpu_s".into(), server_cpu),
        ("emails_per_s".into(), args.recipients as f64 / total_s),
        ("accept_s".into(), accept_s),
        ("total_s".into(), total_s),
        ("peak_rss_mb".into(), peak),
    ]))
}

/// N Svix-signed Resend events at concurrency C against any receiver.
pub async fn webhooks(args: &BenchArgs) -> anyhow::Result<Figures> {
    let secret = args.secret.clone().unwrap_or_else(|| "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into());
    let mut own = None;
    let target = match &args.target {
        Some(t) => t.clone(),
        None => {
            let db = BenchDb::new(args.database_url.as_deref()).await?;
            let server =
                Server::start(&binary(args.mailroom_bin.as_ref())?, &db, &[("WEBHOOK_SECRET", secret.clone())]).await?;
            let url = format!("{}/webhooks/resend", server.base);
            if args.seed_messages > 0 {
                let (tenant, key) = server.tenant().await?;
                for i in 0..args.rules {
                    let (event, action) = match i % 4 {
                        0 => ("email.delivered", json!({ "type": "add_tag", "tag": format!("delivered-{i}") })),
                        1 => ("email.opened", json!({ "type": "add_tag", "tag": format!("opened-{i}") })),
                        2 => ("email.clicked", json!({ "type": "notify", "message": format!("click {i}") })),
                        _ => ("email.bounced", json!({ "type": "suppress" })),
                    };
                    let rule =
                        json!({ "name": format!("bench {i}"), "trigger": { "event": event }, "actions": [action] });
                    server
                        .call(reqwest::Method::POST, &format!("/customers/{tenant}/automations"), &key, Some(rule))
                        .await?;
                }
                let store = crate::store::Store::connect(&db.url, 2).await?;
                store
                    .seed_campaign_events(&crate::domain::TenantId::from_stored(tenant), args.seed_messages as i64, 0)
                    .await?;
                store.close().await;
            }
            own = Some((server, db));
            url
        }
    };
    let ids: Vec<String> = match &args.email_ids {
        None if args.seed_messages > 0 => (0..args.seed_messages).map(|i| format!("prov-{i}")).collect(),
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("Failed to read {}", path.display()))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect(),
        None => (0..1000).map(|_| uuid::Uuid::new_v4().to_string()).collect(),
    };
    anyhow::ensure!(!ids.is_empty(), "no email ids");
    // Pre-signed, so the load generator spends its time sending.
    let signer = standardwebhooks::Webhook::new(&secret).map_err(|e| anyhow::anyhow!("bad secret: {e}"))?;
    let kinds = ["email.sent", "email.delivered", "email.opened", "email.clicked", "email.bounced"];
    let ts = now_ms() / 1000;
    let requests: Vec<(String, String, String)> = (0..args.events)
        .map(|i| {
            let kind = kinds[i % kinds.len()];
            let mut data = json!({ "email_id": ids[i % ids.len()], "created_at": "2026-11-20T10:00:00.000Z", "from": "hello@bench.example.com", "to": ["user@example.org"], "subject": "Hi" });
            if kind == "email.bounced" {
                data["bounce"] = json!({ "type": "Permanent", "subType": "General", "message": "gone" });
            }
            if kind == "email.clicked" {
                data["click"] = json!({ "link": "https://example.org/x", "timestamp": "2026-11-20T10:00:00.000Z" });
            }
            let body = json!({ "type": kind, "created_at": "2026-11-20T10:00:01.000Z", "data": data }).to_string();
            let id = format!("msg_bench_{}_{i}", uuid::Uuid::new_v4().simple());
            let sig = signer.sign(&id, ts, body.as_bytes()).unwrap_or_default();
            (id, sig, body)
        })
        .collect();
    let requests = Arc::new(requests);
    let next = Arc::new(AtomicUsize::new(0));
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.concurrency).build()?;
    let cpu_before = own_cpu_s();
    let server_cpu_before = own.as_ref().map(|(server, _)| cpu_s(&server.pid().to_string()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency.max(1))
        .map(|_| {
            let (requests, next, http, target) = (requests.clone(), next.clone(), http.clone(), target.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((id, sig, body)) = requests.get(i) else { break };
                    let t = Instant::now();
                    let res = http
                        .post(&target)
                        .header("svix-id", id)
                        .header("svix-timestamp", ts.to_string())
                        .header("svix-signature", sig)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match res {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                        }
                        _ => errors += 1,
                    }
                    latencies.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(args.events);
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = own_cpu_s() - cpu_before;
    latencies.sort_by(|a, b| a.total_cmp(b));
    let mut figures = Figures::from([
        ("events_per_s".into(), args.events as f64 / elapsed),
        ("p50_ms".into(), percentile(&latencies, 0.50)),
        ("p99_ms".into(), percentile(&latencies, 0.99)),
        ("errors".into(), errors as f64),
        ("loadgen_cpu_s".into(), cpu),
        ("elapsed_s".into(), elapsed),
    ]);
    if let Some((server, db)) = own {
        figures.insert("peak_rss_mb".into(), server.rss_mb().1);
        let before = server_cpu_before.unwrap_or_default();
        figures.insert("server_cpu_s".into(), cpu_s(&server.pid().to_string()) - before);
        drop(server);
        db.remove().await;
    }
    Ok(figures)
}

/// The provider limited to `rate_limit`/s: a campaign long enough for
/// `rate_seconds` of sending, and a transactional email every second.
pub async fn rate(args: &BenchArgs) -> anyhow::Result<Figures> {
    let limit = args.rate_limit.max(1);
    let mock = MockResend::start(MockConfig { port: 0, rate_limit: limit, ..MockConfig::default() }).await?;
    let db = BenchDb::new(args.database_url.as_deref()).await?;
    let server = Server::start(&binary(args.mailroom_bin.as_ref())?, &db, &resend_env(&mock, limit)).await?;
    let (tenant, key) = server.tenant().await?;
    // Enough for the window plus a margin, so the campaign is still running when it closes.
    let recipients = (args.rate_seconds as usize + 3) * limit as usize * 100;
    import(&server, &tenant, &key, recipients).await?;
    server
        .call(
            Method::POST,
            &format!("/customers/{tenant}/send"),
            &key,
            Some(json!({ "subject": "campaign", "html": "h" })),
        )
        .await?;
    wait_until("the first batch", Duration::from_secs(30), || mock.accepted_count() > 0).await?;
    // Measure whole seconds from the next second boundary: the provider counts per second.
    let window_start = (now_ms() / 1000 + 1) * 1000;
    let window_end = window_start + args.rate_seconds as i64 * 1000;
    let mut sent_at = Vec::new();
    let mut i = 0;
    while now_ms() < window_end {
        let t = now_ms();
        let subject = format!("tx-{i}");
        server
            .call(
                Method::POST,
                &format!("/customers/{tenant}/send/single"),
                &key,
                Some(json!({ "to_email": format!("tx{i}@example.org"), "subject": subject, "html": "h" })),
            )
            .await?;
        sent_at.push((subject, t));
        i += 1;
        tokio::time::sleep(
            Duration::from_millis(1000).saturating_sub(Duration::from_millis((now_ms() - t).unsigned_abs())),
        )
        .await;
    }
    wait_until("the last transactional email", Duration::from_secs(30), || {
        sent_at.iter().all(|(s, _)| mock.has_subject(s))
    })
    .await?;
    let stats = mock.stats();
    let in_window = stats.accepted_request_times.iter().filter(|t| **t >= window_start && **t < window_end).count();
    let budget = (limit as u64 * args.rate_seconds) as f64;
    let accepted = mock.accepted();
    let mut latencies: Vec<f64> = sent_at
        .iter()
        .filter_map(|(s, t)| accepted.iter().find(|e| &e.subject == s).map(|e| (e.accepted_at_ms - t) as f64))
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    drop(server);
    db.remove().await;
    Ok(Figures::from([
        ("budget_used".into(), in_window as f64 / budget),
        ("http_429".into(), stats.http_429 as f64),
        ("transactional_p99_ms".into(), percentile(&latencies, 0.99)),
        ("transactional_p50_ms".into(), percentile(&latencies, 0.50)),
        ("peak_requests_per_s".into(), f64::from(stats.peak_requests_per_second)),
    ]))
}

/// Fair shares (issue 20): one tenant's big campaign sending at the account's
/// rate while many other tenants each send a small one. How long each small
/// campaign took from its 202 until the provider had all of it, how much of the
/// account's rate was used, and how much longer the big campaign took than its
/// requests alone need.
pub async fn tenants(args: &BenchArgs) -> anyhow::Result<Figures> {
    let limit = args.rate_limit.max(1);
    let mock = MockResend::start(MockConfig { port: 0, rate_limit: limit, ..MockConfig::default() }).await?;
    let db = BenchDb::new(args.database_url.as_deref()).await?;
    let server = Server::start(&binary(args.mailroom_bin.as_ref())?, &db, &resend_env(&mock, limit)).await?;
    let (big, big_key) = server.tenant_on("Big", "big.example.com").await?;
    import_at(&server, &big, &big_key, args.big_recipients, "big.example.org").await?;
    let mut small = Vec::new();
    for i in 0..args.small_tenants {
        let (t, key) = server.tenant_on(&format!("Small {i}"), &format!("small{i}.example.com")).await?;
        import_at(&server, &t, &key, args.small_recipients, &format!("small{i}.example.org")).await?;
        small.push((t, key, format!("small-{i}")));
    }
    let running = &server;
    let send = |t: String, key: String, subject: String| async move {
        let body = json!({ "subject": subject, "html": "<p>Hello {{first_name}}</p>" });
        running.call(Method::POST, &format!("/customers/{t}/send"), &key, Some(body)).await
    };
    send(big, big_key, "big".into()).await?;
    let big_accepted_ms = now_ms();
    // The big campaign is under way (and its claims ahead in the pacer) when the others send.
    wait_until("the big campaign's first batch", Duration::from_secs(60), || mock.accepted_count() > 0).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let acks = futures::future::try_join_all(small.iter().map(|(t, key, subject)| async move {
        send(t.clone(), key.clone(), subject.clone()).await?;
        anyhow::Ok((subject.clone(), now_ms()))
    }))
    .await?;
    let big_requests = args.big_recipients.div_ceil(100);
    let small_requests = args.small_tenants * args.small_recipients.div_ceil(100);
    let ideal_s = (big_requests + small_requests) as f64 / f64::from(limit);
    let total = args.big_recipients + args.small_tenants * args.small_recipients;
    wait_until("every email", Duration::from_secs_f64(ideal_s * 3.0 + 120.0), || mock.accepted_count() >= total)
        .await?;
    let accepted = mock.accepted();
    let last_of = |subject: &str| accepted.iter().filter(|e| e.subject == subject).map(|e| e.accepted_at_ms).max();
    let mut waits: Vec<f64> = acks
        .iter()
        .map(|(subject, ack)| last_of(subject).map_or(f64::INFINITY, |done| (done - ack) as f64 / 1000.0))
        .collect();
    waits.sort_by(|a, b| a.total_cmp(b));
    let big_s = last_of("big").map_or(f64::INFINITY, |done| (done - big_accepted_ms) as f64 / 1000.0);
    // Whole seconds from the first request to the last: the provider counts per second.
    let stats = mock.stats();
    let times = &stats.accepted_request_times;
    let (first, last) = (times.iter().min().copied().unwrap_or(0), times.iter().max().copied().unwrap_or(0));
    let (from, to) = ((first / 1000 + 1) * 1000, (last / 1000) * 1000);
    let in_window = times.iter().filter(|t| **t >= from && **t < to).count();
    let budget = ((to - from).max(1000) / 1000) as f64 * f64::from(limit);
    drop(server);
    db.remove().await;
    Ok(Figures::from([
        ("small_done_p100_s".into(), waits.last().copied().unwrap_or(0.0)),
        ("small_done_p50_s".into(), percentile(&waits, 0.5)),
        ("rate_used".into(), in_window as f64 / budget),
        ("big_total_s".into(), big_s),
        // How many requests' time the big campaign took beyond its own.
        ("big_extra_requests".into(), big_s * f64::from(limit) - big_requests as f64),
        ("http_429".into(), stats.http_429 as f64),
    ]))
}

/// A large tagged audience with attributes (`plan` by `i % 3`, `score` =
/// `i % 100`): count it by tag (several times: the worst is the figure), by an
/// attribute filter and by a compound filter, then enqueue a campaign to all of
/// it by tag and another by a filter matching every contact.
pub async fn audience(args: &BenchArgs) -> anyhow::Result<Figures> {
    let mock = MockResend::start(MockConfig { port: 0, ..MockConfig::default() }).await?;
    let db = BenchDb::new(args.database_url.as_deref()).await?;
    let server = Server::start(&binary(args.mailroom_bin.as_ref())?, &db, &resend_env(&mock, 10)).await?;
    let (tenant, key) = server.tenant().await?;
    let store = crate::store::Store::connect(&db.url, 2).await?;
    let seeded_at = Instant::now();
    store
        .seed_contacts(
            &crate::domain::TenantId::from_stored(tenant.clone()),
            args.audience as i64,
            "example.org",
            "news",
        )
        .await?;
    let seed_s = seeded_at.elapsed().as_secs_f64();
    store.close().await;
    let n = args.audience as u64;
    let mut count_ms = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let count = server.call(Method::GET, &format!("/customers/{tenant}/audience?tag=news"), &key, None).await?;
        count_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(count["count"].as_u64() == Some(n), "audience count {} != {n}", count["count"]);
    }
    let audience_path = format!("/customers/{tenant}/audience");
    let eq = json!({ "filter": { "attribute": "plan", "op": "eq", "value": "pro" } });
    let t = Instant::now();
    let count = server.call(Method::POST, &audience_path, &key, Some(eq)).await?;
    let filter_eq_ms = t.elapsed().as_secs_f64() * 1000.0;
    let pro = (0..n).filter(|i| i % 3 == 1).count() as u64;
    anyhow::ensure!(count["count"].as_u64() == Some(pro), "plan = pro counted {} != {pro}", count["count"]);
    let compound = json!({ "filter": { "all": [
        { "tag": "news" },
        { "attribute": "plan", "op": "in", "value": ["pro", "team"] },
        { "not": { "attribute": "score", "op": "lt", "value": 50 } }
    ] } });
    let t = Instant::now();
    let count = server.call(Method::POST, &audience_path, &key, Some(compound)).await?;
    let filter_compound_ms = t.elapsed().as_secs_f64() * 1000.0;
    let expected = (0..n).filter(|i| i % 3 != 0 && i % 100 >= 50).count() as u64;
    anyhow::ensure!(count["count"].as_u64() == Some(expected), "compound counted {} != {expected}", count["count"]);
    let t = Instant::now();
    let r = server
        .call(
            Method::POST,
            &format!("/customers/{tenant}/send"),
            &key,
            Some(json!({ "subject": "s", "html": "h", "tag": "news" })),
        )
        .await?;
    let enqueue_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(r["sent_to"].as_u64() == Some(n), "enqueued {}", r["sent_to"]);
    let every_plan = json!({ "attribute": "plan", "op": "in", "value": ["free", "pro", "team"] });
    let t = Instant::now();
    let r = server
        .call(
            Method::POST,
            &format!("/customers/{tenant}/send"),
            &key,
            Some(json!({ "subject": "s", "html": "h", "filter": every_plan })),
        )
        .await?;
    let filter_enqueue_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(r["sent_to"].as_u64() == Some(n), "filter enqueued {}", r["sent_to"]);
    let (_, peak) = server.rss_mb();
    drop(server);
    db.remove().await;
    Ok(Figures::from([
        ("count_ms".into(), count_ms[0]),
        ("tag_count_max_ms".into(), count_ms.iter().copied().fold(0.0, f64::max)),
        ("filter_eq_count_ms".into(), filter_eq_ms),
        ("filter_compound_count_ms".into(), filter_compound_ms),
        ("enqueue_s".into(), enqueue_s),
        ("filter_enqueue_s".into(), filter_enqueue_s),
        ("seed_s".into(), seed_s),
        ("peak_rss_mb".into(), peak),
    ]))
}

/// A campaign of `stats_messages` messages and `stats_events_per_message`
/// events each, seeded in bulk: how fast its stats (and a page of events) answer.
pub async fn stats(args: &BenchArgs) -> anyhow::Result<Figures> {
    let db = BenchDb::new(args.database_url.as_deref()).await?;
    let server = Server::start(&binary(args.mailroom_bin.as_ref())?, &db, &[]).await?;
    let (tenant, key) = server.tenant().await?;
    let store = crate::store::Store::connect(&db.url, 2).await?;
    let seeded_at = Instant::now();
    let campaign = store
        .seed_campaign_events(
            &crate::domain::TenantId::from_stored(tenant.clone()),
            args.stats_messages as i64,
            args.stats_events_per_message as i64,
        )
        .await?;
    let seed_s = seeded_at.elapsed().as_secs_f64();
    store.close().await;
    let path = format!("/customers/{tenant}/campaigns/{campaign}/stats");
    let first = server.call(Method::GET, &path, &key, None).await?;
    anyhow::ensure!(
        first["delivered"].as_u64() == Some(args.stats_messages as u64),
        "delivered {} != {}",
        first["delivered"],
        args.stats_messages
    );
    let timed = |n: usize, path: String| {
        let (server, key) = (&server, &key);
        async move {
            let mut latencies = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                server.call(Method::GET, &path, key, None).await?;
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            latencies.sort_by(|a, b| a.total_cmp(b));
            Ok::<_, anyhow::Error>(latencies)
        }
    };
    let stats = timed(200, path).await?;
    let events = timed(50, format!("/customers/{tenant}/events?limit=100")).await?;
    let clicks =
        timed(50, format!("/customers/{tenant}/events?limit=100&campaign_id={campaign}&type=email.clicked")).await?;
    let series = timed(50, format!("/customers/{tenant}/stats?bucket=hour")).await?;
    let (_, peak) = server.rss_mb();
    drop(server);
    db.remove().await;
    Ok(Figures::from([
        ("seed_s".into(), seed_s),
        ("campaign_stats_p50_ms".into(), percentile(&stats, 0.50)),
        ("campaign_stats_p99_ms".into(), percentile(&stats, 0.99)),
        ("events_page_p50_ms".into(), percentile(&events, 0.50)),
        ("events_page_p99_ms".into(), percentile(&events, 0.99)),
        ("events_filtered_page_p50_ms".into(), percentile(&clicks, 0.50)),
        ("tenant_series_p50_ms".into(), percentile(&series, 0.50)),
        ("messages".into(), args.stats_messages as f64),
        ("events".into(), (args.stats_messages * args.stats_events_per_message) as f64),
        ("peak_rss_mb".into(), peak),
    ]))
}

/// Resident memory of an idle `mailroom serve`.
pub async fn idle(args: &BenchArgs) -> anyhow::Result<Figures> {
    let db = BenchDb::new(args.database_url.as_deref()).await?;
    let server = Server::start(&binary(args.mailroom_bin.as_ref())?, &db, &[]).await?;
    server.call(Method::GET, "/customers", super::server::ADMIN_KEY, None).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (rss, _) = server.rss_mb();
    drop(server);
    db.remove().await;
    Ok(Figures::from([("rss_mb".into(), rss)]))
}

/// Writes an `n`-row contact CSV: names, two tags and two attributes per row.
fn write_contacts_csv(path: &std::path::Path, n: usize) -> anyhow::Result<u64> {
    use std::io::Write;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    writeln!(w, "email,first_name,last_name,tags,plan,city")?;
    for i in 0..n {
        let plan = if i % 3 == 0 { "pro" } else { "free" };
        writeln!(w, "user{i}@example.org,First{i},Last{i},news;tier{},{plan},City {}", i % 5, i % 100)?;
    }
    w.flush()?;
    Ok(std::fs::metadata(path)?.len())
}

/// An N-row CSV streamed to `POST /contacts/import` as `mailroom import` sends
/// it; the server's peak RSS shows whether the body was ever held whole.
pub async fn contact_import(args: &BenchArgs) -> anyhow::Result<Figures> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("contacts.csv");
    let bytes = write_contacts_csv(&path, args.import_rows)?;
    let db = BenchDb::new(args.database_url.as_deref()).await?;
    let server = Server::start(&binary(args.mailroom_bin.as_ref())?, &db, &[]).await?;
    let c = server.call(Method::POST, "/customers", super::server::ADMIN_KEY, Some(json!({ "name": "Bench" }))).await?;
    let tenant = c["id"].as_str().context("customer id")?.to_owned();
    let k = server
        .call(Method::POST, &format!("/customers/{tenant}/api-keys"), super::server::ADMIN_KEY, Some(json!({})))
        .await?;
    let key = k["key"].as_str().context("api key")?.to_owned();
    let upload = crate::cli::import::ImportArgs {
        file: path,
        customer: tenant,
        url: Some(server.base.clone()),
        key,
        on_conflict: "skip".into(),
    };
    let cpu_before = cpu_s(&server.pid().to_string());
    let started = Instant::now();
    let report = crate::cli::import::upload(&server.http, &upload, &crate::cli::import::Progress::hidden()).await?;
    let total_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        report["created"].as_u64() == Some(args.import_rows as u64),
        "imported {} of {} rows: {report}",
        report["created"],
        args.import_rows
    );
    let (_, peak) = server.rss_mb();
    let server_cpu = cpu_s(&server.pid().to_string()) - cpu_before;
    drop(server);
    db.remove().await;
    Ok(Figures::from([
        ("server_cpu_s".into(), server_cpu),
        ("rows_per_s".into(), args.import_rows as f64 / total_s),
        ("total_s".into(), total_s),
        ("file_mb".into(), bytes as f64 / 1e6),
        ("peak_rss_mb".into(), peak),
    ]))
}
