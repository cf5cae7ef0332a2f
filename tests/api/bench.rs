//! A small run of every benchmark scenario, so the harness never rots. No
//! timing assertions: the figures only have to exist and be sane.

use mailroom::bench::{run, BenchArgs};

#[tokio::test]
async fn every_bench_scenario_runs_at_small_scale() {
    let args = BenchArgs {
        scenario: "all".into(),
        database_url: std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty()),
        recipients: 500,
        template: true,
        events: 300,
        concurrency: 8,
        target: None,
        secret: None,
        email_ids: None,
        rate_seconds: 2,
        rate_limit: 10,
        big_recipients: 1_000,
        small_tenants: 3,
        small_recipients: 20,
        audience: 2_000,
        import_rows: 3_000,
        seed_messages: 0,
        rules: 0,
        stats_messages: 2_000,
        stats_events_per_message: 3,
        json: None,
        mailroom_bin: Some(env!("CARGO_BIN_EXE_mailroom").into()),
    };
    let f = run(&args).await.unwrap();
    for key in [
        "fanout.emails_per_s",
        "fanout.accept_s",
        "fanout.peak_rss_mb",
        "webhooks.events_per_s",
        "webhooks.p50_ms",
        "webhooks.p99_ms",
        "webhooks.errors",
        "rate.budget_used",
        "rate.http_429",
        "rate.transactional_p99_ms",
        "tenants.small_done_p100_s",
        "tenants.rate_used",
        "tenants.big_total_s",
        "audience.count_ms",
        "audience.enqueue_s",
        "audience.peak_rss_mb",
        "import.rows_per_s",
        "import.peak_rss_mb",
        "idle.rss_mb",
    ] {
        assert!(f.get(key).is_some_and(|v| v.is_finite() && *v >= 0.0), "{key}: {:?}", f.get(key));
    }
    assert_eq!(f["webhooks.errors"], 0.0, "every signed event was accepted");
    assert!(f["rate.budget_used"] > 0.0 && f["rate.budget_used"] <= 1.0);
    assert!(f["idle.rss_mb"] > 0.0);
}
