//! mailroom: a self-hosted, multi-tenant email service over one Resend account.
//!
//! **The API's *customer* is the code's *tenant*.** A SaaS operator runs one
//! mailroom; each of its customers sends from its own verified domain. Routes
//! say `/customers/{id}`; everything behind them says `TenantId`.
//!
//! The house, top floor down; each module imports only from below it:
//!
//! - `app` — composition: builds the state, merges the routers, lists the workers.
//! - `api`, `ui` — two front ends (JSON and the dashboard): thin adapters that
//!   parse, authorise, call a service and map its error to JSON or a page.
//! - `service` — the use cases both front ends share (sending, templates,
//!   contacts and segments, automations, tenant webhooks, suppressions,
//!   reputation, ...): takes domain values, returns `service::Error`.
//! - `auth` — who is calling (keys, the failed-key throttle).
//! - the workers: `outbox` (sending), `delivery_events` (Resend -> mailroom),
//!   `tenant_webhooks` (mailroom -> tenants), `automations`, `sending_domains`
//!   (a tenant's domain and its DNS); `workers` has the `Worker` trait, the one
//!   runner that loops them all (and that tests step), the reputation sweep
//!   and the queue gauges.
//! - `render` (what a recipient receives), `provider` (who delivers), `llm`.
//! - `store` — storage only: all SQL, one code path for SQLite and PostgreSQL.
//! - `domain` — newtypes and pure rules; `config`.

pub mod api;
pub mod app;
pub mod auth;
pub mod automations;
#[cfg(feature = "tools")]
pub mod bench;
pub mod cli;
pub mod config;
pub mod delivery_events;
pub mod domain;
pub mod error;
pub mod import;
pub mod llm;
#[cfg(feature = "tools")]
pub mod mock;
pub mod outbox;
pub mod provider;
pub mod render;
pub mod sending_domains;
pub mod service;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tenant_webhooks;
pub mod ui;
pub mod workers;
