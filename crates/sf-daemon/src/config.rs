//! `.sf/config.toml`, read once at startup into a validated [`Config`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use sf_proto::paths::WorkspacePaths;

/// The file as written by the user; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawConfig {
    tick_interval: Option<String>,
    max_workers: Option<u32>,
    target_branch: Option<String>,
    max_attempts: Option<u32>,
    log_level: Option<String>,
    worker_timeout: Option<String>,
    stall_timeout: Option<String>,
    triage_batch: Option<u32>,
    triage_after: Option<String>,
    session_health_interval: Option<String>,
    resume_on_handoff: bool,
    require_approval_for_new_agents: Option<bool>,
    stop_grace: Option<String>,
    complete_grace: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<u32>,
    steward_fire_limit: Option<u32>,
    run_log_max: Option<RawSize>,
    env_passthrough: Vec<String>,
    sfctl: Option<PathBuf>,
    timezone: Option<String>,
    worktree: RawWorktree,
    merge: RawMerge,
    sandbox: RawSandbox,
    secrets: BTreeMap<String, String>,
    prices: BTreeMap<String, Price>,
    staffing: RawStaffing,
}

/// `[staffing]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawStaffing {
    require_dry_run: bool,
}

/// What a model costs, in US dollars per million tokens (`[prices]`), for the CLIs that do
/// not report a run's cost (Codex): budgets on cost count what these make of its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million input tokens (cache reads excluded).
    pub input: f64,
    /// Per million output tokens.
    pub output: f64,
    /// Per million tokens read from the cache (default: free).
    #[serde(default)]
    pub cache_read: f64,
}

impl Price {
    /// The cost of `usage` at this price.
    pub fn cost(&self, usage: &sf_proto::RunUsage) -> f64 {
        (usage.input_tokens as f64 * self.input
            + usage.output_tokens as f64 * self.output
            + usage.cache_read_tokens as f64 * self.cache_read)
            / 1e6
    }
}

/// A size: a number of bytes, or a string such as `"16 MiB"`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawSize {
    Bytes(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawSandbox {
    mode: Option<String>,
    network: bool,
    egress: RawEgress,
    home: RawHome,
}

/// `[sandbox.home]`: what each adapter's CLI needs from the user's home, by path relative
/// to it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawHome {
    claude: Option<Vec<PathBuf>>,
    codex: Option<Vec<PathBuf>>,
    opencode: Option<Vec<PathBuf>>,
    command: Option<Vec<PathBuf>>,
}

/// What is copied from the user's home into a sandboxed run's private HOME, per adapter
/// (`[sandbox.home]`; default: each CLI's login and settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HomeCopies(pub BTreeMap<sf_proto::Adapter, Vec<PathBuf>>);

impl HomeCopies {
    fn from_raw(raw: &RawHome, file: &Path) -> anyhow::Result<Self> {
        use sf_proto::Adapter;
        let list = |key: &str, v: &Option<Vec<PathBuf>>, default: &[&str]| {
            // the user's git identity and settings, for every CLI's commits
            let git = [".gitconfig", ".config/git/config", ".config/git/ignore"];
            let paths: Vec<PathBuf> = v
                .clone()
                .unwrap_or_else(|| git.iter().chain(default).map(PathBuf::from).collect());
            for p in &paths {
                let inside = p.is_relative()
                    && p.components()
                        .all(|c| matches!(c, std::path::Component::Normal(_)));
                if !inside {
                    bail!(
                        "[sandbox.home] {key} in {}: `{}` must be a path inside the home folder, relative to it (for example \".codex/auth.json\")",
                        file.display(),
                        p.display()
                    );
                }
            }
            Ok(paths)
        };
        Ok(Self(
            [
                (
                    Adapter::Claude,
                    list(
                        "claude",
                        &raw.claude,
                        &[
                            ".claude/.credentials.json",
                            ".claude/settings.json",
                            ".claude.json",
                        ],
                    )?,
                ),
                (
                    Adapter::Codex,
                    list(
                        "codex",
                        &raw.codex,
                        &[".codex/auth.json", ".codex/config.toml"],
                    )?,
                ),
                (
                    Adapter::Opencode,
                    list(
                        "opencode",
                        &raw.opencode,
                        &[".local/share/opencode/auth.json", ".config/opencode"],
                    )?,
                ),
                (Adapter::Command, list("command", &raw.command, &[])?),
            ]
            .into_iter()
            .collect(),
        ))
    }
}

