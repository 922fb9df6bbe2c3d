//! A scripted stand-in for a coding-agent CLI (the one fake in sf's tests), in the style of
//! jj's `fake-editor`. `SF_FAKE_AGENT_SCRIPT` names a script file; each line is a command.
//!
//! Sections: a line `--- next invocation` starts the script of the next run; a line
//! `--- for TEXT` starts a section used by runs whose task title contains TEXT (the n-th
//! such section for the n-th run of that task). Runs are counted with marker files next to
//! the script, so concurrent workers each get their own section.
//!
//! The script may also be given as the first argument (`--command "fake-agent SCRIPT"`).
//!
//! Commands: `save-env KEY PATH`, `save-args PATH`, `expect-file PATH`, `write PATH TEXT`, `append PATH TEXT`, `commit MSG`, `stdout TEXT`,
//! `stderr TEXT`, `flood BYTES [UNTIL-PATH]` (numbered lines on stdout, as fast as it can, at
//! least BYTES and then on until UNTIL-PATH exists; a failed write exits 101), `sleep MS`, `exit CODE`, `ignore-sigterm`, `spawn-grandchild MS PIDFILE`,
//! `read-fails PATH`, `write-fails PATH`, `connect-fails HOST:PORT` (escapes that must be
//! refused), `touch PATH`, `save-fds PATH` (each open descriptor and what it is), `wait-file PATH`, `listen-once SOCKET OUT` (binds a Unix socket, touches
//! `OUT.ready`, accepts one connection and saves what it receives, until EOF or 5 s, to OUT), `expect-env KEY=VALUE`, `expect-cwd-is-worktree`,
//! `expect-prompt-contains TEXT`, `complete [SUMMARY]`, `complete-no-changes`,
//! `handoff NOTE`, `sfctl ARGS...` (must succeed), `sfctl-disguised ARGS...` (the same with
//! `SF_AGENT` and `SF_RUN` removed and `USER=root`), `sfctl-fails ARGS...` (must fail), `sfctl-denied CODE ARGS...` (disguised too, must be
//! refused by the guard: exit 1, `--json` error of kind `denied` with that code),
//! `guard-allows TOOL COMMAND` / `guard-blocks TOOL COMMAND` (what a CLI's pre-call hook
//! does: `sfctl guard check` with the call on stdin must exit 0 / 2),
//! `git ARGS...` (must succeed), `git-fails ARGS...` (must fail; e.g. a conflicting merge).
//! In `sfctl` arguments, `$data.KEY` is a steward's data field and `$NAME` an environment
//! variable; in `write`/`append` paths and text, `${NAME}` is an environment variable.
//! `\n` in TEXT is a newline. A failed expectation exits 101 with a line on stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

fn fail(msg: &str) -> ExitCode {
    eprintln!("fake-agent: {msg}");
    ExitCode::from(101)
}

/// Plays a socket someone else planted: records what a client sends before hanging up.
fn listen_once(socket: &Path, out: &Path) -> std::io::Result<()> {
    use std::io::Read as _;
    let listener = std::os::unix::net::UnixListener::bind(socket)?;
    std::fs::write(format!("{}.ready", out.display()), b"")?;
    let (mut stream, _) = listener.accept()?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    std::fs::write(out, got)
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n")
}

/// The task's title, as sfd gives every run (`SF_TASK_TITLE`); empty for a steward's run.
fn task_title() -> String {
    std::env::var("SF_TASK_TITLE").unwrap_or_default()
}

/// Claims the next invocation number for `key` by creating a marker file.
fn next_invocation(script: &Path, key: &str) -> usize {
    let dir = PathBuf::from(format!("{}.runs", script.display()));
    let _ = std::fs::create_dir_all(&dir);
    let safe: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    (0..)
        .find(|i| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join(format!("{safe}.{i}")))
                .is_ok()
        })
        .unwrap_or(0)
}

