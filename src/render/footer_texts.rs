//! The words of the footer mailroom adds to campaign mail (the unsubscribe
//! and preferences links), in each language a tenant may choose (`locale`).
//! The pages those links open speak the same language: their words are in
//! `api::public_texts`, above this layer.

use crate::domain::Locale;

pub struct FooterTexts {
    /// Before the links: "Don't want these emails?"
    pub ask: &'static str,
    /// The unsubscribe link's words.
    pub unsubscribe: &'static str,
    /// Between the two links.
    pub or: &'static str,
    /// The preferences link's words after the unsubscribe link.
    pub choose: &'static str,
    /// The preferences link's words when it stands alone.
    pub choose_alone: &'static str,
    /// The text body's labels.
    pub text_unsubscribe: &'static str,
    pub text_preferences: &'static str,
}

const EN: FooterTexts = FooterTexts {
    ask: "Don't want these emails?",
    unsubscribe: "Unsubscribe",
    or: "or",
    choose: "choose which ones you get",
    choose_alone: "Choose which emails you get",
    text_unsubscribe: "Unsubscribe",
    text_preferences: "Preferences",
};

const DE: FooterTexts = FooterTexts {
    ask: "Sie möchten diese E-Mails nicht mehr erhalten?",
    unsubscribe: "Abmelden",
    or: "oder",
    choose: "auswählen, welche Sie erhalten",
    choose_alone: "Auswählen, welche E-Mails Sie erhalten",
    text_unsubscribe: "Abmelden",
    text_preferences: "Einstellungen",
};

pub fn footer_texts(locale: Locale) -> &'static FooterTexts {
    match locale {
        Locale::En => &EN,
        Locale::De => &DE,
    }
}
