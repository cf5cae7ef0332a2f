//! A tenant's topics: the list with who each reaches now and a form for a new
//! one, each topic's page to edit it, deletion after a confirmation, and a
//! contact's choices saved from its page. Every change goes through
//! `service::topics`, the use cases the API's topic routes call; a refusal
//! (a name taken, an opt-in topic made opt-out) is shown on the form with
//! what was typed.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::{Deserialize, Serialize};

use super::form::Fields;
use super::operator::Done;
use super::tenant_scope::{Posted, Scoped};
use super::{form_error, page, see_other, Frame, UiError, UiResult, UiUser};
use crate::domain::{parse_id, ConsentOrigin, ConsentSource, TenantId, TopicChoice, TopicDefault, TopicState};
use crate::error::ApiError;
use crate::service::{sending, topics};
use crate::state::AppState;
use crate::store::{TenantRow, TOPICS_MAX};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui/t/{tid}/topics", get(list).post(create))
        .route("/ui/t/{tid}/topics/{id}", get(topic).post(save))
        .route("/ui/t/{tid}/topics/{id}/delete", get(confirm_delete).post(delete))
        .route("/ui/t/{tid}/contacts/{cid}/topics", post(contact_choices))
}

/// A topic's default as the select offers it, in words.
pub const DEFAULTS: [(&str, &str); 2] =
    [("opt_in", "Opt-in: only those who say yes"), ("opt_out", "Opt-out: everyone unless they say no")];

/// A refusal to show on the form: its status and message.
type Rejected = (StatusCode, String);

/// The topic form's fields, kept as typed when the form comes back.
#[derive(Deserialize, Serialize, Default)]
pub struct TopicForm {
    #[serde(default, skip_serializing)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    /// `opt_in` or `opt_out`.
    #[serde(default)]
    default: String,
}

impl TopicForm {
    fn default_choice(&self) -> Result<TopicDefault, Rejected> {
        match self.default.as_str() {
            "opt_in" => Ok(TopicDefault::OptIn),
            "opt_out" => Ok(TopicDefault::OptOut),
            _ => Err((StatusCode::UNPROCESSABLE_ENTITY, "Choose who the topic reaches by default.".to_owned())),
        }
    }
}

/// A use case's refusal in the form's words: `opt_in` is "opt-in", no code
/// quotes, a capital first letter (a missing topic is the 404 page).
fn refused(e: crate::service::Error) -> UiResult<Rejected> {
    form_error(e).map(|(status, m)| (status, in_words(&m)))
}

fn in_words(message: &str) -> String {
    let m = message
        .replace("`name`", "the name")
        .replace("`description`", "the description")
        .replace("`opt_in`", "opt-in")
        .replace("`opt_out`", "opt-out")
        .replace('`', "“");
    // Quotes open and close in turn.
    let mut out = String::with_capacity(m.len());
    let mut open = true;
    for c in m.chars() {
        if c == '“' {
            out.push(if open { '“' } else { '”' });
            open = !open;
        } else {
            out.push(c);
        }
    }
    let mut chars = out.chars();
    match chars.next() {
        Some(first) => {
            let mut sentence: String = first.to_uppercase().chain(chars).collect();
            if !sentence.ends_with('.') {
                sentence.push('.');
            }
            sentence
        }
        None => out,
    }
}

/// Who a campaign to the topic would reach now (subscribed to it, not suppressed).
async fn reach(state: &AppState, id: &TenantId, topic_id: &str) -> UiResult<i64> {
    let everyone = sending::resolve_targeting(state, id, None, None, None, None).await?;
    Ok(sending::audience_count(state, id, &everyone, Some(topic_id)).await?)
}

#[derive(Serialize)]
struct Listed {
    topic: topics::Topic,
    reach: i64,
}

async fn list_page(
    state: &AppState,
    user: &UiUser,
    (id, row): (&TenantId, &TenantRow),
    form: TopicForm,
    rejected: Option<Rejected>,
    done: Option<&str>,
) -> UiResult<Response> {
    let mut list = Vec::new();
    for topic in topics::list(state, id, None, TOPICS_MAX as i64).await? {
        let reach = reach(state, id, topic.id()).await?;
        list.push(Listed { topic, reach });
    }
    let (status, error) = rejected.map_or((StatusCode::OK, None), |(s, m)| (s, Some(m)));
    let frame = Frame::new(user, Some(row), "topics").notice(done);
    Ok(page(status, "topics.html", &frame, minijinja::context! { topics => list, form, error, defaults => DEFAULTS }))
}

async fn list(
    State(state): State<AppState>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    let form = TopicForm { default: "opt_in".into(), ..TopicForm::default() };
    list_page(&state, &user, (&id, &row), form, None, q.done.as_deref()).await
}

async fn create(
    State(state): State<AppState>,
    Posted { user, id, tenant: row, form: Form(f), .. }: Posted<Form<TopicForm>>,
) -> UiResult<Response> {
    let outcome = match f.default_choice() {
        Err(rejected) => Err(rejected),
        Ok(default) => match topics::create(&state, &id, &f.name, Some(&f.description), Some(default)).await {
            Ok(created) => Ok(created.id().to_owned()),
            Err(e) => Err(refused(e)?),
        },
    };
    match outcome {
        Ok(topic) => Ok(see_other(&format!("/ui/t/{id}/topics/{topic}"), "topic_created")),
        Err(rejected) => list_page(&state, &user, (&id, &row), f, Some(rejected), None).await,
    }
}

