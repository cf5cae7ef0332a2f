//! Contacts: the people a tenant mails. Adding and changing one (the API's
//! contact routes and the dashboard's contact pages).

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Bytes;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{optional_text, parse_id, Error, Result};
use crate::domain::attributes::check_key;
use crate::domain::{new_id, rfc3339, Attributes, ConsentOrigin, EmailAddress, Tag, TenantId, TopicChoice};
use crate::import::{import_stream_observed, Format, ImportError, Progress, Report};
use crate::state::AppState;
use crate::store::{
    ContactFilter, ContactPatch, ContactRow, ImportEnding, ImportOutcome, ImportRow, NewContact, OnConflict, Store,
    StoreError,
};

/// Contacts per page of an export.
const EXPORT_PAGE: i64 = 5_000;

/// A CSV export, a page at a time.
pub type CsvExport = std::pin::Pin<Box<dyn futures::Stream<Item = std::io::Result<Bytes>> + Send>>;

const NAME_MAX: usize = 100;

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
    /// `subscribed`, `pending` (double opt-in not confirmed yet), `unsubscribed`, `bounced` or `complained`.
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

/// A new contact, as typed: checked here.
pub struct NewContactInput {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub tags: Vec<String>,
    /// A flat object (see [`Attributes`]); `None` or `null` means none.
    pub attributes: Option<Value>,
    /// Choices on the tenant's topics (raw ids), set with the contact.
    pub topics: Vec<(String, TopicChoice)>,
}

/// A change to a contact: absent fields stay as they are; `Some(Value::Null)`
/// clears `first_name`/`last_name` (anything but a string or null is refused).
#[derive(Default)]
pub struct ContactChanges {
    pub email: Option<String>,
    pub first_name: Option<Value>,
    pub last_name: Option<Value>,
    pub tags: Option<Vec<String>>,
    pub attributes: Option<Value>,
    pub is_subscribed: Option<bool>,
    /// Choices on the topics named (raw ids); the others stay as they are.
    pub topics: Option<Vec<(String, TopicChoice)>>,
}

fn parse_email(raw: &str) -> Result<EmailAddress> {
    EmailAddress::parse(raw).map_err(|e| Error::Invalid { code: "invalid_email", message: e })
}

fn parse_tags(raw: &[String]) -> Result<Vec<Tag>> {
    if raw.len() > 100 {
        return Err(Error::validation("a contact holds at most 100 tags"));
    }
    let mut tags = raw.iter().map(|t| Tag::parse(t).map_err(Error::validation)).collect::<Result<Vec<_>>>()?;
    tags.sort();
    tags.dedup();
    Ok(tags)
}

/// Checks `attributes` (see [`Attributes`]); `null` or absent means none given.
fn attributes_json(v: Option<Value>) -> Result<Option<String>> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(v) => Attributes::parse(&v).map(|a| Some(a.to_json())).map_err(Error::validation),
    }
}

fn name_field(v: Option<Value>, field: &str) -> Result<Option<Option<String>>> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) => Ok(Some(optional_text(Some(&s), field, NAME_MAX)?)),
        Some(_) => Err(Error::validation(format!("`{field}` must be a string or null"))),
    }
}

fn duplicate(email: &str) -> impl FnOnce(StoreError) -> Error + '_ {
    move |e| match e {
        StoreError::Duplicate(_) => {
            Error::conflict("contact_exists", format!("a contact with email '{email}' already exists"))
        }
        other => other.into(),
    }
}

/// The contact's own fields, checked; its topics are checked apart (they need the store).
pub(super) fn new_contact(body: NewContactInput) -> Result<NewContact> {
    let email = parse_email(&body.email)?;
    Ok(NewContact {
        id: new_id(),
        email_normalized: email.normalized(),
        email: email.to_string(),
        first_name: optional_text(body.first_name.as_deref(), "first_name", NAME_MAX)?,
        last_name: optional_text(body.last_name.as_deref(), "last_name", NAME_MAX)?,
        tags: parse_tags(&body.tags)?,
        attributes_json: attributes_json(body.attributes)?.unwrap_or_else(|| "{}".into()),
        topics: Vec::new(),
    })
}

/// Adds a contact, its consent recorded from `origin`. Emails are unique per
/// tenant, case-insensitively (409).
pub async fn create(
    state: &AppState,
    tenant_id: &TenantId,
    mut body: NewContactInput,
    origin: &ConsentOrigin,
) -> Result<Contact> {
    let topics = std::mem::take(&mut body.topics);
    let new = new_contact(body)?;
    // Checked after the contact's own fields: an unknown topic is 404.
    let new = NewContact { topics: super::topics::parse_choices(state, tenant_id, topics, "topics").await?, ..new };
    let email = new.email.clone();
    let row = state.store.create_contact(tenant_id, new, origin).await.map_err(duplicate(&email))?;
    Ok(row.into())
}

