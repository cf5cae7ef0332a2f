//! The segment builder: a filter as the form shows it (all or any of a few
//! condition rows, each of which may be negated), read back into the API's
//! filter grammar (`domain::filter`), and any stored filter told in words.
//! Nothing is validated here beyond the form's own shape: the filter goes to
//! `service::segments`, whose errors the page shows in the form's words.

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::form::{shown_value, typed_value, Fields};
use crate::domain::filter::MAX_CONDITIONS;

/// Condition rows a form offers (more with "Add a condition", up to the filter's limit).
pub const ROWS: usize = 5;

/// What a condition row can say, as its select offers it.
pub const KINDS: [(&str, &str); 9] = [
    ("tag", "Has the tag"),
    ("status", "Status is"),
    ("email_contains", "Email contains"),
    ("attribute_eq", "Attribute equals"),
    ("attribute_present", "Attribute is present"),
    ("opened", "Opened an email"),
    ("clicked", "Clicked a link"),
    ("delivered", "Was delivered an email"),
    ("bounced", "Bounced"),
];

/// Statuses a `status` row may name.
pub const STATUSES: [&str; 4] = ["subscribed", "unsubscribed", "bounced", "complained"];

const EVENTS: [&str; 4] = ["opened", "clicked", "delivered", "bounced"];

#[derive(Serialize, Default, Clone, Debug, PartialEq)]
pub struct ConditionRow {
    pub kind: String,
    /// The attribute's name (attribute rows).
    pub name: String,
    /// The tag, status, text, attribute value or number of days.
    pub value: String,
    pub negated: bool,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct SegmentFields {
    pub name: String,
    /// `all` or `any`.
    pub combinator: String,
    pub rows: Vec<ConditionRow>,
}

impl Default for SegmentFields {
    fn default() -> Self {
        Self { name: String::new(), combinator: "all".into(), rows: vec![ConditionRow::default(); ROWS] }
    }
}

impl SegmentFields {
    /// The form as posted; `more` adds a blank row (the "Add a condition" button).
    pub fn posted(f: &Fields, more: bool) -> Self {
        let rows: Vec<ConditionRow> = (0..MAX_CONDITIONS)
            .map(|i| ConditionRow {
                kind: f.get(&format!("c{i}_kind")).trim().to_owned(),
                name: f.get(&format!("c{i}_name")).trim().to_owned(),
                value: f.get(&format!("c{i}_value")).trim().to_owned(),
                negated: f.checked(&format!("c{i}_not")),
            })
            .collect();
        // Shown again: the rows the form had (those used at least), one more if asked.
        let had = (0..MAX_CONDITIONS).filter(|i| f.has(&format!("c{i}_kind"))).count();
        let used = rows.iter().rposition(|r| !r.kind.is_empty()).map_or(0, |i| i + 1);
        let shown = (had.max(used).max(ROWS) + usize::from(more)).min(MAX_CONDITIONS);
        let mut out = Self {
            name: f.get("name").to_owned(),
            combinator: if f.get("combinator") == "any" { "any".into() } else { "all".into() },
            rows,
        };
        out.rows.truncate(shown);
        out
    }

    /// A stored segment in the form, when the builder can show its filter
    /// (`None` for one written through the API with nesting or operators the
    /// rows cannot hold); a static segment has blank rows.
    pub fn of(name: &str, filter: Option<&Value>) -> Option<Self> {
        let mut out = Self { name: name.to_owned(), ..Self::default() };
        let Some(filter) = filter else { return Some(out) };
        let (combinator, items) = match filter.as_object().and_then(|m| m.iter().next()) {
            Some((k, Value::Array(items))) if (k == "all" || k == "any") && filter.as_object()?.len() == 1 => {
                (k.clone(), items.clone())
            }
            _ => ("all".to_owned(), vec![filter.clone()]),
        };
        let rows = items.iter().map(row_of).collect::<Option<Vec<_>>>()?;
        out.combinator = combinator;
        let shown = (rows.len() + 1).clamp(ROWS, MAX_CONDITIONS);
        out.rows = rows;
        out.rows.resize(shown, ConditionRow::default());
        Some(out)
    }

