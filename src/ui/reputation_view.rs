//! A tenant's reputation as the dashboard shows it (the API's, with its rates
//! and thresholds as percentages): the reputation pages' and the operator's
//! tenant list's, so every page says the same.

use serde_json::Value;

use super::{UiError, UiResult};

/// A rate (a fraction) as a percentage.
fn percent(v: &Value) -> String {
    v.as_f64().map_or_else(|| "–".to_owned(), |f| format!("{:.2}%", f * 100.0))
}

/// The API's reputation, with `{rate}_pct` beside each rate and threshold.
pub fn view(r: &impl serde::Serialize) -> UiResult<Value> {
    let mut v = serde_json::to_value(r)
        .map_err(|e| UiError::Api(crate::error::ApiError::Internal(anyhow::anyhow!("reputation view: {e}"))))?;
    for (section, key) in [
        ("window", "bounce_rate"),
        ("window", "complaint_rate"),
        ("thresholds", "bounce_warning"),
        ("thresholds", "bounce_pause"),
        ("thresholds", "complaint_warning"),
        ("thresholds", "complaint_pause"),
    ] {
        let shown = percent(&v[section][key]);
        v[section][format!("{key}_pct")] = Value::String(shown);
    }
    Ok(v)
}
