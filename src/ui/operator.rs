//! The operator's pages: tenants and their keys, dead letters across
//! tenants, queue and provider status.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::{Deserialize, Serialize};

use super::session::CsrfOnly;
use super::tenant_scope::{admin_only, OperatorOnly, Posted, Scoped};
use super::{page, see_other, Frame, UiError, UiResult, UiUser};
use crate::domain::{rfc3339, TenantId};
use crate::service::{customers, dead_letters, reputation};
use crate::state::AppState;
use crate::store::{TenantRow, DAY_MS};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/tenants", get(tenants).post(create_tenant))
        .route("/ui/tenants/{tid}", get(tenant))
        .route("/ui/tenants/{tid}/keys", post(issue_key))
        .route("/ui/tenants/{tid}/keys/{kid}/revoke", post(revoke_key))
        .route("/ui/tenants/{tid}/delete", get(confirm_delete).post(delete_tenant))
        .route("/ui/dead-letters", get(all_dead_letters))
        .route("/ui/status", get(status))
}

#[derive(Deserialize)]
pub struct Done {
    pub done: Option<String>,
}

#[derive(Serialize)]
struct TenantFigures {
    customer: serde_json::Value,
    /// The reputation guard's view of it (`service::reputation`, as the
    /// reputation pages show it): its verdict and its window's figures.
    reputation: serde_json::Value,
    dead: i64,
    /// The agent's model calls today (UTC), and the day's budget.
    agent_calls_today: i64,
    agent_daily_calls: i64,
    /// Tokens the model's answers used, all told.
    agent_tokens: i64,
}

