//! Tenants (the API's *customers*) and their API keys: the operator's use cases.

use serde::Serialize;
use utoipa::ToSchema;

use super::{optional_text, parse_id, required_text, Error, Result};
use crate::domain::{fair_share, generate_key, hash_key};
use crate::domain::{new_id, rfc3339, TenantId};
use crate::state::AppState;
use crate::store::{ApiKeyRow, TenantRow};

#[derive(Serialize, ToSchema)]
pub struct Customer {
    id: String,
    name: String,
    /// The sending domain, once registered.
    domain: Option<String>,
    domain_verified: bool,
    domain_status: Option<String>,
    resend_domain_id: Option<String>,
    /// Campaign html without `{{unsubscribe_url}}` gets an unsubscribe footer.
    unsubscribe_footer: bool,
    /// Its share of the provider's rate when other tenants send too: a tenant
    /// of weight 2 gets twice the share of one of weight 1 (set by the operator).
    send_weight: i64,
    created_at: String,
    /// Model calls the `agent` action may make a day (UTC), set by the
    /// operator; null: `MAILROOM_AGENT_DAILY_CALLS`.
    agent_daily_calls: Option<i64>,
    /// The default From name of mail that names no sender.
    from_name: Option<String>,
    /// The default From address (on the verified domain) of mail that names no sender.
    from_address: Option<String>,
    /// Who a send that names no sender comes from now: the default sender,
    /// else `hello@{domain}`; null until a domain is verified.
    default_from: Option<String>,
    /// The language of the pages recipients see (preference centre,
    /// unsubscribe) and of the footer mailroom adds to campaign mail: `en` or `de`.
    #[schema(example = "en")]
    locale: String,
}

