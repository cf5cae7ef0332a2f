//! A dynamic segment's filter: a JSON tree of `all` / `any` / `not` over
//! conditions on tags, attributes, contact fields and engagement, parsed once
//! at the HTTP edge into [`SegmentFilter`]. Every error names where it is
//! (`filter.all[2].op`). The store compiles a parsed filter into SQL
//! (`store::filter`); nothing here knows SQL.
//!
//! Grammar (each node is an object with exactly one of these shapes):
//!
//! * `{"all": [node, ...]}`, `{"any": [node, ...]}` (non-empty), `{"not": node}`
//! * `{"tag": "premium"}`
//! * `{"attribute": "plan", "op": OP, "value": ...}`, the name `[A-Za-z0-9_]{1,64}`
//! * `{"field": "created_at|email|first_name|last_name|status", "op": OP, "value": ...}`
//! * `{"event": "delivered|opened|clicked|bounced|complained", "campaign_id"?: id, "within_days"?: 1..=3650}`
//!
//! OP is one of `eq ne lt lte gt gte contains starts_with exists in`.
//! Semantics (the same on SQLite and PostgreSQL):
//!
//! * A string value compares with string attributes only, byte-wise (code point
//!   order); a number with number attributes only, numerically; a boolean
//!   (`eq`/`ne` only) with boolean attributes. `"5"` never equals `5`.
//! * A missing (or JSON `null`) attribute matches no operator but
//!   `{"not": {... "op": "exists"}}`. `ne` matches a present attribute whose
//!   value is not equal (including one of another type); `not eq` also matches
//!   contacts without the attribute.
//! * `contains` and `starts_with` take a non-empty string and are case-sensitive.
//! * `in` takes 1 to 100 strings or numbers and means `eq` any of them.
//! * Numbers are within ±(2^53 - 1), where both databases compare alike.
//! * `exists` takes no value.
//! * `created_at` takes epoch milliseconds (an integer) or an RFC 3339 time;
//!   `email` compares the lower-cased address with the lower-cased value;
//!   `status` takes `eq`, `ne` or `in` over `subscribed unsubscribed bounced complained`.

use std::fmt;

use serde_json::Value;

use super::Tag;

/// Largest magnitude of a number in a filter: 2^53 - 1.
const MAX_SAFE_NUMBER: f64 = 9_007_199_254_740_991.0;

/// Deepest nesting accepted (the root is depth 1).
pub const MAX_DEPTH: usize = 10;
/// Most leaf conditions in one filter.
pub const MAX_CONDITIONS: usize = 50;
/// Most values in one `in` list.
pub const MAX_IN_VALUES: usize = 100;
/// Longest string value, in characters.
pub const MAX_TEXT: usize = 1000;
/// Longest `within_days`: ten years.
pub const MAX_WITHIN_DAYS: u64 = 3650;

/// A parsed filter together with the JSON it was parsed from (what is stored
/// and shown back).
#[derive(Clone, Debug, PartialEq)]
pub struct SegmentFilter {
    root: Condition,
    source: Value,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Tag(Tag),
    Attribute { name: AttributeName, test: Test },
    Field { field: ContactField, test: Test },
    Event(EventCondition),
}

/// An attribute name safe to use in a JSON path: `[A-Za-z0-9_]{1,64}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttributeName(String);

impl AttributeName {
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = (1..=64).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ok.then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
}

impl Cmp {
    pub fn sql(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "<>",
            Self::Lt => "<",
            Self::Lte => "<=",
            Self::Gt => ">",
            Self::Gte => ">=",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Text(String),
    Number(f64),
    Bool(bool),
    /// Epoch milliseconds (`created_at`).
    Millis(i64),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Test {
    Compare(Cmp, Scalar),
    Contains(String),
    StartsWith(String),
    Exists,
    In(Vec<Scalar>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContactField {
    CreatedAt,
    Email,
    FirstName,
    LastName,
    Status,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Delivered,
    Opened,
    Clicked,
    Bounced,
    Complained,
}

impl EventKind {
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "delivered" => Self::Delivered,
            "opened" => Self::Opened,
            "clicked" => Self::Clicked,
            "bounced" => Self::Bounced,
            "complained" => Self::Complained,
            _ => return None,
        })
    }

    /// The Resend webhook event type that records it.
    pub fn webhook_type(self) -> &'static str {
        match self {
            Self::Delivered => "email.delivered",
            Self::Opened => "email.opened",
            Self::Clicked => "email.clicked",
            Self::Bounced => "email.bounced",
            Self::Complained => "email.complained",
        }
    }

