//! Who may see and change a tenant's pages, as extractors: a handler's
//! signature says it. [`Scoped`] is a page of one tenant (`/ui/t/{tid}/...`)
//! that this session may see; [`Posted`] is a form posted to one, carrying
//! this session's CSRF token. The operator sees every tenant, a tenant only
//! itself; anything else is the 404 page.
//!
//! They run the steps in the order the handlers always did: the session (or
//! the way to the login page), the path, the query or the form (axum's own
//! rejection when it cannot be read), who may ask ([`Access`]: the operator's
//! pages are 404 to a tenant), then the CSRF token (the "form expired" page),
//! then the tenant.

use std::marker::PhantomData;

use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::de::DeserializeOwned;

use super::form::Fields;
use super::{scope, UiError, UiResult, UiUser};
use crate::domain::TenantId;
use crate::state::AppState;
use crate::store::TenantRow;

/// The header the page's script sends the token in, where a request has no
/// form fields of its own (a file upload, a live count, a live preview).
const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF token a script sent in its header, if any.
pub fn header_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok())
}

/// The `{tid}` of a dashboard path, as written.
async fn tenant_param(parts: &mut Parts, state: &AppState) -> Result<String, Response> {
    let params = RawPathParams::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)?;
    let tid = params.iter().find(|(name, _)| *name == "tid").map(|(_, value)| value.to_owned());
    tid.ok_or_else(|| UiError::NotFound.into_response())
}

/// Who may ask, besides the tenant scope.
pub trait Access {
    fn allow(user: &UiUser) -> UiResult<()>;
}

/// Any signed-in session (the tenant scope still applies).
pub struct AnySession;

impl Access for AnySession {
    fn allow(_: &UiUser) -> UiResult<()> {
        Ok(())
    }
}

/// The operator's pages and forms (a tenant's session gets the 404 page).
pub struct OperatorOnly;

/// The operator's pages only: to a tenant's session they do not exist.
pub(super) fn admin_only(user: &UiUser) -> UiResult<()> {
    // A tenant's session does not know these pages exist.
    if user.tenant.is_some() {
        return Err(UiError::NotFound);
    }
    Ok(())
}

impl Access for OperatorOnly {
    fn allow(user: &UiUser) -> UiResult<()> {
        admin_only(user)
    }
}

/// A page of one tenant that this session may see, with the page's query
/// (`Q`, nothing by default).
pub struct Scoped<Q = (), A = AnySession> {
    pub user: UiUser,
    pub id: TenantId,
    pub tenant: TenantRow,
    pub query: Q,
    pub access: PhantomData<A>,
}

/// A page's query: `()` reads none.
pub trait PageQuery: Sized {
    fn read(parts: &mut Parts, state: &AppState) -> impl std::future::Future<Output = Result<Self, Response>> + Send;
}

impl PageQuery for () {
    async fn read(_: &mut Parts, _: &AppState) -> Result<Self, Response> {
        Ok(())
    }
}

impl<T: DeserializeOwned + Send> PageQuery for Query<T> {
    async fn read(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        Query::<T>::from_request_parts(parts, state).await.map_err(IntoResponse::into_response)
    }
}

impl<Q: PageQuery + Send, A: Access> FromRequestParts<AppState> for Scoped<Q, A> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let user = UiUser::from_request_parts(parts, state).await?;
        let tid = tenant_param(parts, state).await?;
        let query = Q::read(parts, state).await?;
        A::allow(&user).map_err(IntoResponse::into_response)?;
        let (id, tenant) = scope(state, &user, &tid).await.map_err(IntoResponse::into_response)?;
        Ok(Self { user, id, tenant, query, access: PhantomData })
    }
}

/// A posted form that carries a CSRF token.
pub trait PostedForm: FromRequest<AppState> {
    /// The token the form carries ("" when it has none).
    fn csrf(&self) -> &str;
}

/// A form struct with a `csrf` field.
pub trait CsrfField {
    fn csrf(&self) -> &str;
}

impl<T: CsrfField + DeserializeOwned + Send> PostedForm for Form<T> {
    fn csrf(&self) -> &str {
        self.0.csrf()
    }
}

impl PostedForm for Fields {
    fn csrf(&self) -> &str {
        self.get("csrf")
    }
}

/// Implements [`CsrfField`] for form structs whose token is their `csrf` field.
macro_rules! csrf_field {
    ($($form:ty),* $(,)?) => {
        $(impl $crate::ui::tenant_scope::CsrfField for $form {
            fn csrf(&self) -> &str {
                &self.csrf
            }
        })*
    };
}
pub(crate) use csrf_field;

csrf_field!(super::session::CsrfOnly);

/// A form posted to one tenant's pages: this session's token checked, the
/// tenant in scope. `form` is the form as read (`Form<T>` or [`Fields`]).
pub struct Posted<F, A = AnySession> {
    pub user: UiUser,
    pub id: TenantId,
    pub tenant: TenantRow,
    pub form: F,
    pub access: PhantomData<A>,
}

impl<F, A> FromRequest<AppState> for Posted<F, A>
where
    F: PostedForm + Send,
    F::Rejection: IntoResponse,
    A: Access,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let user = UiUser::from_request_parts(&mut parts, state).await?;
        let tid = tenant_param(&mut parts, state).await?;
        let form =
            F::from_request(Request::from_parts(parts, body), state).await.map_err(IntoResponse::into_response)?;
        A::allow(&user).map_err(IntoResponse::into_response)?;
        user.check_csrf(form.csrf()).map_err(IntoResponse::into_response)?;
        let (id, tenant) = scope(state, &user, &tid).await.map_err(IntoResponse::into_response)?;
        Ok(Self { user, id, tenant, form, access: PhantomData })
    }
}