async fn tenants(State(state): State<AppState>, user: UiUser, Query(q): Query<Done>) -> UiResult<Response> {
    admin_only(&user)?;
    // A constant number of queries whatever the number of tenants: the tenants,
    // the guard's standings (its own set-based read), the dead letters, the model use.
    let mut standings: HashMap<String, serde_json::Value> = HashMap::new();
    for r in reputation::all(&state).await? {
        let v = super::reputation_view::view(&r)?;
        standings.insert(v["customer_id"].as_str().unwrap_or_default().to_owned(), v);
    }
    let mut dead = state.store.dead_letters_per_tenant().await?;
    let mut usage = state.store.agent_usage().await?;
    let mut rows = Vec::new();
    for t in state.store.tenants().await? {
        let u = usage.remove(t.id.as_str()).unwrap_or_default();
        let agent_daily_calls = t.agent_daily_calls.unwrap_or(i64::from(state.config.agent_daily_calls));
        rows.push(TenantFigures {
            reputation: standings.remove(t.id.as_str()).unwrap_or_default(),
            dead: dead.remove(t.id.as_str()).unwrap_or_default(),
            customer: serde_json::to_value(customers::Customer::from(t)).unwrap_or_default(),
            agent_calls_today: u.calls_today,
            agent_daily_calls,
            agent_tokens: u.input_tokens.saturating_add(u.output_tokens),
        });
    }
    let policy = state.store.reputation_policy();
    let guard = minijinja::context! { days => policy.window_ms / DAY_MS, min_sent => policy.min_sent };
    let frame = Frame::new(&user, None, "tenants").notice(q.done.as_deref());
    Ok(page(StatusCode::OK, "tenants.html", &frame, minijinja::context! { tenants => rows, guard }))
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

async fn create_tenant(State(state): State<AppState>, user: UiUser, Form(f): Form<NameForm>) -> UiResult<Response> {
    admin_only(&user)?;
    user.check_csrf(&f.csrf)?;
    let created = customers::create(&state, &f.name).await?;
    let id = serde_json::to_value(&created).ok().and_then(|v| v["id"].as_str().map(str::to_owned)).unwrap_or_default();
    Ok(see_other(&format!("/ui/tenants/{id}"), "tenant_created"))
}

#[derive(Serialize)]
struct KeyView {
    id: String,
    name: Option<String>,
    prefix: String,
    created_at: String,
    revoked: bool,
}

async fn tenant_page(
    state: &AppState,
    user: &UiUser,
    (id, row): (&TenantId, TenantRow),
    done: Option<&str>,
    new_key: Option<serde_json::Value>,
) -> UiResult<Response> {
    let keys: Vec<KeyView> = state
        .store
        .api_keys(id)
        .await?
        .into_iter()
        .map(|k| KeyView {
            revoked: k.revoked_at.is_some(),
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            created_at: rfc3339(k.created_at),
        })
        .collect();
    let frame = Frame::new(user, Some(&row), "tenants").notice(done);
    let customer = serde_json::to_value(customers::Customer::from(row)).unwrap_or_default();
    let template = if new_key.is_some() { "key_issued.html" } else { "tenant_admin.html" };
    Ok(page(
        if new_key.is_some() { StatusCode::CREATED } else { StatusCode::OK },
        template,
        &frame,
        minijinja::context! { customer, keys, new_key },
    ))
}

async fn tenant(
    State(state): State<AppState>,
    Scoped { user, id, tenant, query: Query(q), .. }: Scoped<Query<Done>, OperatorOnly>,
) -> UiResult<Response> {
    tenant_page(&state, &user, (&id, tenant), q.done.as_deref(), None).await
}

/// The new key is shown on the answer to the POST, once: never in a URL.
async fn issue_key(
    State(state): State<AppState>,
    Posted { user, id, tenant, form: Form(f), .. }: Posted<Form<NameForm>, OperatorOnly>,
) -> UiResult<Response> {
    let name = Some(f.name.as_str()).filter(|n| !n.trim().is_empty());
    let key = customers::issue_key(&state, &id, name).await?;
    let key = serde_json::to_value(&key).unwrap_or_default();
    let mut res = tenant_page(&state, &user, (&id, tenant), None, Some(key)).await?;
    res.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(res)
}

async fn revoke_key(
    State(state): State<AppState>,
    Path((_, kid)): Path<(String, String)>,
    Posted { id, .. }: Posted<Form<CsrfOnly>, OperatorOnly>,
) -> UiResult<Response> {
    customers::revoke_key(&state, &id, &kid).await?;
    Ok(see_other(&format!("/ui/tenants/{id}"), "key_revoked"))
}

async fn confirm_delete(Scoped { user, tenant: row, .. }: Scoped<(), OperatorOnly>) -> UiResult<Response> {
    let frame = Frame::new(&user, Some(&row), "tenants");
    let customer = serde_json::to_value(customers::Customer::from(row)).unwrap_or_default();
    Ok(page(StatusCode::OK, "tenant_delete.html", &frame, minijinja::context! { customer }))
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    csrf: String,
    /// The tenant's name, typed again.
    #[serde(default)]
    confirm: String,
}

async fn delete_tenant(
    State(state): State<AppState>,
    Posted { id, tenant: row, form: Form(f), .. }: Posted<Form<DeleteForm>, OperatorOnly>,
) -> UiResult<Response> {
    if f.confirm.trim() != row.name {
        return Err(UiError::Api(crate::error::ApiError::validation(
            "type the tenant's name exactly to confirm the deletion",
        )));
    }
    match customers::delete(&state, &id).await {
        // Deleted meanwhile (another tab): it is gone all the same.
        Ok(()) | Err(crate::service::Error::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(see_other("/ui/tenants", "tenant_deleted"))
}

async fn all_dead_letters(State(state): State<AppState>, user: UiUser, Query(q): Query<Done>) -> UiResult<Response> {
    admin_only(&user)?;
    let rows = state.store.dead_letters(None, None, super::DEAD_LETTERS_SHOWN).await?;
    let names: std::collections::HashMap<String, String> =
        state.store.tenants().await?.into_iter().map(|t| (t.id.to_string(), t.name)).collect();
    let letters: Vec<serde_json::Value> = rows
        .into_iter()
        .map(|m| {
            let tenant_name = names.get(&m.tenant_id).cloned().unwrap_or_default();
            let mut v = serde_json::to_value(dead_letters::DeadLetter::from(m)).unwrap_or_default();
            v["tenant_name"] = tenant_name.into();
            v
        })
        .collect();
    let frame = Frame::new(&user, None, "dead").notice(q.done.as_deref());
    Ok(page(
        StatusCode::OK,
        "dead_letters.html",
        &frame,
        minijinja::context! { letters, limit => super::DEAD_LETTERS_SHOWN, across_tenants => true },
    ))
}

#[derive(Serialize)]
struct Lane {
    priority: &'static str,
    status: String,
    count: i64,
}

async fn status(State(state): State<AppState>, user: UiUser) -> UiResult<Response> {
    admin_only(&user)?;
    // The same query as the queue-depth gauges of `/metrics`.
    let lanes: Vec<Lane> = state
        .store
        .queue_depth()
        .await?
        .into_iter()
        .map(|(p, status, count)| Lane { priority: if p == 0 { "transactional" } else { "campaign" }, status, count })
        .collect();
    let provider = format!("{:?}", state.config.provider).to_lowercase();
    let frame = Frame::new(&user, None, "status");
    Ok(page(
        StatusCode::OK,
        "status.html",
        &frame,
        minijinja::context! {
            lanes,
            provider,
            send_rate => state.config.send_rate,
            public_url => state.config.public_url.clone(),
            webhooks_signed => !state.config.webhook_secrets.is_empty(),
        },
    ))
}

super::tenant_scope::csrf_field!(NameForm, DeleteForm);