    /// Message statuses that mean the event happened: a message keeps only its
    /// highest status, so an opened email that was clicked shows `clicked`, and
    /// a complaint is only possible about a delivered email.
    pub fn implied_by(self) -> &'static [super::MessageStatus] {
        use super::MessageStatus as S;
        match self {
            Self::Delivered => &[S::Delivered, S::Opened, S::Clicked, S::Complained],
            Self::Opened => &[S::Opened, S::Clicked],
            Self::Clicked => &[S::Clicked],
            Self::Bounced => &[S::Bounced],
            Self::Complained => &[S::Complained],
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EventCondition {
    pub kind: EventKind,
    pub campaign_id: Option<String>,
    pub within_days: Option<u32>,
}

/// Where a filter is wrong, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.path, self.message)
    }
}

impl std::error::Error for FilterError {}

fn err(path: &str, message: impl Into<String>) -> FilterError {
    FilterError { path: path.to_owned(), message: message.into() }
}

impl SegmentFilter {
    /// Parses a filter found at `path` of a request (e.g. `filter`).
    pub fn parse(value: &Value, path: &str) -> Result<Self, FilterError> {
        let mut conditions = 0;
        let root = parse_node(value, path, 1, &mut conditions)?;
        Ok(Self { root, source: value.clone() })
    }

    pub fn root(&self) -> &Condition {
        &self.root
    }

    /// The filter as given (what is stored and shown).
    pub fn source(&self) -> &Value {
        &self.source
    }
}

const SHAPES: &str = "expected an object with one of `all`, `any`, `not`, `tag`, `attribute`, `field`, `event`";

fn parse_node(v: &Value, path: &str, depth: usize, conditions: &mut usize) -> Result<Condition, FilterError> {
    if depth > MAX_DEPTH {
        return Err(err(path, format!("filters nest at most {MAX_DEPTH} levels deep")));
    }
    let Value::Object(map) = v else { return Err(err(path, SHAPES)) };
    let kind = ["all", "any", "not", "tag", "attribute", "field", "event"]
        .into_iter()
        .find(|k| map.contains_key(*k))
        .ok_or_else(|| match map.keys().next() {
        Some(k) => err(&format!("{path}.{k}"), format!("unknown key `{k}`; {SHAPES}")),
        None => err(path, SHAPES),
    })?;
    let allowed: &[&str] = match kind {
        "attribute" => &["attribute", "op", "value"],
        "field" => &["field", "op", "value"],
        "event" => &["event", "campaign_id", "within_days"],
        _ => &[],
    };
    if let Some(k) = map.keys().find(|k| k.as_str() != kind && !allowed.contains(&k.as_str())) {
        return Err(err(&format!("{path}.{k}"), format!("unknown key `{k}` in a `{kind}` node")));
    }
    let at = |k: &str| format!("{path}.{k}");
    let get = |k: &str| map.get(k).unwrap_or(&Value::Null);
    if matches!(kind, "all" | "any" | "not") {
        if kind == "not" {
            return Ok(Condition::Not(Box::new(parse_node(get("not"), &at("not"), depth + 1, conditions)?)));
        }
        let Value::Array(items) = get(kind) else {
            return Err(err(&at(kind), "must be an array of conditions"));
        };
        if items.is_empty() {
            return Err(err(&at(kind), "must hold at least one condition"));
        }
        let children = items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_node(item, &format!("{path}.{kind}[{i}]"), depth + 1, conditions))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(if kind == "all" { Condition::All(children) } else { Condition::Any(children) });
    }
    *conditions += 1;
    if *conditions > MAX_CONDITIONS {
        return Err(err(path, format!("a filter holds at most {MAX_CONDITIONS} conditions")));
    }
    match kind {
        "tag" => {
            let raw = get("tag").as_str().ok_or_else(|| err(&at("tag"), "must be a string"))?;
            Ok(Condition::Tag(Tag::parse(raw).map_err(|e| err(&at("tag"), e))?))
        }
        "attribute" => {
            let raw = get("attribute").as_str().ok_or_else(|| err(&at("attribute"), "must be a string"))?;
            let name = AttributeName::parse(raw)
                .ok_or_else(|| err(&at("attribute"), "an attribute name is 1 to 64 ASCII letters, digits or `_`"))?;
            let test = parse_test(map, path, ValueKind::Any)?;
            Ok(Condition::Attribute { name, test })
        }
        "field" => {
            let raw = get("field").as_str().ok_or_else(|| err(&at("field"), "must be a string"))?;
            let (field, kind) = match raw {
                "created_at" => (ContactField::CreatedAt, ValueKind::Time),
                "email" => (ContactField::Email, ValueKind::Email),
                "first_name" => (ContactField::FirstName, ValueKind::Text),
                "last_name" => (ContactField::LastName, ValueKind::Text),
                "status" => (ContactField::Status, ValueKind::Status),
                other => {
                    return Err(err(
                        &at("field"),
                        format!("unknown field `{other}`; one of created_at, email, first_name, last_name, status"),
                    ))
                }
            };
            Ok(Condition::Field { field, test: parse_test(map, path, kind)? })
        }
        _ => parse_event(map, path),
    }
}

