//! The `sfd` binary: arguments, tracing, signals. Everything else is [`crate::run`].

use std::io::{self, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context as _;
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// sfd: the sf daemon. Runs in the foreground; `sfctl daemon start` runs it in the background.
#[derive(Debug, Parser)]
#[command(name = "sfd", version, about, long_about = None)]
struct Args {
    /// The workspace (repository) root. Default: found by walking up from the current
    /// directory to the first directory with `.sf/config.toml`.
    #[arg(long, env = "SF_WORKSPACE", value_name = "PATH")]
    workspace: Option<PathBuf>,
    /// Listen on this socket instead of the workspace's.
    #[arg(long, env = "SF_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// More logs (-v debug, -vv trace). `SF_LOG` (an EnvFilter) wins when set.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Check the workspace's configuration and exit (0: it would start), without starting
    #[arg(long)]
    check: bool,
}

/// Log lines that could not be written since the last one that could.
static LOST_LINES: AtomicU64 = AtomicU64::new(0);

/// The daemon's stderr, for its log: a write that fails (`sfd.log` on a full disk, stderr
/// closed) loses that line and is counted, and the count is written once writing works
/// again. Never an error, never a panic: tracing-subscriber reports a failed write with
/// `eprintln!`, which panics when stderr itself is what failed.
struct LossyStderr;

impl io::Write for LossyStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut err = io::stderr().lock();
        let lost = LOST_LINES.load(Ordering::Relaxed);
        if lost > 0
            && writeln!(
                err,
                "sfd: {lost} log line(s) were lost: the log could not be written"
            )
            .is_ok()
        {
            LOST_LINES.fetch_sub(lost, Ordering::Relaxed);
        }
        if err.write_all(buf).is_err() {
            LOST_LINES.fetch_add(1, Ordering::Relaxed);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        let _ = io::stderr().flush();
        Ok(())
    }
}

/// `eprintln!` that cannot panic.
macro_rules! report {
    ($($arg:tt)*) => {{
        let _ = writeln!(io::stderr(), $($arg)*);
    }};
}

fn install_tracing(verbosity: u8, default: Option<&str>) {
    let fallback = match verbosity {
        0 => default.unwrap_or("info").to_owned(),
        1 => "debug".to_owned(),
        _ => "trace".to_owned(),
    };
    let filter = EnvFilter::try_from_env("SF_LOG").unwrap_or_else(|_| EnvFilter::new(fallback));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| LossyStderr)
        .log_internal_errors(false)
        .with_ansi(
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        )
        .try_init();
}

fn load(args: &Args) -> anyhow::Result<crate::Config> {
    let root = match &args.workspace {
        Some(w) => std::fs::canonicalize(w)
            .with_context(|| format!("no such workspace {}", w.display()))?,
        None => {
            let cwd = std::env::current_dir()?;
            sf_proto::paths::find_workspace(&cwd)
                .with_context(|| {
                    format!(
                        "no sf workspace at or above {} (run `sfctl init` in your repository)",
                        cwd.display()
                    )
                })?
                .root
        }
    };
    let mut config = crate::Config::load(&root)?;
    if let Some(s) = &args.socket {
        config.socket.clone_from(s);
    }
    Ok(config)
}

fn nix_sigxfsz() -> i32 {
    nix::sys::signal::Signal::SIGXFSZ as i32
}

/// The whole `sfd` binary.
pub fn main() -> ExitCode {
    sf_worker::process::close_inherited_on_exec();
    // no core dumps, and no ptrace or /proc/<pid>/mem by another process of the user (an
    // agent's, say): sfd holds the secrets it hands to runs
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        eprintln!("warning: could not make sfd undumpable: {e}");
    }
    let args = Args::parse();
    let config = match load(&args) {
        Ok(c) => c,
        Err(e) => {
            install_tracing(args.verbose, None);
            report!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.check {
        report!(
            "configuration ok: {}",
            config.paths.dir.join("config.toml").display()
        );
        return ExitCode::SUCCESS;
    }
    install_tracing(args.verbose, config.log_level.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("sfd")
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            report!("error: failed to start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        // a write past RLIMIT_FSIZE must fail with EFBIG like one to a full disk, not kill
        // sfd: a handler (this stream, kept to the end) replaces SIGXFSZ's default action
        let _xfsz = signal(SignalKind::from_raw(nix_sigxfsz()));
        let shutdown = async {
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                std::future::pending::<()>().await;
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        crate::run(config, shutdown).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // once, as the `error:` line every diagnostic has (not also as a log line: on a
            // terminal the log is the same stderr)
            report!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