/// `[sandbox.egress]`: host patterns per adapter and per capability.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawEgress {
    claude: Option<Vec<String>>,
    codex: Option<Vec<String>>,
    opencode: Option<Vec<String>>,
    command: Option<Vec<String>>,
    network: Option<Vec<String>>,
    github: Option<Vec<String>>,
    ticketing: Option<Vec<String>>,
}

/// Where sandboxed runs may connect through sfd's egress proxy (`[sandbox.egress]`): each
/// adapter's model API hosts, and the hosts each capability opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Egress {
    /// Per adapter (default: its vendor's API hosts).
    pub adapters: BTreeMap<sf_proto::Adapter, Vec<sf_core::egress::HostPattern>>,
    /// With the `network` capability (default: any host).
    pub network: Vec<sf_core::egress::HostPattern>,
    /// With `github` (default: GitHub's hosts).
    pub github: Vec<sf_core::egress::HostPattern>,
    /// With `ticketing` (default: none; list your tracker's hosts).
    pub ticketing: Vec<sf_core::egress::HostPattern>,
}

impl Egress {
    /// The defaults of each list.
    fn default_hosts(key: &str) -> &'static [&'static str] {
        match key {
            "claude" => &["api.anthropic.com"],
            "codex" => &["api.openai.com", "chatgpt.com"],
            "opencode" => &[
                "opencode.ai",
                "models.dev",
                "api.anthropic.com",
                "api.openai.com",
            ],
            "network" => &["*"],
            "github" => &[
                "github.com",
                "api.github.com",
                "codeload.github.com",
                "uploads.github.com",
                "objects.githubusercontent.com",
                "raw.githubusercontent.com",
            ],
            _ => &[],
        }
    }

    fn from_raw(raw: &RawEgress, file: &Path) -> anyhow::Result<Self> {
        let list = |key: &str, v: &Option<Vec<String>>| -> anyhow::Result<Vec<_>> {
            let defaults = || {
                Self::default_hosts(key)
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            };
            v.clone()
                .unwrap_or_else(defaults)
                .iter()
                .map(|h| {
                    h.parse::<sf_core::egress::HostPattern>().map_err(|e| {
                        anyhow::anyhow!("[sandbox.egress] {key} in {}: {e}", file.display())
                    })
                })
                .collect()
        };
        use sf_proto::Adapter;
        Ok(Self {
            adapters: [
                (Adapter::Claude, list("claude", &raw.claude)?),
                (Adapter::Codex, list("codex", &raw.codex)?),
                (Adapter::Opencode, list("opencode", &raw.opencode)?),
                (Adapter::Command, list("command", &raw.command)?),
            ]
            .into_iter()
            .collect(),
            network: list("network", &raw.network)?,
            github: list("github", &raw.github)?,
            ticketing: list("ticketing", &raw.ticketing)?,
        })
    }
}

/// How agents' processes are confined (`[sandbox]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Their own user namespace, Landlock rules, and (unless `network`) their own network
    /// namespace whose only way out is the egress proxy.
    Full {
        /// Keep the host's network (a trusted setup; no egress proxy).
        network: bool,
    },
    /// Landlock rules and `no_new_privs` only, with the host's network: for kernels that
    /// refuse unprivileged user namespaces.
    LandlockOnly,
    /// The user's whole authority.
    Off,
}

impl SandboxMode {
    /// As `daemon status` says it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Full { network: false } => {
                "full (user and network namespaces, Landlock; network through sfd's egress proxy)"
            }
            Self::Full { network: true } => {
                "full, with the host's network (user namespace, Landlock)"
            }
            Self::LandlockOnly => {
                "landlock-only (Landlock and no_new_privs; the host's network; agents are told from you, not from each other: the guard takes a confined caller's word for which agent it is)"
            }
            Self::Off => {
                "off: agents run with the user's whole authority, and the guard takes them at their word"
            }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawWorktree {
    setup: Option<String>,
    setup_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawMerge {
    test_command: Option<String>,
    test_timeout: Option<String>,
    strategy: Option<String>,
    require_approval: bool,
    delete_branch: Option<bool>,
    push: Option<String>,
    remote: Option<String>,
}

/// Where a secret's value comes from (`[secrets]` in config.toml). Only the alias and this
/// source are ever stored or shown; the value is read when a run that lists the alias starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `env:NAME`: the daemon's environment variable NAME.
    Env(String),
    /// `file:PATH`: the file's content, without a trailing newline.
    File(PathBuf),
}

