//! A mock language model for tests, local development and the README: it
//! speaks OpenAI's chat completions (tool calling) and Anthropic's Messages
//! API, and picks a tool by simple rules from the prompt, so an `agent` step
//! behaves predictably without a real model.
//!
//! Rules, first match wins (a tool is only chosen if it was offered):
//! `complained` or `delivery_delayed` → `notify`; `bounced` → `suppress`;
//! `clicked` → `add_tag`; `opened` → `send_template`; otherwise the first tool.
//! Arguments are filled from each tool's schema: the first `enum` value, else a
//! short string. Every answer reports `usage` (about four characters a token,
//! as real tokenizers roughly do), and the mock counts the tokens it reported
//! and the most requests it had in hand at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;

#[derive(Clone, Debug, Default, clap::Args)]
pub struct MockLlmConfig {
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 3002)]
    pub port: u16,
    /// Milliseconds before every answer (to exercise timeouts).
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Answer without any tool call (to exercise the fallback).
    #[arg(long, default_value_t = false)]
    pub malformed: bool,
    /// Always call this tool, whatever was offered: `{"name": ..., "arguments": {...}}`
    /// (to exercise the validation of what a model answers).
    #[arg(long)]
    pub answer: Option<String>,
}

/// What the mock has seen and said, shared by its handlers and its owner.
#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    input_tokens: AtomicU64,
    output_tokens: AtomicU64,
}

#[derive(Clone)]
struct MockState {
    config: Arc<MockLlmConfig>,
    counters: Arc<Counters>,
    bodies: Arc<std::sync::Mutex<Vec<Value>>>,
}

pub struct MockLlm {
    addr: SocketAddr,
    counters: Arc<Counters>,
    bodies: Arc<std::sync::Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl MockLlm {
    pub async fn start(config: MockLlmConfig) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", config.port)).await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let bodies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let state = MockState { config: Arc::new(config), counters: counters.clone(), bodies: bodies.clone() };
        let router = Router::new()
            .route("/v1/chat/completions", post(openai))
            .route("/v1/messages", post(anthropic))
            .with_state(state);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "mock LLM stopped");
            }
        });
        Ok(Self { addr, counters, bodies, task })
    }

    /// The server's base URL (mailroom adds `/v1/...`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// The most requests the mock had in hand at once (waiting out `delay_ms`).
    pub fn max_in_flight(&self) -> u64 {
        self.counters.max_in_flight.load(Ordering::SeqCst)
    }

    /// The tokens the mock's answers reported in `usage`: (input, output).
    pub fn tokens(&self) -> (u64, u64) {
        (self.counters.input_tokens.load(Ordering::SeqCst), self.counters.output_tokens.load(Ordering::SeqCst))
    }

    /// The request bodies received so far (the last 100).
    pub fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

impl Drop for MockLlm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The text the rules look at: every message's content, as one lower-case string.
fn prompt_text(body: &Value) -> String {
    let mut text = body.get("system").and_then(Value::as_str).unwrap_or_default().to_owned();
    for m in body.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default() {
        match m.get("content") {
            Some(Value::String(s)) => text.push_str(s),
            Some(other) => text.push_str(&other.to_string()),
            None => {}
        }
        text.push('\n');
    }
    text.to_lowercase()
}

/// The chosen tool's name and arguments, from `(name, schema)` pairs offered.
fn choose(prompt: &str, tools: &[(String, Value)]) -> Option<(String, Value, String)> {
    let rules = [
        ("complained", "notify"),
        ("delivery_delayed", "notify"),
        ("bounced", "suppress"),
        ("clicked", "add_tag"),
        ("opened", "send_template"),
    ];
    let offered = |name: &str| tools.iter().find(|(n, _)| n == name);
    let (name, schema, reason) = rules
        .iter()
        .filter(|(word, _)| prompt.contains(word))
        .find_map(|(word, tool)| offered(tool).map(|(n, s)| (n, s, format!("mock: the event is `{word}`"))))
        .or_else(|| tools.first().map(|(n, s)| (n, s, "mock: no rule matched; the first tool".to_owned())))?;
    Some((name.clone(), arguments(schema, &reason), reason))
}

