//! Topic columns of an import: `topic:<name or id>` with `subscribed`,
//! `unsubscribed`, or empty (the contact's choice left as it is).

use std::collections::HashMap;

use crate::domain::TopicState;

/// The tenant's topics as an import names them: by id, or by name in any case.
#[derive(Clone, Debug, Default)]
pub struct TopicIndex {
    by_key: HashMap<String, String>,
}

impl TopicIndex {
    /// From the tenant's topics as (id, name).
    pub fn new(topics: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut by_key = HashMap::new();
        for (id, name) in topics {
            by_key.insert(name.trim().to_lowercase(), id.clone());
            by_key.insert(id.clone(), id);
        }
        Self { by_key }
    }

    /// The id of the topic named `key` (its id, or its name in any case).
    pub fn resolve(&self, key: &str) -> Option<&str> {
        let key = key.trim();
        self.by_key.get(key).or_else(|| self.by_key.get(&key.to_lowercase())).map(String::as_str)
    }
}

/// The topic a column header names (`topic:News`), if it is a topic column.
pub fn topic_column(header: &str) -> Option<&str> {
    let (prefix, rest) = header.split_at_checked(6)?;
    prefix.eq_ignore_ascii_case("topic:").then_some(rest)
}

/// A topic cell: `subscribed`, `unsubscribed` (in any case), or empty for
/// no change.
pub fn topic_state(topic: &str, cell: &str) -> Result<Option<TopicState>, String> {
    match cell.trim().to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "subscribed" => Ok(Some(TopicState::Subscribed)),
        "unsubscribed" => Ok(Some(TopicState::Unsubscribed)),
        _ => Err(format!("topic:{topic}: `subscribed`, `unsubscribed` or empty, not `{}`", cell.escape_debug())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_is_named_by_id_or_by_name_in_any_case() {
        let index = TopicIndex::new([("t1".to_owned(), "Product News".to_owned())]);
        assert_eq!(index.resolve("product news"), Some("t1"));
        assert_eq!(index.resolve(" PRODUCT NEWS "), Some("t1"));
        assert_eq!(index.resolve("t1"), Some("t1"));
        assert_eq!(index.resolve("other"), None);
        assert_eq!(topic_column("Topic:News"), Some("News"));
        assert_eq!(topic_column("topics"), None);
        assert_eq!(topic_state("x", " Subscribed ").unwrap(), Some(TopicState::Subscribed));
        assert_eq!(topic_state("x", "").unwrap(), None);
        assert!(topic_state("x", "yes").is_err());
    }
}
