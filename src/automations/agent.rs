//! The `agent` action: a language model chooses one tool for an event, and
//! mailroom checks and carries out that choice under guardrails.
//!
//! The model sees the event, the contact's non-personal fields (status, tags,
//! opens and clicks: never the address or the name), a clicked link without
//! its query and with addresses and tokens in its path replaced, and the rule's
//! instructions, and is offered a fixed set of tools whose arguments are
//! restricted to what the rule allows. Its answer is untrusted input: a tool
//! that was not offered, an argument outside the schema, a send to an address
//! that cannot be mailed or past the tenant's daily cap, a timeout or an error
//! all lead to the rule's `fallback` (if any), and so does a tenant's daily
//! budget of model calls used up (`budget_exhausted`: the call is not made).
//! Every decision is recorded on the run: tool, arguments, the model's
//! reason, outcome, latency and the tokens the answer used.

use std::time::Instant;

use serde_json::{json, Map, Value};

use super::{Engine, GuardrailRefusal, Outcome, Subject};
use crate::domain::automation::{Action, Rule};
use crate::domain::{check_single_line, link_without_secrets};
use crate::llm::ToolSpec;
use crate::store::AgentDecision;

const SYSTEM: &str = "You are the automation agent of an email platform. For the single email event described \
    by the user, choose what the platform does by calling exactly one of the tools offered. Follow the \
    customer's instructions; use only the template ids and tags the tools allow. Say briefly why in the \
    `reason` argument. If nothing should be done, call `no_action`.";
/// Longest `notify` message the model may write.
const MAX_MESSAGE: usize = 500;

/// Asks the model, checks its choice, carries it out; falls back on any failure.
pub(crate) async fn decide(engine: &Engine, s: &Subject<'_>, rule: &Rule, action: &Action) -> anyhow::Result<Outcome> {
    let Action::Agent { instructions, allowed_templates, allowed_tags } = action else {
        anyhow::bail!("not an agent action");
    };
    let Some(llm) = &engine.llm else {
        let d =
            AgentDecision { outcome: "failed: no model is configured (MAILROOM_LLM_URL)".into(), ..Default::default() };
        return fallback(engine, s, rule, d).await;
    };
    let templates = allowed_template_names(engine, s, allowed_templates).await?;
    let tools = tools(&templates, allowed_tags);
    let prompt = prompt(engine, s, instructions).await?;
    // Each call is booked before it is made (a timed-out call may be billed too).
    let booking = engine.store.take_agent_call(&s.run.tenant_id, engine.agent_daily_calls).await?;
    if !booking.booked {
        count_call(&s.run.tenant_id, "budget_exhausted");
        let d = AgentDecision {
            outcome: format!(
                "budget_exhausted: the {} model calls a day this customer may make are used up (until 00:00 UTC; \
                 MAILROOM_AGENT_DAILY_CALLS)",
                booking.cap
            ),
            ..Default::default()
        };
        return fallback(engine, s, rule, d).await;
    }
    let started = Instant::now();
    let answer = llm.ask(SYSTEM, &prompt.to_string(), &tools).await;
    let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    count_call(&s.run.tenant_id, if answer.call.is_ok() { "answered" } else { "failed" });
    let usage = answer.usage.map(|u| {
        let tokens = |kind: &'static str, n: i64| {
            metrics::counter!("mailroom_agent_tokens_total", "tenant" => s.run.tenant_id.clone(), "kind" => kind)
                .increment(u64::try_from(n).unwrap_or(0));
        };
        tokens("input", u.input_tokens);
        tokens("output", u.output_tokens);
        (u.input_tokens, u.output_tokens)
    });
    let call = match answer.call {
        Ok(call) => call,
        Err(e) => {
            let d = AgentDecision { outcome: format!("failed: {e}"), latency_ms, usage, ..Default::default() };
            return fallback(engine, s, rule, d).await;
        }
    };
    let reason = call
        .arguments
        .get("reason")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or(call.reason.clone())
        .map(|r| r.chars().take(1_000).collect::<String>());
    let mut decision = AgentDecision {
        tool: Some(call.name.chars().take(100).collect()),
        arguments: Some(call.arguments.to_string().chars().take(4_000).collect()),
        reason,
        outcome: String::new(),
        latency_ms,
        usage,
    };
    let chosen = match validate(&call.name, &call.arguments, &templates, allowed_tags) {
        Ok(chosen) => chosen,
        Err(e) => {
            decision.outcome = format!("refused: malformed tool call: {e}");
            return fallback(engine, s, rule, decision).await;
        }
    };
    let Some(chosen) = chosen else {
        decision.outcome = "done: no action".into();
        engine.store.record_agent_decision(s.run, &decision).await?;
        return Ok(Outcome::Done("the agent chose no action".into()));
    };
    match engine.act(s, &chosen, true).await {
        Ok(Outcome::Unmailable(why)) => {
            decision.outcome = format!("refused: {why}");
            fallback(engine, s, rule, decision).await
        }
        Ok(outcome) => {
            decision.outcome = format!("{}: {}", outcome.label(), outcome.detail());
            engine.store.record_agent_decision(s.run, &decision).await?;
            Ok(Outcome::Done(format!("the agent chose {}: {}", chosen.kind(), outcome.detail())))
        }
        Err(e) => match e.downcast::<GuardrailRefusal>() {
            Ok(refusal) => {
                decision.outcome = format!("refused: {refusal}");
                fallback(engine, s, rule, decision).await
            }
            Err(other) => Err(other),
        },
    }
}

