//! Resend's REST API over reqwest.
//!
//! Why reqwest and not the `resend-rs` crate: the outbox needs the raw answer —
//! the HTTP status, Resend's error `name` (to tell `concurrent_idempotent_requests`
//! from `invalid_idempotent_request`), and the `retry-after` header — and it must
//! send the exact stored bytes on every retry. `resend-rs` hides those behind its
//! own types, rate limiter and blocking retry helper.

use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::{BatchAnswer, DeliveryProvider, DomainInfo, ErrorClass, ProviderError, ProviderResult};

pub struct ResendProvider {
    http: reqwest::Client,
    base_url: String,
    /// When the provider last said its budget is spent (`ratelimit-remaining: 0`),
    /// the time its window resets, in epoch ms; 0 when it has not.
    exhausted_until_ms: AtomicI64,
    /// The account's limit from the last `ratelimit-limit` header; 0 when none was seen.
    rate_limit: AtomicU32,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct IdBody {
    id: String,
}

#[derive(Deserialize)]
struct BatchBody {
    data: Vec<IdBody>,
    /// Present with `x-batch-validation: permissive`: the emails refused.
    #[serde(default)]
    errors: Vec<BatchError>,
}

#[derive(Deserialize)]
struct BatchError {
    index: usize,
    #[serde(default)]
    message: String,
}

impl ResendProvider {
    pub fn new(base_url: &str, api_key: &str) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        let mut auth = HeaderValue::from_str(&format!("Bearer {api_key}"))?;
        auth.set_sensitive(true);
        headers.insert(AUTHORIZATION, auth);
        // Resend answers 403 to requests without a User-Agent.
        headers.insert(USER_AGENT, HeaderValue::from_static(concat!("mailroom/", env!("CARGO_PKG_VERSION"))));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(32)
            .build()?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            exhausted_until_ms: AtomicI64::new(0),
            rate_limit: AtomicU32::new(0),
        })
    }

    async fn call<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> ProviderResult<T> {
        let res = req.send().await.map_err(transport_error)?;
        let status = res.status().as_u16();
        let retry_after_ms = res
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|s| (s * 1000.0).max(0.0) as u64);
        let header_num = |name: &str| {
            res.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok())
        };
        if let Some(limit) = header_num("ratelimit-limit").filter(|l| *l >= 1.0) {
            self.rate_limit.store(limit as u32, Ordering::Relaxed);
        }
        if header_num("ratelimit-remaining").is_some_and(|remaining| remaining <= 0.0) {
            // `ratelimit-reset` is whole seconds, too coarse to wait out in full
            // after using the last slot of a second ourselves; the budget is per
            // second, so wait for the next one (a 429 would say if that is too soon).
            let until = (crate::domain::now_ms() / 1000 + 1) * 1000;
            self.exhausted_until_ms.fetch_max(until, Ordering::Relaxed);
        }
        // Reading the body can fail too: the provider may have accepted the
        // request and dropped the connection before answering in full.
        let bytes = res.bytes().await.map_err(transport_error)?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes).map_err(|e| ProviderError {
                class: ErrorClass::Retryable,
                status: Some(status),
                name: "invalid_response".into(),
                message: format!("unreadable answer from the provider: {e}"),
            });
        }
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or(ErrorBody { name: None, message: None });
        Err(ProviderError::from_response(
            status,
            body.name.unwrap_or_else(|| format!("http_{status}")),
            body.message.unwrap_or_default(),
            retry_after_ms,
        ))
    }

    fn post_json(&self, path: &str, idempotency_key: Option<&str>, body: String) -> reqwest::RequestBuilder {
        let mut req =
            self.http.post(format!("{}{path}", self.base_url)).header(CONTENT_TYPE, "application/json").body(body);
        if let Some(key) = idempotency_key {
            req = req.header("Idempotency-Key", key);
        }
        req
    }
}

fn transport_error(e: reqwest::Error) -> ProviderError {
    ProviderError {
        class: ErrorClass::Retryable,
        status: None,
        name: if e.is_timeout() { "timeout".into() } else { "network_error".into() },
        // Without the URL: the error ends up in a message's `last_error`, and
        // the provider's address (a mock, a proxy) is nobody's business there.
        message: e.without_url().to_string(),
    }
}

impl DeliveryProvider for ResendProvider {
    fn name(&self) -> &'static str {
        "resend"
    }

    fn exhausted_until_ms(&self) -> Option<i64> {
        let until = self.exhausted_until_ms.swap(0, Ordering::Relaxed);
        (until > crate::domain::now_ms()).then_some(until)
    }

    fn account_rate_limit(&self) -> Option<u32> {
        Some(self.rate_limit.load(Ordering::Relaxed)).filter(|l| *l > 0)
    }

    fn create_domain<'a>(&'a self, name: &'a str) -> BoxFuture<'a, ProviderResult<DomainInfo>> {
        let body = serde_json::json!({ "name": name }).to_string();
        self.call(self.post_json("/domains", None, body)).boxed()
    }

    fn verify_domain<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<()>> {
        async move {
            let path = format!("/domains/{}/verify", urlencode(id));
            let _: serde_json::Value = self.call(self.post_json(&path, None, String::new())).await?;
            Ok(())
        }
        .boxed()
    }

    fn get_domain<'a>(&'a self, id: &'a str) -> BoxFuture<'a, ProviderResult<DomainInfo>> {
        let req = self.http.get(format!("{}/domains/{}", self.base_url, urlencode(id)));
        self.call(req).boxed()
    }

    fn send_email<'a>(&'a self, idempotency_key: &'a str, body: &'a str) -> BoxFuture<'a, ProviderResult<String>> {
        async move {
            let res: IdBody = self.call(self.post_json("/emails", Some(idempotency_key), body.to_owned())).await?;
            Ok(res.id)
        }
        .boxed()
    }

    fn send_batch<'a>(&'a self, idempotency_key: &'a str, body: &'a str) -> BoxFuture<'a, ProviderResult<BatchAnswer>> {
        async move {
            let req = self
                .post_json("/emails/batch", Some(idempotency_key), body.to_owned())
                .header("x-batch-validation", "permissive");
            let res: BatchBody = self.call(req).await?;
            Ok(BatchAnswer {
                ids: res.data.into_iter().map(|d| d.id).collect(),
                rejected: res.errors.into_iter().map(|e| (e.index, e.message)).collect(),
            })
        }
        .boxed()
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