/// What values a condition's subject takes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ValueKind {
    /// An attribute: string, number or boolean.
    Any,
    Text,
    Email,
    Time,
    Status,
}

const CONTACT_STATUSES: [&str; 4] = ["subscribed", "unsubscribed", "bounced", "complained"];

fn parse_test(map: &serde_json::Map<String, Value>, path: &str, kind: ValueKind) -> Result<Test, FilterError> {
    let op_path = format!("{path}.op");
    let value_path = format!("{path}.value");
    let op = map.get("op").and_then(Value::as_str).ok_or_else(|| err(&op_path, "required: a string operator"))?;
    let value = map.get("value");
    let cmp = match op {
        "eq" => Some(Cmp::Eq),
        "ne" => Some(Cmp::Ne),
        "lt" => Some(Cmp::Lt),
        "lte" => Some(Cmp::Lte),
        "gt" => Some(Cmp::Gt),
        "gte" => Some(Cmp::Gte),
        "contains" | "starts_with" | "exists" | "in" => None,
        other => {
            return Err(err(
                &op_path,
                format!(
                    "unknown operator `{other}`; one of eq, ne, lt, lte, gt, gte, contains, starts_with, exists, in"
                ),
            ))
        }
    };
    let refuse = || err(&op_path, format!("`{op}` does not apply to this field"));
    let ordered = matches!(cmp, Some(Cmp::Lt | Cmp::Lte | Cmp::Gt | Cmp::Gte));
    if kind == ValueKind::Status && (ordered || matches!(op, "contains" | "starts_with" | "exists")) {
        return Err(refuse());
    }
    if matches!(kind, ValueKind::Time) && matches!(op, "contains" | "starts_with" | "exists") {
        return Err(refuse());
    }
    if kind == ValueKind::Email && op == "exists" {
        return Err(refuse());
    }
    if op == "exists" {
        return match value {
            None => Ok(Test::Exists),
            Some(_) => Err(err(&value_path, "`exists` takes no value")),
        };
    }
    let value = value.ok_or_else(|| err(&value_path, "required"))?;
    if let Some(cmp) = cmp {
        let scalar = parse_scalar(value, &value_path, kind)?;
        if ordered && matches!(scalar, Scalar::Bool(_)) {
            return Err(err(&value_path, "booleans compare with `eq` and `ne` only"));
        }
        return Ok(Test::Compare(cmp, scalar));
    }
    if op == "in" {
        let Value::Array(items) = value else { return Err(err(&value_path, "`in` takes an array of values")) };
        if items.is_empty() || items.len() > MAX_IN_VALUES {
            return Err(err(&value_path, format!("`in` takes 1 to {MAX_IN_VALUES} values")));
        }
        let values = items
            .iter()
            .enumerate()
            .map(|(i, item)| parse_scalar(item, &format!("{value_path}[{i}]"), kind))
            .collect::<Result<Vec<_>, _>>()?;
        if values.iter().any(|v| matches!(v, Scalar::Bool(_))) {
            return Err(err(&value_path, "`in` takes strings or numbers"));
        }
        return Ok(Test::In(values));
    }
    // contains | starts_with
    let Scalar::Text(s) = parse_scalar(value, &value_path, kind)? else {
        return Err(err(&value_path, format!("`{op}` takes a string")));
    };
    if s.is_empty() {
        return Err(err(&value_path, format!("`{op}` takes a non-empty string")));
    }
    Ok(if op == "contains" { Test::Contains(s) } else { Test::StartsWith(s) })
}

