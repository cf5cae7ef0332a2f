//! A language model that must choose exactly one tool, over HTTP: an
//! OpenAI-compatible chat-completions endpoint (tool calling), or Anthropic's
//! Messages API. mailroom sends a fixed list of tools with JSON schemas and
//! takes back one call, which the caller validates before acting on it: the
//! model's answer is untrusted input.

use std::time::Duration;

use serde_json::{json, Value};

/// Which wire format the endpoint speaks (`MAILROOM_LLM_API`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LlmApi {
    OpenAi,
    Anthropic,
}

impl LlmApi {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "openai" => Some(Self::OpenAi),
            "anthropic" => Some(Self::Anthropic),
            _ => None,
        }
    }

    /// The endpoint's path, when the configured URL names only the server (or `/v1`).
    fn default_path(self) -> &'static str {
        match self {
            Self::OpenAi => "chat/completions",
            Self::Anthropic => "messages",
        }
    }
}

/// A tool the model may call.
#[derive(Clone, Debug)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON schema of the arguments (an object schema).
    pub parameters: Value,
}

/// The one tool call the model made.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    pub name: String,
    pub arguments: Value,
    /// What the model said about its choice, if anything.
    pub reason: Option<String>,
}

/// Tokens an answer used, as the endpoint reported them (`usage`): what the
/// model's provider bills.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// OpenAI `prompt_tokens`, Anthropic `input_tokens`.
    pub input_tokens: i64,
    /// OpenAI `completion_tokens`, Anthropic `output_tokens`.
    pub output_tokens: i64,
}

/// What one request to the model came to: the call (or why there is none),
/// and the tokens it used whenever the endpoint answered with a `usage`, a
/// malformed call included (it was billed all the same).
#[derive(Debug)]
pub struct Answer {
    pub call: Result<ToolCall, LlmError>,
    pub usage: Option<Usage>,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("the model did not answer within {0} ms")]
    Timeout(u128),
    #[error("the model endpoint could not be reached: {0}")]
    Transport(String),
    #[error("the model endpoint answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the model's answer is malformed: {0}")]
    Malformed(String),
}

#[derive(Clone)]
pub struct LlmClient {
    http: reqwest::Client,
    api: LlmApi,
    url: String,
    key: Option<String>,
    model: String,
    timeout: Duration,
}

