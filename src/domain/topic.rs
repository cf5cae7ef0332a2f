//! Topics: the subjects a tenant mails about (a newsletter, product news),
//! each with a default, and a contact's choice per topic.

use super::check_single_line;

/// Longest topic name, in characters.
pub const TOPIC_NAME_MAX: usize = 100;
/// Longest topic description, in characters.
pub const TOPIC_DESCRIPTION_MAX: usize = 500;

/// A topic's name: 1 to 100 characters on one line, trimmed. Unique per
/// tenant regardless of case ([`TopicName::key`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicName(String);

impl TopicName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() {
            return Err("`name` must not be empty".into());
        }
        check_single_line(s, "name")?;
        if s.chars().count() > TOPIC_NAME_MAX {
            return Err(format!("`name` is longer than {TOPIC_NAME_MAX} characters"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as compared for uniqueness: "Newsletter" and "newsletter" are one topic.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }
}

/// What a topic tells recipients about itself (shown on the preference
/// page): at most 500 characters; line breaks allowed, no other control
/// characters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TopicDescription(String);

impl TopicDescription {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if let Some(c) = s.chars().find(|c| super::is_header_unsafe(*c) && *c != '\n' && *c != '\r') {
            return Err(match c {
                '\0' => "`description` must not contain a NUL character".to_owned(),
                c => format!("`description` must not contain control characters (found U+{:04X})", c as u32),
            });
        }
        if s.chars().count() > TOPIC_DESCRIPTION_MAX {
            return Err(format!("`description` is longer than {TOPIC_DESCRIPTION_MAX} characters"));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a contact stands on a topic it has made no choice about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicDefault {
    /// Not subscribed until the contact says so.
    OptIn,
    /// Subscribed until the contact says no.
    OptOut,
}

impl TopicDefault {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OptIn => "opt_in",
            Self::OptOut => "opt_out",
        }
    }

    /// As stored; anything else reads as the safer `opt_in`.
    pub fn from_stored(s: &str) -> Self {
        if s == "opt_out" {
            Self::OptOut
        } else {
            Self::OptIn
        }
    }

    /// The state of a contact who has made no choice.
    pub fn state(self) -> TopicState {
        match self {
            Self::OptIn => TopicState::Unsubscribed,
            Self::OptOut => TopicState::Subscribed,
        }
    }
}

/// A contact's state on a topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicState {
    Subscribed,
    Unsubscribed,
}

impl TopicState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Subscribed => "subscribed",
            Self::Unsubscribed => "unsubscribed",
        }
    }

    /// A contact's effective state: its own choice (as stored), else the topic's default.
    pub fn effective(choice: Option<&str>, default: TopicDefault) -> Self {
        match choice {
            Some("subscribed") => Self::Subscribed,
            Some("unsubscribed") => Self::Unsubscribed,
            _ => default.state(),
        }
    }
}

/// A change of a contact's choice on a topic: to a state, or back to the
/// topic's default (the contact's own choice forgotten).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicChoice {
    Set(TopicState),
    Default,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_name_is_trimmed_one_line_and_at_most_100_characters() {
        assert_eq!(TopicName::parse("  News ").unwrap().as_str(), "News");
        assert_eq!(TopicName::parse("Ünïcode").unwrap().key(), "ünïcode");
        assert!(TopicName::parse(" ").is_err());
        assert!(TopicName::parse("a\nb").is_err());
        assert!(TopicName::parse("a\0b").unwrap_err().contains("NUL"));
        assert!(TopicName::parse(&"é".repeat(100)).is_ok());
        assert!(TopicName::parse(&"é".repeat(101)).is_err());
    }

    #[test]
    fn a_description_may_break_lines_but_carries_no_other_control_character() {
        assert_eq!(TopicDescription::parse("Monthly.\nNo spam.").unwrap().as_str(), "Monthly.\nNo spam.");
        assert!(TopicDescription::parse("tab\there").is_err());
        assert!(TopicDescription::parse("nul\0").unwrap_err().contains("NUL"));
        assert!(TopicDescription::parse(&"x".repeat(501)).is_err());
    }

    #[test]
    fn without_a_choice_a_contact_is_at_the_topics_default() {
        assert_eq!(TopicState::effective(None, TopicDefault::OptIn), TopicState::Unsubscribed);
        assert_eq!(TopicState::effective(None, TopicDefault::OptOut), TopicState::Subscribed);
        assert_eq!(TopicState::effective(Some("unsubscribed"), TopicDefault::OptOut), TopicState::Unsubscribed);
        assert_eq!(TopicState::effective(Some("subscribed"), TopicDefault::OptIn), TopicState::Subscribed);
    }
}