fn pick_section(script_path: &Path, text: &str) -> Vec<String> {
    let title = task_title();
    let mut sequential: Vec<Vec<String>> = vec![Vec::new()];
    let mut targeted: Vec<(String, Vec<String>)> = Vec::new();
    let mut current_targeted = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("--- for ") {
            targeted.push((rest.trim().to_owned(), Vec::new()));
            current_targeted = true;
        } else if line.starts_with("--- next invocation") {
            sequential.push(Vec::new());
            current_targeted = false;
        } else if current_targeted {
            targeted
                .last_mut()
                .expect("a section")
                .1
                .push(line.to_owned());
        } else {
            sequential
                .last_mut()
                .expect("a section")
                .push(line.to_owned());
        }
    }
    let mine: Vec<&(String, Vec<String>)> = targeted
        .iter()
        .filter(|(t, _)| !t.is_empty() && title.contains(t.as_str()))
        .collect();
    if !mine.is_empty() {
        let n = next_invocation(script_path, &format!("for-{}", mine[0].0));
        return mine
            .get(n)
            .or(mine.last())
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
    }
    let n = next_invocation(script_path, "seq");
    // past the last section, every further run repeats it
    sequential
        .get(n)
        .or(sequential.last())
        .cloned()
        .unwrap_or_default()
}

/// `$data.KEY` is the value of KEY in the steward's data (`SF_STEWARD_DATA`), `$NAME` the
/// environment variable NAME; anything else is kept as it is.
fn expand(word: &str) -> String {
    if let Some(key) = word.strip_prefix("$data.") {
        let data = std::env::var("SF_STEWARD_DATA").unwrap_or_default();
        let data: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
        return match &data[key] {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => String::new(),
            v => v.to_string(),
        };
    }
    if let Some(name) = word.strip_prefix('$') {
        return std::env::var(name).unwrap_or_default();
    }
    word.to_owned()
}

/// Replaces each `${NAME}` in `text` with the environment variable NAME.
fn expand_braced(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + len];
        out.push_str(&std::env::var(name).unwrap_or_default());
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// Writes 64-byte numbered lines to stdout: at least `bytes`, then until `until` exists.
fn flood(bytes: u64, until: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let mut chunk = Vec::with_capacity(64 << 10);
    let (mut written, mut n) = (0u64, 0u64);
    loop {
        chunk.clear();
        while chunk.len() < 64 << 10 {
            writeln!(chunk, "flood {n:010} {}", "x".repeat(46))?;
            n += 1;
        }
        out.write_all(&chunk)?;
        written += chunk.len() as u64;
        if written >= bytes && (until.as_os_str().is_empty() || until.exists()) {
            return out.flush();
        }
    }
}

fn sfctl(args: &[&str], disguised: bool) -> std::io::Result<std::process::Output> {
    let bin = std::env::var("SF_SFCTL").unwrap_or_else(|_| "sfctl".into());
    let mut cmd = Command::new(bin);
    if disguised {
        // what an agent would try to pass for a human
        cmd.env_remove("SF_AGENT")
            .env_remove("SF_RUN")
            .env("USER", "root");
    }
    cmd.args(args).output()
}