impl LlmClient {
    /// `url` is the endpoint (or the server, or its `/v1`: the usual path is added).
    pub fn new(api: LlmApi, url: &str, key: Option<String>, model: &str, timeout: Duration) -> anyhow::Result<Self> {
        let mut url = url.trim().trim_end_matches('/').to_owned();
        let parsed = url::Url::parse(&url)?;
        if matches!(parsed.path(), "" | "/") {
            url.push_str("/v1");
        }
        if url.ends_with("/v1") {
            url = format!("{url}/{}", api.default_path());
        }
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Self { http, api, url, key, model: model.to_owned(), timeout })
    }

    pub fn api(&self) -> LlmApi {
        self.api
    }

    /// Asks the model to call exactly one of `tools`.
    pub async fn choose_tool(&self, system: &str, prompt: &str, tools: &[ToolSpec]) -> Result<ToolCall, LlmError> {
        self.ask(system, prompt, tools).await.call
    }

    /// [`LlmClient::choose_tool`], with the tokens the answer used.
    pub async fn ask(&self, system: &str, prompt: &str, tools: &[ToolSpec]) -> Answer {
        match self.request(system, prompt, tools).await {
            Err(e) => Answer { call: Err(e), usage: None },
            Ok(answer) => {
                let usage = parse_usage(self.api, &answer);
                let call = match self.api {
                    LlmApi::OpenAi => parse_openai(&answer),
                    LlmApi::Anthropic => parse_anthropic(&answer),
                };
                Answer { call, usage }
            }
        }
    }

    /// Sends the request; the answer's JSON.
    async fn request(&self, system: &str, prompt: &str, tools: &[ToolSpec]) -> Result<Value, LlmError> {
        let body = match self.api {
            LlmApi::OpenAi => json!({
                "model": self.model,
                "messages": [{ "role": "system", "content": system }, { "role": "user", "content": prompt }],
                "tools": tools.iter().map(|t| json!({ "type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters } })).collect::<Vec<_>>(),
                "tool_choice": "required",
                "parallel_tool_calls": false,
            }),
            LlmApi::Anthropic => json!({
                "model": self.model,
                "max_tokens": 1024,
                "system": system,
                "messages": [{ "role": "user", "content": prompt }],
                "tools": tools.iter().map(|t| json!({
                    "name": t.name, "description": t.description, "input_schema": t.parameters })).collect::<Vec<_>>(),
                "tool_choice": { "type": "any", "disable_parallel_tool_use": true },
            }),
        };
        let mut request = self.http.post(&self.url).json(&body).timeout(self.timeout);
        request = match (self.api, &self.key) {
            (LlmApi::OpenAi, Some(key)) => request.bearer_auth(key),
            (LlmApi::Anthropic, key) => {
                let r = request.header("anthropic-version", "2023-06-01");
                match key {
                    Some(key) => r.header("x-api-key", key),
                    None => r,
                }
            }
            (LlmApi::OpenAi, None) => request,
        };
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            let body: String = text.chars().take(300).collect();
            return Err(LlmError::Status { status: status.as_u16(), body });
        }
        serde_json::from_str(&text).map_err(|e| LlmError::Malformed(format!("not JSON: {e}")))
    }

    fn transport(&self, e: reqwest::Error) -> LlmError {
        if e.is_timeout() {
            LlmError::Timeout(self.timeout.as_millis())
        } else {
            // Without the URL: it may carry credentials.
            LlmError::Transport(e.without_url().to_string())
        }
    }
}

/// The answer's `usage`, if it has one: OpenAI `prompt_tokens` and
/// `completion_tokens`, Anthropic `input_tokens` and `output_tokens` (plus
/// the prompt-cache figures, billed as input too).
fn parse_usage(api: LlmApi, answer: &Value) -> Option<Usage> {
    let usage = answer.get("usage").filter(|u| u.is_object())?;
    let n = |key: &str| usage.get(key).and_then(Value::as_i64).unwrap_or(0).max(0);
    Some(match api {
        LlmApi::OpenAi => Usage { input_tokens: n("prompt_tokens"), output_tokens: n("completion_tokens") },
        LlmApi::Anthropic => Usage {
            input_tokens: n("input_tokens")
                .saturating_add(n("cache_creation_input_tokens"))
                .saturating_add(n("cache_read_input_tokens")),
            output_tokens: n("output_tokens"),
        },
    })
}

fn parse_openai(answer: &Value) -> Result<ToolCall, LlmError> {
    let message = answer.pointer("/choices/0/message").ok_or_else(|| LlmError::Malformed("no choices".into()))?;
    let calls = message.get("tool_calls").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let [call] = calls else {
        return Err(LlmError::Malformed(format!("expected exactly one tool call, got {}", calls.len())));
    };
    let name = call.pointer("/function/name").and_then(Value::as_str).ok_or_else(|| missing("function.name"))?;
    // OpenAI sends arguments as a JSON string; some compatible servers send an object.
    let arguments = match call.pointer("/function/arguments") {
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|e| LlmError::Malformed(format!("arguments are not JSON: {e}")))?
        }
        Some(v @ Value::Object(_)) => v.clone(),
        _ => return Err(missing("function.arguments")),
    };
    let reason = message.get("content").and_then(Value::as_str).map(str::to_owned);
    Ok(ToolCall { name: name.to_owned(), arguments, reason })
}

