//! Contacts: the people a customer mails.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{optional_text, path_id, ApiJson};
use crate::auth::TenantAccess;
use crate::domain::{new_id, rfc3339, Attributes, EmailAddress, Tag, TenantId};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{ContactFilter, ContactPatch, ContactRow, NewContact, StoreError};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactIn {
    pub(crate) email: String,
    pub(crate) first_name: Option<String>,
    pub(crate) last_name: Option<String>,
    #[serde(default)]
    pub(crate) tags: Vec<String>,
    /// A flat object of at most 50 keys (`[A-Za-z0-9_]{1,64}`), each a string (at most 1,000 characters), number or boolean.
    #[schema(value_type = Object)]
    pub(crate) attributes: Option<Value>,
}

/// Absent fields stay as they are; `null` clears `first_name`/`last_name`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatchIn {
    pub(crate) email: Option<String>,
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "present")]
    pub(crate) first_name: Option<Value>,
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "present")]
    pub(crate) last_name: Option<Value>,
    pub(crate) tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub(crate) attributes: Option<Value>,
    pub(crate) is_subscribed: Option<bool>,
}

/// Tells a field sent as `null` (`Some(Null)`) from one not sent at all (`None`).
pub(super) fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Serialize, ToSchema)]
pub struct Contact {
    pub id: String,
    pub customer_id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub tags: Vec<String>,
    #[schema(value_type = Object)]
    pub attributes: Value,
    pub is_subscribed: bool,
    /// `subscribed`, `unsubscribed`, `bounced` or `complained`.
    pub status: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<ContactRow> for Contact {
    fn from(c: ContactRow) -> Self {
        Self {
            is_subscribed: c.status == "subscribed",
            tags: serde_json::from_str(&c.tags).unwrap_or_default(),
            attributes: serde_json::from_str(&c.attributes).unwrap_or(Value::Object(Default::default())),
            id: c.id,
            customer_id: c.tenant_id,
            email: c.email,
            first_name: c.first_name,
            last_name: c.last_name,
            status: c.status,
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
        }
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only contacts with this tag.
    tag: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
    /// Cursor: the last contact id of the previous page (see the `Link` header).
    after: Option<String>,
}

const NAME_MAX: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_contact, list_contacts)).routes(routes!(
        get_contact,
        update_contact,
        delete_contact
    ))
}

fn parse_email(raw: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(raw).map_err(|e| ApiError::Invalid { code: "invalid_email", message: e })
}

fn parse_tags(raw: &[String]) -> Result<Vec<Tag>, ApiError> {
    if raw.len() > 100 {
        return Err(ApiError::validation("a contact holds at most 100 tags"));
    }
    let mut tags = raw.iter().map(|t| Tag::parse(t).map_err(ApiError::validation)).collect::<Result<Vec<_>, _>>()?;
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// Checks `attributes` (see [`Attributes`]); `null` or absent means none given.
fn attributes_json(v: Option<Value>) -> Result<Option<String>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Attributes::parse(&v).map(|a| Some(a.to_json())).map_err(ApiError::validation),
    }
}

fn name_field(v: Option<Value>, field: &str) -> Result<Option<Option<String>>, ApiError> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(optional_text(Some(&s), field, NAME_MAX)?)),
        Some(_) => Err(ApiError::validation(format!("`{field}` must be a string or null"))),
    }
}

fn duplicate(email: &str) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::Duplicate(_) => {
            ApiError::conflict("contact_exists", format!("a contact with email '{email}' already exists"))
        }
        other => other.into(),
    }
}

fn new_contact(body: ContactIn) -> Result<NewContact, ApiError> {
    let email = parse_email(&body.email)?;
    Ok(NewContact {
        id: new_id(),
        email_normalized: email.normalized(),
        email: email.to_string(),
        first_name: optional_text(body.first_name.as_deref(), "first_name", NAME_MAX)?,
        last_name: optional_text(body.last_name.as_deref(), "last_name", NAME_MAX)?,
        tags: parse_tags(&body.tags)?,
        attributes_json: attributes_json(body.attributes)?.unwrap_or_else(|| "{}".into()),
    })
}

/// Add a contact. Emails are unique per customer, case-insensitively.
#[utoipa::path(post, path = "/customers/{id}/contacts", tag = "contacts", params(("id" = String, Path)), request_body = ContactIn,
    responses((status = 201, body = Contact), (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn create_contact(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ContactIn>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    Ok((StatusCode::CREATED, Json(create(&state, &t.tenant_id, body).await?)))
}

/// Adds a contact (the API and the dashboard).
pub(crate) async fn create(state: &AppState, tenant_id: &TenantId, body: ContactIn) -> ApiResult<Contact> {
    let new = new_contact(body)?;
    let email = new.email.clone();
    let row = state.store.create_contact(tenant_id, new).await.map_err(duplicate(&email))?;
    Ok(row.into())
}

/// List contacts in creation order, a page at a time; `Link: <...>; rel="next"` points to the next page.
#[utoipa::path(get, path = "/customers/{id}/contacts", tag = "contacts", params(("id" = String, Path), ListParams),
    responses((status = 200, body = [Contact])))]
