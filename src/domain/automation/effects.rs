//! A rule's local effects carried out by event ingestion itself, in the
//! events' transaction (issue 21): [`carry_out`] decides, without a database,
//! what a group of firings does, from what the store read for them (the
//! contacts' tags, the addresses suppressed already, the alert endpoints); the
//! store then writes it in one statement per kind of effect. Firings are taken
//! in order and each one's actions in order, so a group does what carrying its
//! firings out one by one would do, and each firing ends with its run's log.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::{Action, Rule};
use crate::domain::{rfc3339, EmailAddress, Tag};

/// One rule fired by one event, about to be carried out.
#[derive(Clone, Debug)]
pub struct Firing<'a> {
    pub run_id: &'a str,
    pub rule_id: &'a str,
    pub rule: &'a Rule,
    /// The triggering message's tenant: every effect stays within it.
    pub tenant_id: &'a str,
    pub message_id: &'a str,
    pub event_type: &'a str,
    pub campaign_id: Option<&'a str>,
    pub contact_id: Option<&'a str>,
    pub link: Option<&'a str>,
    /// The triggering message's recipient.
    pub to_email: &'a str,
}

/// A contact's tenant and tags, as read for the group.
#[derive(Clone, Debug)]
pub struct ContactTags {
    pub tenant_id: String,
    pub tags: Vec<String>,
}

/// What the firings act on, read in the events' transaction.
pub struct World<'a> {
    /// By contact id.
    pub contacts: &'a HashMap<String, ContactTags>,
    /// (tenant, normalised address) pairs suppressed already.
    pub suppressed: &'a HashSet<(String, String)>,
    /// Per tenant, its enabled endpoints subscribed to `automation.alert`.
    pub alert_endpoints: &'a HashMap<String, usize>,
    /// The group's time.
    pub now: i64,
}

/// Where a firing's run ends up: finished (`done`, `skipped`, `failed`), or
/// `pending` at `step` for the worker (the rule goes on with a
/// `send_template`), with its log so far.
#[derive(Debug, PartialEq, Eq)]
pub struct RunEnd {
    pub status: &'static str,
    pub step: i64,
    pub log: String,
}