impl SecretSource {
    /// The value, read now; the error names the alias and the source, never a value.
    pub fn read(&self, alias: &str) -> Result<String, String> {
        match self {
            Self::Env(name) => std::env::var(name).map_err(|_| {
                format!("secret `{alias}`: sfd's environment has no `{name}` (set it before `sfctl daemon start`)")
            }),
            Self::File(path) => std::fs::read_to_string(path)
                .map(|v| v.trim_end_matches(['\n', '\r']).to_owned())
                .map_err(|e| format!("secret `{alias}`: cannot read {}: {e}", path.display())),
        }
    }
}

fn secret_source(
    alias: &str,
    value: &str,
    root: &Path,
    file: &Path,
) -> anyhow::Result<SecretSource> {
    let valid_alias = alias
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_alias {
        bail!(
            "[secrets] `{alias}` in {}: an alias is an environment variable name (letters, digits, `_`)",
            file.display()
        );
    }
    if alias.starts_with("SF_") || matches!(alias, "PATH" | "HOME" | "LANG" | "TERM") {
        bail!(
            "[secrets] `{alias}` in {}: that name is part of every run's own environment; choose another alias",
            file.display()
        );
    }
    if let Some(name) = value.strip_prefix("env:").filter(|n| !n.is_empty()) {
        return Ok(SecretSource::Env(name.to_owned()));
    }
    if let Some(p) = value.strip_prefix("file:").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return Ok(SecretSource::File(if p.is_absolute() {
            p
        } else {
            root.join(p)
        }));
    }
    if TOP_LEVEL_KEYS.contains(&alias) {
        bail!(
            "[secrets] {alias} in {}: `{alias}` is a top-level setting and must be above the first [section] (here it is under [secrets])",
            file.display()
        );
    }
    bail!(
        "[secrets] {alias} in {}: use \"env:VARIABLE\" or \"file:PATH\", not the secret itself",
        file.display()
    )
}

/// The daemon's validated configuration. Every path is overridable.
#[derive(Debug, Clone)]
pub struct Config {
    /// The workspace's files.
    pub paths: WorkspacePaths,
    /// The socket to listen on.
    pub socket: PathBuf,
    /// How often the phases run when nothing wakes the daemon.
    pub tick_interval: Duration,
    /// Most worker processes at once.
    pub max_workers: u32,
    /// The branch merges go to (`None`: the repository's current branch).
    pub target_branch: Option<String>,
    /// Failed runs before a task is blocked.
    pub max_attempts: u32,
    /// Default log filter when `SF_LOG` is unset.
    pub log_level: Option<String>,
    /// Command run in a new worktree before the agent starts.
    pub worktree_setup: Option<String>,
    /// Its timeout.
    pub worktree_setup_timeout: Duration,
    /// The merge steward's test command.
    pub merge_test_command: Option<String>,
    /// Its timeout.
    pub merge_test_timeout: Duration,
    /// Hold every merge request until a human runs `sfctl mr approve`.
    pub merge_require_approval: bool,
    /// Delete a merged branch (after archiving it under `refs/sf/archive/`).
    pub merge_delete_branch: bool,
    /// Land a true merge commit instead of a squash (`[merge] strategy = "merge"`).
    pub merge_commit: bool,
    /// Push the target branch to `push_remote` after each merge (`[merge] push =
    /// "after-merge"`; default `"never"`).
    pub push_after_merge: bool,
    /// The remote sfd pushes to, after a merge and for `sfctl push` (`[merge] remote`,
    /// default `origin`).
    pub push_remote: String,
    /// Wall-time limit of one worker run, unless the agent sets its own.
    pub worker_timeout: Duration,
    /// A run whose output shows no progress for this long is stopped (`stall_timeout`).
    pub stall_timeout: Duration,
    /// An idle ephemeral worker gets a triage run once this many messages wait for it
    /// (`triage_batch`, default 3)…
    pub triage_batch: u32,
    /// …or once its oldest waits this long (`triage_after`, default 15m).
    pub triage_after: Duration,
    /// A session with no turn for this long is sent a `health-check` message, which is
    /// its next turn (`session_health_interval`; default "0", never: each is a paid turn).
    pub session_health_interval: Duration,
    /// A task handed off by a run of an adapter resumes that run's session when the next
    /// run is of the same adapter (`resume_on_handoff`).
    pub resume_on_handoff: bool,
    /// Time between SIGTERM and SIGKILL when stopping a worker.
    pub stop_grace: Duration,
    /// Time a worker has to exit after completing or handing off before it is stopped.
    pub complete_grace: Duration,
    /// How long a client connection may sit between requests (event streams excepted).
    pub idle_timeout: Duration,
    /// Most client connections served at once.
    pub max_connections: usize,
    /// Most times a minute one steward's event triggers fire.
    pub steward_fire_limit: u32,
    /// Most bytes kept of one run's log: the first and the last half (`run_log_max`).
    pub run_log_max: u64,
    /// Variables of the daemon's environment passed on to workers.
    pub env_passthrough: Vec<String>,
    /// The `sfctl` binary workers use (its directory goes first on their `PATH`).
    pub sfctl: Option<PathBuf>,
    /// The time zone cron triggers are read in (default UTC).
    pub timezone: sf_core::cron::Tz,
    /// Secret aliases and where their values come from (`[secrets]`).
    pub secrets: BTreeMap<String, SecretSource>,
    /// How agents' processes are confined (`[sandbox]`).
    pub sandbox: SandboxMode,
    /// Where sandboxed runs may connect through the egress proxy (`[sandbox.egress]`).
    pub egress: Egress,
    /// What sandboxed runs get from the user's home (`[sandbox.home]`).
    pub home_copies: HomeCopies,
    /// `.sf/policy.toml`, or why it cannot be used (then nothing is spawned).
    pub policy: Result<sf_core::guard::Policy, sf_core::guard::PolicyError>,
    /// A new agent hired by an agent waits for a human's approval
    /// (`require_approval_for_new_agents`, default true).
    pub require_approval_for_new_agents: bool,
    /// `[staffing] require_dry_run`: a human's `agent register` makes a draft too (signed,
    /// dry-run and taken live), not a live agent at once (default false).
    pub require_dry_run: bool,
    /// Prices by model, for runs whose CLI reports no cost (`[prices]`).
    pub prices: BTreeMap<String, Price>,
}

