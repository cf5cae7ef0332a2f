//! A dynamic segment's filter compiled to one SQL boolean over the contact `c`
//! of tenant `$1`. Every value, attribute name included, is bound as a
//! parameter; the only text spliced in comes from this file (operators,
//! column names, status names of `MessageStatus`). The two backends differ only
//! in how a JSON attribute is read (SQLite `json_type`/`json_extract` over the
//! TEXT column, PostgreSQL `jsonb_typeof`/`->>` over its `::jsonb` cast) and
//! in spelling byte-wise string order (PostgreSQL: `COLLATE "C"`; SQLite's
//! default BINARY collation already is), so both give the same answers.
//!
//! Every condition is wrapped in `COALESCE(..., FALSE)`: SQL's NULL never
//! leaks into `NOT`, so `not` always means the complement.

use super::{Backend, Placeholders};
use crate::domain::filter::{Cmp, Condition, ContactField, EventCondition, Scalar, Test};
use crate::domain::SegmentFilter;

/// A bound parameter of a compiled filter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SqlValue {
    Text(String),
    Int(i64),
    Float(f64),
}

const DAY_MS: i64 = 86_400_000;

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds a compiled filter's values, in order, after those already bound.
pub(crate) fn bind_values<'q>(mut q: AnyQuery<'q>, values: &'q [SqlValue]) -> AnyQuery<'q> {
    for v in values {
        q = match v {
            SqlValue::Text(s) => q.bind(s.as_str()),
            SqlValue::Int(n) => q.bind(*n),
            SqlValue::Float(f) => q.bind(*f),
        };
    }
    q
}

/// Compiles `filter` into a boolean SQL expression over `c`, numbering its
/// parameters with `ph` and pushing their values onto `binds`. `now` (epoch
/// ms) anchors `within_days`.
pub(crate) fn compile(
    filter: &SegmentFilter,
    backend: Backend,
    ph: &mut Placeholders,
    binds: &mut Vec<SqlValue>,
    now: i64,
) -> String {
    Compiler { backend, ph, binds, now }.node(filter.root())
}

struct Compiler<'a> {
    backend: Backend,
    ph: &'a mut Placeholders,
    binds: &'a mut Vec<SqlValue>,
    now: i64,
}

