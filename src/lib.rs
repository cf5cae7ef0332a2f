//! mailroom: a self-hosted, multi-tenant email service over one Resend account.
//!
//! Arrows point down: `app` -> `api`/`auth` -> `state` -> `outbox`/`events`/`notify`/`automations`/`reputation`/
//! `domain_auth` -> `store`/`provider`/`render`/`llm` -> `domain`.

pub mod api;
pub mod app;
pub mod auth;
pub mod automations;
#[cfg(feature = "tools")]
pub mod bench;
pub mod cli;
pub mod config;
pub mod domain;
pub mod domain_auth;
pub mod error;
pub mod events;
pub mod import;
pub mod llm;
#[cfg(feature = "tools")]
pub mod mock;
pub mod notify;
pub mod outbox;
pub mod provider;
pub mod render;
pub mod reputation;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod throttle;
pub mod ui;
