//! The words of the pages recipients see (unsubscribe, preference centre), in
//! each language a tenant may choose. `{name}` (the tenant) and `{topic}` are
//! filled in, already escaped, by [`fill`]. The footer that links to these
//! pages from campaign mail has its words in `render::footer_texts`.

use crate::domain::Locale;

pub struct Texts {
    pub lang: &'static str,
    pub not_found_title: &'static str,
    pub not_found_body: &'static str,
    pub unsubscribe_title: &'static str,
    pub ask_topic: &'static str,
    pub ask_all: &'static str,
    pub unsubscribe_button: &'static str,
    pub unsubscribed_title: &'static str,
    pub left_topic: &'static str,
    pub others_still_come: &'static str,
    pub everything_button: &'static str,
    pub left_all: &'static str,
    pub preferences_title: &'static str,
    pub preferences_intro: &'static str,
    pub no_topics: &'static str,
    pub all_label: &'static str,
    pub all_hint: &'static str,
    pub globally_off: &'static str,
    pub save_button: &'static str,
    pub saved: &'static str,
    pub refused_title: &'static str,
    pub refused_body: &'static str,
    pub thanks_title: &'static str,
    pub thanks_confirm: &'static str,
    pub thanks_signed_up: &'static str,
    pub not_signed_up_title: &'static str,
    pub check_address: &'static str,
    /// `{topic}` holds the minutes.
    pub too_many: &'static str,
    /// A double opt-in form whose customer cannot send its confirmation yet.
    pub not_ready: &'static str,
    pub confirm_title: &'static str,
    pub confirm_ask: &'static str,
    pub confirm_button: &'static str,
    pub confirmed_title: &'static str,
    pub confirmed_body: &'static str,
    pub open_again: &'static str,
}

const EN: Texts = Texts {
    lang: "en",
    not_found_title: "Link not valid",
    not_found_body: "This link is not valid.",
    unsubscribe_title: "Unsubscribe",
    ask_topic: "Stop receiving <strong>{topic}</strong> email from <strong>{name}</strong>?",
    ask_all: "Stop receiving marketing email from <strong>{name}</strong>?",
    unsubscribe_button: "Unsubscribe",
    unsubscribed_title: "You are unsubscribed",
    left_topic: "You will not get <strong>{topic}</strong> email from {name} again.",
    others_still_come: "Other email from {name} still comes. To stop all of it:",
    everything_button: "Unsubscribe from everything",
    left_all: "{name} will not send you marketing email again.",
    preferences_title: "Email preferences",
    preferences_intro: "Choose which email you get from <strong>{name}</strong>.",
    no_topics: "{name} has no topics to choose from.",
    all_label: "Unsubscribe from all",
    all_hint: "No more marketing email from {name}, whatever is ticked above.",
    globally_off: "You are unsubscribed from all marketing email from {name}. You can still change your topics, \
                   but that does not subscribe you again: only confirming a new signup does.",
    save_button: "Save",
    saved: "Saved.",
    refused_title: "Not saved",
    refused_body: "Your choices could not be read. Please open the link in your email again.",
    thanks_title: "Thank you",
    thanks_confirm:
        "We have sent you an email: please open the link in it to confirm your subscription to <strong>{name}</strong>.",
    thanks_signed_up: "Thank you for signing up to <strong>{name}</strong>.",
    not_signed_up_title: "Not signed up",
    check_address: "Please check the email address you entered, and try again.",
    too_many: "Too many signups at once. Please try again in {topic} minutes.",
    not_ready: "This form does not take signups yet. Please try again later.",
    confirm_title: "Confirm your subscription",
    confirm_ask: "Press the button to confirm that you want email from <strong>{name}</strong>.",
    confirm_button: "Confirm my subscription",
    confirmed_title: "Subscription confirmed",
    confirmed_body: "Thank you: you are subscribed to <strong>{name}</strong>.",
    open_again: "Please open the link in your email again.",
};

const DE: Texts = Texts {
    lang: "de",
    not_found_title: "Link ungültig",
    not_found_body: "Dieser Link ist nicht gültig.",
    unsubscribe_title: "Abmelden",
    ask_topic: "Keine E-Mails zum Thema <strong>{topic}</strong> von <strong>{name}</strong> mehr erhalten?",
    ask_all: "Keine Werbe-E-Mails von <strong>{name}</strong> mehr erhalten?",
    unsubscribe_button: "Abmelden",
    unsubscribed_title: "Sie sind abgemeldet",
    left_topic: "Sie erhalten keine E-Mails zum Thema <strong>{topic}</strong> von {name} mehr.",
    others_still_come: "Andere E-Mails von {name} erhalten Sie weiterhin. Um alle abzubestellen:",
    everything_button: "Von allem abmelden",
    left_all: "{name} sendet Ihnen keine Werbe-E-Mails mehr.",
    preferences_title: "E-Mail-Einstellungen",
    preferences_intro: "Wählen Sie, welche E-Mails Sie von <strong>{name}</strong> erhalten.",
    no_topics: "{name} bietet keine Themen zur Auswahl an.",
    all_label: "Von allem abmelden",
    all_hint: "Keine Werbe-E-Mails mehr von {name}, egal was oben angekreuzt ist.",
    globally_off: "Sie sind von allen Werbe-E-Mails von {name} abgemeldet. Sie können Ihre Themen trotzdem ändern, \
                   das meldet Sie aber nicht wieder an: Das geht nur über die Bestätigung einer neuen Anmeldung.",
    save_button: "Speichern",
    saved: "Gespeichert.",
    refused_title: "Nicht gespeichert",
    refused_body: "Ihre Auswahl konnte nicht gelesen werden. Bitte öffnen Sie den Link in Ihrer E-Mail erneut.",
    thanks_title: "Vielen Dank",
    thanks_confirm: "Wir haben Ihnen eine E-Mail geschickt: Bitte öffnen Sie den Link darin, um Ihr Abonnement bei <strong>{name}</strong> zu bestätigen.",
    thanks_signed_up: "Vielen Dank für Ihre Anmeldung bei <strong>{name}</strong>.",
    not_signed_up_title: "Nicht angemeldet",
    check_address: "Bitte prüfen Sie die eingegebene E-Mail-Adresse und versuchen Sie es erneut.",
    too_many: "Zu viele Anmeldungen auf einmal. Bitte versuchen Sie es in {topic} Minuten erneut.",
    not_ready: "Dieses Formular nimmt noch keine Anmeldungen an. Bitte versuchen Sie es später erneut.",
    confirm_title: "Abonnement bestätigen",
    confirm_ask: "Bestätigen Sie mit dem Knopf, dass Sie E-Mails von <strong>{name}</strong> erhalten möchten.",
    confirm_button: "Abonnement bestätigen",
    confirmed_title: "Abonnement bestätigt",
    confirmed_body: "Vielen Dank: Sie erhalten nun E-Mails von <strong>{name}</strong>.",
    open_again: "Bitte öffnen Sie den Link in Ihrer E-Mail erneut.",
};

pub fn texts(locale: Locale) -> &'static Texts {
    match locale {
        Locale::En => &EN,
        Locale::De => &DE,
    }
}

/// The tenant's texts, from its stored locale.
pub fn of(stored_locale: &str) -> &'static Texts {
    texts(Locale::from_stored(stored_locale))
}

/// `text` with `{name}` and `{topic}` replaced by values the caller has escaped.
pub fn fill(text: &str, name: &str, topic: &str) -> String {
    text.replace("{name}", name).replace("{topic}", topic)
}