fn parse_scalar(v: &Value, path: &str, kind: ValueKind) -> Result<Scalar, FilterError> {
    let text = |s: &str| {
        if s.chars().count() > MAX_TEXT {
            Err(err(path, format!("at most {MAX_TEXT} characters")))
        } else {
            Ok(s.to_owned())
        }
    };
    match (kind, v) {
        (ValueKind::Time, Value::String(s)) => super::parse_rfc3339(s).map(Scalar::Millis).map_err(|e| match e {
            super::TimeError::NotRfc3339 => err(path, "an RFC 3339 time (2026-01-31T09:00:00Z) or epoch milliseconds"),
            super::TimeError::OutOfRange => err(path, "out of range"),
        }),
        (ValueKind::Time, Value::Number(n)) => {
            n.as_i64().map(Scalar::Millis).ok_or_else(|| err(path, "epoch milliseconds must be an integer"))
        }
        (ValueKind::Time, _) => Err(err(path, "an RFC 3339 time or epoch milliseconds")),
        (ValueKind::Status, Value::String(s)) if CONTACT_STATUSES.contains(&s.as_str()) => Ok(Scalar::Text(s.clone())),
        (ValueKind::Status, _) => Err(err(path, format!("a contact status: one of {}", CONTACT_STATUSES.join(", ")))),
        (ValueKind::Email, Value::String(s)) => Ok(Scalar::Text(text(s)?.to_lowercase())),
        (ValueKind::Text | ValueKind::Any, Value::String(s)) => Ok(Scalar::Text(text(s)?)),
        // Within JavaScript's safe integers, where a number means the same to
        // SQLite (which compares exactly) and PostgreSQL (which compares as a
        // double): past them, 2^53 + 1 and 2^53 are one double.
        (ValueKind::Any, Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.abs() <= MAX_SAFE_NUMBER)
            .map(Scalar::Number)
            .ok_or_else(|| err(path, "a number between -9007199254740991 and 9007199254740991")),
        (ValueKind::Any, Value::Bool(b)) => Ok(Scalar::Bool(*b)),
        (ValueKind::Any, _) => Err(err(path, "a string, number or boolean")),
        (ValueKind::Text | ValueKind::Email, _) => Err(err(path, "a string")),
    }
}