/// One of the tenant's contacts (404 for any other id).
pub async fn get(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<Contact> {
    let id = parse_id(raw_id, "contact")?;
    let row = state.store.contact(tenant_id, &id).await?.ok_or(Error::NotFound("contact"))?;
    Ok(row.into())
}

/// Changes a contact. `is_subscribed: false` unsubscribes; a bounced or
/// complained contact cannot be resubscribed (409). Changes of consent are
/// recorded from `origin`.
pub async fn update(
    state: &AppState,
    tenant_id: &TenantId,
    raw_id: &str,
    body: ContactChanges,
    origin: &ConsentOrigin,
) -> Result<Contact> {
    let id = parse_id(raw_id, "contact")?;
    let current = state.store.contact(tenant_id, &id).await?.ok_or(Error::NotFound("contact"))?;
    let email = body.email.as_deref().map(parse_email).transpose()?;
    let status = match body.is_subscribed {
        None => None,
        Some(false) if current.status == "subscribed" => Some("unsubscribed"),
        Some(false) => None,
        Some(true) if current.status == "bounced" || current.status == "complained" => {
            return Err(Error::conflict(
                "contact_suppressed",
                format!(
                    "the contact {} and cannot be resubscribed",
                    if current.status == "bounced" { "bounced" } else { "complained" }
                ),
            ))
        }
        Some(true) => Some("subscribed"),
    };
    let topics = match body.topics {
        Some(topics) => Some(super::topics::parse_choices(state, tenant_id, topics, "topics").await?),
        None => None,
    };
    let patch = ContactPatch {
        topics,
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
        .update_contact(tenant_id, &id, patch, origin)
        .await
        .map_err(duplicate(&shown))?
        .ok_or(Error::NotFound("contact"))?;
    Ok(row.into())
}

/// Deletes one of the tenant's contacts (404 for any other id).
pub async fn delete(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<()> {
    let id = parse_id(raw_id, "contact")?;
    if !state.store.delete_contact(tenant_id, &id).await? {
        return Err(Error::NotFound("contact"));
    }
    Ok(())
}

/// A page of the tenant's contacts in creation order, after the contact id
/// `after`, optionally with one tag; one row more than `limit` when there is
/// a next page.
pub async fn list(
    state: &AppState,
    tenant_id: &TenantId,
    tag: Option<Tag>,
    after: Option<String>,
    limit: i64,
) -> Result<Vec<ContactRow>> {
    Ok(state.store.contacts(tenant_id, &ContactFilter { tag, after, limit }).await?)
}

/// The tenant's contact with this address, if any (with `tag`, only when it
/// has that tag). The address is compared as contacts are stored: trimmed
/// and case-insensitively; anything that cannot be an address is refused.
pub async fn find_by_email(
    state: &AppState,
    tenant_id: &TenantId,
    raw: &str,
    tag: Option<&Tag>,
) -> Result<Option<Contact>> {
    let email = EmailAddress::parse(raw).map_err(|e| Error::validation(format!("`email`: {}", printable(&e))))?;
    let found = state.store.contact_by_email(tenant_id, &email.normalized()).await?.map(Contact::from);
    Ok(found.filter(|c| match tag {
        None => true,
        Some(t) => c.tags.iter().any(|have| have == t.as_str()),
    }))
}

/// A message that may quote what a caller typed, with control characters
/// escaped and cut to a readable length.
fn printable(message: &str) -> String {
    message.chars().flat_map(char::escape_debug).take(200).collect()
}

impl From<ImportError> for Error {
    fn from(e: ImportError) -> Self {
        match e {
            ImportError::Invalid(m) => Error::validation(m),
            ImportError::Body(m) => Error::BadRequest(m),
            ImportError::Db(e) => e.into(),
        }
    }
}

/// Imports contacts streamed as CSV or NDJSON at any size, committed in
/// chunks; `progress` hears of each chunk committed. A bad row is reported
/// by line and the rest are imported.
pub async fn import<S, E>(
    state: &AppState,
    tenant: TenantId,
    format: Format,
    on_conflict: OnConflict,
    body: S,
    progress: impl Fn(Progress) + Send + 'static,
) -> Result<Report>
where
    S: futures::Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    Ok(import_stream_observed(state.store.clone(), tenant, format, on_conflict, body, progress).await?)
}

/// Imports contacts already read and checked (a JSON list), in one go,
/// recorded like a streamed import (format `json`); the import's id and outcome.
pub async fn import_rows(
    state: &AppState,
    tenant: &TenantId,
    rows: Vec<ImportRow>,
    on_conflict: OnConflict,
) -> Result<(String, ImportOutcome)> {
    let id = new_id();
    state.store.start_import(tenant, &id, "json", on_conflict.as_str()).await?;
    let outcome = state.store.import_chunk(tenant, Some(&id), rows, on_conflict).await?;
    let errors = serde_json::to_string(
        &outcome
            .rejected
            .iter()
            .take(crate::import::STORED_ERRORS)
            .map(|(line, reason)| json_error(*line, reason))
            .collect::<Vec<_>>(),
    )
    .unwrap_or_else(|_| "[]".into());
    let ending = ImportEnding { status: "completed", end_reason: None, parse_rejected: 0, errors: &errors };
    state.store.finish_import(tenant, &id, &ending).await?;
    state.store.imported(outcome.created).await?;
    Ok((id, outcome))
}

fn json_error(line: u64, reason: &str) -> Value {
    serde_json::json!({ "line": line, "reason": reason.chars().take(crate::import::STORED_REASON_CHARS).collect::<String>() })
}

/// Guards a cell against formula injection when the file is opened in a
/// spreadsheet (OWASP "CSV Injection"): a cell that begins with `=`, `+`, `-`,
/// `@`, a tab or a CR gets a leading `'`. So does one that begins with `'`, so
/// that an import, which removes that one `'`, restores every value exactly.
fn neutralise(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r', '\'']) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

fn csv_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

const FIXED_COLUMNS: [&str; 6] = ["email", "first_name", "last_name", "status", "tags", "created_at"];

fn csv_page(header: Option<&[String]>, rows: &[ContactRow], keys: &[String]) -> Result<Bytes, std::io::Error> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(rows.len() * 128 + 256));
    if let Some(h) = header {
        w.write_record(FIXED_COLUMNS.iter().copied().chain(h.iter().map(String::as_str))).map_err(csv_error)?;
    }
    for c in rows {
        let tags: Vec<String> = serde_json::from_str(&c.tags).unwrap_or_default();
        let attributes: serde_json::Map<String, Value> = serde_json::from_str(&c.attributes).unwrap_or_default();
        let mut record: Vec<String> = vec![
            c.email.clone(),
            c.first_name.clone().unwrap_or_default(),
            c.last_name.clone().unwrap_or_default(),
            c.status.clone(),
            tags.join(";"),
            rfc3339(c.created_at),
        ];
        record.extend(keys.iter().map(|k| match attributes.get(k) {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }));
        w.write_record(record.iter().map(|cell| neutralise(cell).into_owned())).map_err(csv_error)?;
    }
    w.into_inner().map(Bytes::from).map_err(csv_error)
}

