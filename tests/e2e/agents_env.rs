//! The pinned agent CLIs (`tests/agents/`) pointed at `sf-model-server` on loopback, with no
//! network: where each CLI is, the model server, and the environment and config files each
//! CLI needs, as sf's workers run them (a cleared environment: `PATH`, `HOME`, `LANG`,
//! `TERM` and what is passed). `tests/agents/README.md` says why each setting is there.
//!
//! A missing CLI fails the test that asks for it, with the install command: never a skip.

use std::fs;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The agent CLIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cli {
    Claude,
    Codex,
    Opencode,
}

/// The model every CLI asks for; OpenCode names it with its provider.
pub(crate) const MODEL: &str = "sf-test-model";
pub(crate) const OPENCODE_MODEL: &str = "mock/sf-test-model";
/// The API key the tests grant; the server accepts any.
pub(crate) const API_KEY: &str = "sk-sf-test";

impl Cli {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Claude => "claude",
            Self::Codex => "codex",
            Self::Opencode => "opencode",
        }
    }

    /// The pinned CLI; a missing one is an install failure.
    pub(crate) fn path(self) -> PathBuf {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("agents/node_modules/.bin")
            .join(self.name());
        assert!(
            bin.exists(),
            "the pinned {} CLI is not installed at {}: run `npm install --prefix tests/agents \
             --no-save` (Node.js 20+ with npm; `npm ci` refuses the lockfile, which cannot list \
             OpenCode's packages for other platforms)",
            self.name(),
            bin.display()
        );
        bin
    }

    /// What sf's adapter launches, from `sf_adapters::launch` itself: the arguments (the
    /// prompt goes on stdin), the variables it adds (OpenCode's config, with sf's guard plugin
    /// added to `opencode_config`) and the files it asks for next to `prompt_file`.
    pub(crate) fn launch(
        self,
        prompt_file: &Path,
        opencode_config: Option<&str>,
    ) -> sf_adapters::Launch {
        let adapter = match self {
            Self::Claude => sf_proto::Adapter::Claude,
            Self::Codex => sf_proto::Adapter::Codex,
            Self::Opencode => sf_proto::Adapter::Opencode,
        };
        sf_adapters::launch(&sf_adapters::LaunchInput {
            adapter,
            executable: None,
            model: (self == Self::Opencode).then_some(OPENCODE_MODEL),
            effort: None,
            prompt: "",
            prompt_file,
            resume_session: None,
            opencode_config,
        })
        .expect("the adapter builds a command line")
    }

    /// The variable the CLI reads its API key from (Codex and OpenCode: the `mock`
    /// provider's, as configured by [`codex_config`] and [`opencode_config`]).
    pub(crate) fn key_var(self) -> &'static str {
        match self {
            Self::Claude => "ANTHROPIC_API_KEY",
            Self::Codex | Self::Opencode => "MOCK_API_KEY",
        }
    }
}

/// `sf-model-server` playing a script; killed on drop.
pub(crate) struct ModelServer {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// One JSON line per request the server received.
    pub requests_path: PathBuf,
    child: Child,
    _dir: tempfile::TempDir,
}

