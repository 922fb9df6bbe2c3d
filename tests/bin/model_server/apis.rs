//! Each API's shapes: the streamed events of a tool call or an answer, and its errors.
//! Learned from the APIs' references and from what the pinned CLIs send and accept (their
//! requests are in `--requests`): Anthropic's `message_start` … `message_stop` events with
//! `tool_use` blocks and `input_json_delta`s; the Responses API's `response.created`,
//! `response.output_item.done` (a `function_call` or a `message`) and `response.completed`
//! with `usage`; chat completions' `chat.completion.chunk`s with `tool_calls`, then a usage
//! chunk and `[DONE]`.

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::script::Turn;

/// Which API a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Anthropic,
    Responses,
    Chat,
}

impl Api {
    pub fn of_path(path: &str) -> Option<Self> {
        if path.contains("/messages") {
            Some(Self::Anthropic)
        } else if path.ends_with("/responses") {
            Some(Self::Responses)
        } else if path.ends_with("/chat/completions") || path.ends_with("/models") {
            Some(Self::Chat)
        } else {
            None
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = Response::new(Body::from(body.to_string()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

pub fn not_found(path: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({"error": {"message": format!("sf-model-server does not serve {path}"), "type": "not_found"}}),
    )
}

pub fn models(_api: Api) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"object": "list", "data": [{"id": "sf-test-model", "object": "model", "owned_by": "sf"}]}),
    )
}

pub fn count_tokens() -> Response {
    json_response(StatusCode::OK, &json!({"input_tokens": 100}))
}

/// The text of the last user message, for the request log.
pub fn last_user_text(api: Api, request: &Value) -> String {
    let list = match api {
        Api::Responses => request.get("input"),
        Api::Anthropic | Api::Chat => request.get("messages"),
    };
    let Some(last) = list.and_then(Value::as_array).and_then(|l| l.last()) else {
        return String::new();
    };
    let text = last.to_string();
    text.chars().take(300).collect()
}

/// `arguments` with `"$SESSION"` replaced by the process session the CLI named in its last
/// tool output (Codex: `Process running with session ID N`), so a script can write to a
/// process an earlier turn started.
fn with_session(api: Api, request: &Value, arguments: &str) -> String {
    if !arguments.contains("\"$SESSION\"") {
        return arguments.to_owned();
    }
    let list = match api {
        Api::Responses => request.get("input"),
        Api::Anthropic | Api::Chat => request.get("messages"),
    };
    let last = list
        .and_then(Value::as_array)
        .and_then(|l| l.last())
        .map(Value::to_string)
        .unwrap_or_default();
    let id: String = last
        .split_once("session ID ")
        .map(|(_, rest)| rest.chars().take_while(char::is_ascii_digit).collect())
        .unwrap_or_default();
    arguments.replace("\"$SESSION\"", if id.is_empty() { "0" } else { &id })
}

