//! Reports of contact imports: what each CSV or NDJSON import wrote and
//! refused, and whether its body ended early.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::TenantAccess;
use crate::error::{ApiError, ApiResult};
use crate::service::imports::{self, ImportReport};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_imports)).routes(routes!(get_import))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportListParams {
    /// Most reports to return: 1 to 1000, default 100.
    limit: Option<String>,
}

/// The customer's contact imports (CSV and NDJSON, from the API, the CLI or
/// the dashboard), newest first: rows written and rejected, and whether the
/// upload ended early.
#[utoipa::path(get, path = "/customers/{id}/imports", tag = "contacts", params(("id" = String, Path), ImportListParams),
    responses((status = 200, body = [ImportReport]), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
async fn list_imports(
    t: TenantAccess,
    State(state): State<AppState>,
    params: Result<Query<ImportListParams>, QueryRejection>,
) -> ApiResult<Json<Vec<ImportReport>>> {
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    Ok(Json(imports::list(&state, &t.tenant_id, params.limit.as_deref()).await?))
}

/// One import's report; its id is the `id` of the import's answer.
#[utoipa::path(get, path = "/customers/{id}/imports/{iid}", tag = "contacts", params(("id" = String, Path), ("iid" = String, Path)),
    responses((status = 200, body = ImportReport), (status = 404, body = crate::error::ErrorBody)))]
async fn get_import(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<ImportReport>> {
    Ok(Json(imports::get(&state, &t.tenant_id, &ids.1).await?))
}
