//! mailroom: a self-hosted, multi-tenant email service over one Resend account.
//!
//! Arrows point down: `api` -> `outbox`/`events`/`render`/`domains` -> `store`/`provider`.

pub mod api;
pub mod app;
pub mod auth;
pub mod bench;
pub mod config;
pub mod domain;
pub mod domains;
pub mod error;
pub mod events;
pub mod mock;
pub mod outbox;
pub mod provider;
pub mod render;
pub mod store;
pub mod telemetry;
