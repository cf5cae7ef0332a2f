//! Sending reputation: a tenant's page (state, the window's rates and counts,
//! the thresholds, the history of changes) and the operator's list of every
//! tenant, worst first, with a resume button for paused ones. The same
//! use cases as the API (`service::reputation`); resuming is the operator's alone.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

use super::form::Fields;
use super::operator::Done;
use super::reputation_view::view;
use super::tenant_scope::admin_only;
use super::tenant_scope::Scoped;
use super::tenant_scope::{OperatorOnly, Posted};
use super::{page, see_other, Frame, UiResult, UiUser};
use crate::service::reputation;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/reputation", get(all))
        .route("/ui/t/{tid}/reputation", get(tenant))
        .route("/ui/t/{tid}/reputation/resume", post(resume))
}

async fn tenant(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    let reputation = view(&reputation::detail(&state, &id).await?)?;
    let frame = Frame::new(&user, Some(&row), "reputation").notice(q.done.as_deref());
    Ok(page(StatusCode::OK, "reputation.html", &frame, minijinja::context! { r => reputation }))
}

async fn all(State(state): State<AppState>, user: UiUser, Query(q): Query<Done>) -> UiResult<Response> {
    admin_only(&user)?;
    let tenants = reputation::all(&state).await?.iter().map(view).collect::<UiResult<Vec<_>>>()?;
    let frame = Frame::new(&user, None, "reputation").notice(q.done.as_deref());
    Ok(page(StatusCode::OK, "reputations.html", &frame, minijinja::context! { tenants }))
}

async fn resume(
    State(state): State<AppState>,
    Posted { id, form: f, .. }: Posted<Fields, OperatorOnly>,
) -> UiResult<Response> {
    reputation::resume_tenant(&state, &id, f.filled("note")).await?;
    tracing::info!(tenant = %id, "reputation resumed from the dashboard");
    let back = if f.get("back") == "tenant" { format!("/ui/t/{id}/reputation") } else { "/ui/reputation".to_owned() };
    Ok(see_other(&back, "reputation_resumed"))
}
