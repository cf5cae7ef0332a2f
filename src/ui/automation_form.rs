//! The automation form: a rule's fields as the page shows them (a fixed
//! number of action rows, blank ones ignored), read back into the domain's
//! `Trigger` and `Action`s. Nothing is validated here beyond reading numbers:
//! the rule goes to the API's functions, whose errors the page shows.

use serde::Serialize;

use super::form::Fields;
use crate::domain::automation::{Action, Rule, Trigger, MAX_ACTIONS};

/// Action rows the form offers (a rule may have up to `MAX_ACTIONS`; the API takes more).
pub const ROWS: usize = 5;

/// The kinds of action, as the form's select offers them.
pub const KINDS: [(&str, &str); 6] = [
    ("send_template", "Send a template"),
    ("add_tag", "Add a tag"),
    ("remove_tag", "Remove a tag"),
    ("suppress", "Suppress the address"),
    ("notify", "Alert the webhooks"),
    ("agent", "Ask the AI agent"),
];

#[derive(Serialize, Default, Clone)]
pub struct ActionFields {
    pub kind: String,
    pub template_id: String,
    pub delay: String,
    /// A `send_template`'s topic (its id); empty: the triggering campaign's.
    pub topic_id: String,
    pub tag: String,
    pub message: String,
    pub instructions: String,
    pub allowed_templates: Vec<String>,
    /// Comma-separated.
    pub allowed_tags: String,
}

#[derive(Serialize, Clone)]
pub struct RuleFields {
    pub name: String,
    pub enabled: bool,
    pub event: String,
    pub campaign_id: String,
    pub tag: String,
    pub link: String,
    pub hours: String,
    pub actions: Vec<ActionFields>,
    pub fallback: ActionFields,
}

impl Default for RuleFields {
    fn default() -> Self {
        Self {
            name: String::new(),
            enabled: true,
            event: "email.delivered".into(),
            campaign_id: String::new(),
            tag: String::new(),
            link: String::new(),
            hours: String::new(),
            actions: vec![ActionFields::default(); ROWS],
            fallback: ActionFields::default(),
        }
    }
}

impl ActionFields {
    fn posted(f: &Fields, prefix: &str) -> Self {
        let get = |name: &str| f.get(&format!("{prefix}_{name}")).to_owned();
        Self {
            kind: get("type"),
            template_id: get("template"),
            delay: get("delay"),
            topic_id: get("topic"),
            tag: get("tag"),
            message: get("message"),
            instructions: get("instructions"),
            allowed_templates: f.all(&format!("{prefix}_allowed_templates")),
            allowed_tags: get("allowed_tags"),
        }
    }

    fn of(a: &Action) -> Self {
        let mut out = Self { kind: a.kind().to_owned(), ..Self::default() };
        match a {
            Action::SendTemplate { template_id, delay, topic_id } => {
                out.template_id = template_id.clone();
                out.delay = delay.clone().unwrap_or_default();
                out.topic_id = topic_id.clone().unwrap_or_default();
            }
            Action::AddTag { tag } | Action::RemoveTag { tag } => out.tag = tag.clone(),
            Action::Suppress {} => {}
            Action::Notify { message } => out.message = message.clone(),
            Action::Agent { instructions, allowed_templates, allowed_tags } => {
                out.instructions = instructions.clone();
                out.allowed_templates = allowed_templates.clone();
                out.allowed_tags = allowed_tags.join(", ");
            }
        }
        out
    }

    /// The action this row describes; None for a blank row.
    fn action(&self, at: &str) -> Result<Option<Action>, String> {
        let blank = |s: &str| s.trim().is_empty();
        Ok(Some(match self.kind.as_str() {
            "" => return Ok(None),
            "send_template" => Action::SendTemplate {
                template_id: self.template_id.clone(),
                delay: Some(self.delay.clone()).filter(|d| !blank(d)),
                topic_id: Some(self.topic_id.trim().to_owned()).filter(|t| !t.is_empty()),
            },
            "add_tag" => Action::AddTag { tag: self.tag.clone() },
            "remove_tag" => Action::RemoveTag { tag: self.tag.clone() },
            "suppress" => Action::Suppress {},
            "notify" => Action::Notify { message: self.message.clone() },
            "agent" => Action::Agent {
                instructions: self.instructions.clone(),
                allowed_templates: self.allowed_templates.iter().filter(|t| !blank(t)).cloned().collect(),
                allowed_tags: self
                    .allowed_tags
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect(),
            },
            _ => return Err(format!("{at}: choose a kind of action from the list")),
        }))
    }
}