    /// The filter the rows describe (`None` when every row is blank), and the
    /// form's row number of each condition in it, for [`SegmentFields::humanize`].
    pub fn filter(&self) -> Result<Option<(Value, Vec<usize>)>, String> {
        let mut conditions = Vec::new();
        let mut numbers = Vec::new();
        for (i, row) in self.rows.iter().enumerate() {
            let Some(c) = row.condition().map_err(|e| format!("Condition {}: {e}", i + 1))? else { continue };
            conditions.push(if row.negated { json!({ "not": c }) } else { c });
            numbers.push(i + 1);
        }
        if conditions.is_empty() {
            return Ok(None);
        }
        let mut root = Map::new();
        root.insert(self.combinator.clone(), Value::Array(conditions));
        Ok(Some((Value::Object(root), numbers)))
    }

    /// The filter's error paths (`filter.any[1].not.value`) as the form labels
    /// them (`Condition 3 value`), given each condition's row number.
    pub fn humanize(message: &str, numbers: &[usize]) -> String {
        let mut out = message.to_owned();
        for (at, row) in numbers.iter().enumerate().rev() {
            for c in ["all", "any"] {
                for tail in [".not.", ".not", "."] {
                    let from = format!("filter.{c}[{at}]{tail}");
                    let to = if tail.ends_with('.') { format!("Condition {row} ") } else { format!("Condition {row}") };
                    out = out.replace(&from, &to);
                }
                out = out.replace(&format!("filter.{c}[{at}]"), &format!("Condition {row}"));
            }
        }
        out.replace('`', "")
    }
}

impl ConditionRow {
    /// The row as a filter node; `None` for a blank row.
    fn condition(&self) -> Result<Option<Value>, String> {
        let v = self.value.as_str();
        Ok(Some(match self.kind.as_str() {
            "" => return Ok(None),
            "tag" => json!({ "tag": v }),
            "status" => json!({ "field": "status", "op": "eq", "value": v }),
            "email_contains" => json!({ "field": "email", "op": "contains", "value": v.to_lowercase() }),
            "attribute_eq" => json!({ "attribute": self.name, "op": "eq", "value": typed_value(v) }),
            "attribute_present" => json!({ "attribute": self.name, "op": "exists" }),
            kind if EVENTS.contains(&kind) => {
                if v.is_empty() {
                    json!({ "event": kind })
                } else {
                    let days = v
                        .parse::<u64>()
                        .map_err(|_| "give the number of days as a whole number, or leave it empty for any time")?;
                    json!({ "event": kind, "within_days": days })
                }
            }
            _ => return Err("choose what the condition is about from the list".into()),
        }))
    }
}

/// A filter node as a builder row, if it is one of the shapes the rows hold.
fn row_of(node: &Value) -> Option<ConditionRow> {
    let (negated, node) = match node.get("not") {
        Some(inner) if node.as_object()?.len() == 1 => (true, inner),
        _ => (false, node),
    };
    let m = node.as_object()?;
    let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_owned);
    let (kind, name, value) = if let Some(tag) = text("tag") {
        ("tag", String::new(), tag)
    } else if let Some(field) = text("field") {
        match (field.as_str(), text("op")?.as_str()) {
            ("status", "eq") => ("status", String::new(), text("value")?),
            ("email", "contains") => ("email_contains", String::new(), text("value")?),
            _ => return None,
        }
    } else if let Some(name) = text("attribute") {
        match text("op")?.as_str() {
            "eq" => ("attribute_eq", name, shown_value(m.get("value")?)?),
            "exists" => ("attribute_present", name, String::new()),
            _ => return None,
        }
    } else if let Some(event) = text("event") {
        let kind = *EVENTS.iter().find(|e| **e == event)?;
        if m.contains_key("campaign_id") {
            return None;
        }
        let days = m.get("within_days").map(|d| d.as_u64().map(|d| d.to_string())).unwrap_or(Some(String::new()))?;
        (kind, String::new(), days)
    } else {
        return None;
    };
    Some(ConditionRow { kind: kind.into(), name, value, negated })
}

