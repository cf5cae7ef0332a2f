use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{AcceptedEmail, Faults, KeyState, MockState};
use crate::provider::simulated::{delivery_events, dns_records};
use crate::provider::{DomainInfo, EmailTag, OutgoingEmail};

pub fn router(state: MockState) -> Router {
    Router::new()
        .route("/domains", post(create_domain))
        .route("/domains/{id}", get(get_domain))
        .route("/domains/{id}/verify", post(verify_domain))
        .route("/emails", post(send_email))
        .route("/emails/batch", post(send_batch))
        .route("/_mock/emails", get(list_accepted))
        .route("/_mock/stats", get(stats))
        .route("/_mock/faults", post(set_faults))
        .with_state(state)
}

/// Resend's error shape: `{statusCode, name, message}`.
fn error(status: u16, name: &str, message: &str) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, Json(json!({ "statusCode": status, "name": name, "message": message }))).into_response()
}

/// Authorization and User-Agent, as Resend checks them.
#[allow(clippy::result_large_err)] // the error is the ready response; this is a test server
fn check_client(state: &MockState, headers: &HeaderMap) -> Result<(String, String), Response> {
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let Some(key) = auth.strip_prefix("Bearer ") else {
        return Err(error(401, "missing_api_key", "Missing API key in the authorization header."));
    };
    let valid = match &state.config.api_key {
        Some(expected) => key == expected,
        None => key.starts_with("re_"),
    };
    if !valid {
        return Err(error(403, "invalid_api_key", "API key is invalid."));
    }
    let ua = headers.get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if ua.is_empty() {
        return Err(error(403, "missing_user_agent", "A User-Agent header is required."));
    }
    Ok((auth, ua))
}

async fn create_domain(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(r) = admit_domain_call(&state, &headers) {
        return r;
    }
    let name = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_owned));
    let Some(name) = name.filter(|n| n.contains('.')) else {
        return error(422, "validation_error", "The `name` field must be a domain.");
    };
    let info = DomainInfo {
        id: uuid::Uuid::new_v4().to_string(),
        name: name.clone(),
        status: "not_started".into(),
        records: dns_records(&name),
    };
    state.lock().domains.insert(info.id.clone(), (info.clone(), false));
    with_rate_headers(&state, (StatusCode::OK, Json(info)).into_response())
}

async fn verify_domain(State(state): State<MockState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = admit_domain_call(&state, &headers) {
        return r;
    }
    let mut inner = state.lock();
    match inner.domains.get_mut(&id) {
        Some((info, verified)) => {
            *verified = true;
            info.status = "verified".into();
            for r in &mut info.records {
                r["status"] = json!("verified");
            }
            drop(inner);
            with_rate_headers(&state, (StatusCode::OK, Json(json!({ "object": "domain", "id": id }))).into_response())
        }
        None => error(404, "not_found", "Domain not found"),
    }
}

async fn get_domain(State(state): State<MockState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = admit_domain_call(&state, &headers) {
        return r;
    }
    let found = state.lock().domains.get(&id).map(|(info, _)| info.clone());
    match found {
        Some(info) => with_rate_headers(&state, (StatusCode::OK, Json(info)).into_response()),
        None => error(404, "not_found", "Domain not found"),
    }
}

async fn send_email(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    finish_anyway(send(state, headers, body, false)).await
}

async fn send_batch(State(state): State<MockState>, headers: HeaderMap, body: Bytes) -> Response {
    finish_anyway(send(state, headers, body, true)).await
}

/// Like Resend, a request is processed to the end even when its client hangs
/// up meanwhile (a worker killed mid-request): its key is then completed, not
/// left in flight forever.
async fn finish_anyway(work: impl std::future::Future<Output = Response> + Send + 'static) -> Response {
    tokio::spawn(work).await.unwrap_or_else(|_| error(500, "internal_server_error", "request task failed"))
}