impl Compiler<'_> {
    fn bind(&mut self, v: SqlValue) -> String {
        self.binds.push(v);
        self.ph.next()
    }

    fn node(&mut self, c: &Condition) -> String {
        match c {
            Condition::All(children) => self.join(children, " AND "),
            Condition::Any(children) => self.join(children, " OR "),
            Condition::Not(child) => format!("(NOT {})", self.node(child)),
            leaf => {
                let sql = self.leaf(leaf);
                format!("COALESCE({sql}, FALSE)")
            }
        }
    }

    fn join(&mut self, children: &[Condition], op: &str) -> String {
        let parts: Vec<String> = children.iter().map(|c| self.node(c)).collect();
        format!("({})", parts.join(op))
    }

    fn leaf(&mut self, c: &Condition) -> String {
        match c {
            Condition::Tag(tag) => {
                // A probe of contact_tags' primary key per contact: measured
                // twice as fast on SQLite as building the tag's set first, and
                // PostgreSQL turns it into a semi-join.
                let t = self.bind(SqlValue::Text(tag.as_str().to_owned()));
                format!("EXISTS (SELECT 1 FROM contact_tags t WHERE t.contact_id = c.id AND t.tag = {t})")
            }
            Condition::Attribute { name, test } => {
                let key = self.bind(SqlValue::Text(name.as_str().to_owned()));
                self.attribute(&key, test)
            }
            Condition::Field { field, test } => self.field(*field, test),
            Condition::Event(e) => self.event(e),
            // Combinators are handled by `node`.
            Condition::All(_) | Condition::Any(_) | Condition::Not(_) => "FALSE".into(),
        }
    }

    /// `(type, value)` SQL of the attribute named by the bound `key`: the type
    /// in this backend's JSON vocabulary, the value as SQL text or number.
    fn attribute(&mut self, key: &str, test: &Test) -> String {
        let (ty, val) = match self.backend {
            Backend::Sqlite => {
                let path = format!("'$.\"' || {key} || '\"'");
                (format!("json_type(c.attributes, {path})"), format!("json_extract(c.attributes, {path})"))
            }
            Backend::Postgres => {
                (format!("jsonb_typeof(c.attributes::jsonb -> {key})"), format!("(c.attributes::jsonb ->> {key})"))
            }
        };
        let exists = format!("COALESCE({ty}, 'null') <> 'null'");
        match test {
            Test::Exists => exists,
            Test::Compare(Cmp::Ne, v) => {
                let eq = self.attribute_cmp(key, &ty, &val, Cmp::Eq, v);
                format!("({exists} AND NOT COALESCE({eq}, FALSE))")
            }
            Test::Compare(cmp, v) => self.attribute_cmp(key, &ty, &val, *cmp, v),
            Test::In(values) => self.attribute_in(key, &ty, &val, values),
            Test::Contains(s) => {
                let p = self.bind(SqlValue::Text(s.clone()));
                let found = match self.backend {
                    Backend::Sqlite => format!("instr({val}, {p}) > 0"),
                    Backend::Postgres => format!("strpos({val}, {p}) > 0"),
                };
                format!("({ty} = {} AND {found})", self.string_type())
            }
            Test::StartsWith(s) => {
                let p = self.bind(SqlValue::Text(s.clone()));
                format!("({ty} = {} AND substr({val}, 1, length({p})) = {p})", self.string_type())
            }
        }
    }

    /// A bound scalar as a jsonb value (PostgreSQL).
    fn jsonb_value(&mut self, v: &Scalar) -> String {
        match v {
            Scalar::Text(s) => format!("to_jsonb(CAST({} AS TEXT))", self.bind(SqlValue::Text(s.clone()))),
            Scalar::Number(n) => format!("to_jsonb(CAST({} AS DOUBLE PRECISION))", self.bind(SqlValue::Float(*n))),
            Scalar::Millis(n) => format!("to_jsonb(CAST({} AS BIGINT))", self.bind(SqlValue::Int(*n))),
            Scalar::Bool(b) => format!("to_jsonb(CAST({} AS BOOLEAN))", self.bind(SqlValue::Text(b.to_string()))),
        }
    }

    /// `in`: one `IN (...)` per kind of value, so the attribute is read once
    /// per kind rather than once per value.
    fn attribute_in(&mut self, key: &str, ty: &str, val: &str, values: &[Scalar]) -> String {
        if self.backend == Backend::Postgres {
            let list: Vec<String> = values.iter().map(|v| self.jsonb_value(v)).collect();
            return format!("(c.attributes::jsonb -> {}) IN ({})", key, list.join(", "));
        }
        let mut parts = Vec::new();
        let texts: Vec<SqlValue> = values
            .iter()
            .filter_map(|v| if let Scalar::Text(s) = v { Some(SqlValue::Text(s.clone())) } else { None })
            .collect();
        let numbers: Vec<SqlValue> = values
            .iter()
            .filter_map(|v| if let Scalar::Number(n) = v { Some(SqlValue::Float(*n)) } else { None })
            .collect();
        if !texts.is_empty() {
            let list = self.bind_list(texts);
            parts.push(format!("({ty} = {} AND {} IN ({list}))", self.string_type(), self.bytewise(val)));
        }
        if !numbers.is_empty() {
            let list = self.bind_list(numbers);
            parts.push(match self.backend {
                Backend::Sqlite => format!("({ty} IN ('integer', 'real') AND {val} IN ({list}))"),
                Backend::Postgres => {
                    format!(
                        "(CASE WHEN {ty} = 'number' THEN CAST({val} AS DOUBLE PRECISION) IN ({list}) ELSE FALSE END)"
                    )
                }
            });
        }
        if parts.is_empty() {
            return "FALSE".into();
        }
        format!("({})", parts.join(" OR "))
    }

    fn bind_list(&mut self, values: Vec<SqlValue>) -> String {
        values.into_iter().map(|v| self.bind(v)).collect::<Vec<_>>().join(", ")
    }

    fn string_type(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "'text'",
            Backend::Postgres => "'string'",
        }
    }

    fn attribute_cmp(&mut self, key: &str, ty: &str, val: &str, cmp: Cmp, v: &Scalar) -> String {
        let op = cmp.sql();
        if cmp == Cmp::Eq && self.backend == Backend::Postgres {
            // jsonb equality is typed (`"5"` is not `5`, `5.0` is `5`) and reads
            // the attribute once.
            let p = self.jsonb_value(v);
            return format!("(c.attributes::jsonb -> {}) = {p}", key);
        }
        match (v, self.backend) {
            // SQLite evaluates AND left to right: the type is checked only
            // for the few rows whose value compares true.
            (Scalar::Text(s), Backend::Sqlite) => {
                let p = self.bind(SqlValue::Text(s.clone()));
                format!("({val} {op} {p} AND {ty} = 'text')")
            }
            (Scalar::Text(s), Backend::Postgres) => {
                let p = self.bind(SqlValue::Text(s.clone()));
                format!("({ty} = 'string' AND {} {op} {p})", self.bytewise(val))
            }
            (Scalar::Number(n), Backend::Sqlite) => {
                let p = self.bind(SqlValue::Float(*n));
                format!("({val} {op} {p} AND {ty} IN ('integer', 'real'))")
            }
            // The cast only runs on numbers: CASE fixes the order of evaluation.
            (Scalar::Number(n), Backend::Postgres) => {
                let p = self.bind(SqlValue::Float(*n));
                format!("(CASE WHEN {ty} = 'number' THEN CAST({val} AS DOUBLE PRECISION) {op} {p} ELSE FALSE END)")
            }
            (Scalar::Millis(n), Backend::Sqlite) => {
                let p = self.bind(SqlValue::Int(*n));
                format!("({ty} IN ('integer', 'real') AND {val} {op} {p})")
            }
            (Scalar::Millis(n), Backend::Postgres) => {
                let p = self.bind(SqlValue::Float(*n as f64));
                format!("(CASE WHEN {ty} = 'number' THEN CAST({val} AS DOUBLE PRECISION) {op} {p} ELSE FALSE END)")
            }
            (Scalar::Bool(b), Backend::Sqlite) => {
                // json_type says 'true' or 'false' for booleans.
                let p = self.bind(SqlValue::Text(b.to_string()));
                format!("({ty} {op} {p} AND {ty} IN ('true', 'false'))")
            }
            (Scalar::Bool(b), Backend::Postgres) => {
                let p = self.bind(SqlValue::Text(b.to_string()));
                format!("({ty} = 'boolean' AND {val} {op} {p})")
            }
        }
    }

    /// Text in code-point order on both backends.
    fn bytewise(&self, expr: &str) -> String {
        match self.backend {
            Backend::Sqlite => expr.to_owned(),
            Backend::Postgres => format!("{expr} COLLATE \"C\""),
        }
    }

    fn field(&mut self, field: ContactField, test: &Test) -> String {
        let col = match field {
            ContactField::CreatedAt => "c.created_at",
            ContactField::Email => "c.email_normalized",
            ContactField::FirstName => "c.first_name",
            ContactField::LastName => "c.last_name",
            ContactField::Status => "c.status",
        };
        match test {
            Test::Exists => format!("({col} IS NOT NULL AND {col} <> '')"),
            Test::Compare(cmp, v) => self.field_cmp(col, *cmp, v),
            Test::In(values) => {
                let parts: Vec<String> = values.iter().map(|v| self.field_cmp(col, Cmp::Eq, v)).collect();
                format!("({})", parts.join(" OR "))
            }
            Test::Contains(s) => {
                let p = self.bind(SqlValue::Text(s.clone()));
                match self.backend {
                    Backend::Sqlite => format!("instr({col}, {p}) > 0"),
                    Backend::Postgres => format!("strpos({col}, {p}) > 0"),
                }
            }
            Test::StartsWith(s) => {
                let p = self.bind(SqlValue::Text(s.clone()));
                format!("substr({col}, 1, length({p})) = {p}")
            }
        }
    }

    fn field_cmp(&mut self, col: &str, cmp: Cmp, v: &Scalar) -> String {
        let op = cmp.sql();
        match v {
            Scalar::Millis(n) => {
                let p = self.bind(SqlValue::Int(*n));
                format!("{col} {op} {p}")
            }
            Scalar::Text(s) => {
                let p = self.bind(SqlValue::Text(s.clone()));
                format!("{} {op} {p}", self.bytewise(col))
            }
            // The parser gives fields only text or times.
            Scalar::Number(_) | Scalar::Bool(_) => "FALSE".into(),
        }
    }

    /// The contact had a message of this tenant (in one campaign, or any) that
    /// reached the event: its status implies it (a message keeps its highest
    /// status only), or a webhook event of that type was recorded for it (which
    /// remembers an open even after a later complaint). Both sides are sets
    /// found through indexes, not probes per contact: the tenant's campaigns'
    /// messages (`messages_once_per_recipient`) plus its transactional ones
    /// (`messages_transactional`), and the tenant's events of that type
    /// (`webhook_events_tenant_type`, migration 0015).
    fn event(&mut self, e: &EventCondition) -> String {
        let statuses: Vec<String> = e.kind.implied_by().iter().map(|s| format!("'{}'", s.as_str())).collect();
        let statuses = statuses.join(", ");
        let campaign = e.campaign_id.as_ref().map(|id| self.bind(SqlValue::Text(id.clone())));
        let since = e.within_days.map(|d| self.bind(SqlValue::Int(self.now - i64::from(d) * DAY_MS)));
        let event_type = self.bind(SqlValue::Text(e.kind.webhook_type().to_owned()));
        let m_since = since.as_ref().map(|s| format!(" AND m.updated_at >= {s}")).unwrap_or_default();
        let e_since = since.as_ref().map(|s| format!(" AND e.received_at >= {s}")).unwrap_or_default();
        let by_status = format!("m.contact_id IS NOT NULL AND m.status IN ({statuses}){m_since}");
        let (messages, e_campaign) = match &campaign {
            Some(cid) => (
                format!("SELECT m.contact_id FROM messages m WHERE m.campaign_id = {cid} AND m.tenant_id = $1 AND {by_status}"),
                format!(" AND m.campaign_id = {cid}"),
            ),
            None => (
                format!(
                    "SELECT m.contact_id FROM messages m WHERE m.campaign_id IN (SELECT k.id FROM campaigns k WHERE k.tenant_id = $1) \
                       AND m.tenant_id = $1 AND {by_status} \
                     UNION ALL SELECT m.contact_id FROM messages m WHERE m.tenant_id = $1 AND m.campaign_id IS NULL AND {by_status}"
                ),
                String::new(),
            ),
        };
        format!(
            "c.id IN ({messages} \
             UNION ALL SELECT m.contact_id FROM webhook_events e JOIN messages m ON m.id = e.message_id \
               WHERE e.tenant_id = $1 AND e.event_type = {event_type}{e_since} AND m.tenant_id = $1 \
                 AND m.contact_id IS NOT NULL{e_campaign})"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn compiled(v: Value, backend: Backend) -> (String, Vec<SqlValue>) {
        let f = SegmentFilter::parse(&v, "filter").unwrap();
        let mut binds = Vec::new();
        let sql = compile(&f, backend, &mut Placeholders::after(1), &mut binds, 1_000_000_000_000);
        (sql, binds)
    }

    const HOSTILE: [&str; 5] = ["plan'; DROP TABLE contacts;--", "$.x", "O'Brien \"quoted\"", "ünïcødé ☃", "a\\b"];

    #[test]
    fn no_value_ever_appears_in_the_sql() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            for hostile in HOSTILE {
                let (sql, binds) = compiled(
                    json!({"any": [
                        {"attribute": "plan", "op": "eq", "value": hostile},
                        {"attribute": "plan", "op": "contains", "value": hostile},
                        {"attribute": "plan", "op": "starts_with", "value": hostile},
                        {"attribute": "plan", "op": "in", "value": [hostile, 42]},
                        {"field": "first_name", "op": "lt", "value": hostile},
                        {"field": "email", "op": "contains", "value": hostile},
                        {"tag": "premium"},
                        {"attribute": "score", "op": "gte", "value": 12345.5},
                        {"field": "created_at", "op": "gt", "value": 987654321},
                        {"event": "opened", "campaign_id": "0190f0e0-0000-7000-8000-000000000001", "within_days": 7}
                    ]}),
                    backend,
                );
                for needle in [hostile, "premium", "plan", "score", "12345", "987654321", "0190f0e0", "email.opened"] {
                    assert!(!sql.contains(needle), "{needle} spliced into {sql}");
                }
                assert!(binds.contains(&SqlValue::Text(hostile.to_owned())));
                assert!(binds.contains(&SqlValue::Text("plan".into())));
                // Every bound value has its placeholder, numbered from $2.
                for n in 2..=binds.len() + 1 {
                    assert!(sql.contains(&format!("${n}")), "${n} missing in {sql}");
                }
                assert!(!sql.contains(&format!("${}", binds.len() + 2)));
            }
        }
    }

    #[test]
    fn combinators_nest_with_explicit_parentheses_and_not_sees_no_null() {
        let (sql, binds) =
            compiled(json!({"not": {"any": [{"tag": "a"}, {"all": [{"tag": "b"}, {"tag": "c"}]}]}}), Backend::Sqlite);
        assert!(sql.starts_with("(NOT (COALESCE("), "{sql}");
        assert_eq!(sql.matches("COALESCE(").count(), 3);
        assert_eq!(binds, ["a", "b", "c"].map(|t| SqlValue::Text(t.into())));
    }

    #[test]
    fn postgres_orders_strings_bytewise_and_casts_only_numbers() {
        let (sql, _) = compiled(json!({"attribute": "plan", "op": "lt", "value": "m"}), Backend::Postgres);
        assert!(sql.contains("COLLATE \"C\""), "{sql}");
        let (sql, binds) = compiled(json!({"attribute": "n", "op": "gt", "value": 3}), Backend::Postgres);
        assert!(sql.contains("CASE WHEN jsonb_typeof"), "{sql}");
        assert_eq!(binds[1], SqlValue::Float(3.0));
    }

    #[test]
    fn within_days_binds_a_cutoff_from_now() {
        let (_, binds) = compiled(json!({"event": "clicked", "within_days": 2}), Backend::Sqlite);
        assert!(binds.contains(&SqlValue::Int(1_000_000_000_000 - 2 * DAY_MS)));
    }
}