impl From<TenantRow> for Customer {
    fn from(t: TenantRow) -> Self {
        let default_from = t
            .domain_name
            .as_deref()
            .filter(|_| t.domain_verified())
            .map(|d| crate::domain::sender::default_from(t.from_name.as_deref(), t.from_address.as_deref(), d));
        Self {
            domain_verified: t.domain_verified(),
            default_from,
            from_name: t.from_name,
            from_address: t.from_address,
            id: t.id.to_string(),
            name: t.name,
            domain: t.domain_name,
            domain_status: t.domain_status,
            resend_domain_id: t.resend_domain_id,
            unsubscribe_footer: t.unsubscribe_footer == 1,
            send_weight: t.send_weight,
            created_at: rfc3339(t.created_at),
            agent_daily_calls: t.agent_daily_calls,
            locale: t.locale,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ApiKey {
    id: String,
    customer_id: String,
    name: Option<String>,
    /// The first characters of the key, to recognise it by.
    prefix: String,
    created_at: String,
    revoked: bool,
    /// The key itself: present only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl ApiKey {
    pub fn from_row(k: ApiKeyRow, key: Option<String>) -> Self {
        Self {
            id: k.id,
            customer_id: k.tenant_id,
            name: k.name,
            prefix: k.prefix,
            created_at: rfc3339(k.created_at),
            revoked: k.revoked_at.is_some(),
            key,
        }
    }
}

/// Creates a tenant.
pub async fn create(state: &AppState, name: &str) -> Result<Customer> {
    let name = required_text(name, "name", 255)?;
    let row = state.store.create_tenant(&TenantId::from_stored(new_id()), &name).await?;
    tracing::info!(tenant = %row.id, "customer created");
    Ok(row.into())
}

/// Every tenant.
pub async fn list(state: &AppState) -> Result<Vec<Customer>> {
    Ok(state.store.tenants().await?.into_iter().map(Customer::from).collect())
}

/// One tenant.
pub async fn get(state: &AppState, tenant_id: &TenantId) -> Result<Customer> {
    let row = state.store.tenant(tenant_id).await?.ok_or(Error::NotFound("customer"))?;
    Ok(row.into())
}

/// What a change of a tenant sets; absent fields stay as they are.
#[derive(Default)]
pub struct CustomerChange<'a> {
    pub name: Option<&'a str>,
    pub unsubscribe_footer: Option<bool>,
    /// The operator's alone to set (the front ends check who asks).
    pub send_weight: Option<i64>,
    /// The operator's alone to set: `Some(None)` restores the default.
    pub agent_daily_calls: Option<Option<i64>>,
    /// The default From name: `Some(None)` removes it.
    pub from_name: Option<Option<&'a str>>,
    /// The default From address, on the verified domain: `Some(None)` removes it.
    pub from_address: Option<Option<&'a str>>,
    /// The language of recipients' pages.
    pub locale: Option<&'a str>,
}

impl CustomerChange<'_> {
    /// Whether it sets something only the operator may set.
    pub fn operator_only(&self) -> bool {
        self.send_weight.is_some() || self.agent_daily_calls.is_some()
    }
}

/// Renames a tenant, switches its unsubscribe footer, or sets its weight.
pub async fn update(state: &AppState, tenant_id: &TenantId, change: CustomerChange<'_>) -> Result<Customer> {
    let name = change.name.map(|n| required_text(n, "name", 255)).transpose()?;
    if let Some(weight) = change.send_weight {
        send_weight(&weight.into())?;
    }
    let from_name = change
        .from_name
        .map(|n| n.map(crate::domain::sender::parse_from_name).transpose().map(Option::flatten))
        .transpose()
        .map_err(Error::validation)?;
    let from_address = match change.from_address {
        Some(Some(raw)) => Some(Some(default_address(state, tenant_id, raw).await?)),
        Some(None) => Some(None),
        None => None,
    };
    if from_name.is_some() || from_address.is_some() {
        let (name, address) = (from_name.as_ref().map(Option::as_deref), from_address.as_ref().map(Option::as_deref));
        state.store.set_default_sender(tenant_id, name, address).await?;
    }
    let locale = change.locale.map(crate::domain::Locale::parse).transpose().map_err(Error::validation)?;
    if let Some(locale) = locale {
        state.store.set_tenant_locale(tenant_id, locale).await?;
    }
    if let Some(on) = change.unsubscribe_footer {
        state.store.set_unsubscribe_footer(tenant_id, on).await?;
    }
    if let Some(weight) = change.send_weight {
        state.store.set_send_weight(tenant_id, weight).await?;
    }
    if let Some(calls) = change.agent_daily_calls {
        state.store.set_agent_daily_calls(tenant_id, calls).await?;
        tracing::info!(tenant = %tenant_id, calls = ?calls, "agent daily calls set");
    }
    let row = match name {
        Some(name) => state.store.rename_tenant(tenant_id, &name).await?,
        None => state.store.tenant(tenant_id).await?,
    };
    Ok(row.ok_or(Error::NotFound("customer"))?.into())
}

/// A default From address as given, if it is on the tenant's verified domain
/// (mail may come only from there: DESIGN.md invariant 9); 422 otherwise.
async fn default_address(state: &AppState, tenant_id: &TenantId, raw: &str) -> Result<String> {
    let invalid = |message: String| Error::Invalid { code: "invalid_from", message };
    let address = crate::domain::EmailAddress::parse(raw).map_err(|e| invalid(format!("from_address: {e}")))?;
    let tenant = state.store.tenant(tenant_id).await?.ok_or(Error::NotFound("customer"))?;
    match tenant.domain_name.as_deref().filter(|_| tenant.domain_verified()) {
        Some(domain) if address.domain().eq_ignore_ascii_case(domain) => Ok(address.to_string()),
        Some(domain) => Err(invalid(format!("from_address must be an address on the verified domain {domain}"))),
        None => Err(invalid("from_address needs a verified sending domain: add and verify one first".into())),
    }
}

/// The most model calls a day the operator may give a tenant.
pub const MAX_AGENT_DAILY_CALLS: i64 = 10_000_000;

/// A send weight as sent (`null`: the default, 1), if it is one.
pub fn send_weight(raw: &serde_json::Value) -> Result<i64> {
    match raw {
        serde_json::Value::Null => Ok(1),
        v => v.as_i64().filter(|n| (1..=fair_share::MAX_WEIGHT).contains(n)).ok_or_else(|| {
            Error::validation(format!(
                "send_weight must be a whole number from 1 to {}, or null for the default",
                fair_share::MAX_WEIGHT
            ))
        }),
    }
}

/// A budget of model calls a day as sent (`null`: the default), if it is one.
pub fn agent_daily_calls(raw: &serde_json::Value) -> Result<Option<i64>> {
    match raw {
        serde_json::Value::Null => Ok(None),
        v => v.as_i64().filter(|n| (0..=MAX_AGENT_DAILY_CALLS).contains(n)).map(Some).ok_or_else(|| {
            Error::validation(format!(
                "agent_daily_calls must be a whole number from 0 to {MAX_AGENT_DAILY_CALLS}, or null for the default"
            ))
        }),
    }
}

/// Deletes a tenant and everything it owns.
pub async fn delete(state: &AppState, tenant_id: &TenantId) -> Result<()> {
    if !state.store.delete_tenant(tenant_id).await? {
        return Err(Error::NotFound("customer"));
    }
    tracing::info!(tenant = %tenant_id, "customer deleted");
    Ok(())
}

/// The tenant named by `raw` (404 when there is none).
pub async fn existing(state: &AppState, raw: &str) -> Result<TenantId> {
    let tenant_id = TenantId::parse(raw).ok_or(Error::NotFound("customer"))?;
    state.store.tenant(&tenant_id).await?.ok_or(Error::NotFound("customer"))?;
    Ok(tenant_id)
}

/// A new key for a tenant: shown once, stored hashed.
pub async fn issue_key(state: &AppState, tenant_id: &TenantId, name: Option<&str>) -> Result<ApiKey> {
    let name = optional_text(name, "name", 100)?;
    let key = generate_key("mr_");
    let prefix: String = key.chars().take(10).collect();
    let row = state.store.create_api_key(&new_id(), tenant_id, name.as_deref(), &prefix, &hash_key(&key)).await?;
    Ok(ApiKey::from_row(row, Some(key)))
}

/// A tenant's keys (without the keys themselves).
pub async fn keys(state: &AppState, tenant_id: &TenantId) -> Result<Vec<ApiKey>> {
    let keys = state.store.api_keys(tenant_id).await?;
    Ok(keys.into_iter().map(|k| ApiKey::from_row(k, None)).collect())
}

/// Revokes one of a tenant's keys (404 for any other id).
pub async fn revoke_key(state: &AppState, tenant_id: &TenantId, raw_key_id: &str) -> Result<()> {
    let key_id = parse_id(raw_key_id, "api key")?;
    if !state.store.revoke_api_key(tenant_id, &key_id).await? {
        return Err(Error::NotFound("api key"));
    }
    Ok(())
}
