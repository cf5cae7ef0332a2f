//! Topics: the subjects a tenant mails about, each with a default
//! (`opt_in`: not subscribed until the contact says so; `opt_out`:
//! subscribed until they say no), and each contact's choice per topic. A
//! campaign that targets a topic reaches only the contacts subscribed to it.

use serde::Serialize;
use utoipa::ToSchema;

use super::{parse_id, Error, Result};
use crate::domain::{
    rfc3339, ConsentOrigin, TenantId, TopicChoice, TopicDefault, TopicDescription, TopicName, TopicState,
};
use crate::state::AppState;
use crate::store::{ContactTopicRow, StoreError, TopicCreated, TopicPatch, TopicRow, TOPICS_MAX};

#[derive(Serialize, ToSchema)]
pub struct Topic {
    id: String,
    customer_id: String,
    name: String,
    /// Shown to recipients where they choose their topics.
    description: String,
    /// `opt_in` (contacts are not subscribed until they say so) or `opt_out`
    /// (subscribed until they say no).
    #[schema(example = "opt_in")]
    default: String,
    created_at: String,
    updated_at: String,
}

impl Topic {
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl From<TopicRow> for Topic {
    fn from(t: TopicRow) -> Self {
        Self {
            id: t.id,
            customer_id: t.tenant_id,
            name: t.name,
            description: t.description,
            default: t.default_subscription,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
        }
    }
}

/// A topic as one contact stands on it.
#[derive(Serialize, ToSchema)]
pub struct ContactTopic {
    /// The topic's id.
    id: String,
    name: String,
    description: String,
    /// The topic's default: `opt_in` or `opt_out`.
    default: String,
    /// Where the contact stands: `subscribed` or `unsubscribed`.
    state: String,
    /// True when the contact has made no choice and `state` follows the topic's default.
    is_default: bool,
}

impl ContactTopic {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    pub fn subscribed(&self) -> bool {
        self.state == TopicState::Subscribed.as_str()
    }
}

impl From<ContactTopicRow> for ContactTopic {
    fn from(t: ContactTopicRow) -> Self {
        let default = TopicDefault::from_stored(&t.default_subscription);
        Self {
            state: TopicState::effective(t.choice.as_deref(), default).as_str().to_owned(),
            is_default: t.choice.is_none(),
            id: t.id,
            name: t.name,
            description: t.description,
            default: t.default_subscription,
        }
    }
}

fn duplicate_name(e: StoreError, name: &TopicName) -> Error {
    match e {
        StoreError::Duplicate(_) => {
            Error::conflict("duplicate_topic", format!("a topic named `{}` already exists", name.as_str()))
        }
        e => e.into(),
    }
}

fn description(raw: Option<&str>) -> Result<Option<TopicDescription>> {
    raw.map(TopicDescription::parse).transpose().map_err(Error::validation)
}

/// Creates a topic (default `opt_in` when none is given).
pub async fn create(
    state: &AppState,
    tenant_id: &TenantId,
    name: &str,
    description_raw: Option<&str>,
    default: Option<TopicDefault>,
) -> Result<Topic> {
    let name = TopicName::parse(name).map_err(Error::validation)?;
    let description = description(description_raw)?.unwrap_or_default();
    let default = default.unwrap_or(TopicDefault::OptIn);
    let created = state
        .store
        .create_topic(tenant_id, &crate::domain::new_id(), &name, &description, default)
        .await
        .map_err(|e| duplicate_name(e, &name))?;
    match created {
        TopicCreated::Created(row) => Ok(row.into()),
        TopicCreated::TooMany => Err(Error::conflict(
            "too_many_topics",
            format!("a customer has at most {TOPICS_MAX} topics; delete one first"),
        )),
    }
}

async fn own_topic(state: &AppState, tenant_id: &TenantId, raw: &str) -> Result<TopicRow> {
    let id = parse_id(raw, "topic")?;
    state.store.topic(tenant_id, &id).await?.ok_or(Error::NotFound("topic"))
}

pub async fn get(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<Topic> {
    Ok(own_topic(state, tenant_id, raw_id).await?.into())
}

/// One page of the tenant's topics in creation order (`limit + 1` when a next page exists).
pub async fn list(state: &AppState, tenant_id: &TenantId, after: Option<&str>, limit: i64) -> Result<Vec<Topic>> {
    let rows = state.store.topics(tenant_id, after.unwrap_or_default(), limit).await?;
    Ok(rows.into_iter().map(Topic::from).collect())
}

/// Changes a topic. Its default may go from `opt_out` to `opt_in`, not back:
/// that would subscribe everyone who never chose (make a new topic instead).
pub async fn update(
    state: &AppState,
    tenant_id: &TenantId,
    raw_id: &str,
    name: Option<&str>,
    description_raw: Option<&str>,
    default: Option<TopicDefault>,
) -> Result<Topic> {
    let topic = own_topic(state, tenant_id, raw_id).await?;
    let patch = TopicPatch {
        name: name.map(TopicName::parse).transpose().map_err(Error::validation)?,
        description: description(description_raw)?,
        default,
    };
    if default == Some(TopicDefault::OptOut)
        && TopicDefault::from_stored(&topic.default_subscription) == TopicDefault::OptIn
    {
        return Err(Error::conflict(
            "default_widens",
            "an `opt_in` topic cannot become `opt_out`: that would subscribe every contact who never chose; create a new topic instead",
        ));
    }
    let updated = state.store.update_topic(tenant_id, &topic.id, &patch).await;
    let updated = match (updated, &patch.name) {
        (Err(e), Some(name)) => return Err(duplicate_name(e, name)),
        (other, _) => other?,
    };
    Ok(updated.ok_or(Error::NotFound("topic"))?.into())
}

/// Deletes a topic and every contact's choice on it. Campaigns that target it
/// send none of their unsent mail: whom it was meant for went with the topic.
pub async fn delete(state: &AppState, tenant_id: &TenantId, raw_id: &str) -> Result<()> {
    let id = parse_id(raw_id, "topic")?;
    if !state.store.delete_topic(tenant_id, &id).await? {
        return Err(Error::NotFound("topic"));
    }
    Ok(())
}

/// Every topic of the tenant, as the contact stands on it.
pub async fn of_contact(state: &AppState, tenant_id: &TenantId, raw_contact: &str) -> Result<Vec<ContactTopic>> {
    let contact = parse_id(raw_contact, "contact")?;
    let rows = state.store.contact_topics(tenant_id, &contact).await?.ok_or(Error::NotFound("contact"))?;
    Ok(rows.into_iter().map(ContactTopic::from).collect())
}

/// Most choices in one request (a tenant has at most [`TOPICS_MAX`] topics).
const CHOICES_MAX: usize = TOPICS_MAX;

/// Checks a request's choices: each id one of the tenant's topics (else 404
/// `topic`), none named twice. `field` names the list in messages (`topics`).
pub async fn parse_choices(
    state: &AppState,
    tenant_id: &TenantId,
    choices: Vec<(String, TopicChoice)>,
    field: &str,
) -> Result<Vec<(String, TopicChoice)>> {
    if choices.len() > CHOICES_MAX {
        return Err(Error::validation(format!("`{field}` holds at most {CHOICES_MAX} topics")));
    }
    let mut parsed: Vec<(String, TopicChoice)> = Vec::with_capacity(choices.len());
    for (i, (raw, choice)) in choices.into_iter().enumerate() {
        let id = crate::domain::parse_id(raw.trim())
            .ok_or_else(|| Error::validation(format!("`{field}[{i}].id` is not a topic id")))?;
        if parsed.iter().any(|(seen, _)| *seen == id) {
            return Err(Error::validation(format!("`{field}[{i}].id` names a topic already given")));
        }
        parsed.push((id, choice));
    }
    if parsed.is_empty() {
        return Ok(parsed);
    }
    let ids: Vec<String> = parsed.iter().map(|(id, _)| id.clone()).collect();
    if state.store.unknown_topic(tenant_id, &ids).await?.is_some() {
        return Err(Error::NotFound("topic"));
    }
    Ok(parsed)
}

/// Sets a contact's choices on the topics named; with `replace`, every topic
/// not named goes back to its default. Answers every topic as the contact
/// now stands on it. Each change is recorded from `origin`.
pub async fn set_for_contact(
    state: &AppState,
    tenant_id: &TenantId,
    raw_contact: &str,
    choices: Vec<(String, TopicChoice)>,
    replace: bool,
    origin: &ConsentOrigin,
) -> Result<Vec<ContactTopic>> {
    let contact = parse_id(raw_contact, "contact")?;
    let choices = parse_choices(state, tenant_id, choices, "topics").await?;
    let rows = state
        .store
        .set_contact_topics(tenant_id, &contact, &choices, replace, origin)
        .await?
        .ok_or(Error::NotFound("contact"))?;
    Ok(rows.into_iter().map(ContactTopic::from).collect())
}

/// The topic a send targets, if one is named: the tenant's own, else 404.
pub async fn resolve(state: &AppState, tenant_id: &TenantId, raw: Option<&str>) -> Result<Option<String>> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(raw) => Ok(Some(own_topic(state, tenant_id, raw).await?.id)),
    }
}
