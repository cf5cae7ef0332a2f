//! The house keeps its shape: dependencies between the crate's files point one
//! way (no cycles), and the lower floors never name the higher ones.
//!
//! Reads every `src/**/*.rs` (except `main.rs`, its own crate), collects each
//! `crate::…`, `super::…`, `self::…` path and each path through a child module
//! (`use` lines, `use crate::{a, b::{c, d}}` groups and paths inline in code
//! alike; comments and string literals are skipped), and resolves it to the file
//! that defines the module it names, following a module's `pub use` re-exports
//! to the file an item really comes from.
//!
//! A module's own references to its submodules (`mod x; pub use x::Thing;`) are
//! its facade, not a dependency, and are left out; a submodule's references up
//! to its parent (`super::Store`) count.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules above the store: the workers, the front ends and what they
/// share, the renderer, the provider and the model, and the tools.
const ABOVE_THE_STORE: &[&str] = &[
    "render",
    "provider",
    "llm",
    "automations",
    "api",
    "ui",
    "outbox",
    "delivery_events",
    "tenant_webhooks",
    "sending_domains",
    "reputation",
    "workers",
    "import",
    "app",
    "state",
    "auth",
    "service",
    "error",
    "cli",
    "telemetry",
    "mock",
    "bench",
];

/// Which modules may not name which: `(lower, [higher...])`. A file under
/// `lower` (e.g. `store`, `store::events`) referencing anything under one of
/// the higher modules fails the test. Add a line to keep a new rule, e.g.
/// `("ui", &["api"])`.
const FORBIDDEN_EDGES: &[(&str, &[&str])] = &[
    // The store is storage only: no upward import.
    ("store", ABOVE_THE_STORE),
    // The domain is the ground floor: newtypes and pure rules.
    ("domain", ABOVE_THE_STORE),
    ("domain", &["store"]),
    // Two front ends over one service layer: neither calls the other.
    ("ui", &["api"]),
    ("api", &["ui"]),
    // The use cases know no front end and no composition.
    ("service", FRONT_ENDS),
    // The workers run below the use cases: they call no service and no front end.
    ("outbox", ABOVE_THE_WORKERS),
    ("delivery_events", ABOVE_THE_WORKERS),
    ("tenant_webhooks", ABOVE_THE_WORKERS),
    ("automations", ABOVE_THE_WORKERS),
    ("sending_domains", ABOVE_THE_WORKERS),
    ("workers", ABOVE_THE_WORKERS),
];

/// The front ends and the composition that builds them.
const FRONT_ENDS: &[&str] = &["api", "ui", "app"];

/// What stands above the workers: the use cases, the front ends, the composition.
const ABOVE_THE_WORKERS: &[&str] = &["service", "api", "ui", "app"];

#[test]
fn no_import_cycle_between_files() {
    let crate_map = CrateMap::read();
    let cycles = crate_map.cycles();
    let described: Vec<String> = cycles
        .iter()
        .map(|scc| {
            let mut lines = vec![format!(
                "  cycle among {}:",
                scc.iter().map(|m| crate_map.file_of(m)).collect::<Vec<_>>().join(", ")
            )];
            for from in scc {
                for (to, via) in &crate_map.edges[from] {
                    if scc.contains(to) {
                        lines.push(format!(
                            "    {} -> {} (via {})",
                            crate_map.file_of(from),
                            crate_map.file_of(to),
                            via
                        ));
                    }
                }
            }
            lines.join("\n")
        })
        .collect();
    assert!(described.is_empty(), "import cycles between files:\n{}", described.join("\n"));
}

#[test]
fn lower_floors_never_name_higher_ones() {
    let crate_map = CrateMap::read();
    let mut bad = Vec::new();
    for (from, targets) in &crate_map.edges {
        for (lower, higher) in FORBIDDEN_EDGES {
            if !under(from, lower) {
                continue;
            }
            for (to, via) in targets {
                if higher.iter().any(|h| under(to, h)) {
                    bad.push(format!("  {} -> {} (via {})", crate_map.file_of(from), crate_map.file_of(to), via));
                }
            }
        }
    }
    assert!(bad.is_empty(), "forbidden references (see FORBIDDEN_EDGES):\n{}", bad.join("\n"));
}

