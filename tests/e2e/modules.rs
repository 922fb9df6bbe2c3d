//! The module layering inside the crates that grow fastest: no module of sf-daemon,
//! sf-store or sfctl may import a module that imports it back, directly or around a longer
//! circle (issue 11). Read from the sources as text: `crate::a::b` paths, `super::x` paths,
//! brace lists (`crate::a::{b, c}`) and `use child::…`, each resolved to the longest module
//! path that exists. Test modules (`tests.rs`, `mod tests { … }`) are left out: a test may
//! use what it tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every `.rs` file under `src`, as its module path (`owner/mod.rs` and `owner.rs` are
/// `owner`, `lib.rs` is the root).
fn modules(src: &Path) -> BTreeMap<Module, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir)
            .expect("read the source tree")
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    files
        .into_iter()
        .map(|f| {
            let rel = f.strip_prefix(src).expect("under src").with_extension("");
            let mut m: Module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if m.last()
                .is_some_and(|l| l == "mod" || l == "lib" || l == "main")
            {
                m.pop();
            }
            let text = std::fs::read_to_string(&f).expect("read a source file");
            (m, text)
        })
        .collect()
}

/// The text without `#[cfg(test)] mod tests { … }` (to the end of the file, where it is).
fn without_inline_tests(text: &str) -> &str {
    text.find("#[cfg(test)]\nmod tests {")
        .map_or(text, |i| &text[..i])
}

/// The paths `text` names: `crate::…`, `super::…`, brace lists expanded one level.
fn named_paths(module: &Module, text: &str) -> Vec<Module> {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    for (start, base) in [
        ("crate::", Vec::new()),
        ("super::", {
            let mut b = module.clone();
            b.pop();
            b
        }),
    ] {
        for (i, _) in text.match_indices(start) {
            // `pub(super)` names no module
            if start == "super::" && text[..i].ends_with("pub(") {
                continue;
            }
            let rest = &text[i + start.len()..];
            let mut path = base.clone();
            let mut r = rest;
            loop {
                let word: String = r.chars().take_while(|c| ident(*c)).collect();
                if word.is_empty() {
                    break;
                }
                path.push(word.clone());
                r = &r[word.len()..];
                if let Some(next) = r.strip_prefix("::") {
                    r = next;
                    if let Some(list) = r.strip_prefix('{') {
                        let list = &list[..list.find('}').unwrap_or(0)];
                        for item in list.split(',') {
                            let first: String =
                                item.trim().chars().take_while(|c| ident(*c)).collect();
                            if !first.is_empty() {
                                let mut p = path.clone();
                                p.push(first);
                                out.push(p);
                            }
                        }
                        break;
                    }
                } else {
                    break;
                }
            }
            out.push(path);
        }
    }
    // `use child::…` in a module with children
    for line in text.lines() {
        let l = line.trim_start();
        let l = l
            .strip_prefix("pub(crate) use ")
            .or_else(|| l.strip_prefix("pub(super) use "))
            .or_else(|| l.strip_prefix("pub use "))
            .or_else(|| l.strip_prefix("use "));
        if let Some(l) = l {
            let first: String = l.chars().take_while(|c| ident(*c)).collect();
            if !first.is_empty() && !["crate", "super", "self", "std"].contains(&first.as_str()) {
                let mut p = module.clone();
                p.push(first);
                out.push(p);
            }
        }
    }
    out
}

/// Module → the modules it imports (resolved to the longest existing module path).
fn import_graph(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mods = modules(src);
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (m, text) in &mods {
        if m.last().is_some_and(|l| l == "tests") {
            continue;
        }
        for path in named_paths(m, without_inline_tests(text)) {
            let target = (0..=path.len())
                .rev()
                .map(|k| path[..k].to_vec())
                .find(|p| mods.contains_key(p));
            if let Some(t) = target.filter(|t| t != m && !t.is_empty()) {
                graph.entry(m.clone()).or_default().insert(t);
            }
        }
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'g> {
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, usize>,
        low: BTreeMap<&'g Module, usize>,
        stack: Vec<&'g Module>,
        on_stack: BTreeSet<&'g Module>,
        out: Vec<Vec<Module>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        let graph = s.graph;
        for w in graph.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).expect("visited");
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in ["crates/sf-daemon/src", "crates/sf-store/src", "sfctl/src"] {
        let graph = import_graph(&root.join(krate));
        assert!(
            graph.values().map(BTreeSet::len).sum::<usize>() > 10,
            "{krate}: the import graph was not read"
        );
        let found: Vec<String> = cycles(&graph)
            .iter()
            .map(|c| {
                c.iter()
                    .map(|m| m.join("::"))
                    .collect::<Vec<_>>()
                    .join(" <-> ")
            })
            .collect();
        assert!(
            found.is_empty(),
            "{krate}: modules import each other: {found:?}"
        );
    }
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let m = |s: &str| -> Module { s.split("::").map(str::to_owned).collect() };
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    graph.entry(m("a")).or_default().insert(m("b"));
    graph.entry(m("b")).or_default().insert(m("c"));
    graph.entry(m("c")).or_default().insert(m("a"));
    graph.entry(m("d")).or_default().insert(m("a"));
    let found = cycles(&graph);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].len(), 3);
    let parent = m("owner");
    let paths = named_paths(
        &m("owner::router"),
        "use super::{Owner, internal};\nuse crate::mailbox::{Command, Reply};\npub(super) fn x() {}",
    );
    assert!(paths.contains(&parent), "{paths:?}");
    assert!(paths.contains(&m("mailbox::Command")), "{paths:?}");
}