fn validate(v: &Value, reject: &[String]) -> Result<OutgoingEmail, String> {
    let from =
        v.get("from").and_then(Value::as_str).filter(|f| f.contains('@')).ok_or("`from` is missing or invalid")?;
    let to: Vec<String> = match v.get("to") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => {
            a.iter().map(|x| x.as_str().map(str::to_owned).ok_or("`to` must hold strings")).collect::<Result<_, _>>()?
        }
        _ => return Err("`to` is missing".into()),
    };
    if to.is_empty() || to.len() > 50 {
        return Err("`to` must hold 1 to 50 addresses".into());
    }
    if let Some(bad) = to.iter().find(|t| !t.contains('@') || reject.iter().any(|r| r.eq_ignore_ascii_case(t))) {
        return Err(format!("Invalid `to` field: {bad}"));
    }
    let subject = v.get("subject").and_then(Value::as_str).ok_or("`subject` is missing")?;
    let html = v.get("html").and_then(Value::as_str);
    let text = v.get("text").and_then(Value::as_str);
    if html.is_none() && text.is_none() {
        return Err("`html` or `text` is required".into());
    }
    let tags: Vec<EmailTag> = match v.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(t) => serde_json::from_value(t.clone()).map_err(|_| "`tags` must be [{name, value}]")?,
    };
    let tag_ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if tags.iter().any(|t| !tag_ok(&t.name) || !tag_ok(&t.value)) {
        return Err("tags may contain only ASCII letters, numbers, underscores, or dashes".into());
    }
    // Resend: `headers` is an object of custom header names to string values.
    let headers: Option<std::collections::BTreeMap<String, String>> = match v.get("headers") {
        None | Some(Value::Null) => None,
        Some(h) => Some(serde_json::from_value(h.clone()).map_err(|_| "`headers` must be an object of strings")?),
    };
    let header_ok = |s: &str| !s.chars().any(|c| c.is_control());
    if headers.iter().flatten().any(|(k, v)| k.is_empty() || !header_ok(k) || k.contains(':') || !header_ok(v)) {
        return Err("`headers` names and values must be single-line text".into());
    }
    Ok(OutgoingEmail {
        from: from.to_owned(),
        to,
        subject: subject.to_owned(),
        html: html.unwrap_or_default().to_owned(),
        text: text.map(str::to_owned),
        reply_to: None,
        headers,
        tags,
    })
}

enum Gate {
    Go(Faults, u64),
    Stop(Response),
}

/// A domain call: the client checks, then the rate limit.
#[allow(clippy::result_large_err)] // the error is the ready response; this is a test server
fn admit_domain_call(state: &MockState, headers: &HeaderMap) -> Result<(), Response> {
    check_client(state, headers)?;
    if state.lock().faults.domain_key_restricted {
        return Err(error(403, "restricted_api_key", "This API key is restricted to only send emails."));
    }
    gate_domain(state)
}

/// Domain calls count toward the team's rate limit too (no faults injected).
#[allow(clippy::result_large_err)] // the error is the ready response; this is a test server
fn gate_domain(state: &MockState) -> Result<(), Response> {
    let mut inner = state.lock();
    if count_request(&mut inner, state.config.rate_limit) {
        return Ok(());
    }
    inner.stats.http_429 += 1;
    let mut r = error(429, "rate_limit_exceeded", "Too many requests.");
    r.headers_mut().insert("retry-after", HeaderValue::from_static("1"));
    Err(r)
}

/// Counts a request in the current one-second window (Resend's limit has no
/// burst); true when it is within `limit` (0: no limit).
fn count_request(inner: &mut super::Inner, limit: u32) -> bool {
    inner.stats.requests += 1;
    let second = crate::domain::now_ms() / 1000;
    if inner.window_second != second {
        inner.window_second = second;
        inner.window_count = 0;
    }
    inner.window_count += 1;
    let within = limit == 0 || inner.window_count <= limit;
    if within {
        inner.stats.peak_requests_per_second = inner.stats.peak_requests_per_second.max(inner.window_count);
    }
    within
}

/// Rate limit (a fixed one-second window, no burst) and injected throttling.
fn gate(state: &MockState) -> Gate {
    let mut inner = state.lock();
    inner.stats.send_requests += 1;
    let limit = state.config.rate_limit;
    let within_limit = count_request(&mut inner, limit);
    inner.fault_tick += 1;
    let tick = inner.fault_tick;
    let throttled_by_fault = fires(tick, inner.faults.throttle_rate);
    if !within_limit || throttled_by_fault {
        inner.stats.http_429 += 1;
        let mut r = error(
            429,
            "rate_limit_exceeded",
            "Too many requests. You can only make a limited number of requests per second.",
        );
        let h = r.headers_mut();
        h.insert("retry-after", HeaderValue::from_static("1"));
        h.insert("ratelimit-limit", HeaderValue::from(limit));
        h.insert("ratelimit-remaining", HeaderValue::from(0));
        h.insert("ratelimit-reset", HeaderValue::from(1));
        return Gate::Stop(r);
    }
    if fires(tick, inner.faults.fail_rate) {
        inner.stats.http_5xx += 1;
        return Gate::Stop(error(500, "internal_server_error", "An unexpected error occurred."));
    }
    Gate::Go(inner.faults.clone(), tick)
}