#[test]
fn the_reader_finds_paths_in_groups_code_and_super() {
    let src = r#"
        use crate::{a, b::{c, self}};
        use super::d::E;
        // crate::commented::Out
        fn f() { let s = "crate::in_a_string"; crate::x::y(); }
        #[cfg(test)]
        mod tests { use super::*; }
    "#;
    let module: Module = vec!["m".into(), "n".into()];
    let children = BTreeSet::new();
    let paths: BTreeSet<String> = paths_in(src, &module, &children).into_iter().map(|(p, _)| p.join("::")).collect();
    let expected: BTreeSet<String> =
        ["a", "b::c", "b", "m::d::E", "x::y", "m::n::*"].iter().map(|s| s.to_string()).collect();
    assert_eq!(paths, expected);
}

type Module = Vec<String>;

fn under(module: &Module, prefix: &str) -> bool {
    let prefix: Vec<&str> = prefix.split("::").collect();
    module.len() >= prefix.len() && module.iter().zip(&prefix).all(|(a, b)| a == b)
}

struct CrateMap {
    files: BTreeMap<Module, PathBuf>,
    /// Per module, the item names its `pub use` lines re-export, to the path they re-export.
    reexports: BTreeMap<Module, BTreeMap<String, Module>>,
    /// Per module file, the module files it depends on, with one path that shows why.
    edges: BTreeMap<Module, BTreeMap<Module, String>>,
}

impl CrateMap {
    fn read() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = BTreeMap::new();
        collect(&root, &root, &mut files);
        let modules: BTreeSet<Module> = files.keys().cloned().collect();
        let mut sources = BTreeMap::new();
        for (module, path) in &files {
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            sources.insert(module.clone(), text);
        }
        let children_of = |m: &Module| -> BTreeSet<String> {
            modules.iter().filter(|c| c.len() == m.len() + 1 && c.starts_with(m)).map(|c| c[m.len()].clone()).collect()
        };
        let mut map = CrateMap { files, reexports: BTreeMap::new(), edges: BTreeMap::new() };
        for (module, text) in &sources {
            let exports = reexports_in(text, module, &children_of(module));
            map.reexports.insert(module.clone(), exports);
        }
        for (module, text) in &sources {
            let mut targets = BTreeMap::new();
            for (path, _) in paths_in(text, module, &children_of(module)) {
                let target = map.resolve(&path, 0);
                // Itself, or its own submodules (its facade): not a dependency.
                if target.starts_with(module) {
                    continue;
                }
                targets.entry(target).or_insert_with(|| path.join("::"));
            }
            map.edges.insert(module.clone(), targets);
        }
        map
    }

    fn file_of(&self, module: &Module) -> String {
        let path = &self.files[module];
        path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path).display().to_string()
    }

    /// The module file that defines what `path` (absolute, without `crate`) names.
    fn resolve(&self, path: &[String], depth: usize) -> Module {
        let mut module: Module = Vec::new();
        let mut rest = path;
        while let Some((first, tail)) = rest.split_first() {
            let mut next = module.clone();
            next.push(first.clone());
            if !self.files.contains_key(&next) {
                break;
            }
            module = next;
            rest = tail;
        }
        if let (Some(name), true) = (rest.first(), depth < 8) {
            if let Some(target) = self.reexports.get(&module).and_then(|e| e.get(name)) {
                return self.resolve(target, depth + 1);
            }
        }
        module
    }

    /// The strongly connected components of more than one file.
    fn cycles(&self) -> Vec<Vec<Module>> {
        let nodes: Vec<&Module> = self.edges.keys().collect();
        let index: BTreeMap<&Module, usize> = nodes.iter().enumerate().map(|(i, m)| (*m, i)).collect();
        let adjacency: Vec<Vec<usize>> =
            nodes.iter().map(|m| self.edges[*m].keys().filter_map(|t| index.get(t).copied()).collect()).collect();
        let mut tarjan = Tarjan {
            adjacency: &adjacency,
            index: vec![None; nodes.len()],
            low: vec![0; nodes.len()],
            on_stack: vec![false; nodes.len()],
            stack: Vec::new(),
            next: 0,
            components: Vec::new(),
        };
        for v in 0..nodes.len() {
            if tarjan.index[v].is_none() {
                tarjan.visit(v);
            }
        }
        tarjan
            .components
            .into_iter()
            .filter(|c| c.len() > 1)
            .map(|c| {
                let mut c: Vec<Module> = c.into_iter().map(|i| nodes[i].clone()).collect();
                c.sort();
                c
            })
            .collect()
    }
}

