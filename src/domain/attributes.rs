//! A contact's custom attributes: a flat JSON object, checked wherever one is
//! written (create, patch, import) so that every stored contact can be exported
//! as one CSV row and merged by a later import.

use serde_json::{Map, Value};

/// Most keys one contact holds.
pub const MAX_KEYS: usize = 50;
/// Longest key, in characters of `[A-Za-z0-9_]`.
pub const MAX_KEY_LEN: usize = 64;
/// Longest string value, in characters.
pub const MAX_STRING_CHARS: usize = 1_000;
/// Column names of a contact export; an attribute named like one would collide
/// with it in the CSV header and could not be imported back.
pub const RESERVED_KEYS: [&str; 6] = ["email", "first_name", "last_name", "tags", "status", "created_at"];

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes(Map<String, Value>);

impl Attributes {
    /// Parses a JSON value given for `attributes`. Errors name the offending
    /// key, e.g. `attributes.plan: ...`.
    pub fn parse(value: &Value) -> Result<Self, String> {
        let Value::Object(map) = value else {
            return Err("attributes: must be a JSON object".into());
        };
        if map.len() > MAX_KEYS {
            return Err(format!("attributes: at most {MAX_KEYS} keys (got {})", map.len()));
        }
        for (key, v) in map {
            check_key(key)?;
            check_value(key, v)?;
        }
        Ok(Self(map.clone()))
    }

    /// Attributes as stored. Rows written before these rules are taken as they
    /// are: anything but an object reads as empty.
    pub fn from_stored(json: &str) -> Self {
        match serde_json::from_str(json) {
            Ok(Value::Object(map)) => Self(map),
            _ => Self::default(),
        }
    }

    /// Sets a string value (a CSV cell), checked like any other.
    pub fn insert_text(&mut self, key: &str, value: String) -> Result<(), String> {
        check_key(key)?;
        let v = Value::String(value);
        check_value(key, &v)?;
        self.0.insert(key.to_owned(), v);
        if self.0.len() > MAX_KEYS {
            return Err(format!("attributes: at most {MAX_KEYS} keys"));
        }
        Ok(())
    }

    /// Adds `other`'s keys to these, its values winning; the result must still
    /// hold at most [`MAX_KEYS`] keys.
    pub fn merge(&mut self, other: &Attributes) -> Result<(), String> {
        for (k, v) in &other.0 {
            self.0.insert(k.clone(), v.clone());
        }
        if self.0.len() > MAX_KEYS {
            return Err(format!("attributes: the contact would hold more than {MAX_KEYS} keys"));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_json(&self) -> String {
        Value::Object(self.0.clone()).to_string()
    }
}

/// `[A-Za-z0-9_]{1,64}` and not one of the export's own columns.
pub fn check_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        let shown: String = key.chars().take(MAX_KEY_LEN).collect();
        return Err(format!("attributes: key {shown:?} must be 1 to {MAX_KEY_LEN} letters, digits or underscores"));
    }
    if RESERVED_KEYS.contains(&key) {
        return Err(format!("attributes.{key}: `{key}` is a contact field, not an attribute name"));
    }
    Ok(())
}

fn check_value(key: &str, v: &Value) -> Result<(), String> {
    match v {
        Value::String(s) => {
            if s.contains('\0') {
                return Err(format!("attributes.{key}: must not contain a NUL character"));
            }
            if s.chars().count() > MAX_STRING_CHARS {
                return Err(format!("attributes.{key}: a string is at most {MAX_STRING_CHARS} characters"));
            }
            Ok(())
        }
        Value::Number(_) | Value::Bool(_) => Ok(()),
        Value::Null => Err(format!("attributes.{key}: must be a string, number or boolean, not null")),
        Value::Array(_) | Value::Object(_) => {
            Err(format!("attributes.{key}: must be a string, number or boolean (attributes are flat)"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flat_objects_of_strings_numbers_and_booleans_are_accepted() {
        let a = Attributes::parse(&json!({ "plan": "pro", "seats": 3, "trial": false, "score_2": 1.5 })).unwrap();
        assert_eq!(a.len(), 4);
        assert_eq!(Attributes::from_stored(&a.to_json()), a);
    }

    #[test]
    fn nested_null_and_non_object_values_are_refused_by_key() {
        for (v, key) in [
            (json!({ "plan": null }), "attributes.plan"),
            (json!({ "plan": [1] }), "attributes.plan"),
            (json!({ "plan": { "a": 1 } }), "attributes.plan"),
        ] {
            let e = Attributes::parse(&v).unwrap_err();
            assert!(e.starts_with(key), "{e}");
        }
        assert!(Attributes::parse(&json!([1])).unwrap_err().starts_with("attributes:"));
        assert!(Attributes::parse(&json!("x")).is_err());
    }

    #[test]
    fn keys_follow_the_pattern_and_avoid_the_contact_fields() {
        for bad in ["", "has space", "dash-ed", "é", &"k".repeat(65), "email", "status"] {
            assert!(Attributes::parse(&json!({ bad: "x" })).is_err(), "{bad:?} accepted");
        }
        assert!(Attributes::parse(&json!({ "A_z9": "x", &"k".repeat(64): 1 })).is_ok());
    }

    #[test]
    fn at_most_fifty_keys_and_thousand_character_strings_without_nul() {
        let many: Map<String, Value> = (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
        assert!(Attributes::parse(&Value::Object(many)).unwrap_err().contains("at most 50"));
        assert!(Attributes::parse(&json!({ "a": "é".repeat(1000) })).is_ok());
        assert!(Attributes::parse(&json!({ "a": "x".repeat(1001) })).unwrap_err().starts_with("attributes.a:"));
        assert!(Attributes::parse(&json!({ "a": "x\u{0}y" })).unwrap_err().contains("NUL"));
    }

    #[test]
    fn a_merge_lets_the_newer_values_win_within_the_key_limit() {
        let mut a = Attributes::parse(&json!({ "plan": "free", "seats": 1 })).unwrap();
        a.merge(&Attributes::parse(&json!({ "plan": "pro" })).unwrap()).unwrap();
        assert_eq!(a, Attributes::parse(&json!({ "plan": "pro", "seats": 1 })).unwrap());
        let full: Map<String, Value> = (0..50).map(|i| (format!("k{i}"), json!(i))).collect();
        let mut full = Attributes::parse(&Value::Object(full)).unwrap();
        assert!(full.merge(&a).is_err());
    }

    #[test]
    fn stored_values_that_are_not_objects_read_as_empty() {
        assert!(Attributes::from_stored("[1]").is_empty());
        assert!(Attributes::from_stored("not json").is_empty());
    }
}