/// Every contact of the tenant as CSV, streamed a page at a time: `email,
/// first_name, last_name, status, tags (;-joined), created_at`, then one column
/// per attribute key.
pub async fn export(state: &AppState, tenant: TenantId) -> Result<CsvExport> {
    let keys: Arc<Vec<String>> =
        Arc::new(state.store.attribute_keys(&tenant).await?.into_iter().filter(|k| check_key(k).is_ok()).collect());
    let header = csv_page(Some(&keys), &[], &[]).map_err(|e| Error::Internal(e.into()))?;
    let store: Store = state.store.clone();
    let pages = futures::stream::try_unfold(Some(String::new()), move |cursor| {
        let (store, tenant, keys) = (store.clone(), tenant.clone(), keys.clone());
        async move {
            let Some(after) = cursor else { return Ok(None) };
            let rows = store.contacts_after(&tenant, &after, EXPORT_PAGE).await.map_err(|e| {
                tracing::error!(error = %e, "contact export failed");
                csv_error(e)
            })?;
            let next = if rows.len() < EXPORT_PAGE as usize { None } else { rows.last().map(|r| r.id.clone()) };
            if rows.is_empty() {
                return Ok(None);
            }
            Ok::<_, std::io::Error>(Some((csv_page(None, &rows, &keys)?, next)))
        }
    });
    let body = futures::StreamExt::chain(futures::stream::once(async move { Ok(header) }), pages);
    Ok(Box::pin(body))
}

#[cfg(test)]
mod tests {
    use super::neutralise;

    #[test]
    fn cells_a_spreadsheet_would_evaluate_get_a_quote_mark() {
        for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "'x"] {
            assert_eq!(neutralise(cell), format!("'{cell}"));
            assert_eq!(crate::import::unneutralise(&neutralise(cell)), cell);
        }
        assert_eq!(neutralise("plain"), "plain");
    }
}
