//! A person's data on request (GDPR articles 15 and 17): the export of a
//! contact's data as one JSON document, and its erasure.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::Json;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{EmptyBody, NoBody};
use crate::auth::TenantAccess;
use crate::domain::ConsentOrigin;
use crate::error::ApiResult;
use crate::service::erasure::{self, Erasure, PersonExport};
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(export_contact)).routes(routes!(erase_contact))
}

/// Everything mailroom holds about the person at this customer (GDPR
/// art. 15), as one JSON document: the contact (address, names, tags,
/// attributes, status), where it stands on each topic, its consent history,
/// the mail sent to it with status and times, and the delivery events about
/// that mail. Served as an attachment (`Content-Disposition`).
#[utoipa::path(get, path = "/customers/{id}/contacts/{contact_id}/export", tag = "contacts",
    params(("id" = String, Path), ("contact_id" = String, Path)),
    responses((status = 200, body = PersonExport, headers(("content-disposition" = String,
        description = "`attachment; filename=\"contact-{contact_id}.json\"`"))),
        (status = 404, body = crate::error::ErrorBody)))]
async fn export_contact(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<(HeaderMap, Json<PersonExport>)> {
    let export = erasure::export(&state, &t.tenant_id, &ids.1).await?;
    let mut headers = HeaderMap::new();
    // The id was parsed as a UUID by the service, so it is a safe file name.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"contact-{}.json\"", export.contact.id)) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok((headers, Json(export)))
}

/// Erase the person's personal data at this customer (GDPR art. 17), in one
/// transaction: the contact (address, names, attributes, tags, topic
/// choices, segment memberships); its address in messages and delivery
/// events, replaced by a keyed hash; stored event payloads, webhook
/// deliveries and idempotent answers that name it; its automation runs; link
/// figures and import reports that name it; its suppression entries; the
/// client details (IP, user agent) of its consent records, which stay, with
/// one `erased` record added. Campaign figures are unchanged. Afterwards the
/// address is kept only as a keyed hash and never mailed by this customer
/// again: a single send to it is refused, and if it is added again (API,
/// import, form) it is suppressed with reason `erased`, which only a
/// confirmed double opt-in lifts. Erasing again answers 404 (the contact is
/// gone). Resend keeps its own copy of mail it sent: see the README.
#[utoipa::path(post, path = "/customers/{id}/contacts/{contact_id}/erase", tag = "contacts",
    params(("id" = String, Path), ("contact_id" = String, Path)),
    request_body(content = NoBody, description = "none, or `{}`"),
    responses((status = 200, body = Erasure),
        (status = 404, body = crate::error::ErrorBody, description = "no such contact (or erased already)")))]
async fn erase_contact(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    _body: EmptyBody,
) -> ApiResult<Json<Erasure>> {
    Ok(Json(erasure::erase(&state, &t.tenant_id, &ids.1, &ConsentOrigin::api()).await?))
}
