//! An automation rule: a trigger (a delivery event, optionally narrowed), and
//! actions carried out in order when it fires. Parsing checks everything that
//! can be checked without the database; the API checks that the templates and
//! the campaign it names are the tenant's own.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::text::check_single_line;
use super::Tag;

pub mod effects;

/// The events a rule can be triggered by.
pub const TRIGGER_EVENTS: [&str; 6] =
    ["email.opened", "email.clicked", "email.bounced", "email.complained", "email.delivery_delayed", "email.delivered"];

/// Actions one rule may have at most.
pub const MAX_ACTIONS: usize = 10;
/// The longest delay a `send_template` may wait.
pub const MAX_DELAY_MS: i64 = 90 * 24 * 3_600_000;
/// The default wait of a `delivery_delayed` rule for a delivery, in hours.
pub const DEFAULT_NO_DELIVERY_HOURS: u32 = 24;
const MAX_TEXT: usize = 2_000;
const MAX_INSTRUCTIONS: usize = 4_000;
const MAX_ALLOWED: usize = 50;

/// When a rule fires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// `email.opened`, `email.clicked`, `email.bounced`, `email.complained`,
    /// `email.delivery_delayed` or `email.delivered`.
    pub event: String,
    /// Only events of this campaign's mail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign_id: Option<String>,
    /// Only when the event's contact has this tag (checked when the rule runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// `email.clicked` only: only clicks on this exact link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// `email.delivery_delayed` only: act only if the message is still not
    /// delivered this many hours after the delay was reported (default 24).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_delivery_within_hours: Option<u32>,
}

/// One thing a rule does. `send_template` goes to the event's contact.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Send one of the tenant's templates to the event's recipient, after
    /// `delay` (`30m`, `12h`, `2d`; `s` for seconds too). At most once per
    /// contact, rule and campaign.
    SendTemplate {
        template_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay: Option<String>,
        /// The topic the email is about (one of the customer's topics): only
        /// a contact subscribed to it is mailed, checked when the email is
        /// queued and again when it is sent, and its one-click unsubscribe
        /// leaves that topic only. Without it, the email is about the topic
        /// of the campaign whose email triggered the rule, if that campaign
        /// targets one (a follow-up to newsletter mail is newsletter mail).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic_id: Option<String>,
    },
    AddTag {
        tag: String,
    },
    RemoveTag {
        tag: String,
    },
    /// Suppress the recipient's address (reason `automation`).
    Suppress {},
    /// Send the event to the tenant's webhooks as `automation.alert`, with `message`.
    Notify {
        message: String,
    },
    /// Ask the configured language model to choose one action (a tool) for
    /// this event, within the allowed templates and tags; its decision is
    /// validated and carried out under guardrails, and logged in the runs.
    Agent {
        instructions: String,
        #[serde(default)]
        allowed_templates: Vec<String>,
        #[serde(default)]
        allowed_tags: Vec<String>,
    },
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SendTemplate { .. } => "send_template",
            Self::AddTag { .. } => "add_tag",
            Self::RemoveTag { .. } => "remove_tag",
            Self::Suppress {} => "suppress",
            Self::Notify { .. } => "notify",
            Self::Agent { .. } => "agent",
        }
    }

    /// The delay before this action, in ms (0: none).
    pub fn delay_ms(&self) -> i64 {
        match self {
            Self::SendTemplate { delay: Some(d), .. } => parse_delay(d).unwrap_or(0),
            _ => 0,
        }
    }

    /// Tags, suppressions and alerts: writes to mailroom's own tables, nothing
    /// sent and no one asked (what event ingestion may do itself).
    pub fn is_local(&self) -> bool {
        matches!(self, Self::AddTag { .. } | Self::RemoveTag { .. } | Self::Suppress {} | Self::Notify { .. })
    }

    /// The templates this action may send.
    pub fn template_ids(&self) -> Vec<&str> {
        match self {
            Self::SendTemplate { template_id, .. } => vec![template_id.as_str()],
            Self::Agent { allowed_templates, .. } => allowed_templates.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// The topic this action's email names, if it names one.
    pub fn topic_id(&self) -> Option<&str> {
        match self {
            Self::SendTemplate { topic_id, .. } => topic_id.as_deref(),
            _ => None,
        }
    }
}

/// A rule as stored (the `definition` column) and as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub trigger: Trigger,
    pub actions: Vec<Action>,
    /// What an `agent` action does when the model fails, times out, or chooses
    /// something the guardrails refuse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Action>,
}

