//! One-click unsubscribe links (RFC 8058). A link names one message: from it
//! mailroom knows the tenant, the recipient and the campaign, and the address
//! never appears in the link. The token is the message id with an HMAC-SHA256
//! tag under the server's secret, so a token cannot be guessed, forged, or
//! walked from one recipient to the next.
//!
//! The preference centre's link (`/p/{token}`) carries the same token: whoever
//! holds one link of an email holds the other, so a second token would add a
//! second HMAC per email and no safety.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::footer_texts::FooterTexts;

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the tag kept in a token (128 bits).
const TAG_LEN: usize = 16;
/// Separates this use of the secret from any other.
const CONTEXT: &[u8] = b"mailroom/unsubscribe/v1\0";
/// The double opt-in confirmation link's use of the secret (`/c/{token}`).
const CONFIRM_CONTEXT: &[u8] = b"mailroom/confirm/v1\0";
/// Keyed hashes of addresses and client IPs (signup rate limits).
const KEYED_HASH_CONTEXT: &[u8] = b"mailroom/keyed-hash/v1\0";

#[derive(Clone)]
pub struct UnsubscribeLinks {
    /// The server's secret as an HMAC key, with each use's context already
    /// taken in: a token costs the hash of its 16 bytes, not of the key's
    /// pads again (the fan-out makes one per email).
    unsubscribe: HmacSha256,
    confirm: HmacSha256,
    keyed_hash: HmacSha256,
    base: String,
}