async fn list_contacts(
    t: TenantAccess,
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Vec<Contact>>)> {
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let limit = super::page_limit(params.limit.as_deref())?;
    let tag = params.tag.as_deref().map(Tag::parse).transpose().map_err(ApiError::validation)?;
    let after = match params.after.as_deref() {
        None | Some("") => None,
        Some(raw) => {
            Some(crate::domain::parse_id(raw).ok_or_else(|| ApiError::validation("`after` must be a contact id"))?)
        }
    };
    let mut rows = state.store.contacts(&t.tenant_id, &ContactFilter { tag: tag.clone(), after, limit }).await?;
    let mut headers = HeaderMap::new();
    if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        if let Some(last) = rows.last() {
            let mut next = format!("/customers/{}/contacts?limit={limit}&after={}", t.tenant_id, last.id);
            if let Some(tag) = &tag {
                next.push_str(&format!("&tag={}", tag.as_str()));
            }
            if let Ok(v) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\"")) {
                headers.insert(header::LINK, v);
            }
        }
    }
    Ok((headers, Json(rows.into_iter().map(Contact::from).collect())))
}

/// Get a contact.
#[utoipa::path(get, path = "/customers/{id}/contacts/{contact_id}", tag = "contacts",
    params(("id" = String, Path), ("contact_id" = String, Path)),
    responses((status = 200, body = Contact), (status = 404, body = crate::error::ErrorBody)))]
async fn get_contact(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<Json<Contact>> {
    let id = path_id(&ids.1, "contact")?;
    let row = state.store.contact(&t.tenant_id, &id).await?.ok_or(ApiError::NotFound("contact"))?;
    Ok(Json(row.into()))
}

/// Change a contact. `is_subscribed: false` unsubscribes; a bounced or
/// complained contact cannot be resubscribed here.
#[utoipa::path(patch, path = "/customers/{id}/contacts/{contact_id}", tag = "contacts",
    params(("id" = String, Path), ("contact_id" = String, Path)), request_body = ContactPatchIn,
    responses((status = 200, body = Contact), (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn update_contact(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
    ApiJson(body): ApiJson<ContactPatchIn>,
) -> ApiResult<Json<Contact>> {
    Ok(Json(update(&state, &t.tenant_id, &ids.1, body).await?))
}

/// Changes a contact (the API and the dashboard).
pub(crate) async fn update(
    state: &AppState,
    tenant_id: &TenantId,
    raw_id: &str,
    body: ContactPatchIn,
) -> ApiResult<Contact> {
    let id = path_id(raw_id, "contact")?;
    let current = state.store.contact(tenant_id, &id).await?.ok_or(ApiError::NotFound("contact"))?;
    let email = body.email.as_deref().map(parse_email).transpose()?;
    let status = match body.is_subscribed {
        None => None,
        Some(false) if current.status == "subscribed" => Some("unsubscribed"),
        Some(false) => None,
        Some(true) if current.status == "bounced" || current.status == "complained" => {
            return Err(ApiError::conflict(
                "contact_suppressed",
                format!(
                    "the contact {} and cannot be resubscribed",
                    if current.status == "bounced" { "bounced" } else { "complained" }
                ),
            ))
        }
        Some(true) => Some("subscribed"),
    };
    let patch = ContactPatch {
        email: email.as_ref().map(|e| (e.to_string(), e.normalized())),
        first_name: name_field(body.first_name, "first_name")?,
        last_name: name_field(body.last_name, "last_name")?,
        tags: body.tags.as_deref().map(parse_tags).transpose()?,
        attributes_json: attributes_json(body.attributes)?,
        status,
    };
    let shown = email.as_ref().map(|e| e.to_string()).unwrap_or_default();
    let row = state
        .store
        .update_contact(tenant_id, &id, patch)
        .await
        .map_err(duplicate(&shown))?
        .ok_or(ApiError::NotFound("contact"))?;
    Ok(row.into())
}

/// Delete a contact.
#[utoipa::path(delete, path = "/customers/{id}/contacts/{contact_id}", tag = "contacts",
    params(("id" = String, Path), ("contact_id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
async fn delete_contact(
    t: TenantAccess,
    State(state): State<AppState>,
    Path(ids): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let id = path_id(&ids.1, "contact")?;
    if !state.store.delete_contact(&t.tenant_id, &id).await? {
        return Err(ApiError::NotFound("contact"));
    }
    Ok(StatusCode::NO_CONTENT)
}