impl Rule {
    /// Checks everything but the database: an error names the field.
    pub fn validate(&mut self) -> Result<(), String> {
        let t = &mut self.trigger;
        if !TRIGGER_EVENTS.contains(&t.event.as_str()) {
            return Err(format!("trigger.event must be one of {}", TRIGGER_EVENTS.join(", ")));
        }
        if let Some(tag) = &t.tag {
            t.tag = Some(Tag::parse(tag).map_err(|e| format!("trigger.tag: {e}"))?.into_string());
        }
        if let Some(link) = &t.link {
            if t.event != "email.clicked" {
                return Err("trigger.link applies to `email.clicked` only".into());
            }
            text(link, "trigger.link", MAX_TEXT)?;
        }
        match (t.event.as_str(), t.no_delivery_within_hours) {
            ("email.delivery_delayed", None) => t.no_delivery_within_hours = Some(DEFAULT_NO_DELIVERY_HOURS),
            ("email.delivery_delayed", Some(h)) if !(1..=168).contains(&h) => {
                return Err("trigger.no_delivery_within_hours must be between 1 and 168".into())
            }
            ("email.delivery_delayed", Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err("trigger.no_delivery_within_hours applies to `email.delivery_delayed` only".into())
            }
        }
        if self.actions.is_empty() || self.actions.len() > MAX_ACTIONS {
            return Err(format!("actions: give 1 to {MAX_ACTIONS} actions"));
        }
        for (i, a) in self.actions.iter_mut().enumerate() {
            validate_action(a, &format!("actions[{i}]"))?;
        }
        if let Some(f) = &mut self.fallback {
            if matches!(f, Action::Agent { .. }) {
                return Err("fallback: an `agent` cannot be a fallback".into());
            }
            if !self.actions.iter().any(|a| matches!(a, Action::Agent { .. })) {
                return Err("fallback applies to rules with an `agent` action only".into());
            }
            validate_action(f, "fallback")?;
        }
        Ok(())
    }

    pub fn has_agent(&self) -> bool {
        self.actions.iter().any(|a| matches!(a, Action::Agent { .. }))
    }

    /// How long after the event the rule runs: a `delivery_delayed` rule waits
    /// to see whether the message is delivered meanwhile.
    pub fn wait_ms(&self) -> i64 {
        match (self.trigger.event.as_str(), self.trigger.no_delivery_within_hours) {
            ("email.delivery_delayed", Some(h)) => i64::from(h) * 3_600_000,
            _ => 0,
        }
    }

    /// Whether the rule asks a model (an `agent` action): its runs go to the
    /// agent lane, so that no other rule waits behind a model.
    pub fn uses_agent(&self) -> bool {
        self.actions.iter().any(|a| matches!(a, Action::Agent { .. }))
    }

    /// How many of the rule's first actions event ingestion carries out
    /// itself, in the events' transaction: its leading local actions
    /// ([`Action::is_local`]), unless the rule waits (`delivery_delayed`) or
    /// asks a model, whose runs are queued whole. The rest (a `send_template`
    /// and what follows it) is left to the automation worker.
    pub fn inline_actions(&self) -> usize {
        if self.wait_ms() > 0 || self.trigger.event == "email.delivery_delayed" || self.uses_agent() {
            return 0;
        }
        self.actions.iter().take_while(|a| a.is_local()).count()
    }

    /// Every template the rule can send (for the API's ownership check).
    pub fn template_ids(&self) -> Vec<&str> {
        self.actions.iter().chain(self.fallback.iter()).flat_map(Action::template_ids).collect()
    }

    /// Every topic the rule's sends name (for the API's ownership check).
    pub fn topic_ids(&self) -> Vec<&str> {
        self.actions.iter().chain(self.fallback.iter()).filter_map(Action::topic_id).collect()
    }
}

