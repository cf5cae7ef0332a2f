//! Black-box tests over real HTTP. Every test spawns mailroom on port 0 with its
//! own database: SQLite by default, PostgreSQL when `TEST_DATABASE_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly on purpose

#[allow(dead_code)] // each binary uses part of it
#[path = "../common/mod.rs"]
mod common;
mod helpers;

mod agent_lane;
mod auth;
mod automations;
mod automations_inline;
mod bench;
mod campaigns;
mod cli;
mod consent_records;
mod contacts;
mod delivery;
mod domain_records;
mod erase;
mod events;
mod exactly_once;
mod fair_shares;
mod forms;
mod health;
mod hostile_fair_shares;
mod hostile_input;
mod import;
mod import_reports;
mod input;
mod isolation;
mod mail_footer_language;
mod pipeline;
mod provider_errors;
mod render_failing;
mod reputation;
mod segments_dynamic;
mod send;
mod send_flow;
mod sign_in_throttle;
mod stats;
mod template_checks;
mod templates;
mod tenant_webhook_shares;
mod tenant_webhooks;
mod topics;
mod unsubscribe;
mod webhooks;

#[test]
fn which_database_the_suite_runs_on() {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => eprintln!("api tests run on PostgreSQL ({url})"),
        _ => eprintln!("api tests run on SQLite only; set TEST_DATABASE_URL to run them on PostgreSQL too"),
    }
}