impl RuleFields {
    pub fn posted(f: &Fields) -> Self {
        let mut fields = Self::read(f);
        // Shown again with an error: the rows used, and the form's usual number at least.
        let used = fields.actions.iter().rposition(|a| !a.kind.is_empty()).map_or(0, |i| i + 1);
        fields.actions.truncate(used.max(ROWS));
        fields
    }

    fn read(f: &Fields) -> Self {
        Self {
            name: f.get("name").to_owned(),
            enabled: f.checked("enabled"),
            event: f.get("event").to_owned(),
            campaign_id: f.get("campaign_id").to_owned(),
            tag: f.get("tag").to_owned(),
            link: f.get("link").to_owned(),
            hours: f.get("hours").to_owned(),
            // An edited rule may show more rows than a new one (all its actions, and one more);
            // one row past the most a rule may have, so that too many is refused, not dropped.
            actions: (0..=MAX_ACTIONS).map(|i| ActionFields::posted(f, &format!("a{i}"))).collect(),
            fallback: ActionFields::posted(f, "f"),
        }
    }

    pub fn of(name: &str, enabled: bool, rule: &Rule) -> Self {
        let mut actions: Vec<ActionFields> = rule.actions.iter().map(ActionFields::of).collect();
        // Room for at least one more action, and always the form's rows.
        let rows = (actions.len() + 1).max(ROWS);
        actions.resize(rows, ActionFields::default());
        let t = &rule.trigger;
        Self {
            name: name.to_owned(),
            enabled,
            event: t.event.clone(),
            campaign_id: t.campaign_id.clone().unwrap_or_default(),
            tag: t.tag.clone().unwrap_or_default(),
            link: t.link.clone().unwrap_or_default(),
            hours: t.no_delivery_within_hours.map(|h| h.to_string()).unwrap_or_default(),
            actions,
            fallback: rule.fallback.as_ref().map(ActionFields::of).unwrap_or_default(),
        }
    }

    /// The rule as the API takes it: trigger, actions (blank rows left out), fallback.
    pub fn rule(&self) -> Result<(Trigger, Vec<Action>, Option<Action>), String> {
        let filled = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
        let hours = match filled(&self.hours) {
            None => None,
            Some(h) => Some(h.parse::<u32>().map_err(|_| "Hours without delivery: give a whole number of hours")?),
        };
        let trigger = Trigger {
            event: self.event.clone(),
            campaign_id: filled(&self.campaign_id),
            tag: filled(&self.tag),
            link: filled(&self.link),
            no_delivery_within_hours: hours,
        };
        let mut actions = Vec::new();
        for (i, row) in self.actions.iter().enumerate() {
            if let Some(a) = row.action(&format!("Action {}", i + 1))? {
                actions.push(a);
            }
        }
        let fallback = self.fallback.action("Fallback")?;
        Ok((trigger, actions, fallback))
    }
}

/// The domain's field paths (`actions[2].tag`) as the form labels them (`Action 3 tag`).
pub fn humanize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("actions[") {
        out.push_str(&rest[..at]);
        let after = &rest[at + "actions[".len()..];
        match after.split_once(']').and_then(|(n, tail)| n.parse::<usize>().ok().map(|n| (n, tail))) {
            Some((n, tail)) => {
                out.push_str(&format!("Action {}", n + 1));
                rest = tail.strip_prefix('.').map_or(tail, |t| {
                    out.push(' ');
                    t
                });
            }
            None => {
                out.push_str("actions[");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::humanize;

    #[test]
    fn domain_paths_read_as_the_form_labels_them() {
        assert_eq!(humanize("actions[0].tag: bad"), "Action 1 tag: bad");
        assert_eq!(humanize("`actions[2].message` must be"), "`Action 3 message` must be");
        assert_eq!(humanize("actions: give 1 to 10 actions"), "actions: give 1 to 10 actions");
        assert_eq!(humanize("actions[x"), "actions[x");
    }
}