fn validate_action(a: &mut Action, at: &str) -> Result<(), String> {
    match a {
        Action::SendTemplate { template_id, delay, topic_id } => {
            *template_id =
                super::parse_id(template_id).ok_or_else(|| format!("{at}.template_id is not a template id"))?;
            if let Some(topic) = topic_id {
                *topic = super::parse_id(topic).ok_or_else(|| format!("{at}.topic_id is not a topic id"))?;
            }
            if let Some(d) = delay {
                parse_delay(d).map_err(|e| format!("{at}.delay: {e}"))?;
                *d = d.trim().to_owned();
            }
        }
        Action::AddTag { tag } | Action::RemoveTag { tag } => {
            *tag = Tag::parse(tag).map_err(|e| format!("{at}.tag: {e}"))?.into_string();
        }
        Action::Suppress {} => {}
        Action::Notify { message } => text(message, &format!("{at}.message"), MAX_TEXT)?,
        Action::Agent { instructions, allowed_templates, allowed_tags } => {
            let control = instructions.chars().any(|c| c.is_control() && c != '\n' && c != '\t');
            if instructions.trim().is_empty() || instructions.chars().count() > MAX_INSTRUCTIONS || control {
                return Err(format!(
                    "{at}.instructions must be 1 to {MAX_INSTRUCTIONS} characters, without control characters \
                     other than line breaks and tabs"
                ));
            }
            if allowed_templates.len() > MAX_ALLOWED || allowed_tags.len() > MAX_ALLOWED {
                return Err(format!("{at}: at most {MAX_ALLOWED} allowed templates and tags"));
            }
            for (i, t) in allowed_templates.iter_mut().enumerate() {
                *t = super::parse_id(t).ok_or_else(|| format!("{at}.allowed_templates[{i}] is not a template id"))?;
            }
            for (i, t) in allowed_tags.iter_mut().enumerate() {
                *t = Tag::parse(t).map_err(|e| format!("{at}.allowed_tags[{i}]: {e}"))?.into_string();
            }
            let mut seen = std::collections::HashSet::new();
            allowed_templates.retain(|t| seen.insert(t.clone()));
            seen.clear();
            allowed_tags.retain(|t| seen.insert(t.clone()));
        }
    }
    Ok(())
}

fn text(value: &str, field: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() || value.chars().count() > max {
        return Err(format!("`{field}` must be 1 to {max} characters"));
    }
    check_single_line(value, field)
}

/// `90s`, `30m`, `12h`, `2d` as milliseconds (1 second to 90 days).
pub fn parse_delay(raw: &str) -> Result<i64, String> {
    let shown: String = raw.chars().filter(|c| !c.is_control()).take(20).collect();
    let err = || format!("`{shown}` is not a delay like 30m, 12h or 2d");
    if raw.chars().any(|c| c.is_control() || !c.is_ascii()) {
        return Err(err());
    }
    let raw = raw.trim();
    let unit = raw.chars().last().ok_or_else(err)?;
    let digits = &raw[..raw.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let n: i64 = digits.parse().map_err(|_| err())?;
    let ms = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        _ => return Err(err()),
    };
    let total = n.checked_mul(ms).filter(|t| (1_000..=MAX_DELAY_MS).contains(t));
    total.ok_or_else(|| "a delay must be between 1s and 90d".to_owned())
}

