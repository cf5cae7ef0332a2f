//! Contacts in bulk: import (a JSON list, or CSV / NDJSON streamed at any size)
//! and a streamed CSV export of them all.

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::contacts::ContactIn;
use super::ApiJson;
use crate::auth::TenantAccess;
use crate::domain::{Attributes, TenantId};
use crate::error::{ApiError, ApiResult};
use crate::import::{build_row, Format, Report, RowInput};
use crate::service::contacts;
use crate::state::AppState;
use crate::store::{ImportRow, OnConflict};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(import_contacts)).routes(routes!(export_contacts))
}

/// Most contacts in one JSON import (CSV and NDJSON have no limit).
const IMPORT_MAX: usize = 10_000;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportIn {
    contacts: Vec<ContactIn>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// What to do with an address the customer already has: `skip` (the
    /// default) leaves it alone; `update` sets the names given, merges the
    /// attributes key by key and adds the tags. A contact's status is never
    /// changed by an import.
    on_conflict: Option<String>,
}

fn json_row(i: usize, c: ContactIn) -> Result<ImportRow, String> {
    if c.double_opt_in {
        return Err("`double_opt_in` is not taken by an import; add such contacts one at a time".into());
    }
    if !c.topics.is_empty() {
        return Err(
            "`topics` is not taken by an import; set them with PATCH /customers/{id}/contacts/{contact_id}/topics"
                .into(),
        );
    }
    let attributes = match &c.attributes {
        None | Some(Value::Null) => Attributes::default(),
        Some(v) => Attributes::parse(v)?,
    };
    build_row(RowInput {
        line: i as u64 + 1,
        email: &c.email,
        first_name: c.first_name.as_deref(),
        last_name: c.last_name.as_deref(),
        tags: c.tags.iter().map(String::as_str).collect(),
        attributes,
        consented_at: None,
        consent_source: None,
        topics: Vec::new(),
    })
}

/// Import contacts.
///
/// * `application/json`: `{"contacts": [...]}`, at most 10,000; all are checked
///   first and one invalid contact refuses the request (422 naming its index).
/// * `text/csv`: a header line names the columns: `email` (required),
///   `first_name`, `last_name`, `tags` (`;`-separated); every other column is a
///   string attribute (an empty cell is absent). `status` and `created_at`
///   columns (as in an export) are ignored. `consented_at` and
///   `consent_source` go into the new contact's `imported` consent record.
///   `topic:<topic name or id>` sets the contact's choice on that topic:
///   `subscribed`, `unsubscribed`, or empty (left as it is); a header naming
///   a topic the customer does not have refuses the import (422, naming it).
///   Each change of a choice is a consent record (`topic_subscribed` /
///   `topic_unsubscribed`, source `import`).
/// * `application/x-ndjson`: one JSON contact per line, fields as in `POST
///   /contacts` plus `consented_at`, `consent_source` and `topics`, an object
///   `{"<topic name or id>": "subscribed" | "unsubscribed" | ""}`; a line
///   naming an unknown topic is refused like any bad row.
///
/// CSV and NDJSON bodies may be of any size: they are read as they arrive and
/// written in transactions of 2,000 rows. A bad row is reported by line in
/// `errors` and the rest are imported. Suppressed addresses are imported as
/// `unsubscribed`.
///
/// With `Accept: application/x-ndjson`, a CSV or NDJSON import answers with
/// its progress as it happens: a JSON line `{"progress": {created, updated,
/// skipped, rejected}}` each time 2,000 rows are written, then `{"report": ...}`
/// (or `{"error": {code, message}}`) as the last line (`mailroom import` shows
/// these as its progress bar).
#[utoipa::path(post, path = "/customers/{id}/contacts/import", tag = "contacts",
    params(("id" = String, Path), ImportParams),
    request_body(description = "Contacts as a JSON list, a CSV file or NDJSON lines", content(
        (ImportIn = "application/json"),
        (String = "text/csv"),
        (String = "application/x-ndjson"),
    )),
    responses((status = 200, description = "What was imported: `JsonImportOut` for a JSON body, `Report` for CSV and NDJSON; \
        with `Accept: application/x-ndjson`, progress lines then the report", content(
        (ImportAnswer = "application/json"),
        (String = "application/x-ndjson"),
    )), (status = 415, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn import_contacts(
    t: TenantAccess,
    State(state): State<AppState>,
    params: Result<Query<ImportParams>, QueryRejection>,
    req: Request,
) -> ApiResult<Response> {
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let on_conflict = match params.on_conflict.as_deref() {
        None | Some("skip") => OnConflict::Skip,
        Some("update") => OnConflict::Update,
        Some(_) => return Err(ApiError::validation("`on_conflict` must be `skip` or `update`")),
    };
    let format = match super::extract::media_type(req.headers()).as_str() {
        "text/csv" => Format::Csv,
        "application/x-ndjson" | "application/ndjson" | "application/jsonl" | "application/x-jsonlines" => {
            Format::Ndjson
        }
        m if m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")) => {
            return import_json(t.tenant_id, state, on_conflict, req).await;
        }
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "expected `Content-Type: text/csv`, `application/x-ndjson` or `application/json`".into(),
            ))
        }
    };
    let progress = accepts_ndjson(&req);
    // Read as a stream, so the global body limit (for buffered JSON) does not apply here.
    let body = req.into_body().into_data_stream();
    if progress {
        return Ok(import_with_progress(state, t.tenant_id, format, on_conflict, body));
    }
    let report = contacts::import(&state, t.tenant_id, format, on_conflict, body, |_| {}).await?;
    Ok(Json(report).into_response())
}

