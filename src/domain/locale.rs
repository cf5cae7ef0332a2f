//! The languages recipients' pages (preference centre, unsubscribe) speak.

/// A tenant's language.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Locale {
    #[default]
    En,
    De,
}

impl Locale {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "en" => Ok(Self::En),
            "de" => Ok(Self::De),
            other => Err(format!("`locale` must be `en` or `de`, not `{}`", other.escape_debug())),
        }
    }

    /// A stored value; anything unknown reads as English.
    pub fn from_stored(raw: &str) -> Self {
        Self::parse(raw).unwrap_or_default()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::De => "de",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locale_is_english_or_german_and_anything_else_is_refused() {
        assert_eq!(Locale::parse("de"), Ok(Locale::De));
        assert_eq!(Locale::parse("en").map(Locale::as_str), Ok("en"));
        assert!(Locale::parse("fr").unwrap_err().contains("`en` or `de`"));
        assert_eq!(Locale::from_stored("??"), Locale::En);
    }
}
