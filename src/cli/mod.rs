//! Commands that talk to a running mailroom as a client.

pub mod import;
