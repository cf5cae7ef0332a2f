//! A tenant's dead letters, and retrying one (back to the tenant's list, or
//! the operator's list across tenants when it was retried from there).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;

use super::operator::Done;
use super::tenant_scope::{Posted, Scoped};
use super::{page, see_other, Frame, UiResult};
use crate::service::dead_letters;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/dead-letters", get(tenant_dead_letters))
        .route("/ui/t/{tid}/dead-letters/{mid}/retry", post(retry))
}

async fn tenant_dead_letters(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    let letters: Vec<dead_letters::DeadLetter> = state
        .store
        .dead_letters(Some(&id), None, super::DEAD_LETTERS_SHOWN)
        .await?
        .into_iter()
        .map(dead_letters::DeadLetter::from)
        .collect();
    let frame = Frame::new(&user, Some(&row), "dead").notice(q.done.as_deref());
    Ok(page(
        StatusCode::OK,
        "dead_letters.html",
        &frame,
        minijinja::context! { letters, limit => super::DEAD_LETTERS_SHOWN, across_tenants => false },
    ))
}

#[derive(Deserialize)]
pub struct RetryForm {
    #[serde(default)]
    csrf: String,
    /// Where to go back to: `all` (the operator's list) or the tenant's.
    #[serde(default)]
    back: String,
}

async fn retry(
    State(state): State<AppState>,
    Path((_, mid)): Path<(String, String)>,
    Posted { user, id, form: Form(f), .. }: Posted<Form<RetryForm>>,
) -> UiResult<Response> {
    dead_letters::retry_one(&state, &id, &mid).await?;
    let back = if f.back == "all" && user.tenant.is_none() {
        "/ui/dead-letters".to_owned()
    } else {
        format!("/ui/t/{id}/dead-letters")
    };
    Ok(see_other(&back, "requeued"))
}

super::tenant_scope::csrf_field!(RetryForm);
