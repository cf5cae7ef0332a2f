//! What both test binaries (`tests/api`, `tests/ui`) share, included by each
//! with `#[path = "../common/mod.rs"] mod common;`.

pub mod webhook_receiver;
