//! Contacts: the people a customer mails.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::paging::{after_id, page_of};
use super::ApiJson;
use crate::auth::TenantAccess;
use crate::domain::{ConsentOrigin, Tag};
use crate::error::{ApiError, ApiResult};
use crate::service::contacts::{self, ContactChanges, NewContactInput};
use crate::state::AppState;

pub use crate::service::contacts::Contact;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactIn {
    pub(super) email: String,
    pub(super) first_name: Option<String>,
    pub(super) last_name: Option<String>,
    #[serde(default)]
    pub(super) tags: Vec<String>,
    /// A flat object of at most 50 keys (`[A-Za-z0-9_]{1,64}`), each a string (at most 1,000 characters), number or boolean.
    #[schema(value_type = Object)]
    pub(super) attributes: Option<Value>,
    /// Choices on the customer's topics, set with the contact (see
    /// `PATCH /customers/{id}/contacts/{contact_id}/topics`); not taken by an import.
    #[serde(default)]
    pub(super) topics: Vec<super::topics::TopicChoiceIn>,
    /// Double opt-in: the contact is added `pending` and gets the
    /// confirmation email (the "Confirm your subscription" template, with
    /// `confirm_url`); it gets campaign mail only once it confirms. Needs a
    /// verified domain. Not taken by an import.
    #[serde(default)]
    pub(super) double_opt_in: bool,
}

/// Absent fields stay as they are; `null` clears `first_name`/`last_name`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatchIn {
    email: Option<String>,
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "present")]
    first_name: Option<Value>,
    #[schema(value_type = Option<String>)]
    #[serde(default, deserialize_with = "present")]
    last_name: Option<Value>,
    tags: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    pub(super) attributes: Option<Value>,
    is_subscribed: Option<bool>,
    /// Choices on the topics named; the others stay as they are.
    topics: Option<Vec<super::topics::TopicChoiceIn>>,
}

impl From<ContactIn> for NewContactInput {
    fn from(c: ContactIn) -> Self {
        Self {
            email: c.email,
            first_name: c.first_name,
            last_name: c.last_name,
            tags: c.tags,
            attributes: c.attributes,
            topics: c.topics.into_iter().map(super::topics::TopicChoiceIn::choice).collect(),
        }
    }
}

impl From<ContactPatchIn> for ContactChanges {
    fn from(c: ContactPatchIn) -> Self {
        Self {
            email: c.email,
            first_name: c.first_name,
            last_name: c.last_name,
            tags: c.tags,
            attributes: c.attributes,
            is_subscribed: c.is_subscribed,
            topics: c.topics.map(|t| t.into_iter().map(super::topics::TopicChoiceIn::choice).collect()),
        }
    }
}

/// A change through the API: made by the customer's server (whose client is
/// not the person's, so none is kept).
/// Tells a field sent as `null` (`Some(Null)`) from one not sent at all (`None`).
pub(super) fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only contacts with this tag.
    tag: Option<String>,
    /// Only the contact with this address (compared as the store compares
    /// addresses: case-insensitively): an array of at most one.
    email: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    limit: Option<String>,
    /// Cursor: the last contact id of the previous page (see the `Link` header).
    after: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_contact, list_contacts)).routes(routes!(
        get_contact,
        update_contact,
        delete_contact
    ))
}

/// Add a contact. Emails are unique per customer, case-insensitively. With
/// `double_opt_in`, the contact is `pending` until it confirms from the email it gets.
#[utoipa::path(post, path = "/customers/{id}/contacts", tag = "contacts", params(("id" = String, Path)), request_body = ContactIn,
    responses((status = 201, body = Contact), (status = 400, body = crate::error::ErrorBody,
            description = "`double_opt_in` without a verified domain"),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
async fn create_contact(
    t: TenantAccess,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ContactIn>,
) -> ApiResult<(StatusCode, Json<Contact>)> {
    let contact = match body.double_opt_in {
        true => crate::service::signups::create_pending(&state, &t.tenant_id, body.into()).await?,
        false => contacts::create(&state, &t.tenant_id, body.into(), &ConsentOrigin::api()).await?,
    };
    Ok((StatusCode::CREATED, Json(contact)))
}

/// List contacts in creation order, a page at a time: a JSON array, and the
/// next page in `Link: <...>; rel="next"`. `?email=` finds the contact with
/// that address (an empty array when the customer has none).
#[utoipa::path(get, path = "/customers/{id}/contacts", tag = "contacts", params(("id" = String, Path), ListParams),
    responses((status = 200, body = [Contact], headers(("link" = String,
        description = "`<...>; rel=\"next\"`: the next page, with the same filters; absent on the last page"))),
        (status = 422, body = crate::error::ErrorBody)))]
async fn list_contacts(
    t: TenantAccess,
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> ApiResult<(HeaderMap, Json<Vec<Contact>>)> {
    let Query(params) = params.map_err(|e| ApiError::validation(e.body_text()))?;
    let limit = super::page_limit(params.limit.as_deref())?;
    let tag = params.tag.as_deref().map(Tag::parse).transpose().map_err(ApiError::validation)?;
    let after = after_id(params.after.as_deref(), "contact")?;
    if let Some(email) = params.email.as_deref() {
        let found = contacts::find_by_email(&state, &t.tenant_id, email, tag.as_ref()).await?;
        return Ok((HeaderMap::new(), Json(found.into_iter().collect())));
    }
    let rows = contacts::list(&state, &t.tenant_id, tag.clone(), after, limit).await?;
    let path = format!("/customers/{}/contacts", t.tenant_id);
    let (headers, rows) = page_of(rows, limit, &path, &[("tag", tag.as_ref().map(Tag::as_str))], |c| &c.id);
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
    Ok(Json(contacts::get(&state, &t.tenant_id, &ids.1).await?))
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
    Ok(Json(contacts::update(&state, &t.tenant_id, &ids.1, body.into(), &ConsentOrigin::api()).await?))
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
    contacts::delete(&state, &t.tenant_id, &ids.1).await?;
    Ok(StatusCode::NO_CONTENT)
}
