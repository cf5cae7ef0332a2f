//! A webhook receiver for local development and the README: prints every
//! Standard Webhooks request it gets (id, timestamp, signature, body) and,
//! given the endpoint's secret, whether the signature verifies.

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use tokio::net::TcpListener;

#[derive(Clone, Debug, Default, clap::Args)]
pub struct SinkConfig {
    /// Port to listen on (any path is accepted).
    #[arg(long, default_value_t = 3003)]
    pub port: u16,
    /// The endpoint's signing secret (`whsec_...`): check every signature with it.
    #[arg(long)]
    pub secret: Option<String>,
}

/// Serves until the process ends.
pub async fn run(config: SinkConfig) -> anyhow::Result<()> {
    let verifier = std::sync::Arc::new(config.secret.as_deref().map(standardwebhooks::Webhook::new).transpose()?);
    let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
    println!("webhook sink listening on http://{}/hook", listener.local_addr()?);
    let handler = move |headers: HeaderMap, body: String| {
        let verifier = verifier.clone();
        async move {
            let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
            let verdict = match verifier.as_ref() {
                None => "not checked (no --secret)".to_owned(),
                Some(w) => match w.verify(body.as_bytes(), &headers) {
                    Ok(()) => "signature verified".to_owned(),
                    Err(e) => format!("signature INVALID: {e}"),
                },
            };
            println!(
                "webhook-id: {}  webhook-timestamp: {}  webhook-signature: {}  ({verdict})\n{body}",
                h("webhook-id"),
                h("webhook-timestamp"),
                h("webhook-signature")
            );
            StatusCode::NO_CONTENT
        }
    };
    let app = Router::new().fallback(post(handler));
    axum::serve(listener, app).await?;
    Ok(())
}
