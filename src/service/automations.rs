//! A tenant's automations: rules that act on delivery events (a trigger,
//! actions in order, an optional AI `agent` step with a fallback). Checked
//! as a whole when saved, by the API and the dashboard's form alike.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{parse_id, required_text, Error, Result};
use crate::domain::automation::{Action, Rule, Trigger};
use crate::domain::{rfc3339, TenantId};
use crate::state::AppState;
use crate::store::{AutomationRow, NewAutomation, RunRow};

/// Most rules one tenant may have.
const MAX_AUTOMATIONS: usize = 100;

/// A new rule, as given.
pub struct NewRule {
    pub name: String,
    /// Default true.
    pub enabled: Option<bool>,
    pub trigger: Trigger,
    pub actions: Vec<Action>,
    pub fallback: Option<Action>,
}

/// A change to a rule: absent fields stay as they are; `fallback:
/// Some(Value::Null)` removes the fallback.
pub struct RuleChanges {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub trigger: Option<Trigger>,
    pub actions: Option<Vec<Action>>,
    pub fallback: Option<Value>,
}

#[derive(Serialize, ToSchema)]
pub struct Automation {
    id: String,
    customer_id: String,
    name: String,
    enabled: bool,
    trigger: Trigger,
    actions: Vec<Action>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fallback: Option<Action>,
    /// Which starter rule this is (every customer gets them, disabled).
    starter: Option<String>,
    created_at: String,
    updated_at: String,
}

impl Automation {
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn from_row(a: AutomationRow) -> Result<Self> {
        let rule = a.rule().map_err(|e| Error::Internal(anyhow::anyhow!("stored rule {}: {e}", a.id)))?;
        Ok(Self {
            id: a.id,
            customer_id: a.tenant_id,
            name: a.name,
            enabled: a.enabled == 1,
            trigger: rule.trigger,
            actions: rule.actions,
            fallback: rule.fallback,
            starter: a.starter,
            created_at: rfc3339(a.created_at),
            updated_at: rfc3339(a.updated_at),
        })
    }
}

/// Which parts of a rule a write gives anew: only those are checked against
/// what may have changed in the database since the rule was saved.
#[derive(Clone, Copy)]
struct Given {
    trigger: bool,
    actions: bool,
}

/// Checks a rule as a whole: its own validity, then what only the database
/// knows (the templates, topics and campaign are the customer's), then the model. A
/// PATCH that leaves the trigger or the actions alone (switching a rule off,
/// say) is not refused because a campaign or template it names was deleted since.
async fn checked_rule(state: &AppState, tenant_id: &TenantId, mut rule: Rule, given: Given) -> Result<Rule> {
    rule.validate().map_err(Error::validation)?;
    let actions_changed = given.actions;
    if let Some(cid) = rule.trigger.campaign_id.as_ref().filter(|_| given.trigger) {
        let found = match crate::domain::parse_id(cid) {
            Some(id) => state.store.campaign(tenant_id, &id).await?.map(|c| c.id),
            None => None,
        };
        rule.trigger.campaign_id =
            Some(found.ok_or_else(|| Error::validation("trigger.campaign_id: no such campaign"))?);
    }
    if actions_changed {
        for id in rule.template_ids() {
            if state.store.template(tenant_id, id, None).await?.is_none() {
                return Err(Error::validation(format!("no such template: {id}")));
            }
        }
        for id in rule.topic_ids() {
            if state.store.topic(tenant_id, id).await?.is_none() {
                return Err(Error::validation(format!("no such topic: {id}")));
            }
        }
    }
    if rule.has_agent() && state.config.llm.is_none() && actions_changed {
        return Err(Error::validation(
            "an `agent` action needs a language model, and this mailroom has none configured: its operator sets \
             MAILROOM_LLM_URL and MAILROOM_LLM_MODEL (and MAILROOM_LLM_API=openai|anthropic, MAILROOM_LLM_API_KEY \
             as needed)",
        ));
    }
    Ok(rule)
}

/// One of the tenant's rules as stored (404 for any other id).
pub async fn own_automation(state: &AppState, tenant_id: &TenantId, aid: &str) -> Result<AutomationRow> {
    let aid = parse_id(aid, "automation")?;
    state.store.automation(tenant_id, &aid).await?.ok_or(Error::NotFound("automation"))
}

impl NewRule {
    /// A rule from the dashboard's form.
    pub fn new(name: String, enabled: bool, trigger: Trigger, actions: Vec<Action>, fallback: Option<Action>) -> Self {
        Self { name, enabled: Some(enabled), trigger, actions, fallback }
    }
}