/// Reads `.sf/policy.toml`: what it says, or why it cannot be used.
pub fn load_policy(path: &Path) -> Result<sf_core::guard::Policy, sf_core::guard::PolicyError> {
    let shown = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => sf_core::guard::Policy::parse(&text, &shown),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(sf_core::guard::PolicyError::Missing { path: shown })
        }
        Err(e) => Err(sf_core::guard::PolicyError::Invalid {
            path: shown,
            message: e.to_string(),
        }),
    }
}

impl Config {
    /// What differs from `old` (a reloaded file against the running one): the settings
    /// that now apply, and those that only a restart applies (the socket, its limits, the
    /// log filter), by their names in the file.
    pub fn changes_from(&self, old: &Self) -> (Vec<&'static str>, Vec<&'static str>) {
        macro_rules! differ {
            ($($field:ident => $key:literal),+ $(,)?) => {
                [$((format!("{:?}", self.$field) != format!("{:?}", old.$field), $key)),+]
                    .into_iter()
                    .filter_map(|(d, k)| d.then_some(k))
                    .collect::<Vec<&'static str>>()
            };
        }
        let applied = differ!(
            tick_interval => "tick_interval",
            max_workers => "max_workers",
            target_branch => "target_branch",
            max_attempts => "max_attempts",
            worktree_setup => "worktree.setup",
            worktree_setup_timeout => "worktree.setup_timeout",
            merge_test_command => "merge.test_command",
            merge_test_timeout => "merge.test_timeout",
            merge_require_approval => "merge.require_approval",
            merge_delete_branch => "merge.delete_branch",
            merge_commit => "merge.strategy",
            push_after_merge => "merge.push",
            push_remote => "merge.remote",
            worker_timeout => "worker_timeout",
            stall_timeout => "stall_timeout",
            triage_batch => "triage_batch",
            triage_after => "triage_after",
            session_health_interval => "session_health_interval",
            resume_on_handoff => "resume_on_handoff",
            stop_grace => "stop_grace",
            complete_grace => "complete_grace",
            steward_fire_limit => "steward_fire_limit",
            run_log_max => "run_log_max",
            env_passthrough => "env_passthrough",
            sfctl => "sfctl",
            timezone => "timezone",
            secrets => "secrets",
            sandbox => "sandbox",
            egress => "sandbox.egress",
            home_copies => "sandbox.home",
            policy => "policy.toml",
            require_approval_for_new_agents => "require_approval_for_new_agents",
            require_dry_run => "staffing.require_dry_run",
            prices => "prices",
        );
        let restart = differ!(
            socket => "socket",
            idle_timeout => "idle_timeout",
            max_connections => "max_connections",
            log_level => "log_level",
        );
        (applied, restart)
    }
}