/// Any filter node in words: `has the tag “vip”`, `not (status is bounced)`,
/// `any of: (…); (…)`.
pub fn describe(node: &Value) -> String {
    let Some(m) = node.as_object() else { return node.to_string() };
    let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("");
    if let Some(items) = m.get("all").or_else(|| m.get("any")).and_then(Value::as_array) {
        let which = if m.contains_key("all") { "all of" } else { "any of" };
        let parts: Vec<String> = items.iter().map(|i| format!("({})", describe(i))).collect();
        return format!("{which}: {}", parts.join("; "));
    }
    if let Some(inner) = m.get("not") {
        return format!("not ({})", describe(inner));
    }
    if m.contains_key("tag") {
        return format!("has the tag {}", quoted(&Value::String(text("tag").into())));
    }
    if let Some(event) = m.get("event").and_then(Value::as_str) {
        let mut out = match event {
            "opened" => "opened an email".to_owned(),
            "clicked" => "clicked a link in an email".to_owned(),
            "delivered" => "was delivered an email".to_owned(),
            "bounced" => "bounced".to_owned(),
            "complained" => "marked an email as spam".to_owned(),
            other => other.to_owned(),
        };
        if let Some(c) = m.get("campaign_id").and_then(Value::as_str) {
            out.push_str(&format!(" of campaign {c}"));
        }
        match m.get("within_days").and_then(Value::as_u64) {
            Some(1) => out.push_str(" in the last day"),
            Some(d) => out.push_str(&format!(" in the last {d} days")),
            None => out.push_str(" (any time)"),
        }
        return out;
    }
    let subject = if m.contains_key("attribute") {
        format!("attribute {}", text("attribute"))
    } else {
        text("field").replace('_', " ")
    };
    let op = match text("op") {
        "eq" => "is",
        "ne" => "is not",
        "lt" => "is less than",
        "lte" => "is at most",
        "gt" => "is more than",
        "gte" => "is at least",
        "contains" => "contains",
        "starts_with" => "starts with",
        "exists" => return format!("{subject} is present"),
        "in" => "is one of",
        other => other,
    };
    let value = match m.get("value") {
        Some(Value::Array(vs)) => vs.iter().map(quoted).collect::<Vec<_>>().join(", "),
        Some(v) => quoted(v),
        None => String::new(),
    };
    format!("{subject} {op} {value}")
}

fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => format!("“{s}”"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: &str, name: &str, value: &str, negated: bool) -> ConditionRow {
        ConditionRow { kind: kind.into(), name: name.into(), value: value.into(), negated }
    }

    #[test]
    fn rows_become_a_filter_and_blank_rows_are_left_out() {
        let mut f = SegmentFields { name: "x".into(), combinator: "any".into(), ..SegmentFields::default() };
        f.rows[0] = row("tag", "", "vip", false);
        f.rows[2] = row("attribute_eq", "plan", "5", true);
        f.rows[3] = row("opened", "", "30", false);
        let (filter, numbers) = f.filter().unwrap().unwrap();
        assert_eq!(
            filter,
            json!({"any": [{"tag": "vip"}, {"not": {"attribute": "plan", "op": "eq", "value": 5}},
                {"event": "opened", "within_days": 30}]})
        );
        assert_eq!(numbers, [1, 3, 4]);
        assert_eq!(SegmentFields::default().filter().unwrap(), None);
    }

    #[test]
    fn a_filter_the_rows_can_hold_comes_back_as_the_same_rows() {
        let filter = json!({"any": [{"tag": "vip"}, {"not": {"attribute": "plan", "op": "eq", "value": "5"}},
            {"field": "email", "op": "contains", "value": "@acme"}, {"event": "clicked"}]});
        let f = SegmentFields::of("n", Some(&filter)).unwrap();
        assert_eq!(f.rows[1], row("attribute_eq", "plan", "\"5\"", true));
        assert_eq!(f.rows.len(), ROWS);
        assert_eq!(f.filter().unwrap().unwrap().0, filter);
        let nested = json!({"all": [{"any": [{"tag": "a"}, {"tag": "b"}]}]});
        assert_eq!(SegmentFields::of("n", Some(&nested)), None);
    }

    #[test]
    fn filter_paths_read_as_the_form_numbers_its_rows() {
        assert_eq!(
            SegmentFields::humanize("`filter.any[1].not.value`: must be a string", &[1, 4]),
            "Condition 4 value: must be a string"
        );
        assert_eq!(SegmentFields::humanize("`filter.all[0].tag`: bad", &[2]), "Condition 2 tag: bad");
    }

    #[test]
    fn any_filter_reads_in_words() {
        let filter = json!({"any": [{"tag": "vip"}, {"not": {"field": "status", "op": "eq", "value": "bounced"}},
            {"event": "opened", "within_days": 30}, {"attribute": "plan", "op": "in", "value": ["a", 2]}]});
        assert_eq!(
            describe(&filter),
            "any of: (has the tag “vip”); (not (status is “bounced”)); (opened an email in the last 30 days); \
             (attribute plan is one of “a”, 2)"
        );
    }
}
