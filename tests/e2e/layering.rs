//! The crate layering DESIGN.md promises, checked on the real dependency graph: the CLI
//! has no way to open the database, run git or signal processes (invariant 1: only sfd
//! writes the database; the socket is sfctl's only view of the system).

use std::process::Command;

fn normal_deps(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn crates_in(tree: &str) -> Vec<String> {
    tree.lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn sfctl_never_links_the_database_git_or_nix() {
    let deps = crates_in(&normal_deps("sfctl"));
    for forbidden in [
        "rusqlite",
        "libsqlite3-sys",
        "git2",
        "libgit2-sys",
        "nix",
        "tokio",
        "sf-store",
        "sf-daemon",
        "sf-git",
    ] {
        assert!(
            !deps.iter().any(|d| d == forbidden),
            "sfctl depends on {forbidden}: {deps:?}"
        );
    }
    assert!(deps.iter().any(|d| d == "sf-client"), "{deps:?}");
}

#[test]
fn the_pure_and_the_protocol_crates_stay_light() {
    let proto = crates_in(&normal_deps("sf-proto"));
    for forbidden in ["rusqlite", "git2", "nix", "tokio"] {
        assert!(
            !proto.iter().any(|d| d == forbidden),
            "sf-proto depends on {forbidden}"
        );
    }
    let core = crates_in(&normal_deps("sf-core"));
    for forbidden in ["rusqlite", "git2", "nix", "tokio", "sf-store"] {
        assert!(
            !core.iter().any(|d| d == forbidden),
            "sf-core depends on {forbidden}"
        );
    }
    let adapters = crates_in(&normal_deps("sf-adapters"));
    for forbidden in ["rusqlite", "git2", "nix", "tokio", "sf-store", "sf-worker"] {
        assert!(
            !adapters.iter().any(|d| d == forbidden),
            "sf-adapters depends on {forbidden}"
        );
    }
    let store = crates_in(&normal_deps("sf-store"));
    assert!(
        !store.iter().any(|d| d == "tokio"),
        "sf-store depends on tokio"
    );
    for crate_ in ["sf-git", "sf-worker"] {
        let deps = crates_in(&normal_deps(crate_));
        assert!(
            !deps.iter().any(|d| d == "sf-store"),
            "{crate_} depends on the store"
        );
    }
}
