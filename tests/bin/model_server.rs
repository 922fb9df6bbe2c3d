//! `sf-model-server`: a scripted model server on loopback, so that the end-to-end tests run
//! the real agent CLIs (Claude Code, Codex, OpenCode, pinned in `tests/agents/`) with no
//! network and no account. It speaks what each CLI asks of its provider:
//!
//! - the Anthropic Messages API, streamed (`POST /v1/messages`): Claude Code with
//!   `ANTHROPIC_BASE_URL`;
//! - the OpenAI Responses API, streamed (`POST /v1/responses`): Codex with a
//!   `model_providers` entry whose `wire_api = "responses"`;
//! - the OpenAI-compatible chat completions API, streamed (`POST /v1/chat/completions`):
//!   OpenCode with a provider using `@ai-sdk/openai-compatible`.
//!
//! It plays a script (`--script FILE`, a JSON array of turns), one turn per *main* request: a
//! request that offers the model tools. A request without tools is the CLI's own side call
//! (OpenCode's title, Claude Code's quota probe) and gets a short text without using a turn.
//! When the script runs out its last turn is played again (so `[{"status": 401}]` refuses
//! every request, and a finished script keeps answering its final text). Turns:
//!
//! - `{"bash": "CMD"}`: the model calls the CLI's shell tool (`Bash`, `exec_command`, `bash`)
//!   with CMD; the CLI runs it and sends the result with its next request;
//! - `{"call": "NAME", "arguments": {...}}`: the model calls the tool NAME with these
//!   arguments, as the CLI names and shapes them (`"$SESSION"` in the arguments becomes the
//!   process session Codex named in its last tool output, for `write_stdin`);
//! - `{"text": "..."}`: a final answer, ending the turn;
//! - `{"status": N, "message": "...", "reset_secs": S, "headers": {...}}`: an HTTP error in
//!   the API's own shape (401: authentication; 429: a usage limit resetting in S seconds,
//!   with the headers and the error type each CLI reads; `headers` adds or replaces some);
//! - `{"cut": true}`: the stream starts, then the connection drops mid-turn;
//! - `{"hang": true}`: the request is accepted and never answered.
//!
//! Side calls, as the `--requests` logs of the pinned versions show them: Claude Code 2.1.332
//! in `-p` mode sends only main requests (each offers its ~20 tools); without
//! `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC` it also sends `HEAD /api/hello`, a connectivity
//! probe, answered 200. Codex 0.171.0 `exec` sends only main requests (each with `tools`).
//! OpenCode 1.18.33 first asks for a session title: a chat completion with no `tools`, the
//! prompt as its last message. `GET …/models` and `…/count_tokens` are answered harmlessly.
//! None of these uses a turn.
//!
//! It prints `listening on 127.0.0.1:PORT` as its first line, and with `--requests FILE`
//! appends one JSON line per request (method, path, model, the tools offered, whether it was
//! a main request, the turn played, the last message), for the tests' assertions.

mod model_server {
    pub mod apis;
    pub mod script;
}

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, Uri};
use axum::response::Response;

use model_server::apis::{self, Api};
use model_server::script::{Script, Turn};

/// What the handlers share: the script, where it is, and the request log.
pub struct Server {
    script: Script,
    next: Mutex<usize>,
    requests: Option<Mutex<std::fs::File>>,
}

impl Server {
    /// The turn for the next main request.
    fn take_turn(&self) -> (usize, Turn) {
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let i = (*next).min(self.script.turns.len().saturating_sub(1));
        *next += 1;
        (
            i,
            self.script.turns.get(i).cloned().unwrap_or(Turn::Text {
                text: "done".into(),
            }),
        )
    }

    fn log(&self, line: &serde_json::Value) {
        if let Some(f) = &self.requests {
            let mut f = f.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let _ = writeln!(f, "{line}");
        }
    }
}

async fn handle(
    State(server): State<Arc<Server>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if method == Method::HEAD {
        // Claude Code's connectivity probe (`HEAD /api/hello`)
        server.log(&serde_json::json!({"method": "HEAD", "path": path}));
        return Response::default();
    }
    let Some(api) = Api::of_path(&path) else {
        server.log(&serde_json::json!({"method": method.as_str(), "path": path, "answer": 404}));
        return apis::not_found(&path);
    };
    if method == Method::GET {
        server.log(&serde_json::json!({"method": "GET", "path": path}));
        return apis::models(api);
    }
    if path.ends_with("/count_tokens") {
        server.log(&serde_json::json!({"method": method.as_str(), "path": path, "main": false}));
        return apis::count_tokens();
    }
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let main = request
        .get("tools")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let model = request.get("model").cloned().unwrap_or_default();
    if !main {
        server.log(&serde_json::json!({
            "method": method.as_str(),
            "path": path,
            "model": model,
            "main": false,
            "last_user": apis::last_user_text(api, &request),
        }));
        return apis::play(
            api,
            &request,
            &Turn::Text {
                text: "Untitled".into(),
            },
            0,
        );
    }
    let (index, turn) = server.take_turn();
    server.log(&serde_json::json!({
        "method": method.as_str(),
        "path": path,
        "model": model,
        "tools": apis::tool_names(&request),
        "main": true,
        "turn": index,
        "played": turn,
        "last_user": apis::last_user_text(api, &request),
        "messages": apis::message_count(api, &request),
    }));
    if let Turn::Hang { .. } = turn {
        std::future::pending::<()>().await;
    }
    apis::play(api, &request, &turn, index)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut script, mut requests, mut port) = (None, None, 0u16);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--script" => script = args.next(),
            "--requests" => requests = args.next(),
            "--port" => port = args.next().ok_or("--port needs a number")?.parse()?,
            other => return Err(format!("unknown argument `{other}`").into()),
        }
    }
    let script = Script::load(script.as_deref().ok_or("--script FILE is required")?)?;
    let requests = requests
        .map(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map(Mutex::new)
        })
        .transpose()?;
    let server = Arc::new(Server {
        script,
        next: Mutex::new(0),
        requests,
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await?;
        println!("listening on {}", listener.local_addr()?);
        std::io::stdout().flush()?;
        let app = Router::new().fallback(handle).with_state(server);
        axum::serve(listener, app).await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}