/// Checks and adds a rule: what `POST /customers/{id}/automations` does, and
/// the dashboard's form.
pub async fn create(state: &AppState, tenant_id: &TenantId, body: NewRule) -> Result<Automation> {
    let name = required_text(&body.name, "name", 200)?;
    let rule = Rule { trigger: body.trigger, actions: body.actions, fallback: body.fallback };
    let rule = checked_rule(state, tenant_id, rule, Given { trigger: true, actions: true }).await?;
    let new = NewAutomation { name: &name, enabled: body.enabled.unwrap_or(true), rule: &rule };
    let Some(id) = state.store.create_automation(tenant_id, &new, MAX_AUTOMATIONS).await? else {
        return Err(Error::validation(format!("a customer may have at most {MAX_AUTOMATIONS} automations")));
    };
    tracing::info!(tenant = %tenant_id, automation = %id, "automation created");
    let row = state.store.automation(tenant_id, &id).await?.ok_or(Error::NotFound("automation"))?;
    Automation::from_row(row)
}

impl RuleChanges {
    /// A patch that only switches a rule on or off (the dashboard's button).
    pub fn switch(enabled: bool) -> Self {
        Self { name: None, enabled: Some(enabled), trigger: None, actions: None, fallback: None }
    }

    /// A patch that rewrites a rule (the dashboard's edit form): its on/off
    /// state stays, and no fallback removes the fallback.
    pub fn rewrite(name: String, trigger: Trigger, actions: Vec<Action>, fallback: Option<Action>) -> Result<Self> {
        let fallback = match fallback {
            None => Value::Null,
            Some(f) => serde_json::to_value(f).map_err(|e| Error::Internal(anyhow::anyhow!("fallback: {e}")))?,
        };
        Ok(Self {
            name: Some(name),
            enabled: None,
            trigger: Some(trigger),
            actions: Some(actions),
            fallback: Some(fallback),
        })
    }
}

/// Applies a patch to one of the tenant's rules: what `PATCH
/// /customers/{id}/automations/{aid}` does, and the dashboard's switch.
pub async fn patch_automation(
    state: &AppState,
    tenant_id: &TenantId,
    aid: &str,
    body: RuleChanges,
) -> Result<Automation> {
    let row = own_automation(state, tenant_id, aid).await?;
    let current = row.rule().map_err(|e| Error::Internal(anyhow::anyhow!("stored rule {}: {e}", row.id)))?;
    let name = match body.name.as_deref() {
        Some(n) => required_text(n, "name", 200)?,
        None => row.name.clone(),
    };
    let given = Given { trigger: body.trigger.is_some(), actions: body.actions.is_some() || body.fallback.is_some() };
    let fallback = match body.fallback {
        None => current.fallback,
        Some(Value::Null) => None,
        Some(v) => Some(serde_json::from_value(v).map_err(|e| Error::validation(format!("fallback: {e}")))?),
    };
    let rule = Rule {
        trigger: body.trigger.unwrap_or(current.trigger),
        actions: body.actions.unwrap_or(current.actions),
        fallback,
    };
    let rule = checked_rule(state, tenant_id, rule, given).await?;
    let new = NewAutomation { name: &name, enabled: body.enabled.unwrap_or(row.enabled == 1), rule: &rule };
    if !state.store.update_automation(tenant_id, &row.id, &new).await? {
        return Err(Error::NotFound("automation"));
    }
    let row = state.store.automation(tenant_id, &row.id).await?.ok_or(Error::NotFound("automation"))?;
    Automation::from_row(row)
}

/// Removes one of the tenant's rules with its pending runs (404 for any other id).
pub async fn delete(state: &AppState, tenant_id: &TenantId, aid: &str) -> Result<()> {
    let aid = parse_id(aid, "automation")?;
    if !state.store.delete_automation(tenant_id, &aid).await? {
        return Err(Error::NotFound("automation"));
    }
    tracing::info!(tenant = %tenant_id, automation = %aid, "automation deleted");
    Ok(())
}

/// The tenant's rules, the (disabled) starter rules included.
pub async fn list(state: &AppState, tenant_id: &TenantId) -> Result<Vec<Automation>> {
    let rows = state.store.automations(tenant_id).await?;
    rows.into_iter().map(Automation::from_row).collect()
}

/// One of the tenant's rules (404 for any other id).
pub async fn get(state: &AppState, tenant_id: &TenantId, aid: &str) -> Result<Automation> {
    Automation::from_row(own_automation(state, tenant_id, aid).await?)
}

/// A page of a rule's runs, newest first, from `cursor` (a run id) on, and
/// the cursor of the next page.
pub async fn runs(
    state: &AppState,
    row: &AutomationRow,
    limit: Option<&str>,
    cursor: Option<&str>,
) -> Result<(Vec<RunRow>, Option<String>)> {
    let limit = super::page_limit(limit)?;
    let cursor = match cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(crate::domain::parse_id(c).ok_or_else(|| Error::validation("`cursor` is not valid"))?),
    };
    let mut rows = state.store.automation_runs(&row.id, cursor.as_deref(), limit).await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if more { rows.last().map(|r| r.id.clone()) } else { None };
    Ok((rows, next_cursor))
}