/// The names of the tools the request offers, for the request log.
pub fn tool_names(request: &Value) -> Vec<String> {
    let tools = request.get("tools").and_then(Value::as_array);
    tools
        .into_iter()
        .flatten()
        .filter_map(|t| {
            // Anthropic and Responses: `{name}`; chat completions: `{function: {name}}`
            t.get("name")
                .or_else(|| t.pointer("/function/name"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect()
}

/// How many messages (input items) the request carries: a resumed session carries the
/// earlier turns too.
pub fn message_count(api: Api, request: &Value) -> usize {
    let list = match api {
        Api::Responses => request.get("input"),
        Api::Anthropic | Api::Chat => request.get("messages"),
    };
    list.and_then(Value::as_array).map_or(0, Vec::len)
}

/// Token counts that grow with the turn, so that tests can tell turns apart.
fn usage(index: usize) -> (u64, u64) {
    let n = index as u64 + 1;
    (100 * n, 10 * n)
}

/// One SSE event.
fn sse(event: Option<&str>, data: &Value) -> Bytes {
    match event {
        Some(e) => Bytes::from(format!("event: {e}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}

fn stream(chunks: Vec<Bytes>, cut: bool) -> Response {
    let keep = if cut { chunks.len() / 2 } else { chunks.len() };
    let mut items: Vec<Result<Bytes, std::io::Error>> =
        chunks.into_iter().take(keep).map(Ok).collect();
    if cut {
        items.push(Err(std::io::Error::other("cut by the script")));
    }
    let body = Body::from_stream(futures::stream::iter(items));
    let mut r = Response::new(body);
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}

/// Plays `turn` as `api` answers it.
pub fn play(api: Api, request: &Value, turn: &Turn, index: usize) -> Response {
    match turn {
        Turn::Status {
            status,
            message,
            reset_secs,
            headers,
        } => {
            let mut r = error(api, *status, message.as_deref(), *reset_secs);
            for (k, v) in headers.iter().flatten() {
                if let (Ok(k), Ok(v)) = (
                    axum::http::HeaderName::from_bytes(k.as_bytes()),
                    HeaderValue::from_str(v),
                ) {
                    r.headers_mut().insert(k, v);
                }
            }
            r
        }
        Turn::Cut { .. } => {
            let text = Turn::Text {
                text: "this answer is cut off before it ends".into(),
            };
            events(api, request, &text, index, true)
        }
        Turn::Hang { .. } | Turn::Bash { .. } | Turn::Call { .. } | Turn::Text { .. } => {
            events(api, request, turn, index, false)
        }
    }
}

fn events(api: Api, request: &Value, turn: &Turn, index: usize, cut: bool) -> Response {
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("sf-test-model")
        .to_owned();
    let (input, output) = usage(index);
    let call_id = format!("call_{index}");
    let chunks = match (api, turn) {
        (Api::Anthropic, Turn::Bash { bash }) => anthropic(
            &model,
            index,
            json!({"type": "tool_use", "id": format!("toolu_{index}"), "name": "Bash", "input": {}}),
            json!({"type": "input_json_delta", "partial_json": json!({"command": bash, "description": "run a command"}).to_string()}),
            "tool_use",
            (input, output),
        ),
        (Api::Anthropic, Turn::Call { call, arguments }) => anthropic(
            &model,
            index,
            json!({"type": "tool_use", "id": format!("toolu_{index}"), "name": call, "input": {}}),
            json!({"type": "input_json_delta", "partial_json": arguments.to_string()}),
            "tool_use",
            (input, output),
        ),
        (Api::Anthropic, Turn::Text { text }) => anthropic(
            &model,
            index,
            json!({"type": "text", "text": ""}),
            json!({"type": "text_delta", "text": text}),
            "end_turn",
            (input, output),
        ),
        (Api::Responses, Turn::Bash { bash }) => responses(
            index,
            json!({"type": "function_call", "id": format!("fc_{index}"), "call_id": call_id,
                   "name": "exec_command", "arguments": json!({"cmd": bash}).to_string(),
                   "status": "completed"}),
            (input, output),
        ),
        (Api::Responses, Turn::Call { call, arguments }) => responses(
            index,
            json!({"type": "function_call", "id": format!("fc_{index}"), "call_id": call_id,
                   "name": call, "arguments": with_session(api, request, &arguments.to_string()),
                   "status": "completed"}),
            (input, output),
        ),
        (Api::Responses, Turn::Text { text }) => responses(
            index,
            json!({"type": "message", "id": format!("msg_{index}"), "role": "assistant",
                   "status": "completed",
                   "content": [{"type": "output_text", "text": text, "annotations": []}]}),
            (input, output),
        ),
        (Api::Chat, Turn::Bash { bash }) => chat(
            &model,
            index,
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": call_id,
                   "type": "function", "function": {"name": "bash",
                   "arguments": json!({"command": bash, "description": "run a command"}).to_string()}}]}),
            "tool_calls",
            (input, output),
        ),
        (Api::Chat, Turn::Call { call, arguments }) => chat(
            &model,
            index,
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": call_id,
                   "type": "function", "function": {"name": call,
                   "arguments": arguments.to_string()}}]}),
            "tool_calls",
            (input, output),
        ),
        (Api::Chat, Turn::Text { text }) => chat(
            &model,
            index,
            json!({"role": "assistant", "content": text}),
            "stop",
            (input, output),
        ),
        // not reached: errors, cuts and hangs are played above
        _ => Vec::new(),
    };
    stream(chunks, cut)
}