/// The keys of [`RawConfig`] that are not tables; they must come before the first `[section]`.
const TOP_LEVEL_KEYS: &[&str] = &[
    "tick_interval",
    "max_workers",
    "target_branch",
    "max_attempts",
    "log_level",
    "worker_timeout",
    "stall_timeout",
    "triage_batch",
    "triage_after",
    "session_health_interval",
    "resume_on_handoff",
    "require_approval_for_new_agents",
    "stop_grace",
    "complete_grace",
    "idle_timeout",
    "max_connections",
    "steward_fire_limit",
    "run_log_max",
    "env_passthrough",
    "sfctl",
    "timezone",
];

/// A hint for the easy mistake of appending a top-level key at the end of the file, where
/// TOML reads it as part of the last table: "unknown field `timezone`" under `[merge]`.
/// The line number of a parse error inside the `[secrets]` table, if it is there.
fn in_secrets(text: &str, err: &toml::de::Error) -> Option<usize> {
    let at = err.span()?.start.min(text.len());
    let before = &text[..at];
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))?;
    (table.trim_end_matches(|c: char| c != ']') == "[secrets]")
        .then(|| before.lines().count().max(1))
}

fn misplaced_top_level_hint(text: &str, err: &toml::de::Error) -> Option<String> {
    let key = err
        .message()
        .strip_prefix("unknown field `")?
        .split('`')
        .next()?;
    if !TOP_LEVEL_KEYS.contains(&key) {
        return None;
    }
    let before = &text[..err.span().map_or(text.len(), |s| s.start.min(text.len()))];
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .and_then(|l| l.split(']').next())
        .map(|l| format!(" (here it is under {l}])"))
        .unwrap_or_default();
    Some(format!(
        "`{key}` is a top-level setting and must be above the first [section]{table}; \
         move it to the top of the file"
    ))
}

fn duration(field: &str, value: Option<&str>, default: Duration) -> anyhow::Result<Duration> {
    match value {
        None => Ok(default),
        Some(v) => {
            let d = humantime::parse_duration(v).with_context(|| {
                format!("`{field}` = \"{v}\" is not a duration (e.g. \"5s\", \"10m\")")
            })?;
            if d.is_zero() {
                bail!("`{field}` must be longer than zero");
            }
            Ok(d)
        }
    }
}

/// `run_log_max`: bytes, or a number with a unit (`K`, `M`, `G`, with or without `iB`/`B`;
/// all of them powers of 1024), at least [`sf_worker::log::MIN_MAX`].
fn log_max(value: Option<&RawSize>) -> anyhow::Result<u64> {
    let bytes = match value {
        None => return Ok(sf_worker::log::DEFAULT_MAX),
        Some(RawSize::Bytes(b)) => Some(*b),
        Some(RawSize::Text(t)) => {
            let t = t.trim();
            let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
            let (number, unit) = t.split_at(split);
            let shift = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => Some(0),
                "k" | "kb" | "kib" => Some(10),
                "m" | "mb" | "mib" => Some(20),
                "g" | "gb" | "gib" => Some(30),
                _ => None,
            };
            number
                .parse::<u64>()
                .ok()
                .zip(shift)
                .and_then(|(n, s)| n.checked_mul(1 << s))
        }
    };
    let shown = match value {
        Some(RawSize::Text(t)) => format!("\"{t}\""),
        Some(RawSize::Bytes(b)) => b.to_string(),
        None => String::new(),
    };
    match bytes {
        None => bail!("`run_log_max` = {shown} is not a size (e.g. \"16 MiB\", \"512K\", 1048576)"),
        Some(b) if b < sf_worker::log::MIN_MAX => bail!(
            "`run_log_max` = {shown} is too small: a run's log keeps at least {} KiB",
            sf_worker::log::MIN_MAX >> 10
        ),
        Some(b) => Ok(b),
    }
}