/// The starter rules every tenant gets, disabled, after the second source
/// document: a follow-up two days after an open, `engaged` for clickers,
/// an alert on complaints, and one on mail still undelivered a day after a
/// delay. `follow_up` is the tenant's follow-up template.
pub fn starter_rules(follow_up: &str) -> Vec<(&'static str, &'static str, Rule)> {
    let rule = |event: &str, actions: Vec<Action>| Rule {
        trigger: Trigger {
            event: event.to_owned(),
            campaign_id: None,
            tag: None,
            link: None,
            no_delivery_within_hours: (event == "email.delivery_delayed").then_some(DEFAULT_NO_DELIVERY_HOURS),
        },
        actions,
        fallback: None,
    };
    vec![
        (
            "follow_up_on_open",
            "Follow up two days after an open",
            rule(
                "email.opened",
                vec![Action::SendTemplate {
                    template_id: follow_up.to_owned(),
                    delay: Some("2d".into()),
                    topic_id: None,
                }],
            ),
        ),
        (
            "tag_clickers",
            "Tag clickers as engaged",
            rule("email.clicked", vec![Action::AddTag { tag: "engaged".into() }]),
        ),
        (
            "alert_on_complaint",
            "Compliance alert on a complaint",
            rule(
                "email.complained",
                vec![Action::Notify { message: "A recipient marked an email as spam (compliance alert)".into() }],
            ),
        ),
        (
            "alert_on_delay",
            "Alert on mail undelivered for a day",
            rule(
                "email.delivery_delayed",
                vec![Action::Notify { message: "An email is still not delivered 24 hours after a delay".into() }],
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(v: serde_json::Value) -> Result<Rule, String> {
        let mut r: Rule = serde_json::from_value(v).map_err(|e| e.to_string())?;
        r.validate()?;
        Ok(r)
    }

    const T: &str = "0192f0c4-0000-7000-8000-000000000001";

    #[test]
    fn a_rule_parses_and_unknown_fields_are_refused() {
        let r = rule(serde_json::json!({ "trigger": { "event": "email.opened" },
            "actions": [{ "type": "send_template", "template_id": T, "delay": "2d" }, { "type": "suppress" }] }))
        .unwrap();
        assert_eq!(r.actions[0].delay_ms(), 2 * 86_400_000);
        assert_eq!(r.topic_ids(), Vec::<&str>::new());
        let upper = T.to_uppercase();
        let r = rule(serde_json::json!({ "trigger": { "event": "email.opened" },
            "actions": [{ "type": "send_template", "template_id": T, "topic_id": upper }] }))
        .unwrap();
        assert_eq!(r.topic_ids(), [T], "a topic id is stored as parsed");
        for bad in [
            serde_json::json!({ "trigger": { "event": "email.opened", "x": 1 }, "actions": [{ "type": "suppress" }] }),
            serde_json::json!({ "trigger": { "event": "email.opened" }, "actions": [{ "type": "suppress", "x": 1 }] }),
            serde_json::json!({ "trigger": { "event": "email.opened" }, "actions": [{ "type": "add_tag", "tag": "a", "x": 1 }] }),
            serde_json::json!({ "trigger": { "event": "email.opened" }, "actions": [{ "type": "launch" }] }),
            serde_json::json!({ "trigger": { "event": "email.sent" }, "actions": [{ "type": "suppress" }] }),
            serde_json::json!({ "trigger": { "event": "email.opened" }, "actions": [] }),
            serde_json::json!({ "trigger": { "event": "email.opened", "link": "x" }, "actions": [{ "type": "suppress" }] }),
            serde_json::json!({ "trigger": { "event": "email.opened" }, "actions": [{ "type": "notify", "message": "a\nb" }] }),
            serde_json::json!({ "trigger": { "event": "email.opened" }, "actions": [{ "type": "suppress" }],
                "fallback": { "type": "suppress" } }),
            serde_json::json!({ "trigger": { "event": "email.opened" },
                "actions": [{ "type": "send_template", "template_id": T, "topic_id": "news" }] }),
        ] {
            assert!(rule(bad.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_delivery_delayed_rule_waits_24_hours_by_default() {
        let r = rule(serde_json::json!({ "trigger": { "event": "email.delivery_delayed" },
            "actions": [{ "type": "notify", "message": "late" }] }))
        .unwrap();
        assert_eq!(r.trigger.no_delivery_within_hours, Some(24));
        assert_eq!(r.wait_ms(), 24 * 3_600_000);
    }

    #[test]
    fn delays() {
        assert_eq!(parse_delay("30m"), Ok(1_800_000));
        assert_eq!(parse_delay("5s"), Ok(5_000));
        for bad in ["", "d", "2w", "0s", "91d", "-1h", "+2d", "2d\n", "2d\u{2028}", "1.5h", "99999999999999999d"] {
            assert!(parse_delay(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn starter_rules_are_valid() {
        for (_, _, mut r) in starter_rules(T) {
            r.validate().unwrap();
        }
    }
}