fn parse_anthropic(answer: &Value) -> Result<ToolCall, LlmError> {
    let blocks = answer.get("content").and_then(Value::as_array).ok_or_else(|| missing("content"))?;
    let calls: Vec<&Value> =
        blocks.iter().filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use")).collect();
    let [call] = calls.as_slice() else {
        return Err(LlmError::Malformed(format!("expected exactly one tool_use block, got {}", calls.len())));
    };
    let name = call.get("name").and_then(Value::as_str).ok_or_else(|| missing("tool_use.name"))?;
    let arguments = call.get("input").filter(|v| v.is_object()).cloned().ok_or_else(|| missing("tool_use.input"))?;
    let reason = blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
        .filter_map(|b| b.get("text").and_then(Value::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    Ok(ToolCall { name: name.to_owned(), arguments, reason: (!reason.is_empty()).then_some(reason) })
}

fn missing(what: &str) -> LlmError {
    LlmError::Malformed(format!("`{what}` is missing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_openai_tool_call_is_taken_with_its_string_arguments() {
        let answer = json!({ "choices": [{ "message": { "content": "engaged reader", "tool_calls": [
            { "id": "c1", "type": "function", "function": { "name": "add_tag", "arguments": "{\"tag\":\"engaged\"}" } }] } }] });
        let call = parse_openai(&answer).unwrap();
        assert_eq!(
            call,
            ToolCall {
                name: "add_tag".into(),
                arguments: json!({ "tag": "engaged" }),
                reason: Some("engaged reader".into())
            }
        );
    }

    #[test]
    fn zero_or_two_calls_or_bad_arguments_are_malformed() {
        for answer in [
            json!({ "choices": [{ "message": { "content": "no" } }] }),
            json!({ "choices": [{ "message": { "tool_calls": [
                { "function": { "name": "a", "arguments": "{}" } }, { "function": { "name": "b", "arguments": "{}" } }] } }] }),
            json!({ "choices": [{ "message": { "tool_calls": [{ "function": { "name": "a", "arguments": "{not json" } }] } }] }),
            json!({}),
        ] {
            assert!(matches!(parse_openai(&answer), Err(LlmError::Malformed(_))), "{answer}");
        }
    }

    #[test]
    fn one_anthropic_tool_use_block_is_taken_with_the_text_as_reason() {
        let answer = json!({ "content": [{ "type": "text", "text": "They complained." },
            { "type": "tool_use", "id": "t1", "name": "notify", "input": { "message": "complaint" } }] });
        let call = parse_anthropic(&answer).unwrap();
        assert_eq!(call.name, "notify");
        assert_eq!(call.arguments, json!({ "message": "complaint" }));
        assert_eq!(call.reason.as_deref(), Some("They complained."));
        assert!(parse_anthropic(&json!({ "content": [{ "type": "text", "text": "hm" }] })).is_err());
    }

    #[test]
    fn usage_is_read_in_both_wire_formats() {
        let openai = json!({ "usage": { "prompt_tokens": 120, "completion_tokens": 15, "total_tokens": 135 } });
        assert_eq!(parse_usage(LlmApi::OpenAi, &openai), Some(Usage { input_tokens: 120, output_tokens: 15 }));
        let anthropic = json!({ "usage": { "input_tokens": 90, "output_tokens": 20, "cache_read_input_tokens": 10 } });
        assert_eq!(parse_usage(LlmApi::Anthropic, &anthropic), Some(Usage { input_tokens: 100, output_tokens: 20 }));
        assert_eq!(parse_usage(LlmApi::OpenAi, &json!({ "choices": [] })), None);
        let odd = json!({ "usage": { "prompt_tokens": -5, "completion_tokens": "many" } });
        assert_eq!(parse_usage(LlmApi::OpenAi, &odd), Some(Usage::default()));
    }

    #[test]
    fn the_endpoint_path_is_added_when_only_the_server_is_given() {
        let t = Duration::from_secs(1);
        let c = LlmClient::new(LlmApi::OpenAi, "http://127.0.0.1:9/", None, "m", t).unwrap();
        assert_eq!(c.url, "http://127.0.0.1:9/v1/chat/completions");
        let c = LlmClient::new(LlmApi::Anthropic, "https://api.example.com/v1", None, "m", t).unwrap();
        assert_eq!(c.url, "https://api.example.com/v1/messages");
        let c = LlmClient::new(LlmApi::OpenAi, "http://h/openai/deployments/x/chat/completions", None, "m", t).unwrap();
        assert_eq!(c.url, "http://h/openai/deployments/x/chat/completions");
    }
}