struct Tarjan<'a> {
    adjacency: &'a [Vec<usize>],
    index: Vec<Option<usize>>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    next: usize,
    components: Vec<Vec<usize>>,
}

impl Tarjan<'_> {
    fn visit(&mut self, v: usize) {
        self.index[v] = Some(self.next);
        self.low[v] = self.next;
        self.next += 1;
        self.stack.push(v);
        self.on_stack[v] = true;
        for &w in &self.adjacency[v] {
            match self.index[w] {
                None => {
                    self.visit(w);
                    self.low[v] = self.low[v].min(self.low[w]);
                }
                Some(iw) if self.on_stack[w] => self.low[v] = self.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(self.low[v]) == self.index[v] {
            let mut component = Vec::new();
            while let Some(w) = self.stack.pop() {
                self.on_stack[w] = false;
                component.push(w);
                if w == v {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

/// Every `.rs` file under `dir` by its module path (`src/lib.rs` is the root;
/// `src/a/mod.rs` and `src/a.rs` are `a`). `main.rs` is the binary's crate, not this one.
fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<Module, PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(root, &path, files);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let relative = path.strip_prefix(root).unwrap_or(&path).with_extension("");
        let mut module: Module = relative.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        match module.last().map(String::as_str) {
            Some("main") if module.len() == 1 => continue,
            Some("lib") if module.len() == 1 => module.clear(),
            Some("mod") => {
                module.pop();
            }
            _ => {}
        }
        files.insert(module, path);
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

/// The source's tokens, without comments, string and character literals.
fn tokens(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let ident_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if c == '\'' {
            // A character literal ('a', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if ident_char(c) {
            let start = i;
            while i < chars.len() && ident_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            // Raw strings: r"…", r#"…"#, br#"…"#.
            if (word == "r" || word == "br") && matches!(chars.get(i), Some('"') | Some('#')) {
                let mut hashes = 0;
                while chars.get(i) == Some(&'#') {
                    hashes += 1;
                    i += 1;
                }
                if chars.get(i) == Some(&'"') {
                    i += 1;
                    loop {
                        if i >= chars.len() {
                            break;
                        }
                        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                            i += 1 + hashes;
                            break;
                        }
                        i += 1;
                    }
                    continue;
                }
            }
            out.push(Token::Ident(word));
        } else if c == ':' && next == Some(':') {
            out.push(Token::PathSep);
            i += 2;
        } else {
            if !c.is_whitespace() {
                out.push(Token::Punct(c));
            }
            i += 1;
        }
    }
    out
}

/// Every path into this crate the file names, made absolute (without `crate`),
/// each with whether it stands in a `pub use` (a re-export).
fn paths_in(src: &str, module: &Module, children: &BTreeSet<String>) -> Vec<(Module, bool)> {
    let toks = tokens(src);
    let mut out = Vec::new();
    // Inline modules (`mod tests { … }`) opened so far, with the brace depth they close at.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    // Whether the current statement is a `pub use` (a re-export).
    let mut in_pub_use = false;
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Token::Punct('{') => depth += 1,
            Token::Punct('}') => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
            }
            Token::Punct(';') => in_pub_use = false,
            Token::Ident(w) if w == "mod" => {
                if let (Some(Token::Ident(name)), Some(Token::Punct('{'))) = (toks.get(i + 1), toks.get(i + 2)) {
                    inline.push((name.clone(), depth));
                    depth += 1;
                    i += 3;
                    continue;
                }
            }
            Token::Ident(w) if w == "use" => {
                let before = |k: usize| i.checked_sub(k).and_then(|j| toks.get(j));
                in_pub_use = matches!(before(1), Some(Token::Ident(p)) if p == "pub")
                    || matches!(before(4), Some(Token::Ident(p)) if p == "pub")
                        && matches!(before(1), Some(Token::Punct(')')));
            }
            Token::Ident(first) if !matches!(i.checked_sub(1).and_then(|j| toks.get(j)), Some(Token::PathSep)) => {
                let mut here = module.clone();
                here.extend(inline.iter().map(|(n, _)| n.clone()));
                // Child modules are only known for the file's own module.
                let is_child = inline.is_empty() && children.contains(first);
                let starts = first == "crate" || first == "super" || first == "self" || is_child;
                if starts
                    && (matches!(toks.get(i + 1), Some(Token::PathSep)) || (first != "self" && is_use_item(&toks, i)))
                {
                    let (trees, end) = path_tree(&toks, i);
                    for tree in trees {
                        if let Some(path) = absolute(&tree, &here) {
                            out.push((path, in_pub_use));
                        }
                    }
                    i = end;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Whether the token at `i` is a bare item of a `use` (`use crate;` never
/// happens, but `use foo;` of a child module does).
fn is_use_item(toks: &[Token], i: usize) -> bool {
    matches!(i.checked_sub(1).and_then(|j| toks.get(j)), Some(Token::Ident(u)) if u == "use")
}

/// The paths of a path tree starting at `i` (`a::b::{c, d::{e, self}}`), and the index after it.
fn path_tree(toks: &[Token], mut i: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    loop {
        match toks.get(i) {
            Some(Token::Ident(w)) => {
                prefix.push(w.clone());
                i += 1;
            }
            Some(Token::Punct('*')) => {
                prefix.push("*".to_owned());
                return (vec![prefix], i + 1);
            }
            Some(Token::Punct('{')) => {
                let mut all = Vec::new();
                i += 1;
                loop {
                    match toks.get(i) {
                        Some(Token::Punct('}')) => return (all, i + 1),
                        Some(Token::Punct(',')) => i += 1,
                        Some(_) => {
                            let (inner, end) = path_tree(toks, i);
                            for p in inner {
                                let mut full = prefix.clone();
                                if p != ["self"] {
                                    full.extend(p);
                                }
                                all.push(full);
                            }
                            // Skip `as Alias`.
                            i = end;
                            if matches!(toks.get(i), Some(Token::Ident(a)) if a == "as") {
                                i += 2;
                            }
                        }
                        None => return (all, i),
                    }
                }
            }
            _ => return (vec![prefix], i),
        }
        if matches!(toks.get(i), Some(Token::PathSep)) {
            i += 1;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// `path` as written in module `here`, made absolute (without `crate`);
/// `None` for a path outside the crate.
fn absolute(path: &[String], here: &Module) -> Option<Module> {
    let mut out = here.clone();
    let mut rest = path;
    match path.first().map(String::as_str) {
        Some("crate") => {
            out.clear();
            rest = &path[1..];
        }
        Some("self") => rest = &path[1..],
        Some("super") => {
            while rest.first().map(String::as_str) == Some("super") {
                out.pop()?;
                rest = &rest[1..];
            }
        }
        Some(_) => {}
        None => return None,
    }
    out.extend(rest.iter().cloned());
    Some(out)
}

/// What a module's `pub use` lines re-export: the name seen from outside, to
/// the absolute path it stands for.
fn reexports_in(src: &str, module: &Module, children: &BTreeSet<String>) -> BTreeMap<String, Module> {
    paths_in(src, module, children)
        .into_iter()
        .filter(|(_, re_export)| *re_export)
        .filter_map(|(path, _)| Some((path.last()?.clone(), path)))
        .collect()
}
