//! A tenant's contacts: search, filter, add, edit (attributes included),
//! unsubscribe, import, export; each one's page with its recent mail.

use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::consent_history::consent_page;
use super::contact_details::{attribute_rows, posted_attributes, recent_events, recent_messages, RECENT};
use super::form::Fields;
use super::operator::Done;
use super::session::CsrfOnly;
use super::tenant_scope::header_token;
use super::tenant_scope::{Posted, Scoped};
use super::{page, query_string, scope, see_other, Frame, UiError, UiResult, UiUser};
use crate::domain::{parse_id, ConsentOrigin, ConsentSource, Tag, TenantId};
use crate::error::ApiError;
use crate::import::Format;
use crate::service::{contacts, segments};
use crate::state::AppState;
use crate::store::{ContactFilter, OnConflict};

/// Contacts per page.
const PAGE: i64 = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/contacts", get(list).post(add))
        .route("/ui/t/{tid}/contacts/import", get(import_page).post(import))
        .route("/ui/t/{tid}/contacts/export", get(export))
        .route("/ui/t/{tid}/contacts/{cid}", get(contact).post(save))
        .route("/ui/t/{tid}/contacts/{cid}/unsubscribe", post(unsubscribe))
        .route("/ui/t/{tid}/contacts/{cid}/segments", post(membership))
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    /// Part of an email address.
    q: Option<String>,
    tag: Option<String>,
    status: Option<String>,
    after: Option<String>,
    done: Option<String>,
}

const STATUSES: [&str; 4] = ["subscribed", "unsubscribed", "bounced", "complained"];

fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

async fn list(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<ListQuery>>,
) -> UiResult<Response> {
    let tag = present(&q.tag).map(Tag::parse).transpose().map_err(ApiError::validation)?;
    let status = present(&q.status).filter(|s| STATUSES.contains(s));
    let search = present(&q.q);
    let after = present(&q.after).and_then(parse_id);
    // A filtered list goes through the dynamic-segment filter; either way a
    // page holds PAGE contacts after the cursor, and the total counts them all.
    let mut conditions = Vec::new();
    if let Some(s) = search {
        conditions.push(json!({"field": "email", "op": "contains", "value": s.to_lowercase()}));
    }
    if let Some(s) = status {
        conditions.push(json!({"field": "status", "op": "eq", "value": s}));
    }
    if let Some(t) = &tag {
        conditions.push(json!({"tag": t.as_str()}));
    }
    let (total, mut rows) = if conditions.is_empty() {
        let rows = state.store.contacts(&id, &ContactFilter { tag: None, after: after.clone(), limit: PAGE }).await?;
        (state.store.contact_total(&id).await?, rows)
    } else {
        let filter = segments::parse_filter(&json!({ "all": conditions }))?;
        state.store.filter_members_after(&id, &filter, after.as_deref().unwrap_or(""), PAGE + 1).await?
    };
    let next = if rows.len() as i64 > PAGE {
        rows.truncate(PAGE as usize);
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    let tag = tag.map(Tag::into_string);
    let filters = [("q", search), ("tag", tag.as_deref()), ("status", status)];
    let first_query = query_string(&filters);
    let next_query = next.as_deref().map(|n| {
        let mut pairs = filters.to_vec();
        pairs.push(("after", Some(n)));
        query_string(&pairs)
    });
    let contacts: Vec<contacts::Contact> = rows.into_iter().map(contacts::Contact::from).collect();
    let frame = Frame::new(&user, Some(&row), "contacts").notice(q.done.as_deref());
    Ok(page(
        StatusCode::OK,
        "contacts.html",
        &frame,
        minijinja::context! {
            contacts, total, next_query, first_query,
            q => search, tag, status, statuses => STATUSES,
            paged => after.is_some(),
        },
    ))
}

#[derive(Deserialize)]
pub struct ContactForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    /// Comma-separated.
    #[serde(default)]
    tags: String,
}