/// Counts a model call per tenant in `/metrics`: `answered`, `failed`, or
/// `budget_exhausted` (not made: the day's budget is used up).
fn count_call(tenant_id: &str, outcome: &'static str) {
    metrics::counter!("mailroom_agent_calls_total", "tenant" => tenant_id.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Runs the rule's fallback (if any) after a failed decision, and records both.
async fn fallback(engine: &Engine, s: &Subject<'_>, rule: &Rule, mut d: AgentDecision) -> anyhow::Result<Outcome> {
    let outcome = match &rule.fallback {
        None => Outcome::Skipped(format!("{}; no fallback", d.outcome)),
        Some(f) => {
            let done = engine.act(s, f, false).await?;
            d.outcome = format!("{}; fallback {}: {}", d.outcome, f.kind(), done.detail());
            Outcome::Done(d.outcome.clone())
        }
    };
    engine.store.record_agent_decision(s.run, &d).await?;
    Ok(outcome)
}

/// The allowed templates that still exist, with their names (for the model).
async fn allowed_template_names(
    engine: &Engine,
    s: &Subject<'_>,
    allowed: &[String],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for id in allowed {
        if let Some(t) = engine.store.template(&s.tenant, id, None).await? {
            out.push((t.id, t.name));
        }
    }
    Ok(out)
}

/// The tools offered: each action type, its arguments restricted to the rule's allowances.
pub(crate) fn tools(templates: &[(String, String)], tags: &[String]) -> Vec<ToolSpec> {
    let reason = json!({ "type": "string", "description": "Why, in one sentence." });
    let schema = |extra: Value| {
        let mut properties = Map::new();
        let mut required = vec![json!("reason")];
        if let Value::Object(extra) = extra {
            for (k, v) in extra {
                required.push(json!(k));
                properties.insert(k, v);
            }
        }
        properties.insert("reason".into(), reason.clone());
        json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
    };
    let mut tools = Vec::new();
    if !templates.is_empty() {
        let names: Vec<String> = templates.iter().map(|(id, name)| format!("{id} ({name})")).collect();
        tools.push(ToolSpec {
            name: "send_template".into(),
            description: format!("Email the event's recipient one of these templates: {}.", names.join(", ")),
            parameters: schema(json!({ "template_id": {
                "type": "string", "enum": templates.iter().map(|(id, _)| id).collect::<Vec<_>>() } })),
        });
    }
    if !tags.is_empty() {
        for (name, what) in
            [("add_tag", "Give the contact a tag."), ("remove_tag", "Take a tag away from the contact.")]
        {
            tools.push(ToolSpec {
                name: name.into(),
                description: what.into(),
                parameters: schema(json!({ "tag": { "type": "string", "enum": tags } })),
            });
        }
    }
    tools.push(ToolSpec {
        name: "suppress".into(),
        description: "Never email this recipient again.".into(),
        parameters: schema(json!({})),
    });
    tools.push(ToolSpec {
        name: "notify".into(),
        description: "Alert the customer's team (their webhooks) with a short message.".into(),
        parameters: schema(json!({ "message": { "type": "string", "maxLength": MAX_MESSAGE } })),
    });
    tools.push(ToolSpec { name: "no_action".into(), description: "Do nothing.".into(), parameters: schema(json!({})) });
    tools
}

/// The model's call as an action (`None`: no action), or why it is refused.
pub(crate) fn validate(
    name: &str,
    args: &Value,
    templates: &[(String, String)],
    tags: &[String],
) -> Result<Option<Action>, String> {
    let Value::Object(args) = args else { return Err("the arguments are not an object".into()) };
    let allowed_keys: &[&str] = match name {
        "send_template" if !templates.is_empty() => &["template_id", "reason"],
        "add_tag" | "remove_tag" if !tags.is_empty() => &["tag", "reason"],
        "suppress" | "no_action" => &["reason"],
        "notify" => &["message", "reason"],
        other => {
            return Err(format!("`{}` is not one of the tools offered", other.chars().take(100).collect::<String>()))
        }
    };
    if let Some(extra) = args.keys().find(|k| !allowed_keys.contains(&k.as_str())) {
        return Err(format!("unexpected argument `{}`", extra.chars().take(100).collect::<String>()));
    }
    if args.get("reason").is_some_and(|r| !r.is_string()) {
        return Err("`reason` is not a string".into());
    }
    let text =
        |key: &str| args.get(key).and_then(Value::as_str).ok_or_else(|| format!("`{key}` is missing or not a string"));
    Ok(match name {
        "send_template" => {
            let id = text("template_id")?;
            if !templates.iter().any(|(t, _)| t == id) {
                return Err("`template_id` is not a template this rule allows".into());
            }
            Some(Action::SendTemplate { template_id: id.to_owned(), delay: None, topic_id: None })
        }
        "add_tag" | "remove_tag" => {
            let tag = text("tag")?;
            if !tags.iter().any(|t| t == tag) {
                return Err("`tag` is not a tag this rule allows".into());
            }
            let tag = tag.to_owned();
            Some(if name == "add_tag" { Action::AddTag { tag } } else { Action::RemoveTag { tag } })
        }
        "suppress" => Some(Action::Suppress {}),
        "notify" => {
            let message = text("message")?;
            if message.trim().is_empty() || message.chars().count() > MAX_MESSAGE {
                return Err(format!("`message` must be 1 to {MAX_MESSAGE} characters"));
            }
            check_single_line(message, "message")?;
            Some(Action::Notify { message: message.to_owned() })
        }
        _ => None,
    })
}

/// What the model is told: the event, the contact without personal data, the instructions.
async fn prompt(engine: &Engine, s: &Subject<'_>, instructions: &str) -> anyhow::Result<Value> {
    let run = s.run;
    let contact = match &s.contact {
        None => json!({ "known": false }),
        Some(c) => {
            let e = engine.store.engagement(&run.tenant_id, &c.id).await?;
            json!({
                "known": true,
                "status": c.status,
                "tags": super::contact_tags(c),
                "opens": e.opens,
                "clicks": e.clicks,
            })
        }
    };
    Ok(json!({
        "event": {
            "type": run.event_type,
            "campaign_id": run.campaign_id,
            // Scheme, host and path: no query, no address, no token.
            "link": run.link.as_deref().and_then(link_without_secrets),
        },
        "contact": contact,
        "instructions": instructions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "0192f0c4-0000-7000-8000-000000000001";

    fn templates() -> Vec<(String, String)> {
        vec![(T.to_owned(), "Follow-up".to_owned())]
    }

    #[test]
    fn only_offered_tools_with_allowed_arguments_pass() {
        let tags = vec!["engaged".to_owned()];
        let ok = |name: &str, args: Value| validate(name, &args, &templates(), &tags);
        assert_eq!(
            ok("add_tag", json!({ "tag": "engaged", "reason": "r" })),
            Ok(Some(Action::AddTag { tag: "engaged".into() }))
        );
        assert_eq!(
            ok("send_template", json!({ "template_id": T })),
            Ok(Some(Action::SendTemplate { template_id: T.into(), delay: None, topic_id: None }))
        );
        assert_eq!(ok("no_action", json!({})), Ok(None));
        for (name, args) in [
            ("add_tag", json!({ "tag": "vip" })),
            ("send_template", json!({ "template_id": "0192f0c4-0000-7000-8000-000000000002" })),
            ("send_template", json!({ "template_id": T, "to": "someone@else.example" })),
            ("delete_everything", json!({})),
            ("notify", json!({ "message": "a\r\nBcc: x" })),
            ("notify", json!({ "message": 5 })),
            ("suppress", json!([])),
            ("suppress", json!({ "reason": 1 })),
        ] {
            assert!(ok(name, args.clone()).is_err(), "{name} {args}");
        }
        // Tools the rule did not allow are not offered, and not accepted.
        assert!(validate("add_tag", &json!({ "tag": "engaged" }), &templates(), &[]).is_err());
        assert!(validate("send_template", &json!({ "template_id": T }), &[], &tags).is_err());
    }

    #[test]
    fn tool_schemas_restrict_arguments_to_the_allowances() {
        let offered = tools(&templates(), &["engaged".to_owned()]);
        let names: Vec<&str> = offered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["send_template", "add_tag", "remove_tag", "suppress", "notify", "no_action"]);
        assert_eq!(offered[0].parameters["properties"]["template_id"]["enum"], json!([T]));
        assert_eq!(offered[1].parameters["additionalProperties"], json!(false));
        assert!(tools(&[], &[]).iter().all(|t| t.name != "send_template" && t.name != "add_tag"));
    }
}