impl ModelServer {
    /// Starts the server on a free port with `script` (a JSON array of turns).
    pub(crate) fn start(script: &Value) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let script_path = dir.path().join("model-script.json");
        fs::write(&script_path, script.to_string()).expect("write the script");
        let requests_path = dir.path().join("model-requests.jsonl");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sf-model-server"))
            .arg("--script")
            .arg(&script_path)
            .arg("--requests")
            .arg(&requests_path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sf-model-server");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("read the server's first line");
        let addr = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_owned();
        Self {
            addr,
            requests_path,
            child,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request the server logged, in order.
    pub(crate) fn requests(&self) -> Vec<Value> {
        fs::read_to_string(&self.requests_path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    /// The main requests (those that played a turn), in order.
    pub(crate) fn played(&self) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| r["main"] == json!(true))
            .collect()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Codex's `config.toml` for a provider at `base` (`http://HOST:PORT`): the Responses API,
/// the key from `MOCK_API_KEY`, no retries (a test's errors end the run at once; a user's
/// Codex retries 5 times).
pub(crate) fn codex_config(base: &str) -> String {
    format!(
        "model = \"{MODEL}\"\nmodel_provider = \"mock\"\n\
         [model_providers.mock]\nname = \"mock\"\nbase_url = \"{base}/v1\"\n\
         env_key = \"MOCK_API_KEY\"\nwire_api = \"responses\"\n\
         request_max_retries = 0\nstream_max_retries = 0\n"
    )
}

/// OpenCode's config (for `OPENCODE_CONFIG_CONTENT`) for a provider at `base`: chat
/// completions through `@ai-sdk/openai-compatible`, which the binary bundles (nothing is
/// installed from npm), the key from `MOCK_API_KEY`.
pub(crate) fn opencode_config(base: &str) -> String {
    json!({
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": false,
        "share": "disabled",
        "provider": {"mock": {
            "npm": "@ai-sdk/openai-compatible",
            "name": "mock",
            "options": {"baseURL": format!("{base}/v1"), "apiKey": "{env:MOCK_API_KEY}"},
            "models": {MODEL: {"name": MODEL}}
        }}
    })
    .to_string()
}

/// The variables that point every CLI at `base`, and keep each off the network (no key:
/// see [`Cli::key_var`]). As root, Claude Code refuses `--dangerously-skip-permissions`
/// without `IS_SANDBOX=1`.
pub(crate) fn provider_env(base: &str) -> Vec<(String, String)> {
    [
        ("ANTHROPIC_BASE_URL", base.to_owned()),
        ("IS_SANDBOX", "1".to_owned()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_owned()),
        ("DISABLE_AUTOUPDATER", "1".to_owned()),
        ("OPENCODE_CONFIG_CONTENT", opencode_config(base)),
        ("OPENCODE_DISABLE_AUTOUPDATE", "1".to_owned()),
        ("OPENCODE_DISABLE_MODELS_FETCH", "1".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// The whole environment `cli` runs with against `server`, as a worker's: `PATH`, `HOME`,
/// `LANG`, `TERM`, a git identity, what points the CLI at the server, and the API key.
pub(crate) fn cli_env(cli: Cli, server: &ModelServer, home: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("HOME", home.display().to_string()),
        ("LANG", "C.UTF-8".to_owned()),
        ("TERM", "dumb".to_owned()),
        ("GIT_AUTHOR_NAME", "sf".to_owned()),
        ("GIT_AUTHOR_EMAIL", "sf@sf.invalid".to_owned()),
        ("GIT_COMMITTER_NAME", "sf".to_owned()),
        ("GIT_COMMITTER_EMAIL", "sf@sf.invalid".to_owned()),
        (cli.key_var(), API_KEY.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    env.extend(provider_env(&server.base_url()));
    env
}

/// The config files `cli` reads from `home`: Codex's `~/.codex/config.toml`; OpenCode's
/// config folder as its first run leaves it ([`opencode_config_dir`]). Claude Code needs
/// none: it is configured by [`cli_env`].
pub(crate) fn write_cli_config(cli: Cli, server: &ModelServer, home: &Path) {
    match cli {
        Cli::Codex => {
            let dir = home.join(".codex");
            fs::create_dir_all(&dir).expect("mkdir .codex");
            fs::write(dir.join("config.toml"), codex_config(&server.base_url()))
                .expect("write codex config");
        }
        Cli::Opencode => opencode_config_dir(home),
        Cli::Claude => {}
    }
}

/// `~/.config/opencode` in `home` as OpenCode's first run leaves it: its `package.json`
/// and lock naming `@opencode-ai/plugin` and a `node_modules` folder (empty here). OpenCode
/// installs that package from npm into each config folder at every start, in the background;
/// a run with a plugin (sf's guard) waits for the install first, which with no network takes
/// over a minute of npm's retries. Where the folder says it is installed, it is not.
pub(crate) fn opencode_config_dir(home: &Path) {
    let dir = home.join(".config/opencode");
    fs::create_dir_all(dir.join("node_modules")).expect("mkdir .config/opencode");
    let deps = json!({"@opencode-ai/plugin": "1.18.33"});
    fs::write(
        dir.join("package.json"),
        json!({"dependencies": deps}).to_string(),
    )
    .expect("write package.json");
    fs::write(
        dir.join("package-lock.json"),
        json!({"packages": {"": {"dependencies": deps}}}).to_string(),
    )
    .expect("write package-lock.json");
}

/// How a CLI run ended.
#[derive(Debug)]
pub(crate) struct CliRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// Everything the CLI printed, as sf's run log holds it: stdout, then stderr.
    pub(crate) fn log(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// The stdout lines that are JSON.
    pub(crate) fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }
}

/// Runs `cli` in `repo` with `env` and what sf's adapter adds to it, `prompt` on stdin, and
/// waits for it to exit. A CLI still running after `limit` is killed (with everything it
/// started) and the test fails with what it printed.
pub(crate) fn run_cli(
    cli: Cli,
    repo: &Path,
    env: &[(String, String)],
    prompt: &str,
    limit: Duration,
) -> CliRun {
    // the prompt file and the adapter's files (OpenCode's guard plugin), as sfd writes them
    let files = tempfile::tempdir().expect("tempdir");
    let prompt_file = files.path().join("run.prompt.md");
    fs::write(&prompt_file, prompt).expect("write the prompt file");
    let opencode_config = env
        .iter()
        .find(|(k, _)| k == "OPENCODE_CONFIG_CONTENT")
        .map(|(_, v)| v.as_str());
    let launch = cli.launch(&prompt_file, opencode_config);
    for (path, text) in &launch.files {
        fs::create_dir_all(path.parent().expect("a folder")).expect("mkdir the file's folder");
        fs::write(path, text).expect("write the adapter's file");
    }
    let mut child = Command::new(cli.path())
        .args(&launch.args)
        .current_dir(repo)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", cli.name()));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(prompt.as_bytes())
        .expect("write the prompt");
    let read = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("stdout")));
    let stderr = read(Box::new(child.stderr.take().expect("stderr")));
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let started = Instant::now();
    let status = match rx.recv_timeout(limit) {
        Ok(status) => status.expect("wait for the CLI"),
        Err(_) => {
            let pgid = nix::unistd::Pid::from_raw(-i32::try_from(pid).expect("pid"));
            let _ = nix::sys::signal::kill(pgid, nix::sys::signal::Signal::SIGKILL);
            let (out, err) = (stdout.join(), stderr.join());
            panic!(
                "{} still running after {:?}; it printed:\n{out:?}\n{err:?}",
                cli.name(),
                started.elapsed()
            );
        }
    };
    CliRun {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}