fn anthropic(
    model: &str,
    index: usize,
    block: Value,
    delta: Value,
    stop: &str,
    (input, output): (u64, u64),
) -> Vec<Bytes> {
    let id = format!("msg_sf_{index}");
    vec![
        sse(
            Some("message_start"),
            &json!({"type": "message_start", "message": {"id": id, "type": "message",
                "role": "assistant", "model": model, "content": [], "stop_reason": null,
                "stop_sequence": null, "usage": {"input_tokens": input, "output_tokens": 1,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}}),
        ),
        sse(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": 0, "content_block": block}),
        ),
        sse(
            Some("content_block_delta"),
            &json!({"type": "content_block_delta", "index": 0, "delta": delta}),
        ),
        sse(
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": 0}),
        ),
        sse(
            Some("message_delta"),
            &json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                "usage": {"output_tokens": output}}),
        ),
        sse(Some("message_stop"), &json!({"type": "message_stop"})),
    ]
}

fn responses(index: usize, item: Value, (input, output): (u64, u64)) -> Vec<Bytes> {
    let id = format!("resp_sf_{index}");
    let response = |status: &str, output_items: Value| {
        json!({"id": id, "object": "response", "created_at": 0, "status": status,
               "model": "sf-test-model", "output": output_items,
               "usage": {"input_tokens": input, "input_tokens_details": {"cached_tokens": 0},
                         "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0},
                         "total_tokens": input + output}})
    };
    vec![
        sse(
            Some("response.created"),
            &json!({"type": "response.created", "response": response("in_progress", json!([]))}),
        ),
        sse(
            Some("response.output_item.added"),
            &json!({"type": "response.output_item.added", "output_index": 0, "item": item}),
        ),
        sse(
            Some("response.output_item.done"),
            &json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
        ),
        sse(
            Some("response.completed"),
            &json!({"type": "response.completed", "response": response("completed", json!([item]))}),
        ),
    ]
}

fn chat(
    model: &str,
    index: usize,
    delta: Value,
    finish: &str,
    (input, output): (u64, u64),
) -> Vec<Bytes> {
    let id = format!("chatcmpl-sf-{index}");
    let chunk = |choices: Value, usage: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
               "choices": choices, "usage": usage})
    };
    vec![
        sse(
            None,
            &chunk(
                json!([{"index": 0, "delta": delta, "finish_reason": null}]),
                Value::Null,
            ),
        ),
        sse(
            None,
            &chunk(
                json!([{"index": 0, "delta": {}, "finish_reason": finish}]),
                Value::Null,
            ),
        ),
        sse(
            None,
            &chunk(
                json!([]),
                json!({"prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output}),
            ),
        ),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ]
}

/// An HTTP error as `api` sends it. A 429 carries its reset: Anthropic's unified rate-limit
/// headers, OpenAI's `usage_limit_reached` with `resets_in_seconds` (what Codex reads), and
/// `retry-after`.
fn error(api: Api, status: u16, message: Option<&str>, reset_secs: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reset = reset_secs.unwrap_or(3600);
    let reset_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + reset;
    let (kind, default) = match status {
        401 => ("authentication_error", "invalid x-api-key"),
        429 => ("rate_limit_error", "You've hit your usage limit."),
        _ => ("api_error", "internal server error"),
    };
    let message = message.unwrap_or(default);
    let body = match api {
        Api::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
        Api::Responses | Api::Chat if status == 429 => json!({"error": {
            "type": "usage_limit_reached", "code": "usage_limit_reached", "message": message,
            "resets_in_seconds": reset, "resets_at": reset_at, "plan_type": "plus"}}),
        Api::Responses | Api::Chat => json!({"error": {
            "type": if status == 401 { "invalid_request_error" } else { "server_error" },
            "code": if status == 401 { "invalid_api_key" } else { "server_error" },
            "message": message}}),
    };
    let mut r = json_response(code, &body);
    if status == 429 {
        let at = reset_at;
        let h = r.headers_mut();
        for (k, v) in [
            ("retry-after", reset.to_string()),
            ("anthropic-ratelimit-unified-status", "rejected".to_owned()),
            ("anthropic-ratelimit-unified-reset", at.to_string()),
            ("x-ratelimit-reset-requests", format!("{reset}s")),
            ("x-ratelimit-reset-tokens", format!("{reset}s")),
            ("x-codex-primary-reset-after-seconds", reset.to_string()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
    }
    r
}
