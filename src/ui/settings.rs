//! A tenant's sending settings: its default sender (a From name and an
//! address on its verified domain), who mail that names no sender comes from.
//! The same use case as the API's `PATCH /customers/{id}` with `from_name`
//! and `from_address` (`service::customers::update`); the tenant sets it
//! itself, the operator for any tenant. Beside it, the language of the
//! pages and mail footer recipients see (`locale` of the same PATCH).

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::{Deserialize, Serialize};

use super::operator::Done;
use super::tenant_scope::{Posted, Scoped};
use super::{form_error, page, see_other, Frame, UiResult};
use crate::service::customers::{self, CustomerChange};
use crate::state::AppState;
use crate::store::TenantRow;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/settings", get(settings).post(save_sender))
        .route("/ui/t/{tid}/settings/language", post(save_language))
}

/// The default sender's form; an empty field removes that part of it.
#[derive(Deserialize, Serialize, Default)]
pub struct SenderForm {
    #[serde(default, skip_serializing)]
    csrf: String,
    #[serde(default)]
    from_name: String,
    #[serde(default)]
    from_address: String,
}

fn settings_page(frame: &Frame, row: TenantRow, form: SenderForm, refused: Option<(StatusCode, String)>) -> Response {
    let (status, error) = match refused {
        Some((status, error)) => (status, Some(error)),
        None => (StatusCode::OK, None),
    };
    let customer = serde_json::to_value(customers::Customer::from(row)).unwrap_or_default();
    page(status, "settings.html", frame, minijinja::context! { customer, form, error })
}

async fn settings(Scoped { user, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>) -> UiResult<Response> {
    let form = SenderForm {
        from_name: row.from_name.clone().unwrap_or_default(),
        from_address: row.from_address.clone().unwrap_or_default(),
        ..SenderForm::default()
    };
    let frame = Frame::new(&user, Some(&row), "settings").notice(q.done.as_deref());
    Ok(settings_page(&frame, row, form, None))
}

/// A field left blank: that part of the default sender removed.
fn blank_is_none(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.trim().is_empty())
}

async fn save_sender(
    State(state): State<AppState>,
    Posted { user, id, tenant: row, form: Form(f), .. }: Posted<Form<SenderForm>>,
) -> UiResult<Response> {
    let change = CustomerChange {
        from_name: Some(blank_is_none(&f.from_name)),
        from_address: Some(blank_is_none(&f.from_address)),
        ..CustomerChange::default()
    };
    match customers::update(&state, &id, change).await {
        Ok(_) => Ok(see_other(&format!("/ui/t/{id}/settings"), "sender_saved")),
        // Refused (not on the verified domain, a line break in the name...):
        // the form again, as typed, with the reason; nothing was changed.
        Err(e) => {
            let (status, message) = form_error(e)?;
            let refused = (status, in_the_forms_words(&message));
            Ok(settings_page(&Frame::new(&user, Some(&row), "settings"), row, f, Some(refused)))
        }
    }
}

/// The use case's refusal (worded for the API's fields) with the form's labels.
fn in_the_forms_words(message: &str) -> String {
    message.replace("`from_name`", "The From name").replace("from_address", "The From address")
}

super::tenant_scope::csrf_field!(SenderForm);

/// The recipients' language: `en` or `de`.
#[derive(Deserialize)]
pub struct LanguageForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    locale: String,
}

async fn save_language(
    State(state): State<AppState>,
    Posted { id, form: Form(f), .. }: Posted<Form<LanguageForm>>,
) -> UiResult<Response> {
    // Anything but a language offered is the use case's 422 (the error page).
    customers::update(&state, &id, CustomerChange { locale: Some(&f.locale), ..CustomerChange::default() }).await?;
    Ok(see_other(&format!("/ui/t/{id}/settings"), "language_saved"))
}

super::tenant_scope::csrf_field!(LanguageForm);