/// A change made in the dashboard, by one of the tenant's people.
fn dashboard() -> ConsentOrigin {
    ConsentOrigin::new(ConsentSource::Dashboard)
}

fn tags(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect()
}

async fn add(
    State(state): State<AppState>,
    Posted { id, form: Form(f), .. }: Posted<Form<ContactForm>>,
) -> UiResult<Response> {
    let input = contacts::NewContactInput {
        email: f.email,
        first_name: Some(f.first_name),
        last_name: Some(f.last_name),
        tags: tags(&f.tags),
        attributes: None,
        topics: Vec::new(),
    };
    contacts::create(&state, &id, input, &dashboard()).await?;
    Ok(see_other(&format!("/ui/t/{id}/contacts"), "contact_added"))
}

async fn contact(
    State(state): State<AppState>,
    Path((_, cid)): Path<(String, String)>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    let cid = parse_id(&cid).ok_or(UiError::NotFound)?;
    let c = state.store.contact(&id, &cid).await?.ok_or(UiError::NotFound)?;
    let contact = contacts::Contact::from(c);
    let member_of = state.store.segments_of_contact(&id, &cid).await?;
    // Static segments only: a dynamic one's members follow its filter.
    let (joined, others): (Vec<_>, Vec<_>) = state
        .store
        .segments(&id)
        .await?
        .into_iter()
        .filter(|s| s.filter.is_none())
        .map(|s| (s.id, s.name))
        .partition(|(sid, _)| member_of.contains(sid));
    let attributes = attribute_rows(&contact.attributes);
    let topics = crate::service::topics::of_contact(&state, &id, &cid).await?;
    let messages = recent_messages(&state, &id, &contact).await?;
    let events = recent_events(&state, &id, &contact.id).await?;
    let (consent, consent_next) = consent_page(&state, &id, &contact.id, None).await?;
    // An event names its message by the subject, when it is one of those listed.
    let subjects: std::collections::BTreeMap<&str, &str> =
        messages.iter().filter_map(|m| Some((m["id"].as_str()?, m["subject"].as_str()?))).collect();
    let frame = Frame::new(&user, Some(&row), "contacts").notice(q.done.as_deref());
    Ok(page(
        StatusCode::OK,
        "contact.html",
        &frame,
        minijinja::context! {
            contact, joined, others, attributes, topics, messages, events, subjects, recent => RECENT,
            consent, consent_next,
        },
    ))
}