/// A contact whose tags the group changes: its whole list afterwards (JSON),
/// and the tags added and removed (for `contact_tags`).
#[derive(Debug, PartialEq, Eq)]
pub struct TagChange {
    pub tenant_id: String,
    pub contact_id: String,
    pub tags: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// An `automation.alert` for a tenant's endpoints.
#[derive(Debug)]
pub struct Alert {
    pub tenant_id: String,
    pub data: Value,
}

/// What a group of firings does.
#[derive(Debug)]
pub struct Effects {
    /// One per firing, in order.
    pub runs: Vec<RunEnd>,
    pub tags: Vec<TagChange>,
    /// (tenant, normalised address) to suppress (`automation`), each once.
    pub suppressions: Vec<(String, String)>,
    pub alerts: Vec<Alert>,
}

/// Carries out the firings' inline actions ([`Rule::inline_actions`]) on `world`.
pub fn carry_out(firings: &[Firing<'_>], world: &World<'_>) -> Effects {
    // Contacts' tags as the firings so far left them, by contact id.
    let mut tags: HashMap<&str, Vec<String>> = HashMap::new();
    let mut touched: Vec<&str> = Vec::new();
    let mut suppressed: HashSet<(String, String)> = HashSet::new();
    let mut suppressions = Vec::new();
    let mut alerts = Vec::new();
    let mut runs = Vec::with_capacity(firings.len());
    for f in firings {
        let entry =
            |action: Option<&Action>, outcome: &str, detail: &str| log_entry(action, outcome, detail, world.now);
        let contact = f
            .contact_id
            .and_then(|id| world.contacts.get_key_value(id))
            .filter(|(_, c)| c.tenant_id == f.tenant_id)
            .map(|(id, c)| (id.as_str(), c));
        let mut log = Vec::new();
        if let Some(tag) = &f.rule.trigger.tag {
            let has = contact.is_some_and(|(id, c)| tags.get(id).unwrap_or(&c.tags).iter().any(|t| t == tag));
            if !has {
                log.push(entry(None, "skipped", &format!("the contact does not have the tag `{tag}`")));
                runs.push(RunEnd { status: "skipped", step: 0, log: Value::Array(log).to_string() });
                continue;
            }
        }
        let inline = f.rule.inline_actions();
        let mut status = if inline == f.rule.actions.len() { "done" } else { "pending" };
        for action in &f.rule.actions[..inline] {
            let (outcome, detail) = match action {
                Action::AddTag { tag } | Action::RemoveTag { tag } => {
                    let add = matches!(action, Action::AddTag { .. });
                    let Some((id, c)) = contact else {
                        log.push(entry(Some(action), "skipped", "the recipient is not a contact"));
                        continue;
                    };
                    let tag = match Tag::parse(tag) {
                        Ok(t) => t.into_string(),
                        Err(e) => {
                            log.push(entry(Some(action), "failed", &format!("the stored rule cannot be read: {e}")));
                            status = "failed";
                            break;
                        }
                    };
                    let list = tags.entry(id).or_insert_with(|| {
                        touched.push(id);
                        c.tags.clone()
                    });
                    match (list.contains(&tag), add) {
                        (true, true) => ("skipped", format!("the contact already has `{tag}`")),
                        (false, false) => ("skipped", format!("the contact does not have `{tag}`")),
                        (false, true) => {
                            list.push(tag.clone());
                            ("done", format!("tagged `{tag}`"))
                        }
                        (true, false) => {
                            list.retain(|t| *t != tag);
                            ("done", format!("untagged `{tag}`"))
                        }
                    }
                }
                Action::Suppress {} => {
                    let key = (f.tenant_id.to_owned(), normalized(f.to_email));
                    if world.suppressed.contains(&key) || !suppressed.insert(key.clone()) {
                        ("skipped", "the address was suppressed already".to_owned())
                    } else {
                        suppressions.push(key);
                        ("done", "the address is suppressed".to_owned())
                    }
                }
                Action::Notify { message } => {
                    let n = world.alert_endpoints.get(f.tenant_id).copied().unwrap_or(0);
                    if n > 0 {
                        alerts.push(Alert { tenant_id: f.tenant_id.to_owned(), data: alert_data(f, message) });
                    }
                    ("done", format!("automation.alert queued for {n} endpoint(s)"))
                }
                Action::SendTemplate { .. } | Action::Agent { .. } => {
                    // Not reached: `inline_actions` ends before the first of these.
                    status = "pending";
                    break;
                }
            };
            log.push(entry(Some(action), outcome, &detail));
        }
        let step = if status == "pending" { i64::try_from(inline).unwrap_or(i64::MAX) } else { 0 };
        runs.push(RunEnd { status, step, log: Value::Array(log).to_string() });
    }
    let tags = touched
        .into_iter()
        .filter_map(|id| {
            let before = &world.contacts.get(id)?;
            let after = tags.get(id)?;
            let added: Vec<String> = after.iter().filter(|t| !before.tags.contains(t)).cloned().collect();
            let removed: Vec<String> = before.tags.iter().filter(|t| !after.contains(t)).cloned().collect();
            (!added.is_empty() || !removed.is_empty()).then(|| TagChange {
                tenant_id: before.tenant_id.clone(),
                contact_id: id.to_owned(),
                tags: serde_json::to_string(after).unwrap_or_else(|_| "[]".into()),
                added,
                removed,
            })
        })
        .collect();
    Effects { runs, tags, suppressions, alerts }
}

/// The `automation.alert` a `notify` sends: the rule, the run and the event
/// (mailroom's own ids, never the provider's).
fn alert_data(f: &Firing<'_>, message: &str) -> Value {
    json!({
        "automation_id": f.rule_id,
        "run_id": f.run_id,
        "message": message,
        "event": {
            "type": f.event_type,
            "email_id": f.message_id,
            "campaign_id": f.campaign_id,
            "contact_id": f.contact_id,
            "link": f.link,
        },
    })
}

/// One entry of a run's log: the action (none for the rule as a whole), what came of it, and when.
pub fn log_entry(action: Option<&Action>, outcome: &str, detail: &str, at: i64) -> Value {
    json!({
        "action": action.map(Action::kind),
        "outcome": outcome,
        "detail": detail,
        "at": rfc3339(at),
    })
}

/// An address as suppressions key it.
pub fn normalized(address: &str) -> String {
    EmailAddress::parse(address).map(|e| e.normalized()).unwrap_or_else(|_| address.trim().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(v: Value) -> Rule {
        let mut r: Rule = serde_json::from_value(v).unwrap();
        r.validate().unwrap();
        r
    }

    fn firing<'a>(run: &'a str, rule: &'a Rule, tenant: &'a str, contact: Option<&'a str>) -> Firing<'a> {
        Firing {
            run_id: run,
            rule_id: "r",
            rule,
            tenant_id: tenant,
            message_id: "m",
            event_type: "email.clicked",
            campaign_id: None,
            contact_id: contact,
            link: None,
            to_email: "X@Example.org",
        }
    }

    #[test]
    fn firings_act_in_order_and_the_tags_change_once_per_contact() {
        let tag_it = rule(json!({ "trigger": { "event": "email.clicked" },
            "actions": [{ "type": "add_tag", "tag": "engaged" }, { "type": "remove_tag", "tag": "new" }] }));
        let contacts =
            HashMap::from([("c1".to_owned(), ContactTags { tenant_id: "t".into(), tags: vec!["new".into()] })]);
        let (suppressed, endpoints) = (HashSet::new(), HashMap::new());
        let world = World { contacts: &contacts, suppressed: &suppressed, alert_endpoints: &endpoints, now: 0 };
        let fx = carry_out(&[firing("a", &tag_it, "t", Some("c1")), firing("b", &tag_it, "t", Some("c1"))], &world);
        assert_eq!(fx.runs[0].status, "done");
        assert!(fx.runs[0].log.contains("tagged `engaged`") && fx.runs[0].log.contains("untagged `new`"));
        assert!(fx.runs[1].log.contains("already has `engaged`"), "{}", fx.runs[1].log);
        assert_eq!(
            fx.tags,
            vec![TagChange {
                tenant_id: "t".into(),
                contact_id: "c1".into(),
                tags: r#"["engaged"]"#.into(),
                added: vec!["engaged".into()],
                removed: vec!["new".into()],
            }]
        );
    }

    #[test]
    fn another_tenants_contact_is_never_touched() {
        let tag_it =
            rule(json!({ "trigger": { "event": "email.clicked" }, "actions": [{ "type": "add_tag", "tag": "x" }] }));
        let contacts = HashMap::from([("c1".to_owned(), ContactTags { tenant_id: "other".into(), tags: vec![] })]);
        let (suppressed, endpoints) = (HashSet::new(), HashMap::new());
        let world = World { contacts: &contacts, suppressed: &suppressed, alert_endpoints: &endpoints, now: 0 };
        let fx = carry_out(&[firing("a", &tag_it, "t", Some("c1"))], &world);
        assert!(fx.tags.is_empty());
        assert!(fx.runs[0].log.contains("not a contact"), "{}", fx.runs[0].log);
    }

    #[test]
    fn a_suppression_is_written_once_and_a_rule_with_a_send_is_left_pending_after_its_local_actions() {
        let both = rule(json!({ "trigger": { "event": "email.clicked" }, "actions": [{ "type": "suppress" },
            { "type": "send_template", "template_id": "0192f0c4-0000-7000-8000-000000000001" }] }));
        let only_tagged = rule(json!({ "trigger": { "event": "email.clicked", "tag": "vip" },
            "actions": [{ "type": "notify", "message": "hi" }] }));
        let contacts = HashMap::new();
        let suppressed = HashSet::from([("u".to_owned(), "x@example.org".to_owned())]);
        let endpoints = HashMap::from([("t".to_owned(), 2)]);
        let world = World { contacts: &contacts, suppressed: &suppressed, alert_endpoints: &endpoints, now: 0 };
        let fx = carry_out(
            &[
                firing("a", &both, "t", None),
                firing("b", &both, "t", None),
                firing("c", &both, "u", None),
                firing("d", &only_tagged, "t", None),
            ],
            &world,
        );
        assert_eq!(fx.suppressions, vec![("t".to_owned(), "x@example.org".to_owned())]);
        assert_eq!((fx.runs[0].status, fx.runs[0].step), ("pending", 1));
        assert!(fx.runs[1].log.contains("suppressed already"));
        assert!(fx.runs[2].log.contains("suppressed already"));
        assert_eq!(fx.runs[3].status, "skipped");
        assert!(fx.alerts.is_empty());
    }
}
