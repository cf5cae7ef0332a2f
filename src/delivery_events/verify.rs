//! Svix signature verification for Resend webhooks, through the
//! `standardwebhooks` crate (Svix's own implementation of the scheme).

use axum::http::{HeaderMap, HeaderName};
use standardwebhooks::{Webhook, WebhookError};

/// Verifies against any of several secrets, so a secret can be rotated without
/// refusing events signed with the old one in the meantime.
pub struct WebhookVerifier {
    secrets: Vec<Webhook>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing svix-id, svix-timestamp or svix-signature header")]
    MissingHeaders,
    #[error("signature timestamp is more than 5 minutes off")]
    Stale,
    #[error("signature does not match")]
    BadSignature,
}

const HEADER_MAP: [(&str, &str); 3] = [
    ("svix-id", standardwebhooks::HEADER_WEBHOOK_ID),
    ("svix-timestamp", standardwebhooks::HEADER_WEBHOOK_TIMESTAMP),
    ("svix-signature", standardwebhooks::HEADER_WEBHOOK_SIGNATURE),
];

impl WebhookVerifier {
    pub fn new(secrets: &[String]) -> anyhow::Result<Self> {
        let secrets = secrets
            .iter()
            .map(|s| Webhook::new(s).map_err(|e| anyhow::anyhow!("WEBHOOK_SECRET is not a whsec_<base64> secret: {e}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { secrets })
    }

    pub fn is_configured(&self) -> bool {
        !self.secrets.is_empty()
    }

    /// Checks the `svix-*` headers (Resend's names for the Standard Webhooks
    /// `webhook-*` headers, which is what the crate reads).
    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
        let mut mapped = HeaderMap::new();
        for (svix, standard) in HEADER_MAP {
            let value = headers.get(svix).or_else(|| headers.get(standard)).ok_or(VerifyError::MissingHeaders)?;
            mapped.insert(HeaderName::from_static(standard), value.clone());
        }
        let mut stale = false;
        for secret in &self.secrets {
            match secret.verify(body, &mapped) {
                Ok(()) => return Ok(()),
                Err(WebhookError::TimestampTooOldError | WebhookError::FutureTimestampError) => stale = true,
                Err(WebhookError::MissingHeader(_)) => return Err(VerifyError::MissingHeaders),
                Err(_) => {}
            }
        }
        Err(if stale { VerifyError::Stale } else { VerifyError::BadSignature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

    fn headers(id: &str, ts: i64, sig: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("svix-id", id.parse().unwrap());
        h.insert("svix-timestamp", ts.to_string().parse().unwrap());
        h.insert("svix-signature", sig.parse().unwrap());
        h
    }

    fn now() -> i64 {
        crate::domain::now_ms() / 1000
    }

    #[test]
    fn svix_published_test_vector_signs_as_documented() {
        let wh = Webhook::new(SECRET).unwrap();
        let sig = wh.sign("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, BODY).unwrap();
        assert_eq!(sig, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn a_fresh_signature_verifies_and_a_stale_one_does_not() {
        let v = WebhookVerifier::new(&[SECRET.into()]).unwrap();
        let wh = Webhook::new(SECRET).unwrap();
        let ts = now();
        let sig = wh.sign("msg_1", ts, BODY).unwrap();
        assert_eq!(v.verify(&headers("msg_1", ts, &sig), BODY), Ok(()));
        let old = ts - 301;
        let sig = wh.sign("msg_1", old, BODY).unwrap();
        assert_eq!(v.verify(&headers("msg_1", old, &sig), BODY), Err(VerifyError::Stale));
    }

    #[test]
    fn any_of_several_signatures_and_secrets_may_match() {
        let other = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let v = WebhookVerifier::new(&[other.into(), SECRET.into()]).unwrap();
        let ts = now();
        let good = Webhook::new(SECRET).unwrap().sign("m", ts, BODY).unwrap();
        let sig = format!("v1,bm90IGEgc2lnbmF0dXJl {good}");
        assert_eq!(v.verify(&headers("m", ts, &sig), BODY), Ok(()));
    }

    #[test]
    fn a_tampered_body_or_missing_header_is_refused() {
        let v = WebhookVerifier::new(&[SECRET.into()]).unwrap();
        let ts = now();
        let sig = Webhook::new(SECRET).unwrap().sign("m", ts, BODY).unwrap();
        assert_eq!(v.verify(&headers("m", ts, &sig), b"{}"), Err(VerifyError::BadSignature));
        let mut h = headers("m", ts, &sig);
        h.remove("svix-signature");
        assert_eq!(v.verify(&h, BODY), Err(VerifyError::MissingHeaders));
    }
}
