//! The git command line, for the few things sfctl asks git itself (the top of the
//! repository, its tracked files, branches) without the daemon.

use std::path::Path;
use std::process::Command;

use crate::error::{CliError, CliResult};

/// Runs `git args…` in `dir` and returns its trimmed stdout.
pub fn git(dir: &Path, args: &[&str]) -> CliResult<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound && !dir.is_dir() {
                CliError::user(format!("{} is not a directory", dir.display()))
            } else {
                CliError::refused("not_found", "failed to run git")
                    .with_cause(e.to_string())
                    .with_hint("install git and make sure it is on PATH")
            }
        })?;
    if !out.status.success() {
        return Err(
            CliError::refused("invalid_state", "not inside a git repository")
                .with_hint("run `git init` first, or cd into your repository")
                .with_cause(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        );
    }
    let text = String::from_utf8(out.stdout)
        .map_err(|_| CliError::user("the repository path is not valid UTF-8"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}