fn git(args: &[&str]) -> bool {
    Command::new("git")
        .args([
            "-c",
            "user.name=fake-agent",
            "-c",
            "user.email=fake@sf.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

#[expect(unsafe_code, reason = "ignoring SIGTERM needs sigaction")]
fn ignore_sigterm() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_IGN installs no handler code; nothing else in this process handles signals.
    unsafe {
        let _ = signal(Signal::SIGTERM, SigHandler::SigIgn);
    }
}

fn main() -> ExitCode {
    let Some(script) = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SF_FAKE_AGENT_SCRIPT").ok())
    else {
        return fail("no script: pass it as the first argument or in SF_FAKE_AGENT_SCRIPT");
    };
    let script = PathBuf::from(script);
    let Ok(text) = std::fs::read_to_string(&script) else {
        return fail(&format!("cannot read {}", script.display()));
    };
    let lines = pick_section(&script, &text);
    for line in lines {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let rest = rest.trim();
        match cmd {
            "write" | "append" => {
                let rest = expand_braced(rest);
                let Some((path, content)) = rest.split_once(' ') else {
                    return fail(&format!("bad line: {line}"));
                };
                let path = Path::new(path);
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    let _ = std::fs::create_dir_all(dir);
                }
                let mut content = unescape(content);
                if cmd == "append" {
                    content = std::fs::read_to_string(path).unwrap_or_default() + &content;
                }
                if let Err(e) = std::fs::write(path, content) {
                    return fail(&format!("write {}: {e}", path.display()));
                }
            }
            "commit" => {
                if !git(&["add", "-A"]) || !git(&["commit", "-q", "-m", rest]) {
                    return fail(&format!("git commit failed: {rest}"));
                }
            }
            "git" | "git-fails" => {
                let args: Vec<&str> = rest.split_whitespace().collect();
                if git(&args) != (cmd == "git") {
                    return fail(&format!("{line}: unexpected result"));
                }
            }
            // escapes a sandbox must stop: each must fail for the script to go on
            "read-fails" => {
                if std::fs::read(rest).is_ok() {
                    return fail(&format!("read {rest}: it should have been refused"));
                }
            }
            "write-fails" => {
                let opened = std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(rest);
                if opened.is_ok() {
                    return fail(&format!(
                        "opened {rest} for writing: it should have been refused"
                    ));
                }
            }
            "connect-fails" => {
                if std::net::TcpStream::connect(rest).is_ok() {
                    return fail(&format!("connected to {rest}: it should have been refused"));
                }
            }
            "signal-fails" => {
                let pid = nix::unistd::Pid::from_raw(rest.parse().unwrap_or(0));
                if nix::sys::signal::kill(pid, None).is_ok() {
                    return fail(&format!(
                        "signalled process {rest}: it should have been refused"
                    ));
                }
            }
            "resolve-fails" => {
                use std::net::ToSocketAddrs as _;
                if (rest, 443).to_socket_addrs().is_ok() {
                    return fail(&format!("resolved {rest}: it should have failed"));
                }
            }
            // through the egress proxy (`$HTTP_PROXY`): `proxy-get URL TEXT` fetches an
            // absolute URL, `proxy-tunnel HOST:PORT TEXT` GETs / through a CONNECT tunnel;
            // each needs TEXT in the answer; `proxy-denied HOST:PORT` needs a 403
            "proxy-get" | "proxy-tunnel" | "proxy-denied" => {
                let (target, want) = rest.split_once(' ').unwrap_or((rest, ""));
                match through_proxy(cmd, target) {
                    Ok(answer) if answer.contains(want) => println!("{cmd} {target}: ok"),
                    Ok(answer) => return fail(&format!("{cmd} {target}: got {answer:?}")),
                    Err(e) => return fail(&format!("{cmd} {target}: {e}")),
                }
            }
            "stdout" => println!("{}", unescape(rest)),
            "flood" => {
                let (bytes, until) = rest.split_once(' ').unwrap_or((rest, ""));
                if let Err(e) = flood(bytes.parse().unwrap_or(0), Path::new(until)) {
                    return fail(&format!("flood: {e}"));
                }
            }
            "stderr" => eprintln!("{}", unescape(rest)),
            "sleep" => std::thread::sleep(Duration::from_millis(rest.parse().unwrap_or(0))),
            "exit" => return ExitCode::from(rest.parse::<u8>().unwrap_or(1)),
            "ignore-sigterm" => ignore_sigterm(),
            "spawn-grandchild" => {
                let (ms, pidfile) = rest.split_once(' ').unwrap_or((rest, ""));
                let secs = (ms.parse::<u64>().unwrap_or(1000) / 1000).max(1);
                match Command::new("sleep").arg(secs.to_string()).spawn() {
                    Ok(child) => {
                        if !pidfile.is_empty() {
                            let _ = std::fs::write(pidfile, child.id().to_string());
                        }
                        std::mem::forget(child);
                    }
                    Err(e) => return fail(&format!("spawn grandchild: {e}")),
                }
            }
            "save-env" => {
                let (k, path) = rest.split_once(' ').unwrap_or((rest, ""));
                if let Err(e) = std::fs::write(path, std::env::var(k).unwrap_or_default()) {
                    return fail(&format!("save-env {k} {path}: {e}"));
                }
            }
            "save-args" => {
                // the arguments after the program, one per line
                let args: Vec<String> = std::env::args().skip(1).collect();
                if let Err(e) = std::fs::write(rest, args.join("\n")) {
                    return fail(&format!("save-args {rest}: {e}"));
                }
            }
            "expect-file" => {
                if !Path::new(rest).exists() {
                    return fail(&format!("expected file {rest} to exist"));
                }
            }
            "save-fds" => {
                // what each open descriptor is, one `N TARGET` line each (the listing's
                // own directory descriptor included)
                let mut lines = String::new();
                for entry in std::fs::read_dir("/proc/self/fd")
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let target = std::fs::read_link(entry.path()).unwrap_or_default();
                    lines.push_str(&format!(
                        "{} {}\n",
                        entry.file_name().to_string_lossy(),
                        target.display()
                    ));
                }
                if let Err(e) = std::fs::write(rest, lines) {
                    return fail(&format!("save-fds {rest}: {e}"));
                }
            }
            // a shell command that must succeed (its output goes to the run's log)
            "run" => match Command::new("/bin/sh").args(["-c", rest]).status() {
                Ok(st) if st.success() => {}
                Ok(st) => return fail(&format!("`{rest}` exited with {st}")),
                Err(e) => return fail(&format!("`{rest}`: {e}")),
            },
            "touch" => {
                if let Err(e) = std::fs::write(rest, b"") {
                    return fail(&format!("touch {rest}: {e}"));
                }
            }
            "listen-once" => {
                let (socket, out) = rest.split_once(' ').unwrap_or((rest, ""));
                if let Err(e) = listen_once(Path::new(socket), Path::new(out)) {
                    return fail(&format!("listen-once {rest}: {e}"));
                }
            }
            "wait-file" => {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !Path::new(rest).exists() {
                    if Instant::now() > deadline {
                        return fail(&format!("timed out waiting for {rest}"));
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            "expect-env" => {
                let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
                let got = std::env::var(k).unwrap_or_default();
                if got != v {
                    return fail(&format!("expected {k}={v}, got {k}={got}"));
                }
            }
            "expect-cwd-is-worktree" => {
                let cwd = std::env::current_dir().unwrap_or_default();
                let wt = std::env::var("SF_WORKTREE").unwrap_or_default();
                let inside = cwd.components().any(|c| c.as_os_str() == "worktrees");
                if cwd != Path::new(&wt) || !inside || !cwd.join(".git").is_file() {
                    return fail(&format!("cwd {} is not the worktree {wt}", cwd.display()));
                }
            }
            "expect-prompt-contains" => {
                let file = std::env::var("SF_PROMPT_FILE").unwrap_or_default();
                let prompt = std::fs::read_to_string(&file).unwrap_or_default();
                if !prompt.contains(&unescape(rest)) {
                    return fail(&format!("prompt does not contain {rest:?}"));
                }
            }
            "guard-allows" | "guard-blocks" => {
                // what a CLI's pre-call hook does: the call on stdin to `sfctl guard check`
                let (tool, input) = rest.split_once(' ').unwrap_or((rest, ""));
                let n = std::process::id();
                let hook = serde_json::json!({
                    "hook_event_name": "PreToolUse",
                    "tool_name": tool,
                    "tool_input": {"command": unescape(input)},
                    "tool_use_id": format!("toolu_fake_{n}_{}", input.len()),
                });
                let bin = std::env::var("SF_SFCTL").unwrap_or_else(|_| "sfctl".into());
                let out = Command::new(bin)
                    .args(["guard", "check"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .and_then(|mut child| {
                        use std::io::Write as _;
                        if let Some(mut stdin) = child.stdin.take() {
                            stdin.write_all(hook.to_string().as_bytes())?;
                        }
                        child.wait_with_output()
                    });
                let out = match out {
                    Ok(o) => o,
                    Err(e) => return fail(&format!("failed to run sfctl guard check: {e}")),
                };
                let want = if cmd == "guard-allows" { 0 } else { 2 };
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
                if out.status.code() != Some(want) {
                    return fail(&format!(
                        "sfctl guard check for {tool} {input:?} exited {:?}, not {want}: {}",
                        out.status.code(),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
            "sfctl-denied" => {
                // an agent passing for a human, refused by the guard with this code
                let (code, args) = rest.split_once(' ').unwrap_or((rest, ""));
                let owned: Vec<String> = std::iter::once("--json".to_owned())
                    .chain(args.split_whitespace().map(expand))
                    .collect();
                let args: Vec<&str> = owned.iter().map(String::as_str).collect();
                let out = match sfctl(&args, true) {
                    Ok(o) => o,
                    Err(e) => return fail(&format!("failed to run sfctl: {e}")),
                };
                let doc: serde_json::Value =
                    serde_json::from_slice(&out.stdout).unwrap_or_default();
                let got = (
                    out.status.code(),
                    doc["error"]["kind"].as_str().unwrap_or_default(),
                    doc["error"]["code"].as_str().unwrap_or_default(),
                );
                if got != (Some(1), "denied", code) {
                    return fail(&format!(
                        "sfctl {} was not denied with {code}: exit {:?}, {}",
                        args.join(" "),
                        out.status.code(),
                        String::from_utf8_lossy(&out.stdout)
                    ));
                }
                println!("denied as expected: sfctl {} ({code})", args.join(" "));
            }
            "complete"
            | "complete-no-changes"
            | "handoff"
            | "sfctl"
            | "sfctl-fails"
            | "sfctl-disguised" => {
                let owned: Vec<String> = match cmd {
                    "complete" if rest.is_empty() => vec!["task".into(), "complete".into()],
                    "complete" => vec![
                        "task".into(),
                        "complete".into(),
                        "--summary".into(),
                        rest.into(),
                    ],
                    "complete-no-changes" => {
                        vec!["task".into(), "complete".into(), "--no-changes".into()]
                    }
                    "handoff" => vec![
                        "task".into(),
                        "handoff".into(),
                        "--note".into(),
                        unescape(rest),
                    ],
                    _ => rest.split_whitespace().map(expand).collect(),
                };
                let args: Vec<&str> = owned.iter().map(String::as_str).collect();
                let out = match sfctl(&args, cmd == "sfctl-disguised") {
                    Ok(o) => o,
                    Err(e) => return fail(&format!("failed to run sfctl: {e}")),
                };
                print!("{}", String::from_utf8_lossy(&out.stdout));
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
                let want_success = cmd != "sfctl-fails";
                if out.status.success() != want_success {
                    return fail(&format!(
                        "sfctl {} exited with {}",
                        args.join(" "),
                        out.status
                    ));
                }
            }
            other => return fail(&format!("unknown command `{other}`")),
        }
    }
    ExitCode::SUCCESS
}

/// One request through `$HTTP_PROXY` (see the `proxy-*` commands): the whole answer.
fn through_proxy(cmd: &str, target: &str) -> std::io::Result<String> {
    use std::io::{Read as _, Write as _};
    let proxy = std::env::var("HTTP_PROXY").map_err(|_| std::io::Error::other("no HTTP_PROXY"))?;
    let proxy = proxy.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(proxy)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut answer = String::new();
    match cmd {
        "proxy-get" => {
            write!(
                s,
                "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )?;
        }
        _ => {
            write!(s, "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n")?;
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut b)? == 1 {
                head.push(b[0]);
            }
            let head = String::from_utf8_lossy(&head).into_owned();
            if cmd == "proxy-denied" || !head.contains(" 200 ") {
                s.read_to_string(&mut answer)?;
                return Ok(head + &answer);
            }
            write!(
                s,
                "GET / HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
            )?;
        }
    }
    s.read_to_string(&mut answer)?;
    Ok(answer)
}