/// The forced answer, else nothing when malformed, else the rules' choice.
fn decide(state: &MockState, body: &Value, tools: &[(String, Value)]) -> Option<(String, Value, String)> {
    if let Some(forced) = state.config.answer.as_deref().and_then(|a| serde_json::from_str::<Value>(a).ok()) {
        let name = forced.get("name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let args = forced.get("arguments").cloned().unwrap_or(json!({}));
        return Some((name, args, "mock: the forced answer".to_owned()));
    }
    (!state.config.malformed).then(|| choose(&prompt_text(body), tools)).flatten()
}

fn arguments(schema: &Value, reason: &str) -> Value {
    let mut args = Map::new();
    let properties = schema.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
    for (key, p) in properties {
        let value = match (p.get("enum").and_then(Value::as_array).and_then(|e| e.first()), p.get("type")) {
            (Some(first), _) => first.clone(),
            (None, _) if key == "reason" => json!(reason),
            (None, Some(t)) if t == "integer" || t == "number" => json!(1),
            (None, Some(t)) if t == "boolean" => json!(false),
            (None, _) => json!(format!("mock {key}")),
        };
        args.insert(key, value);
    }
    Value::Object(args)
}

/// The `usage` of an answer: about four characters a token, at least one;
/// counted in the mock's totals.
fn usage(state: &MockState, body: &Value, answer: &Value) -> (u64, u64) {
    let tokens = |v: &Value| (v.to_string().len() as u64).div_ceil(4).max(1);
    let (input, output) = (tokens(body), tokens(answer));
    state.counters.input_tokens.fetch_add(input, Ordering::SeqCst);
    state.counters.output_tokens.fetch_add(output, Ordering::SeqCst);
    (input, output)
}

async fn answer_after_delay(state: &MockState, body: &Value) {
    let c = &state.counters;
    c.requests.fetch_add(1, Ordering::Relaxed);
    let now = c.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    c.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if let Ok(mut bodies) = state.bodies.lock() {
        if bodies.len() >= 100 {
            bodies.remove(0);
        }
        bodies.push(body.clone());
    }
    if state.config.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(state.config.delay_ms)).await;
    }
    c.in_flight.fetch_sub(1, Ordering::SeqCst);
}

