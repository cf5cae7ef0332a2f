//! The HTTP API: one module per resource, each exporting `router()`; this
//! module merges them and describes the whole in OpenAPI. A handler is a thin
//! adapter: it reads the request (extractors authorise it), calls the use
//! case in `crate::service`, and answers with JSON or the `ApiError` the
//! service's error maps to. The request and response types (`ToSchema`) live
//! here, beside the routes they describe.

mod automations;
mod campaigns;
mod consent;
mod contacts;
mod contacts_bulk;
mod customers;
mod dead_letters;
mod erasure;
mod events;
pub mod extract;
mod forms;
mod idempotency;
mod imports;
mod metrics;
mod paging;
mod preferences;
mod probes;
mod public_texts;
mod reputation;
mod resend_webhooks;
mod segments;
mod send;
mod sending_domains;
mod signup_pages;
mod stats;
mod suppressions;
mod templates;
mod tenant_webhooks;
mod topics;
mod unsubscribe;

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

pub use extract::ApiJson;

#[derive(OpenApi)]
#[openapi(
    info(title = "mailroom", description = "Multi-tenant email service: contacts, segments, campaigns, a durable outbox and delivery events over one Resend account."),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail, contacts_bulk::JsonImportOut)),
    security(("bearer" = []), ("api_key" = []))
)]
struct ApiDoc;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(probes::router())
        .merge(customers::router())
        .merge(sending_domains::router())
        .merge(contacts::router())
        .merge(consent::router())
        .merge(erasure::router())
        .merge(contacts_bulk::router())
        .merge(imports::router())
        .merge(segments::router())
        .merge(topics::router())
        .merge(forms::router())
        .merge(signup_pages::router())
        .merge(templates::router())
        .merge(suppressions::router())
        .merge(unsubscribe::router())
        .merge(preferences::router())
        .merge(send::router())
        .merge(campaigns::router())
        .merge(events::router())
        .merge(stats::router())
        .merge(reputation::router())
        .merge(resend_webhooks::router())
        .merge(tenant_webhooks::router())
        .merge(automations::router())
        .merge(dead_letters::router())
        .merge(metrics::router())
}

/// Adds the security schemes the routes refer to.
pub fn document(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    components.add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    document_errors(&mut doc);
    doc
}

/// The error answers any route may give, each in the JSON error envelope:
/// added to every operation so that generated clients know them all.
fn document_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let common: [(&str, &str); 9] = [
        ("400", "Malformed request (e.g. a body that is not JSON)"),
        ("401", "Missing or invalid key (or signature)"),
        ("403", "A valid key without access to this route"),
        ("404", "No such route, customer or resource (another customer's ids included)"),
        ("413", "Body larger than the limit"),
        ("415", "Body not declared as `application/json`"),
        ("422", "Invalid input, or an unknown field (named in the message)"),
        ("429", "Too many failed authentications with this key, or from this client address (see `Retry-After`)"),
        ("503", "The database is unavailable (see `Retry-After`)"),
    ];
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build())
            .build()
    };
    for item in doc.paths.paths.values_mut() {
        let operations =
            [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten();
        for op in operations {
            for (status, description) in common {
                op.responses.responses.entry(status.to_owned()).or_insert_with(|| error(description).into());
            }
        }
    }
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("route")
}

/// Parses an id from the path; anything that is not one of our ids names nothing.
pub fn path_id(raw: &str, what: &'static str) -> Result<String, ApiError> {
    Ok(crate::service::parse_id(raw, what)?)
}

/// A page size from `?limit=`: 1 to 1000, 100 when absent.
pub fn page_limit(raw: Option<&str>) -> Result<i64, ApiError> {
    Ok(crate::service::page_limit(raw)?)
}
