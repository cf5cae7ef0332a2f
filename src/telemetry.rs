//! Logging. Info level never carries email addresses or bodies; `DEBUG=true`
//! turns on debug logs for mailroom itself.

use tracing_subscriber::EnvFilter;

pub fn init(debug: bool) {
    let default = if debug { "mailroom=debug,tower_http=debug,info" } else { "mailroom=info,warn" };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).try_init();
}
