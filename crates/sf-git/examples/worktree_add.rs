//! Micro-benchmark of [`sf_git::ensure_worktree`] against the number of worktrees already on
//! disk (the worktrees of tasks waiting for review).
//!
//! ```text
//! cargo run --release -p sf-git --example worktree_add -- [EXISTING...]   # default: 0 100 500
//! ```
//!
//! For each count it makes a repository with that many worktrees (with the git CLI, so the
//! setup does not depend on the code measured), then times `SAMPLES` calls that each add a
//! worktree on a new branch, removing it with [`sf_git::remove_worktree`] before the next, so
//! the count stays put.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const SAMPLES: usize = 50;

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.invalid")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.invalid")
        .args(args)
        .output()
        .expect("failed to run git");
    assert!(
        out.status.success(),
        "git {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn measure(existing: usize) -> Duration {
    let dir = tempfile::tempdir().expect("failed to make a temporary directory");
    let root = dir
        .path()
        .canonicalize()
        .expect("failed to resolve the tempdir");
    git(&root, &["init", "-q", "-b", "main"]);
    for i in 0..20 {
        std::fs::write(root.join(format!("file{i}.txt")), format!("{i}\n")).expect("write");
    }
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-q", "-m", "init"]);
    let worktrees = root.join(".sf/worktrees");
    let t = Instant::now();
    for i in 0..existing {
        let path = worktrees.join(format!("pre-{i}"));
        git(
            &root,
            &[
                "worktree",
                "add",
                "-q",
                "-b",
                &format!("pre/{i}"),
                path.to_str().expect("UTF-8 path"),
                "main",
            ],
        );
    }
    let setup = t.elapsed();
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let name = format!("t{i}");
        let path = worktrees.join(format!("t{i}-sample"));
        let t = Instant::now();
        let wt = sf_git::ensure_worktree(&root, &name, &path, &format!("agent/w/t{i}"), "main")
            .expect("ensure_worktree failed");
        samples.push(t.elapsed());
        assert!(wt.created);
        sf_git::remove_worktree(&root, &name, &path).expect("remove_worktree failed");
    }
    samples.sort_unstable();
    let median = samples[SAMPLES / 2];
    println!(
        "{existing:>6} existing worktrees (made in {:>8}): ensure_worktree median {}  min {}  max {}",
        format!("{:.1} s", setup.as_secs_f64()),
        ms(median),
        ms(samples[0]),
        ms(samples[SAMPLES - 1]),
    );
    median
}

fn main() {
    let counts: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments are worktree counts"))
        .collect();
    let counts = if counts.is_empty() {
        vec![0, 100, 500]
    } else {
        counts
    };
    let medians: Vec<(usize, Duration)> = counts.iter().map(|&n| (n, measure(n))).collect();
    if let (Some(&(n0, d0)), Some(&(n1, d1))) = (medians.first(), medians.last())
        && n1 > n0
    {
        let slope = (d1.as_secs_f64() - d0.as_secs_f64()) / (n1 - n0) as f64;
        println!(
            "slope: {:.2} µs per existing worktree ({n0} -> {n1})",
            slope * 1e6
        );
    }
}