/// Faults are spread evenly rather than drawn at random, so a run is repeatable:
/// with rate `p`, request `n` is hit when `floor(n·p)` steps up.
fn fires(n: u64, p: f64) -> bool {
    n > 0 && p > 0.0 && ((n as f64) * p).floor() > (((n - 1) as f64) * p).floor()
}

async fn send(state: MockState, headers: HeaderMap, body: Bytes, batch: bool) -> Response {
    let (auth, ua) = match check_client(&state, &headers) {
        Ok(c) => c,
        Err(r) => {
            state.lock().stats.requests += 1;
            return r;
        }
    };
    let (faults, tick) = match gate(&state) {
        Gate::Go(f, tick) => (f, tick),
        Gate::Stop(r) => return r,
    };
    if faults.key_revoked {
        state.lock().stats.key_refusals += 1;
        return error(403, "invalid_api_key", "API key is invalid.");
    }
    if faults.quota_exceeded {
        state.lock().stats.quota_refusals += 1;
        return error(429, "daily_quota_exceeded", "You have reached your daily email sending quota.");
    }
    if faults.max_body_bytes > 0 && body.len() > faults.max_body_bytes {
        state.lock().stats.http_413 += 1;
        return error(413, "request_too_large", "The request body is too large.");
    }
    let permissive =
        batch && headers.get("x-batch-validation").and_then(|v| v.to_str().ok()).is_some_and(|v| v == "permissive");
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::to_owned);
    if let Some(k) = &key {
        if k.is_empty() || k.len() > 256 {
            return error(422, "invalid_idempotency_key", "The key must be between 1-256 chars.");
        }
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return error(422, "validation_error", "Invalid JSON body.");
    };
    // Permissive batch validation: invalid emails are refused alone, by index.
    let mut refused: Vec<(usize, String)> = Vec::new();
    let emails: Result<Vec<OutgoingEmail>, String> = if batch {
        match v.as_array() {
            Some(items) if !items.is_empty() && items.len() <= 100 => {
                if items.iter().any(|i| i.get("attachments").is_some()) {
                    Err("Attachments are not supported in batch sends.".into())
                } else if permissive {
                    let mut valid = Vec::new();
                    for (index, item) in items.iter().enumerate() {
                        match validate(item, &faults.reject) {
                            Ok(e) => valid.push(e),
                            Err(m) => refused.push((index, m)),
                        }
                    }
                    Ok(valid)
                } else {
                    items.iter().map(|i| validate(i, &faults.reject)).collect()
                }
            }
            _ => Err("A batch holds 1 to 100 emails.".into()),
        }
    } else {
        validate(&v, &faults.reject).map(|e| vec![e])
    };
    let emails = match emails {
        Ok(e) => e,
        Err(m) => return error(422, "validation_error", &m),
    };
    let hash = hex::encode(Sha256::digest(&body));

    // Idempotency: Resend keeps keys 24 h; a different body under the same key
    // and a second request while the first runs are both 409.
    if let Some(k) = &key {
        let mut inner = state.lock();
        let previous = inner.keys.get(k).map(|state| match state {
            KeyState::Done { hash: h, status, body } if *h == hash => Err((*status, body.clone())),
            KeyState::InFlight { hash: h } if *h == hash => Ok("concurrent_idempotent_requests"),
            _ => Ok("invalid_idempotent_request"),
        });
        match previous {
            Some(Err((status, body))) => {
                inner.stats.replayed += 1;
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                return (status, [("content-type", "application/json")], body).into_response();
            }
            Some(Ok("concurrent_idempotent_requests")) => {
                return error(
                    409,
                    "concurrent_idempotent_requests",
                    "Same idempotency key used while original request is still in progress.",
                );
            }
            Some(Ok(_)) => {
                return error(
                    409,
                    "invalid_idempotent_request",
                    "Same idempotency key used with a different request payload.",
                );
            }
            None => {
                inner.keys.insert(k.clone(), KeyState::InFlight { hash: hash.clone() });
            }
        }
    }

    if faults.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(faults.latency_ms)).await;
    }
    let ids: Vec<String> = emails.iter().map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let answer = if faults.empty_answers {
        json!({ "data": [] })
    } else if batch && permissive {
        json!({
            "data": ids.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
            "errors": refused.iter().map(|(index, message)| json!({ "index": index, "message": message })).collect::<Vec<_>>(),
        })
    } else if batch {
        json!({ "data": ids.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>() })
    } else {
        json!({ "id": ids[0] })
    }
    .to_string();
    // Offset so drops do not always land on the same requests as 5xx answers.
    let dropped = fires(tick + 7, faults.drop_rate);
    {
        let mut inner = state.lock();
        let now = crate::domain::now_ms();
        inner.stats.accepted_requests += 1;
        inner.stats.accepted_request_times.push(now);
        inner.stats.largest_batch = inner.stats.largest_batch.max(emails.len());
        inner.stats.largest_body_bytes = inner.stats.largest_body_bytes.max(body.len());
        for (id, e) in ids.iter().zip(&emails) {
            inner.accepted.push(AcceptedEmail {
                id: id.clone(),
                idempotency_key: key.clone(),
                from: e.from.clone(),
                to: e.to.clone(),
                subject: e.subject.clone(),
                html: (!e.html.is_empty()).then(|| e.html.clone()),
                text: e.text.clone(),
                tags: e.tags.clone(),
                headers: e.headers.clone().unwrap_or_default(),
                user_agent: ua.clone(),
                authorization: auth.clone(),
                accepted_at_ms: now,
            });
        }
        if let Some(k) = &key {
            inner.keys.insert(k.clone(), KeyState::Done { hash, status: 200, body: answer.clone() });
        }
        if dropped {
            inner.stats.dropped += 1;
        }
    }
    emit_webhooks(&state, &ids, &emails);
    if dropped {
        // Accepted and recorded, then the connection breaks before the answer arrives.
        let failing =
            futures::stream::once(async { Err::<Bytes, std::io::Error>(std::io::Error::other("connection dropped")) });
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .body(Body::from_stream(failing))
            .unwrap_or_else(|_| error(500, "internal_server_error", "drop failed"));
    }
    with_rate_headers(&state, (StatusCode::OK, [("content-type", "application/json")], answer).into_response())
}