async fn openai(State(state): State<MockState>, Json(body): Json<Value>) -> Json<Value> {
    answer_after_delay(&state, &body).await;
    let tools: Vec<(String, Value)> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            let f = t.get("function")?;
            Some((f.get("name")?.as_str()?.to_owned(), f.get("parameters").cloned().unwrap_or(json!({}))))
        })
        .collect();
    let chosen = decide(&state, &body, &tools);
    let message = match chosen {
        Some((name, args, reason)) => json!({ "role": "assistant", "content": reason, "tool_calls": [{
            "id": "call_mock", "type": "function", "function": { "name": name, "arguments": args.to_string() } }] }),
        None => json!({ "role": "assistant", "content": "I would rather not choose." }),
    };
    let (input, output) = usage(&state, &body, &message);
    Json(json!({ "id": "chatcmpl-mock", "object": "chat.completion", "model": body.get("model"),
        "choices": [{ "index": 0, "message": message, "finish_reason": "tool_calls" }],
        "usage": { "prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output } }))
}

async fn anthropic(State(state): State<MockState>, Json(body): Json<Value>) -> Json<Value> {
    answer_after_delay(&state, &body).await;
    let tools: Vec<(String, Value)> = body
        .get("tools")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            Some((t.get("name")?.as_str()?.to_owned(), t.get("input_schema").cloned().unwrap_or(json!({}))))
        })
        .collect();
    let chosen = decide(&state, &body, &tools);
    let content = match chosen {
        Some((name, args, reason)) => {
            json!([{ "type": "text", "text": reason }, { "type": "tool_use", "id": "toolu_mock", "name": name, "input": args }])
        }
        None => json!([{ "type": "text", "text": "I would rather not choose." }]),
    };
    let (input, output) = usage(&state, &body, &content);
    Json(json!({ "id": "msg_mock", "type": "message", "role": "assistant", "model": body.get("model"),
        "content": content, "stop_reason": "tool_use",
        "usage": { "input_tokens": input, "output_tokens": output } }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::{LlmApi, LlmClient, LlmError, ToolSpec};

    fn tools() -> Vec<ToolSpec> {
        let schema = |props: Value| json!({ "type": "object", "properties": props, "required": [] });
        vec![
            ToolSpec {
                name: "send_template".into(),
                description: "send a template".into(),
                parameters: schema(
                    json!({ "template_id": { "type": "string", "enum": ["tpl-1", "tpl-2"] }, "reason": { "type": "string" } }),
                ),
            },
            ToolSpec {
                name: "add_tag".into(),
                description: "tag the contact".into(),
                parameters: schema(json!({ "tag": { "type": "string", "enum": ["engaged"] } })),
            },
            ToolSpec {
                name: "notify".into(),
                description: "alert".into(),
                parameters: schema(json!({ "message": { "type": "string" } })),
            },
        ]
    }

    #[tokio::test]
    async fn the_client_and_the_mock_agree_in_both_wire_formats() {
        let mock = MockLlm::start(MockLlmConfig { port: 0, ..MockLlmConfig::default() }).await.unwrap();
        for api in [LlmApi::OpenAi, LlmApi::Anthropic] {
            let client = LlmClient::new(api, &mock.url(), Some("k".into()), "mock-1", Duration::from_secs(5)).unwrap();
            let call = client.choose_tool("You act on email events.", "Event: email.clicked", &tools()).await.unwrap();
            assert_eq!(call.name, "add_tag", "{api:?}");
            assert_eq!(call.arguments, json!({ "tag": "engaged" }));
            let call = client.choose_tool("s", "Event: email.opened", &tools()).await.unwrap();
            assert_eq!(call.name, "send_template");
            assert_eq!(call.arguments["template_id"], "tpl-1");
            assert_eq!(call.arguments["reason"], "mock: the event is `opened`");
            assert!(call.reason.unwrap().contains("opened"));
            let answer = client.ask("s", "Event: email.opened", &tools()).await;
            let usage = answer.usage.expect("the mock reports usage");
            assert!(usage.input_tokens > 0 && usage.output_tokens > 0, "{api:?}: {usage:?}");
        }
        assert_eq!(mock.requests(), 6);
        let (input, output) = mock.tokens();
        assert!(input > 0 && output > 0);
    }

    #[tokio::test]
    async fn a_slow_or_toolless_answer_is_an_error() {
        let slow = MockLlm::start(MockLlmConfig { port: 0, delay_ms: 500, ..MockLlmConfig::default() }).await.unwrap();
        let client = LlmClient::new(LlmApi::OpenAi, &slow.url(), None, "m", Duration::from_millis(100)).unwrap();
        assert!(matches!(client.choose_tool("s", "opened", &tools()).await, Err(LlmError::Timeout(100))));
        let toolless =
            MockLlm::start(MockLlmConfig { port: 0, malformed: true, ..MockLlmConfig::default() }).await.unwrap();
        for api in [LlmApi::OpenAi, LlmApi::Anthropic] {
            let client = LlmClient::new(api, &toolless.url(), None, "m", Duration::from_secs(5)).unwrap();
            assert!(matches!(client.choose_tool("s", "opened", &tools()).await, Err(LlmError::Malformed(_))));
        }
        let down = LlmClient::new(LlmApi::Anthropic, "http://127.0.0.1:9", None, "m", Duration::from_secs(2)).unwrap();
        assert!(matches!(down.choose_tool("s", "x", &tools()).await, Err(LlmError::Transport(_))));
    }
}