/// The tenant's topic named by a path, or the 404 page.
async fn own_topic(state: &AppState, id: &TenantId, raw: &str) -> UiResult<topics::Topic> {
    let topic = parse_id(raw).ok_or(UiError::NotFound)?;
    Ok(topics::get(state, id, &topic).await?)
}

/// The topic's fields as the form shows them.
fn form_of(topic: &topics::Topic) -> TopicForm {
    let v = serde_json::to_value(topic).unwrap_or_default();
    let text = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    TopicForm { csrf: String::new(), name: text("name"), description: text("description"), default: text("default") }
}

async fn show(
    state: &AppState,
    user: &UiUser,
    (id, row): (&TenantId, &TenantRow),
    topic: topics::Topic,
    posted: Option<(TopicForm, Rejected)>,
    done: Option<&str>,
) -> UiResult<Response> {
    let reach = reach(state, id, topic.id()).await?;
    let (form, status, error) = match posted {
        Some((form, (status, m))) => (form, status, Some(m)),
        None => (form_of(&topic), StatusCode::OK, None),
    };
    let frame = Frame::new(user, Some(row), "topics").notice(done);
    Ok(page(
        status,
        "topic.html",
        &frame,
        minijinja::context! { topic, saved => form_of(&topic), reach, form, error, defaults => DEFAULTS },
    ))
}

async fn topic(
    State(state): State<AppState>,
    Path((_, raw)): Path<(String, String)>,
    Scoped { user, id, tenant: row, query: Query(q), .. }: Scoped<Query<Done>>,
) -> UiResult<Response> {
    let topic = own_topic(&state, &id, &raw).await?;
    show(&state, &user, (&id, &row), topic, None, q.done.as_deref()).await
}

async fn save(
    State(state): State<AppState>,
    Path((_, raw)): Path<(String, String)>,
    Posted { user, id, tenant: row, form: Form(f), .. }: Posted<Form<TopicForm>>,
) -> UiResult<Response> {
    let topic = own_topic(&state, &id, &raw).await?;
    let outcome = match f.default_choice() {
        Err(rejected) => Err(rejected),
        Ok(default) => {
            match topics::update(&state, &id, topic.id(), Some(&f.name), Some(&f.description), Some(default)).await {
                Ok(_) => Ok(()),
                Err(e) => Err(refused(e)?),
            }
        }
    };
    match outcome {
        Ok(()) => Ok(see_other(&format!("/ui/t/{id}/topics/{}", topic.id()), "topic_saved")),
        Err(rejected) => show(&state, &user, (&id, &row), topic, Some((f, rejected)), None).await,
    }
}

async fn confirm_delete(
    State(state): State<AppState>,
    Path((_, raw)): Path<(String, String)>,
    Scoped { user, id, tenant: row, .. }: Scoped,
) -> UiResult<Response> {
    let topic = own_topic(&state, &id, &raw).await?;
    let reach = reach(&state, &id, topic.id()).await?;
    let frame = Frame::new(&user, Some(&row), "topics");
    Ok(page(StatusCode::OK, "topic_delete.html", &frame, minijinja::context! { topic, reach }))
}

async fn delete(
    State(state): State<AppState>,
    Path((_, raw)): Path<(String, String)>,
    Posted { id, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let topic = parse_id(&raw).ok_or(UiError::NotFound)?;
    topics::delete(&state, &id, &topic).await?;
    Ok(see_other(&format!("/ui/t/{id}/topics"), "topic_deleted"))
}

/// A contact's choice on each topic its page lists: `topic:{id}` is
/// `subscribed`, `unsubscribed` or `default` (the topic's own default).
fn posted_choices(f: &Fields) -> Result<Vec<(String, TopicChoice)>, ApiError> {
    let mut choices = Vec::new();
    for (key, value) in f.pairs() {
        let Some(topic) = key.strip_prefix("topic:") else { continue };
        let choice = match value.as_str() {
            "subscribed" => TopicChoice::Set(TopicState::Subscribed),
            "unsubscribed" => TopicChoice::Set(TopicState::Unsubscribed),
            "default" => TopicChoice::Default,
            _ => return Err(ApiError::validation("choose subscribed, unsubscribed or the topic's default")),
        };
        choices.push((topic.to_owned(), choice));
    }
    Ok(choices)
}

/// Saves the contact's choices on the topics its page listed (the API's
/// PATCH: topics not in the form stay as they are).
async fn contact_choices(
    State(state): State<AppState>,
    Path((_, cid)): Path<(String, String)>,
    Posted { id, form: f, .. }: Posted<Fields>,
) -> UiResult<Response> {
    let cid = parse_id(&cid).ok_or(UiError::NotFound)?;
    topics::set_for_contact(
        &state,
        &id,
        &cid,
        posted_choices(&f)?,
        false,
        &ConsentOrigin::new(ConsentSource::Dashboard),
    )
    .await?;
    Ok(see_other(&format!("/ui/t/{id}/contacts/{cid}"), "contact_topics_saved"))
}

super::tenant_scope::csrf_field!(TopicForm);

#[cfg(test)]
mod tests {
    use super::in_words;

    #[test]
    fn refusals_read_as_sentences_without_code_quotes() {
        assert_eq!(
            in_words("an `opt_in` topic cannot become `opt_out`: create a new topic instead"),
            "An opt-in topic cannot become opt-out: create a new topic instead."
        );
        assert_eq!(in_words("a topic named `News` already exists"), "A topic named “News” already exists.");
    }
}