/// Resend's `ratelimit-*` headers, on every answer when a limit is set.
fn with_rate_headers(state: &MockState, mut r: Response) -> Response {
    if state.config.rate_limit > 0 {
        let remaining = state.config.rate_limit.saturating_sub(state.lock().window_count);
        let h = r.headers_mut();
        h.insert("ratelimit-limit", HeaderValue::from(state.config.rate_limit));
        h.insert("ratelimit-remaining", HeaderValue::from(remaining));
        h.insert("ratelimit-reset", HeaderValue::from(1));
    }
    r
}

/// Posts the signed delivery events Resend would send, in the background.
fn emit_webhooks(state: &MockState, ids: &[String], emails: &[OutgoingEmail]) {
    let Some((url, secret)) = state.lock().webhook.clone() else { return };
    let Ok(signer) = standardwebhooks::Webhook::new(&secret) else { return };
    let events: Vec<_> = ids.iter().zip(emails).flat_map(|(id, e)| delivery_events(id, e)).collect();
    let http = state.http.clone();
    tokio::spawn(async move {
        for event in events {
            let ts = crate::domain::now_ms() / 1000;
            let Ok(sig) = signer.sign(&event.svix_id, ts, event.body.as_bytes()) else { continue };
            for _ in 0..3 {
                let res = http
                    .post(&url)
                    .header("svix-id", &event.svix_id)
                    .header("svix-timestamp", ts.to_string())
                    .header("svix-signature", &sig)
                    .header("content-type", "application/json")
                    .body(event.body.clone())
                    .send()
                    .await;
                if res.is_ok_and(|r| r.status().is_success()) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    });
}

async fn list_accepted(State(state): State<MockState>) -> Json<Vec<AcceptedEmail>> {
    Json(state.lock().accepted.clone())
}

async fn stats(State(state): State<MockState>) -> Json<super::MockStats> {
    Json(state.lock().stats.clone())
}

async fn set_faults(State(state): State<MockState>, Json(faults): Json<Faults>) -> StatusCode {
    state.lock().faults = faults;
    StatusCode::NO_CONTENT
}
