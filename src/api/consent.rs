//! `GET /customers/{id}/contacts/{contact_id}/consent`: a contact's consent
//! history, newest first, a page at a time (`Link` header).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::paging::next_page;
use crate::auth::TenantAccess;
use crate::error::{ApiError, ApiResult};
use crate::service::consent::{self, ConsentRecord};
use crate::state::AppState;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ConsentParams {
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
    /// Cursor: the last record id of the previous page (see the `Link` header).
    after: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(consent_history))
}

/// A contact's consent history, newest first: each change of its consent
/// (created, imported, topics, unsubscribes, bounces, complaints...) with
/// its time, source, campaign or form, consent text and, where there was a
/// client, its IP and user agent. Records are never changed. A JSON array,
/// the next (older) page in `Link: <...>; rel="next"`.
#[utoipa::path(get, path = "/customers/{id}/contacts/{contact_id}/consent", tag = "contacts",
    params(("id" = String, Path), ("contact_id" = String, Path), ConsentParams),
    responses((status = 200, body = [ConsentRecord], headers(("link" = String,
        description = "`<...>; rel=\"next\"`: the next page; absent on the last page"))),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn consent_history(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    params: Result<Query<ConsentParams>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Vec<ConsentRecord>>)> {
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let limit = super::page_limit(params.limit.as_deref())?;
    let mut rows = consent::history(&state, &t.tenant_id, &ids.1, params.after.as_deref(), limit).await?;
    let mut headers = HeaderMap::new();
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        if let Some(last) = rows.last() {
            let path = format!("/customers/{}/contacts/{}/consent", t.tenant_id, ids.1);
            headers = next_page(&path, &[("limit", Some(&limit.to_string())), ("after", Some(&last.id))]);
        }
    }
    Ok((headers, Json(rows)))
}