fn parse_event(map: &serde_json::Map<String, Value>, path: &str) -> Result<Condition, FilterError> {
    let raw =
        map.get("event").and_then(Value::as_str).ok_or_else(|| err(&format!("{path}.event"), "must be a string"))?;
    let kind = EventKind::parse(raw)
        .ok_or_else(|| err(&format!("{path}.event"), "one of delivered, opened, clicked, bounced, complained"))?;
    let campaign_id = match map.get("campaign_id") {
        None => None,
        Some(v) => Some(
            v.as_str()
                .and_then(super::parse_id)
                .ok_or_else(|| err(&format!("{path}.campaign_id"), "must be a campaign id"))?,
        ),
    };
    let within_days = match map.get("within_days") {
        None => None,
        Some(v) => Some(
            v.as_u64().filter(|d| (1..=MAX_WITHIN_DAYS).contains(d)).and_then(|d| u32::try_from(d).ok()).ok_or_else(
                || err(&format!("{path}.within_days"), format!("an integer from 1 to {MAX_WITHIN_DAYS}")),
            )?,
        ),
    };
    Ok(Condition::Event(EventCondition { kind, campaign_id, within_days }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<SegmentFilter, FilterError> {
        SegmentFilter::parse(&v, "filter")
    }

    fn path_of(v: Value) -> String {
        parse(v).err().map(|e| e.path).unwrap_or_else(|| "accepted".into())
    }

    #[test]
    fn a_compound_filter_parses_into_its_tree() {
        let f = parse(json!({"all": [
            {"tag": "premium"},
            {"attribute": "plan", "op": "in", "value": ["pro", "team"]},
            {"not": {"event": "opened", "within_days": 30}},
            {"field": "created_at", "op": "gte", "value": "2026-01-01T00:00:00Z"}
        ]}))
        .unwrap();
        let Condition::All(children) = f.root() else { panic!("not all") };
        assert_eq!(children.len(), 4);
        assert_eq!(
            children[3],
            Condition::Field {
                field: ContactField::CreatedAt,
                test: Test::Compare(Cmp::Gte, Scalar::Millis(1_767_225_600_000))
            }
        );
    }

    #[test]
    fn errors_name_the_path_of_what_is_wrong() {
        assert_eq!(
            path_of(json!({"all": [{"tag": "a"}, {"tag": "b"}, {"attribute": "x", "op": "like", "value": 1}]})),
            "filter.all[2].op"
        );
        assert_eq!(path_of(json!({"any": [{"not": {"attribute": "x", "op": "eq"}}]})), "filter.any[0].not.value");
        assert_eq!(path_of(json!({"tag": "a", "extra": 1})), "filter.extra");
        assert_eq!(path_of(json!({"bogus": 1})), "filter.bogus");
        assert_eq!(path_of(json!({})), "filter");
        assert_eq!(path_of(json!([])), "filter");
        assert_eq!(path_of(json!({"field": "phone", "op": "eq", "value": "x"})), "filter.field");
        assert_eq!(path_of(json!({"attribute": "plan", "op": "in", "value": []})), "filter.value");
        assert_eq!(path_of(json!({"attribute": "plan", "op": "in", "value": ["a", {"b": 1}]})), "filter.value[1]");
        assert_eq!(path_of(json!({"attribute": "plan", "op": "eq", "value": null})), "filter.value");
        assert_eq!(path_of(json!({"attribute": "plan", "op": "lt", "value": true})), "filter.value");
        assert_eq!(path_of(json!({"attribute": "plan", "op": "exists", "value": 1})), "filter.value");
        assert_eq!(path_of(json!({"attribute": "plan", "op": "contains", "value": 3})), "filter.value");
        assert_eq!(path_of(json!({"field": "status", "op": "eq", "value": "gone"})), "filter.value");
        assert_eq!(path_of(json!({"field": "status", "op": "lt", "value": "bounced"})), "filter.op");
        assert_eq!(path_of(json!({"field": "created_at", "op": "eq", "value": "yesterday"})), "filter.value");
        assert_eq!(path_of(json!({"event": "read"})), "filter.event");
        assert_eq!(path_of(json!({"event": "opened", "within_days": 0})), "filter.within_days");
        assert_eq!(path_of(json!({"event": "opened", "campaign_id": "nope"})), "filter.campaign_id");
        assert_eq!(path_of(json!({"all": []})), "filter.all");
        assert_eq!(path_of(json!({"not": [{"tag": "a"}]})), "filter.not");
    }

    #[test]
    fn attribute_names_outside_the_safe_alphabet_are_refused() {
        for bad in ["plan'; DROP TABLE contacts;--", "$.x", "a.b", "a\"b", "plän", "", &"x".repeat(65), "a b", "a[0]"]
        {
            assert_eq!(path_of(json!({"attribute": bad, "op": "exists"})), "filter.attribute", "{bad}");
        }
        assert!(parse(json!({"attribute": "Plan_2", "op": "exists"})).is_ok());
    }

    #[test]
    fn numbers_past_the_safe_integers_are_refused() {
        for bad in
            [json!(9_007_199_254_740_993_i64), json!(-9_223_372_036_854_775_808_i64), json!(1e300), json!(u64::MAX)]
        {
            let f = json!({"attribute": "n", "op": "lte", "value": bad});
            assert_eq!(path_of(f), "filter.value", "{bad}");
        }
        assert_eq!(
            path_of(json!({"attribute": "n", "op": "in", "value": [1, 9_007_199_254_740_992_i64]})),
            "filter.value[1]"
        );
        assert!(parse(json!({"attribute": "n", "op": "eq", "value": 9_007_199_254_740_991_i64})).is_ok());
        assert!(parse(json!({"attribute": "n", "op": "gt", "value": -0.5})).is_ok());
    }

    #[test]
    fn depth_beyond_ten_is_refused() {
        let mut f = json!({"tag": "a"});
        for _ in 0..9 {
            f = json!({ "not": f });
        }
        assert!(parse(f.clone()).is_ok(), "depth 10 is fine");
        let e = parse(json!({ "not": f })).unwrap_err();
        assert!(e.message.contains("at most 10"), "{e}");
        assert_eq!(e.path, format!("filter{}", ".not".repeat(10)));
    }

    #[test]
    fn more_than_fifty_conditions_are_refused() {
        let fifty: Vec<Value> = (0..50).map(|i| json!({"tag": format!("t{i}")})).collect();
        assert!(parse(json!({ "any": fifty })).is_ok());
        let fifty_one: Vec<Value> = (0..51).map(|i| json!({"tag": format!("t{i}")})).collect();
        assert_eq!(path_of(json!({ "any": fifty_one })), "filter.any[50]");
    }

    #[test]
    fn email_values_are_lower_cased_and_created_at_takes_millis() {
        let f = parse(json!({"field": "email", "op": "eq", "value": "A@Example.ORG"})).unwrap();
        assert_eq!(
            f.root(),
            &Condition::Field {
                field: ContactField::Email,
                test: Test::Compare(Cmp::Eq, Scalar::Text("a@example.org".into()))
            }
        );
        let f = parse(json!({"field": "created_at", "op": "lt", "value": 1_000})).unwrap();
        assert_eq!(
            f.root(),
            &Condition::Field { field: ContactField::CreatedAt, test: Test::Compare(Cmp::Lt, Scalar::Millis(1000)) }
        );
        assert_eq!(path_of(json!({"field": "created_at", "op": "lt", "value": 1.5})), "filter.value");
    }
}