/// Whether the client asked for the import's progress as it happens
/// (`Accept: application/x-ndjson`).
fn accepts_ndjson(req: &Request) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| m.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-ndjson")))
}

/// Runs a CSV or NDJSON import and answers with its progress as it happens,
/// one JSON line each time a chunk of rows commits (`{"progress": {created,
/// updated, skipped, rejected}}`: rows the database has written, so a client
/// counts rows, not bytes uploaded), then `{"report": ...}` or the error
/// envelope `{"error": {code, message}}`. The answer starts (200) before the
/// body is read, so an import that fails says so in its last line.
fn import_with_progress(
    state: AppState,
    tenant: TenantId,
    format: Format,
    on_conflict: OnConflict,
    body: axum::body::BodyDataStream,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let line = |v: Value| Bytes::from(format!("{v}\n"));
    let progress = tx.clone();
    tokio::spawn(async move {
        let result = contacts::import(&state, tenant, format, on_conflict, body, move |p| {
            let _ = progress.send(line(serde_json::json!({ "progress": p })));
        })
        .await;
        let last = match result {
            Ok(report) => serde_json::json!({ "report": report }),
            Err(e) => {
                let e = ApiError::from(e);
                if e.status().is_server_error() {
                    tracing::error!(error = ?e, "import failed");
                }
                serde_json::to_value(e.envelope()).unwrap_or_default()
            }
        };
        let _ = tx.send(line(last));
    });
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|l| (Ok::<_, std::convert::Infallible>(l), rx))
    });
    let mut res = Body::from_stream(lines).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"));
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn import_json(tenant: TenantId, state: AppState, on_conflict: OnConflict, req: Request) -> ApiResult<Response> {
    let ApiJson(body) = ApiJson::<ImportIn>::from_request(req, &state).await?;
    if body.contacts.len() > IMPORT_MAX {
        return Err(ApiError::validation(format!("at most {IMPORT_MAX} contacts per import")));
    }
    let rows = body
        .contacts
        .into_iter()
        .enumerate()
        .map(|(i, c)| json_row(i, c).map_err(|e| ApiError::validation(format!("contacts[{i}]: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    // Recorded like any import (`GET /customers/{id}/imports`), but the answer
    // is the one this body has always had; `updated` only when updating was asked for.
    let (_, outcome) = contacts::import_rows(&state, &tenant, rows, on_conflict).await?;
    let mut answer = JsonImportOut { created: outcome.created, skipped: outcome.skipped, updated: None };
    if on_conflict == OnConflict::Update {
        answer.updated = Some(outcome.updated);
    }
    Ok(Json(answer).into_response())
}

/// What an import answers (for the OpenAPI document: one of the two shapes,
/// by the request's body).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum ImportAnswer {
    /// A JSON body's answer.
    Json(JsonImportOut),
    /// A CSV or NDJSON body's answer.
    Report(Report),
}

/// The answer to a JSON import (nothing is rejected: one bad contact refuses the request).
#[derive(Serialize, ToSchema)]
// A closed object in the OpenAPI document, so a `Report` is not also one of these.
#[serde(deny_unknown_fields)]
pub struct JsonImportOut {
    /// Contacts created.
    created: u64,
    /// Contacts skipped because their email already exists (or repeats within the request).
    skipped: u64,
    /// Contacts updated (only with `on_conflict=update`).
    #[serde(skip_serializing_if = "Option::is_none")]
    updated: Option<u64>,
}

/// Export every contact as CSV: `email, first_name, last_name, status, tags
/// (;-joined), created_at`, then one column per attribute key. Streamed a page
/// at a time. Cells that a spreadsheet would run as a formula are prefixed
/// with `'`; an import of the file removes it again.
#[utoipa::path(get, path = "/customers/{id}/contacts/export", tag = "contacts", params(("id" = String, Path)),
    responses((status = 200, description = "Every contact of the customer, as CSV", content_type = "text/csv", body = String,
        headers(("content-disposition" = String, description = "`attachment; filename=\"contacts.csv\"`")))))]
async fn export_contacts(t: TenantAccess, State(state): State<AppState>) -> ApiResult<Response> {
    let csv = contacts::export(&state, t.tenant_id).await?;
    Ok(csv_download(csv))
}

/// A CSV export as a download: `text/csv`, named `contacts.csv`.
fn csv_download(csv: contacts::CsvExport) -> Response {
    let mut res = Body::from_stream(csv).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    res.headers_mut()
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"contacts.csv\""));
    res
}