impl UnsubscribeLinks {
    /// `public_url` is where recipients reach this service (`PUBLIC_URL`).
    pub fn new(secret: &str, public_url: &str) -> Self {
        let keyed = |context: &[u8]| {
            // HMAC takes keys of any length: this cannot fail.
            let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
            mac.update(context);
            mac
        };
        Self {
            unsubscribe: keyed(CONTEXT),
            confirm: keyed(CONFIRM_CONTEXT),
            keyed_hash: keyed(KEYED_HASH_CONTEXT),
            base: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The keyed state of `context` with `data` taken in.
    fn mac_in(&self, context: &[u8], data: &[u8]) -> HmacSha256 {
        let mut mac = match context {
            CONFIRM_CONTEXT => self.confirm.clone(),
            KEYED_HASH_CONTEXT => self.keyed_hash.clone(),
            _ => self.unsubscribe.clone(),
        };
        mac.update(data);
        mac
    }

    /// The token for a message, or `None` if the id is not one of ours.
    pub fn token(&self, message_id: &str) -> Option<String> {
        self.token_in(CONTEXT, message_id)
    }

    fn token_in(&self, context: &[u8], id: &str) -> Option<String> {
        let id = *uuid::Uuid::parse_str(id).ok()?.as_bytes();
        let tag = self.mac_in(context, &id).finalize().into_bytes();
        let mut raw = Vec::with_capacity(16 + TAG_LEN);
        raw.extend_from_slice(&id);
        raw.extend_from_slice(&tag[..TAG_LEN]);
        Some(URL_SAFE_NO_PAD.encode(raw))
    }

    /// `{PUBLIC_URL}/u/{token}`.
    pub fn url(&self, message_id: &str) -> Option<String> {
        self.token(message_id).map(|t| format!("{}/u/{t}", self.base))
    }

    /// Both links of a message from its one token (one HMAC per email).
    pub fn urls(&self, message_id: &str) -> Option<MailLinks> {
        self.token(message_id).map(|t| MailLinks {
            unsubscribe: format!("{}/u/{t}", self.base),
            preferences: format!("{}/p/{t}", self.base),
        })
    }

    /// `{PUBLIC_URL}/p/{token}`: the message's preference centre.
    pub fn preferences_url(&self, message_id: &str) -> Option<String> {
        self.token(message_id).map(|t| format!("{}/p/{t}", self.base))
    }

    /// `{PUBLIC_URL}/c/{token}`: the link that confirms a double opt-in
    /// signup (its id), signed apart from unsubscribe links.
    pub fn confirm_url(&self, signup_id: &str) -> Option<String> {
        self.token_in(CONFIRM_CONTEXT, signup_id).map(|t| format!("{}/c/{t}", self.base))
    }

    /// The signup a confirmation token names, if its tag is genuine.
    pub fn verify_confirm(&self, token: &str) -> Option<String> {
        self.verify_in(CONFIRM_CONTEXT, token)
    }

    /// A keyed hash (hex) of `value` within `scope`: the same value always
    /// hashes alike, but nobody without the server's secret can test a guess.
    pub fn keyed_hash(&self, scope: &str, value: &str) -> String {
        let mut mac = self.mac_in(KEYED_HASH_CONTEXT, scope.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The message a token names, if its tag is genuine (compared in constant time).
    pub fn verify(&self, token: &str) -> Option<String> {
        self.verify_in(CONTEXT, token)
    }

    fn verify_in(&self, context: &[u8], token: &str) -> Option<String> {
        if token.len() > 64 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        if raw.len() != 16 + TAG_LEN {
            return None;
        }
        let id: [u8; 16] = raw[..16].try_into().ok()?;
        self.mac_in(context, &id).verify_truncated_left(&raw[16..]).ok()?;
        Some(uuid::Uuid::from_bytes(id).to_string())
    }
}

/// The two links a campaign email carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailLinks {
    /// `/u/{token}`: one-click unsubscribe (also in `List-Unsubscribe`).
    pub unsubscribe: String,
    /// `/p/{token}`: the preference centre.
    pub preferences: String,
}

/// The links a footer adds: the ones the content does not place itself.
pub struct Missing<'a> {
    pub unsubscribe: Option<&'a str>,
    pub preferences: Option<&'a str>,
}

/// Adds the missing links at the end of an html body (inside `</body>` when
/// there is one), in the tenant's language; nothing when none is missing.
pub fn html_footer(html: &str, missing: &Missing<'_>, words: &FooterTexts) -> String {
    let link = |url: &str, label: &str| format!("<a href=\"{url}\" style=\"color:#6b7280\">{label}</a>");
    let line = match (missing.unsubscribe, missing.preferences) {
        (None, None) => return html.to_owned(),
        (Some(u), None) => format!("{} {}.", words.ask, link(u, words.unsubscribe)),
        (None, Some(p)) => format!("{}.", link(p, words.choose_alone)),
        (Some(u), Some(p)) => {
            format!("{} {} {} {}.", words.ask, link(u, words.unsubscribe), words.or, link(p, words.choose))
        }
    };
    let footer = format!("<p style=\"margin-top:32px;font-size:12px;color:#6b7280;text-align:center\">{line}</p>");
    match rfind_ignoring_case(html, "</body>") {
        Some(at) => format!("{}{footer}{}", &html[..at], &html[at..]),
        None => format!("{html}\n{footer}"),
    }
}

/// Where `needle` (ASCII) last starts in `hay`, ignoring ASCII case, without
/// a lower-cased copy of `hay` (a body per email).
fn rfind_ignoring_case(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    (0..=h.len().checked_sub(n.len())?).rev().find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

/// Adds a line for each link a text body does not hold already, in the tenant's language.
pub fn text_footer(text: &str, missing: &Missing<'_>, words: &FooterTexts) -> String {
    let unsubscribe = missing.unsubscribe.filter(|u| !text.contains(u));
    let preferences = missing.preferences.filter(|p| !text.contains(p));
    if unsubscribe.is_none() && preferences.is_none() {
        return text.to_owned();
    }
    let mut out = format!("{}\n\n--\n", text.trim_end());
    if let Some(u) = unsubscribe {
        out.push_str(&format!("{}: {u}\n", words.text_unsubscribe));
    }
    if let Some(p) = preferences {
        out.push_str(&format!("{}: {p}\n", words.text_preferences));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Locale;
    use crate::render::footer_texts::footer_texts;

    const ID: &str = "01a20eb1-e502-7109-8af3-e707f8c190f1";

    #[test]
    fn the_footer_goes_inside_the_last_body_end_tag_in_any_case() {
        assert_eq!(rfind_ignoring_case("<p>x</p></BODY></html>", "</body>"), Some(8));
        assert_eq!(rfind_ignoring_case("</body></Body>", "</body>"), Some(7));
        assert_eq!(rfind_ignoring_case("é</body", "</body>"), None);
        assert_eq!(rfind_ignoring_case("", "</body>"), None);
        assert_eq!(rfind_ignoring_case("ü</body>", "</body>"), Some(2));
    }

    #[test]
    fn a_token_is_the_plain_hmac_of_its_context_and_id() {
        // The precomputed keyed state gives what a fresh HMAC gives.
        let links = UnsubscribeLinks::new("secret", "https://x");
        let id = *uuid::Uuid::parse_str(ID).unwrap().as_bytes();
        let mut fresh = <HmacSha256 as Mac>::new_from_slice(b"secret").unwrap();
        fresh.update(CONTEXT);
        fresh.update(&id);
        let tag = fresh.finalize().into_bytes();
        let mut raw = id.to_vec();
        raw.extend_from_slice(&tag[..TAG_LEN]);
        assert_eq!(links.token(ID).unwrap(), URL_SAFE_NO_PAD.encode(raw));
    }

    #[test]
    fn a_confirmation_token_is_signed_apart_from_unsubscribe_tokens() {
        let links = UnsubscribeLinks::new("secret", "https://mail.example.com");
        let url = links.confirm_url(ID).unwrap();
        let token = url.rsplit_once("/c/").unwrap().1;
        assert_eq!(links.verify_confirm(token).as_deref(), Some(ID));
        assert_eq!(links.verify(token), None, "not an unsubscribe token");
        assert_eq!(links.verify_confirm(&links.token(ID).unwrap()), None, "nor the other way round");
        assert_eq!(links.keyed_hash("a", "x"), links.keyed_hash("a", "x"));
        assert_ne!(links.keyed_hash("a", "x"), links.keyed_hash("b", "x"));
    }

    #[test]
    fn a_token_names_its_message_and_nothing_else() {
        let links = UnsubscribeLinks::new("secret", "https://mail.example.com/");
        let token = links.token(ID).unwrap();
        assert_eq!(links.verify(&token).as_deref(), Some(ID));
        assert_eq!(links.url(ID).unwrap(), format!("https://mail.example.com/u/{token}"));
        let both = links.urls(ID).unwrap();
        assert_eq!(both.preferences, format!("https://mail.example.com/p/{token}"), "the same token");
        assert_eq!(links.preferences_url(ID).unwrap(), both.preferences);
        assert!(!token.contains('@'));
    }

    #[test]
    fn forged_or_altered_tokens_are_refused() {
        let links = UnsubscribeLinks::new("secret", "https://x");
        let token = links.token(ID).unwrap();
        let other = UnsubscribeLinks::new("other secret", "https://x");
        assert_eq!(other.verify(&token), None, "another secret");
        // Another message id with the first one's tag.
        let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
        raw[15] ^= 1;
        assert_eq!(links.verify(&URL_SAFE_NO_PAD.encode(&raw)), None);
        assert_eq!(links.verify(&token[..token.len() - 1]), None);
        assert_eq!(links.verify("not a token"), None);
        assert_eq!(links.verify(""), None);
    }

    #[test]
    fn footers_go_inside_the_body() {
        let en = footer_texts(Locale::En);
        let both = Missing { unsubscribe: Some("https://x/u/t"), preferences: Some("https://x/p/t") };
        let html = html_footer("<html><BODY><p>Hi</p></BODY></html>", &both, en);
        assert!(html.ends_with("</BODY></html>"), "{html}");
        assert!(html.contains("href=\"https://x/u/t\"") && html.contains("href=\"https://x/p/t\""), "{html}");
        assert_eq!(
            text_footer("Hi\n", &both, en),
            "Hi\n\n--\nUnsubscribe: https://x/u/t\nPreferences: https://x/p/t\n"
        );
        let prefs_only = Missing { unsubscribe: None, preferences: Some("https://x/p/t") };
        let html = html_footer("<p>Hi</p>", &prefs_only, en);
        assert!(!html.contains("/u/") && html.contains("href=\"https://x/p/t\""), "{html}");
        assert_eq!(text_footer("Hi https://x/p/t", &prefs_only, en), "Hi https://x/p/t", "already there");
        let none = Missing { unsubscribe: None, preferences: None };
        assert_eq!(html_footer("<p>Hi</p>", &none, en), "<p>Hi</p>");
    }

    #[test]
    fn the_footer_speaks_the_tenants_language() {
        let both = Missing { unsubscribe: Some("https://x/u/t"), preferences: Some("https://x/p/t") };
        let html = html_footer("<p>Hi</p>", &both, footer_texts(Locale::En));
        assert!(html.contains("Don't want these emails? <a href=\"https://x/u/t\" style=\"color:#6b7280\">Unsubscribe</a> or <a href=\"https://x/p/t\" style=\"color:#6b7280\">choose which ones you get</a>."), "{html}");
        let html = html_footer("<p>Hi</p>", &both, footer_texts(Locale::De));
        assert!(html.contains("Sie möchten diese E-Mails nicht mehr erhalten? <a href=\"https://x/u/t\" style=\"color:#6b7280\">Abmelden</a> oder <a href=\"https://x/p/t\" style=\"color:#6b7280\">auswählen, welche Sie erhalten</a>."), "{html}");
        assert!(!html.contains("Unsubscribe") && !html.contains("choose"), "no English left: {html}");
        let prefs_only = Missing { unsubscribe: None, preferences: Some("https://x/p/t") };
        let html = html_footer("<p>Hi</p>", &prefs_only, footer_texts(Locale::De));
        assert!(html.contains(">Auswählen, welche E-Mails Sie erhalten</a>."), "{html}");
        let unsubscribe_only = Missing { unsubscribe: Some("https://x/u/t"), preferences: None };
        let html = html_footer("<p>Hi</p>", &unsubscribe_only, footer_texts(Locale::De));
        assert!(
            html.contains("erhalten? <a href=\"https://x/u/t\" style=\"color:#6b7280\">Abmelden</a>.</p>"),
            "{html}"
        );
        assert_eq!(
            text_footer("Hallo", &both, footer_texts(Locale::De)),
            "Hallo\n\n--\nAbmelden: https://x/u/t\nEinstellungen: https://x/p/t\n"
        );
        assert_eq!(
            text_footer("Hi", &both, footer_texts(Locale::En)),
            "Hi\n\n--\nUnsubscribe: https://x/u/t\nPreferences: https://x/p/t\n"
        );
    }
}