impl Config {
    /// Reads the configuration of the workspace rooted at `root`.
    pub fn load(root: &Path) -> anyhow::Result<Self> {
        let paths = WorkspacePaths::new(root);
        let file = paths.config();
        let text = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "failed to read {} (is this an sf workspace? run `sfctl init`)",
                file.display()
            )
        })?;
        let raw: RawConfig = toml::from_str(&text)
            .map_err(|e| match (in_secrets(&text, &e), misplaced_top_level_hint(&text, &e)) {
                // the parser quotes the offending line, which may hold a secret written there
                (Some(line), _) => anyhow::anyhow!(
                    "TOML parse error in [secrets] at line {line}: {} (the line is not shown: it may hold a secret)",
                    e.message()
                ),
                (None, Some(hint)) => anyhow::anyhow!("{}\nhint: {hint}", e.to_string().trim_end()),
                (None, None) => anyhow::Error::new(e),
            })
            .with_context(|| format!("failed to parse {}", file.display()))?;
        if let Some(s) = raw.merge.strategy.as_deref()
            && !matches!(s, "squash" | "merge")
        {
            bail!(
                "[merge] strategy = \"{s}\" in {}: use \"squash\" or \"merge\"",
                file.display()
            );
        }
        if let Some(p) = raw.merge.push.as_deref()
            && !matches!(p, "never" | "after-merge")
        {
            bail!(
                "[merge] push = \"{p}\" in {}: use \"never\" or \"after-merge\"",
                file.display()
            );
        }
        let push_remote = raw.merge.remote.unwrap_or_else(|| "origin".to_owned());
        if !sf_git::push::valid_remote_name(&push_remote) {
            bail!(
                "[merge] remote = \"{push_remote}\" in {}: not a name git allows for a remote",
                file.display()
            );
        }
        let max_workers = raw.max_workers.unwrap_or(4);
        if max_workers == 0 {
            bail!("max_workers must be at least 1 in {}", file.display());
        }
        Ok(Self {
            socket: paths.socket(),
            tick_interval: duration(
                "tick_interval",
                raw.tick_interval.as_deref(),
                Duration::from_secs(5),
            )?,
            max_workers,
            target_branch: raw.target_branch,
            max_attempts: raw.max_attempts.unwrap_or(3).max(1),
            log_level: raw.log_level,
            worktree_setup: raw.worktree.setup,
            worktree_setup_timeout: duration(
                "worktree.setup_timeout",
                raw.worktree.setup_timeout.as_deref(),
                Duration::from_secs(600),
            )?,
            merge_test_command: raw.merge.test_command,
            merge_test_timeout: duration(
                "merge.test_timeout",
                raw.merge.test_timeout.as_deref(),
                Duration::from_secs(1800),
            )?,
            merge_require_approval: raw.merge.require_approval,
            merge_delete_branch: raw.merge.delete_branch.unwrap_or(true),
            merge_commit: raw.merge.strategy.as_deref() == Some("merge"),
            push_after_merge: raw.merge.push.as_deref() == Some("after-merge"),
            push_remote,
            worker_timeout: duration(
                "worker_timeout",
                raw.worker_timeout.as_deref(),
                Duration::from_secs(2 * 3600),
            )?,
            stall_timeout: duration(
                "stall_timeout",
                raw.stall_timeout.as_deref(),
                Duration::from_secs(600),
            )?,
            triage_batch: raw.triage_batch.unwrap_or(3).max(1),
            triage_after: duration(
                "triage_after",
                raw.triage_after.as_deref(),
                Duration::from_secs(15 * 60),
            )?,
            session_health_interval: match raw.session_health_interval.as_deref() {
                None | Some("0") => Duration::ZERO,
                other => duration("session_health_interval", other, Duration::ZERO)?,
            },
            resume_on_handoff: raw.resume_on_handoff,
            stop_grace: duration(
                "stop_grace",
                raw.stop_grace.as_deref(),
                Duration::from_secs(10),
            )?,
            complete_grace: duration(
                "complete_grace",
                raw.complete_grace.as_deref(),
                Duration::from_secs(30),
            )?,
            idle_timeout: duration(
                "idle_timeout",
                raw.idle_timeout.as_deref(),
                Duration::from_secs(60),
            )?,
            steward_fire_limit: match raw.steward_fire_limit {
                Some(0) => bail!(
                    "steward_fire_limit must be at least 1 in {} (disable a steward instead)",
                    file.display()
                ),
                Some(n) => n,
                None => 10,
            },
            max_connections: match raw.max_connections {
                Some(0) => bail!("max_connections must be at least 1 in {}", file.display()),
                Some(n) => n as usize,
                None => 512,
            },
            run_log_max: log_max(raw.run_log_max.as_ref())?,
            env_passthrough: raw.env_passthrough,
            timezone: match raw.timezone.as_deref() {
                None => sf_core::cron::Tz::UTC,
                Some(name) => name.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "`timezone` = \"{name}\" in {} is not an IANA time zone (e.g. \"Europe/Berlin\", \"UTC\")",
                        file.display()
                    )
                })?,
            },
            secrets: raw
                .secrets
                .iter()
                .map(|(alias, v)| Ok((alias.clone(), secret_source(alias, v, &paths.root, &file)?)))
                .collect::<anyhow::Result<_>>()?,
            sandbox: match raw.sandbox.mode.as_deref() {
                None | Some("full") => SandboxMode::Full {
                    network: raw.sandbox.network,
                },
                Some("landlock-only") => SandboxMode::LandlockOnly,
                Some("off") => SandboxMode::Off,
                Some(other) => bail!(
                    "[sandbox] mode = \"{other}\" in {}: expected \"full\" (the default), \"landlock-only\" or \"off\"",
                    file.display()
                ),
            },
            egress: Egress::from_raw(&raw.sandbox.egress, &file)?,
            home_copies: HomeCopies::from_raw(&raw.sandbox.home, &file)?,
            prices: {
                if let Some((model, _)) = raw.prices.iter().find(|(_, p)| {
                    [p.input, p.output, p.cache_read]
                        .iter()
                        .any(|v| !v.is_finite() || *v < 0.0)
                }) {
                    bail!(
                        "[prices] \"{model}\" in {}: prices are non-negative US dollars per million tokens",
                        file.display()
                    );
                }
                raw.prices.clone()
            },
            policy: load_policy(&paths.policy()),
            require_approval_for_new_agents: raw.require_approval_for_new_agents.unwrap_or(true),
            require_dry_run: raw.staffing.require_dry_run,
            sfctl: raw.sfctl.map(|p| {
                if p.is_absolute() {
                    p
                } else {
                    paths.root.join(p)
                }
            }),
            paths,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".sf")).unwrap();
        std::fs::write(dir.path().join(".sf/config.toml"), text).unwrap();
        Config::load(dir.path())
    }

    #[test]
    fn commented_defaults_give_the_defaults() {
        let c = load("# tick_interval = \"5s\"\n[worktree]\n# setup = \"npm ci\"\n").unwrap();
        assert_eq!(c.tick_interval, Duration::from_secs(5));
        assert_eq!(c.max_workers, 4);
        assert_eq!(c.max_attempts, 3);
        assert_eq!(c.run_log_max, 16 << 20);
    }

    #[test]
    fn run_log_max_takes_bytes_or_a_unit() {
        assert_eq!(load("run_log_max = 1048576").unwrap().run_log_max, 1 << 20);
        assert_eq!(
            load("run_log_max = \"256K\"").unwrap().run_log_max,
            256 << 10
        );
        assert_eq!(
            load("run_log_max = \"2 GiB\"").unwrap().run_log_max,
            2 << 30
        );
        assert_eq!(load("run_log_max = \"8mb\"").unwrap().run_log_max, 8 << 20);
    }

    #[test]
    fn push_after_merge_and_its_remote() {
        let c = load("").unwrap();
        assert!(!c.push_after_merge);
        assert_eq!(c.push_remote, "origin");
        let c = load("[merge]\npush = \"after-merge\"\nremote = \"upstream\"\n").unwrap();
        assert!(c.push_after_merge);
        assert_eq!(c.push_remote, "upstream");
        assert!(
            !load("[merge]\npush = \"never\"\n")
                .unwrap()
                .push_after_merge
        );
        let e = format!("{:#}", load("[merge]\npush = \"always\"").unwrap_err());
        assert!(e.contains("use \"never\" or \"after-merge\""), "{e}");
        let e = format!("{:#}", load("[merge]\nremote = \"-x\"").unwrap_err());
        assert!(e.contains("not a name git allows"), "{e}");
    }

    #[test]
    fn mistakes_are_named() {
        let e = format!("{:#}", load("tick_intervall = \"5s\"").unwrap_err());
        assert!(e.contains("unknown field `tick_intervall`"), "{e}");
        let e = format!("{:#}", load("tick_interval = \"soon\"").unwrap_err());
        assert!(
            e.contains("`tick_interval` = \"soon\" is not a duration"),
            "{e}"
        );
        let e = format!("{:#}", load("timezone = \"Mars/Base\"").unwrap_err());
        assert!(e.contains("not an IANA time zone"), "{e}");
        assert_eq!(
            load("timezone = \"Europe/Berlin\"")
                .unwrap()
                .timezone
                .name(),
            "Europe/Berlin"
        );
        let e = format!("{:#}", load("run_log_max = \"lots\"").unwrap_err());
        assert!(e.contains("`run_log_max` = \"lots\" is not a size"), "{e}");
        let e = format!("{:#}", load("run_log_max = 100").unwrap_err());
        assert!(e.contains("is too small"), "{e}");
        let e = format!("{:#}", load("[merge]\nstrategy = \"rebase\"").unwrap_err());
        assert!(e.contains("use \"squash\" or \"merge\""), "{e}");
    }

    #[test]
    fn a_top_level_key_under_a_table_gets_a_hint_to_move_it() {
        let e = format!(
            "{:#}",
            load("max_workers = 2\n[merge]\ntest_command = \"true\"\ntimezone = \"UTC\"\n")
                .unwrap_err()
        );
        assert!(e.contains("unknown field `timezone`"), "{e}");
        assert!(
            e.contains(
                "hint: `timezone` is a top-level setting and must be above the first [section] \
                 (here it is under [merge])"
            ),
            "{e}"
        );
        let e = format!("{:#}", load("[worktree]\nmax_workers = 2\n").unwrap_err());
        assert!(e.contains("(here it is under [worktree])"), "{e}");
        // a key that is nowhere valid gets no such hint
        let e = format!("{:#}", load("[merge]\ntest_comand = \"x\"\n").unwrap_err());
        assert!(e.contains("unknown field `test_comand`"), "{e}");
        assert!(!e.contains("hint"), "{e}");
    }

    #[test]
    fn secrets_are_aliases_with_a_source_never_a_value() {
        let c = load("[secrets]\nGH_TOKEN = \"env:GITHUB_TOKEN\"\nKEY = \"file:keys/k.txt\"\n")
            .unwrap();
        assert_eq!(
            c.secrets["GH_TOKEN"],
            SecretSource::Env("GITHUB_TOKEN".into())
        );
        assert!(
            matches!(&c.secrets["KEY"], SecretSource::File(p) if p.ends_with("keys/k.txt") && p.is_absolute())
        );
        let e = format!(
            "{:#}",
            load("[secrets]\nGH_TOKEN = \"ghp_abc123\"\n").unwrap_err()
        );
        assert!(e.contains("not the secret itself"), "{e}");
        assert!(
            !e.contains("ghp_abc123"),
            "a value written by mistake is not echoed: {e}"
        );
        let e = format!(
            "{:#}",
            load("[secrets]\n\"bad-alias\" = \"env:X\"\n").unwrap_err()
        );
        assert!(e.contains("environment variable name"), "{e}");
        let e = format!(
            "{:#}",
            load("[secrets]\nLIT = ghp_SUPERSECRET123\n").unwrap_err()
        );
        assert!(
            !e.contains("ghp_SUPERSECRET123"),
            "a mistyped secret is not echoed: {e}"
        );
        assert!(e.contains("[secrets] at line 2"), "{e}");
        let e = format!("{:#}", load("[secrets]\nSF_RUN = \"env:X\"\n").unwrap_err());
        assert!(e.contains("every run's own environment"), "{e}");
        let e = format!("{:#}", load("[secrets]\ntimezone = \"UTC\"\n").unwrap_err());
        assert!(e.contains("top-level setting"), "{e}");
        assert_eq!(
            SecretSource::Env("SF_SURELY_UNSET_VAR".into())
                .read("X")
                .unwrap_err(),
            "secret `X`: sfd's environment has no `SF_SURELY_UNSET_VAR` (set it before `sfctl daemon start`)"
        );
    }

    #[test]
    fn top_level_keys_are_every_non_table_field() {
        let e = format!("{:#}", load("__nope = 1").unwrap_err());
        let expected: Vec<&str> = e
            .split("expected one of ")
            .nth(1)
            .unwrap()
            .trim()
            .split(", ")
            .map(|k| k.trim_matches('`'))
            .filter(|k| {
                !matches!(
                    *k,
                    "worktree" | "merge" | "secrets" | "sandbox" | "prices" | "staffing"
                )
            })
            .collect();
        assert_eq!(expected, TOP_LEVEL_KEYS);
    }

    #[test]
    fn prices_make_a_cost_of_a_runs_tokens_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sf = dir.path().join(".sf");
        std::fs::create_dir_all(&sf).unwrap();
        std::fs::write(
            sf.join("config.toml"),
            "[prices]\n\"gpt-5-codex\" = { input = 1.25, output = 10.0, cache_read = 0.125 }\n",
        )
        .unwrap();
        let c = Config::load(dir.path()).unwrap();
        let usage = sf_proto::RunUsage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            cache_read_tokens: 2_000_000,
            ..sf_proto::RunUsage::default()
        };
        let cost = c.prices["gpt-5-codex"].cost(&usage);
        assert!((cost - (1.25 + 1.0 + 0.25)).abs() < 1e-9, "{cost}");
        std::fs::write(
            sf.join("config.toml"),
            "[prices]\nm = { input = -1.0, output = 1.0 }\n",
        )
        .unwrap();
        let e = format!("{:#}", Config::load(dir.path()).unwrap_err());
        assert!(e.contains("[prices] \"m\""), "{e}");
    }
}