/// Adds the contact to a static segment, or takes it out (`action`).
async fn membership(
    State(state): State<AppState>,
    Path((_, cid)): Path<(String, String)>,
    Posted { id, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let cid = parse_id(&cid).ok_or(UiError::NotFound)?;
    state.store.contact(&id, &cid).await?.ok_or(UiError::NotFound)?;
    let add = match f.get("action") {
        "add" => true,
        "remove" => false,
        _ => return Err(UiError::Api(ApiError::validation("choose add or remove"))),
    };
    segments::change_members(&state, &id, f.get("segment_id"), std::slice::from_ref(&cid), add).await?;
    let done = if add { "segment_joined" } else { "segment_left" };
    Ok(see_other(&format!("/ui/t/{id}/contacts/{cid}"), done))
}

async fn save(
    State(state): State<AppState>,
    Path((_, cid)): Path<(String, String)>,
    Posted { id, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let name = |s: &str| Some(if s.trim().is_empty() { Value::Null } else { Value::String(s.to_owned()) });
    let patch = contacts::ContactChanges {
        email: Some(f.get("email").to_owned()),
        first_name: name(f.get("first_name")),
        last_name: name(f.get("last_name")),
        tags: Some(tags(f.get("tags"))),
        attributes: posted_attributes(&f),
        ..Default::default()
    };
    let saved = contacts::update(&state, &id, &cid, patch, &dashboard()).await?;
    Ok(see_other(&format!("/ui/t/{id}/contacts/{}", saved.id), "contact_saved"))
}

async fn unsubscribe(
    State(state): State<AppState>,
    Path((_, cid)): Path<(String, String)>,
    Posted { id, .. }: Posted<Form<CsrfOnly>>,
) -> UiResult<Response> {
    let patch = contacts::ContactChanges { is_subscribed: Some(false), ..Default::default() };
    let saved = contacts::update(&state, &id, &cid, patch, &dashboard()).await?;
    Ok(see_other(&format!("/ui/t/{id}/contacts/{}", saved.id), "contact_unsubscribed"))
}

/// Imports listed under the form, newest first.
const IMPORTS_SHOWN: &str = "50";

async fn import_page(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, .. }: Scoped,
) -> UiResult<Response> {
    let reports = crate::service::imports::list(&state, &id, Some(IMPORTS_SHOWN)).await?;
    let frame = Frame::new(&user, Some(&row), "imports");
    Ok(page(StatusCode::OK, "import.html", &frame, minijinja::context! { report => None::<()>, reports }))
}

#[derive(Deserialize)]
pub struct PastedCsv {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    csv: String,
}

/// Two ways in, one import: the page's script sends the chosen file as the
/// body (`text/csv`, the token in the CSRF header) and shows its upload progress,
/// then the rows written as chunks commit ([`streamed_import`]); without
/// script, the form posts pasted CSV and gets the result page. Both run the
/// API's streaming import.
async fn import(
    State(state): State<AppState>,
    user: UiUser,
    Path(tid): Path<String>,
    req: Request,
) -> UiResult<Response> {
    let (id, row) = scope(&state, &user, &tid).await?;
    let is_csv = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/csv"));
    if is_csv {
        let token = header_token(req.headers()).unwrap_or("").to_owned();
        user.check_csrf(&token)?;
        let body = req.into_body().into_data_stream();
        return Ok(streamed_import(state, id, body));
    }
    let Form(f) = Form::<PastedCsv>::from_request(req, &state)
        .await
        .map_err(|e| UiError::Api(ApiError::validation(e.body_text())))?;
    user.check_csrf(&f.csrf)?;
    let body = futures::stream::iter([Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(f.csv))]);
    let report = contacts::import(&state, id, Format::Csv, OnConflict::Skip, body, |_| {}).await?;
    let frame = Frame::new(&user, Some(&row), "imports");
    Ok(page(StatusCode::OK, "import.html", &frame, minijinja::context! { report }))
}

/// Runs an import and answers with its progress as it happens: one JSON
/// line per committed chunk (`{"progress": {created, updated, skipped,
/// rejected}}`), then `{"report": ...}` or `{"error": ...}`. The page's script
/// reads the lines as they arrive (XHR `onprogress`), so it can show rows
/// written, not only bytes uploaded. Nothing is kept on the server: the
/// import and the answer are one request.
fn streamed_import(state: AppState, id: TenantId, body: axum::body::BodyDataStream) -> Response {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let line = |v: Value| format!("{v}\n");
    let progress = tx.clone();
    tokio::spawn(async move {
        let result = contacts::import(&state, id, Format::Csv, OnConflict::Skip, body, move |p| {
            let _ = progress.send(line(json!({ "progress": p })));
        })
        .await;
        let last = match result {
            Ok(report) => json!({ "report": report }),
            Err(e) => {
                let e = ApiError::from(e);
                if e.status().is_server_error() {
                    tracing::error!(error = ?e, "dashboard import failed");
                }
                json!({ "error": e.to_string(), "status": e.status().as_u16() })
            }
        };
        let _ = tx.send(line(last));
    });
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|l| (Ok::<_, std::convert::Infallible>(axum::body::Bytes::from(l)), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
        axum::body::Body::from_stream(lines),
    )
        .into_response()
}

async fn export(State(state): State<AppState>, Scoped { id, .. }: Scoped) -> UiResult<Response> {
    let csv = contacts::export(&state, id).await?;
    let mut res = axum::body::Body::from_stream(csv).into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
    res.headers_mut()
        .insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment; filename=\"contacts.csv\""));
    Ok(res)
}

super::tenant_scope::csrf_field!(ContactForm);
