//! One-way dependencies between the files of `src/` (issue 9).
//!
//! Reads every library file under `src/` (not `main.rs`, which is its own
//! crate), strips comments, string literals and `#[cfg(test)]` items (test
//! code may reach anywhere), and collects the paths it names: `use` trees
//! (groups expanded) and `crate::`/`super::`/`self::`/child-module paths in
//! code. Each path is mapped to the file defining the deepest module it
//! names (`crate::chain::state::ChainState` → `src/chain/state.rs`,
//! `crate::chain::ChainParams` → `src/chain/mod.rs`). `mod` declarations are
//! not edges. The tests then check that the resulting file graph has no
//! cycle and that the layers only import downwards, as Bitcoin Core's
//! `lint-circular-dependencies` does for its `#include` graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Imports that close a cycle and are not removed yet, as (from, to). The
/// graph without them must be acyclic, and each of them must still close a
/// cycle (a fixed one must be removed from this list). Must shrink to empty.
const ALLOWED_BACK_EDGES: &[(&str, &str)] = &[];

/// The layers, lowest first. A file may import files of its own layer or of
/// lower layers only. Files are matched by the longest prefix.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "util",
        &[
            "src/util.rs",
            "src/netaddr.rs",
            "src/wire.rs",
            "src/proxy.rs",
            "src/addrtext.rs",
            "src/logging.rs",
            "src/memory.rs",
        ],
    ),
    ("store", &["src/store/"]),
    ("index", &["src/index/"]),
    ("consensus", &["src/chain/"]),
    ("mining", &["src/mining.rs"]),
    ("mempool", &["src/mempool/"]),
    ("config", &["src/config.rs"]),
    ("peer", &["src/peer/"]),
    ("sync", &["src/events.rs", "src/sync/"]),
    ("server", &["src/server.rs", "src/connmgr/"]),
    ("node", &["src/lib.rs", "src/testdata.rs", "src/notify.rs"]),
    ("rpc", &["src/rpc/", "src/metrics.rs"]),
];

/// Imports across layers that go upwards and are not removed yet, as
/// (from file, to file). Must shrink to empty.
const ALLOWED_UPWARD: &[(&str, &str)] = &[];

/// Module tree: module path (segments after `crate`) → file.
struct Crate {
    modules: BTreeMap<Vec<String>, PathBuf>,
}

/// What one file names: paths it uses itself, and names it re-exports
/// (`pub use`), which are followed to the defining file rather than
/// counted as imports of the re-exporting file.
struct Parsed {
    uses: Vec<Vec<String>>,
    reexports: BTreeMap<String, Vec<String>>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rel(p: &Path) -> String {
    p.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Removes comments, string and char literals (replaced by spaces so
/// nothing inside them looks like a path).
fn strip_comments_and_strings(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&b, i) {
            // raw string r"..." or r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            'raw: while j < b.len() {
                if b[j] == '"' {
                    let mut k = 0;
                    while k < hashes && b.get(j + 1 + k) == Some(&'#') {
                        k += 1;
                    }
                    if k == hashes {
                        j += 1 + hashes;
                        break 'raw;
                    }
                }
                j += 1;
            }
            i = j;
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('a', '\n', '\u{..}') or a lifetime ('a).
            if next == Some('\\') {
                let mut j = i + 2;
                while j < b.len() && b[j] != '\'' {
                    j += 1;
                }
                i = j + 1;
                out.push_str("' '");
            } else if b.get(i + 2) == Some(&'\'') {
                i += 3;
                out.push_str("' '");
            } else {
                out.push(c);
                i += 1;
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(b: &[char], i: usize) -> bool {
    i > 0 && (b[i - 1].is_alphanumeric() || b[i - 1] == '_')
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(String),
}

fn tokenize(src: &str) -> Vec<Tok> {
    let b: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let s = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            toks.push(Tok::Ident(b[s..i].iter().collect()));
        } else if c.is_ascii_digit() {
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            toks.push(Tok::Punct("0".into()));
        } else if c == ':' && b.get(i + 1) == Some(&':') {
            toks.push(Tok::Punct("::".into()));
            i += 2;
        } else {
            toks.push(Tok::Punct(c.to_string()));
            i += 1;
        }
    }
    toks
}

fn is_punct(t: Option<&Tok>, p: &str) -> bool {
    matches!(t, Some(Tok::Punct(s)) if s == p)
}

fn is_ident(t: Option<&Tok>, p: &str) -> bool {
    matches!(t, Some(Tok::Ident(s)) if s == p)
}

/// Index just past the item starting at `i` (ends at a `;` at depth 0 or
/// at the `}` closing its first brace).
fn item_end(toks: &[Tok], mut i: usize) -> usize {
    let mut depth = 0i32;
    while i < toks.len() {
        match &toks[i] {
            Tok::Punct(p) if p == "{" || p == "(" || p == "[" => depth += 1,
            Tok::Punct(p) if p == "}" || p == ")" || p == "]" => {
                depth -= 1;
                if depth == 0 && p == "}" {
                    return i + 1;
                }
            }
            Tok::Punct(p) if p == ";" && depth == 0 => return i + 1,
            _ => {}
        }
        i += 1;
    }
    i
}

/// Drops `#[cfg(test)]` items; returns the names of `#[cfg(test)] mod x;`
/// files so they are skipped too.
fn strip_cfg_test(toks: Vec<Tok>) -> (Vec<Tok>, Vec<String>) {
    let mut out = Vec::with_capacity(toks.len());
    let mut test_mods = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let is_cfg_test = is_punct(toks.get(i), "#")
            && is_punct(toks.get(i + 1), "[")
            && is_ident(toks.get(i + 2), "cfg")
            && is_punct(toks.get(i + 3), "(")
            && is_ident(toks.get(i + 4), "test")
            && is_punct(toks.get(i + 5), ")")
            && is_punct(toks.get(i + 6), "]");
        if !is_cfg_test {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        let mut j = i + 7;
        // further attributes
        while is_punct(toks.get(j), "#") {
            j = item_end_brackets(&toks, j + 1);
        }
        let end = item_end(&toks, j);
        let item = &toks[j..end];
        if let Some(pos) = item.iter().position(|t| is_ident(Some(t), "mod")) {
            if let (Some(Tok::Ident(name)), Some(Tok::Punct(p))) =
                (item.get(pos + 1), item.get(pos + 2))
            {
                if p == ";" {
                    test_mods.push(name.clone());
                }
            }
        }
        i = end;
    }
    (out, test_mods)
}

fn item_end_brackets(toks: &[Tok], mut i: usize) -> usize {
    let mut depth = 0;
    while i < toks.len() {
        if is_punct(toks.get(i), "[") {
            depth += 1;
        } else if is_punct(toks.get(i), "]") {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

/// Expands a `use` tree starting at `i` into full paths; returns the index
/// after it.
/// Each path comes with the name it binds (its alias, its last segment,
/// `*` for a glob).
fn use_tree(
    toks: &[Tok],
    mut i: usize,
    prefix: &[String],
    out: &mut Vec<(Vec<String>, String)>,
) -> usize {
    let mut path = prefix.to_vec();
    loop {
        match toks.get(i) {
            Some(Tok::Ident(s)) if s == "as" => {
                let name = match toks.get(i + 1) {
                    Some(Tok::Ident(a)) => a.clone(),
                    _ => String::new(),
                };
                out.push((path, name));
                return i + 2;
            }
            Some(Tok::Ident(s)) => {
                path.push(s.clone());
                i += 1;
            }
            Some(Tok::Punct(p)) if p == "::" => i += 1,
            Some(Tok::Punct(p)) if p == "*" => {
                out.push((path, "*".into()));
                return i + 1;
            }
            Some(Tok::Punct(p)) if p == "{" => {
                i += 1;
                loop {
                    if is_punct(toks.get(i), "}") {
                        return i + 1;
                    }
                    if is_punct(toks.get(i), ",") {
                        i += 1;
                        continue;
                    }
                    if i >= toks.len() {
                        return i;
                    }
                    i = use_tree(toks, i, &path, out);
                }
            }
            _ => {
                let name = match path.last().map(String::as_str) {
                    Some("self") if path.len() > 1 => path[path.len() - 2].clone(),
                    Some(n) => n.to_string(),
                    None => String::new(),
                };
                out.push((path, name));
                return i;
            }
        }
    }
}

impl Crate {
    fn load() -> Crate {
        let mut modules = BTreeMap::new();
        let src = src_dir();
        modules.insert(Vec::new(), src.join("lib.rs"));
        fn walk(dir: &Path, prefix: Vec<String>, modules: &mut BTreeMap<Vec<String>, PathBuf>) {
            let mut entries: Vec<_> = fs::read_dir(dir).expect("read src").flatten().collect();
            entries.sort_by_key(|e| e.path());
            for e in entries {
                let p = e.path();
                let name = p.file_stem().unwrap().to_string_lossy().to_string();
                if p.is_dir() {
                    let mut m = prefix.clone();
                    m.push(name.clone());
                    if p.join("mod.rs").exists() {
                        modules.insert(m.clone(), p.join("mod.rs"));
                    }
                    walk(&p, m, modules);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    if name == "mod" || (prefix.is_empty() && (name == "lib" || name == "main")) {
                        continue;
                    }
                    let mut m = prefix.clone();
                    m.push(name);
                    modules.insert(m, p);
                }
            }
        }
        walk(&src, Vec::new(), &mut modules);
        Crate { modules }
    }

    /// The file defining what `path` (absolute segments) names: the
    /// deepest module it names, or, when the next segment is a name that
    /// module re-exports, the file the re-export leads to.
    fn resolve<'a>(
        &'a self,
        path: &[String],
        parsed: &BTreeMap<Vec<String>, Parsed>,
        depth: usize,
    ) -> Option<&'a PathBuf> {
        let mut n = 0;
        while n < path.len() && self.modules.contains_key(&path[..=n]) {
            n += 1;
        }
        let module = path[..n].to_vec();
        if let (Some(name), Some(p)) = (path.get(n), parsed.get(&module)) {
            if let Some(target) = p.reexports.get(name) {
                if depth < 8 {
                    if let Some(abs) = self.absolute(&module, target) {
                        let mut abs = abs;
                        abs.extend_from_slice(&path[n + 1..]);
                        return self.resolve(&abs, parsed, depth + 1);
                    }
                }
            }
        }
        self.modules.get(&module)
    }

    fn has_child(&self, module: &[String], name: &str) -> bool {
        let mut m = module.to_vec();
        m.push(name.to_string());
        self.modules.contains_key(&m)
    }

    /// Absolute form of a path written in `module`, or `None` for an
    /// external or local path.
    fn absolute(&self, module: &[String], path: &[String]) -> Option<Vec<String>> {
        let first = path.first()?;
        match first.as_str() {
            "crate" => Some(path[1..].to_vec()),
            "self" => {
                let mut m = module.to_vec();
                m.extend_from_slice(&path[1..]);
                Some(m)
            }
            "super" => {
                let mut m = module.to_vec();
                let mut rest = path;
                while rest.first().map(String::as_str) == Some("super") {
                    m.pop();
                    rest = &rest[1..];
                }
                m.extend_from_slice(rest);
                Some(m)
            }
            name if self.has_child(module, name) => {
                let mut m = module.to_vec();
                m.extend_from_slice(path);
                Some(m)
            }
            _ => None,
        }
    }

    fn parse(&self, toks: &[Tok], module: &[String]) -> Parsed {
        let mut uses: Vec<Vec<String>> = Vec::new();
        let mut reexports = BTreeMap::new();
        let mut i = 0;
        while i < toks.len() {
            if is_ident(toks.get(i), "use") {
                let public = (i >= 1 && is_ident(toks.get(i - 1), "pub"))
                    || (i >= 4
                        && is_ident(toks.get(i - 4), "pub")
                        && is_punct(toks.get(i - 3), "("));
                let mut tree = Vec::new();
                i = use_tree(toks, i + 1, &[], &mut tree);
                for (path, name) in tree {
                    let internal = self.absolute(module, &path).is_some();
                    if public && internal && name != "*" {
                        // Used by the file itself too, not only re-exported?
                        let mentions = toks.iter().filter(|t| is_ident(Some(t), &name)).count();
                        if mentions > 1 {
                            uses.push(path.clone());
                        }
                        reexports.insert(name, path);
                    } else if !(public && name == "*") {
                        uses.push(path);
                    }
                }
                continue;
            }
            let starts_path = matches!(toks.get(i), Some(Tok::Ident(_)))
                && is_punct(toks.get(i + 1), "::")
                && !(i > 0 && is_punct(toks.get(i - 1), "::"))
                && !(i > 0 && is_punct(toks.get(i - 1), "$"));
            if starts_path {
                let mut p = Vec::new();
                let mut j = i;
                while let Some(Tok::Ident(s)) = toks.get(j) {
                    p.push(s.clone());
                    if is_punct(toks.get(j + 1), "::") {
                        j += 2;
                    } else {
                        break;
                    }
                }
                uses.push(p);
                i = j + 1;
                continue;
            }
            i += 1;
        }
        Parsed { uses, reexports }
    }

    /// File → files it imports.
    fn graph(&self) -> BTreeMap<String, BTreeSet<String>> {
        let mut skip: BTreeSet<PathBuf> = BTreeSet::new();
        let mut parsed = BTreeMap::new();
        // Parents first, so `#[cfg(test)] mod x;` is known before x.
        for (module, file) in &self.modules {
            if skip.contains(file) {
                continue;
            }
            let text = fs::read_to_string(file).expect("read source");
            let (toks, test_mods) = strip_cfg_test(tokenize(&strip_comments_and_strings(&text)));
            for t in test_mods {
                let mut m = module.clone();
                m.push(t);
                // the test module and everything below it
                for (mm, f) in &self.modules {
                    if mm.starts_with(&m) {
                        skip.insert(f.clone());
                    }
                }
            }
            parsed.insert(module.clone(), self.parse(&toks, module));
        }
        let mut graph = BTreeMap::new();
        for (module, p) in &parsed {
            let from = rel(&self.modules[module]);
            let deps: &mut BTreeSet<String> = graph.entry(from.clone()).or_default();
            for path in &p.uses {
                if let Some(abs) = self.absolute(module, path) {
                    if let Some(to) = self.resolve(&abs, &parsed, 0) {
                        let to = rel(to);
                        if to != from {
                            deps.insert(to);
                        }
                    }
                }
            }
        }
        graph
    }
}

/// Strongly connected components with more than one file (Tarjan).
fn tangles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct Tarjan<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<BTreeSet<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = BTreeSet::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    comp.insert(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out
}

/// The shortest path `from` → ... → `to` (breadth first), if any.
fn shortest_path(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut prev: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([from.to_string()]);
    let mut seen: BTreeSet<String> = [from.to_string()].into();
    while let Some(v) = queue.pop_front() {
        if v == to {
            let mut path = vec![v.clone()];
            let mut cur = v;
            while let Some(p) = prev.get(&cur) {
                path.push(p.clone());
                cur = p.clone();
            }
            path.reverse();
            return Some(path);
        }
        for w in graph.get(&v).into_iter().flatten() {
            if seen.insert(w.clone()) {
                prev.insert(w.clone(), v.clone());
                queue.push_back(w.clone());
            }
        }
    }
    None
}

/// The cycles of `graph`: for every edge inside a tangle, the shortest
/// cycle through it, rotated to start at its smallest file, without
/// duplicates. Every import that takes part in a cycle shows up in one.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
    let mut found = BTreeSet::new();
    for comp in tangles(graph) {
        for a in &comp {
            for b in graph[a].iter().filter(|b| comp.contains(*b)) {
                if let Some(mut c) = shortest_path(graph, b, a) {
                    let min = (0..c.len()).min_by_key(|&i| &c[i]).unwrap();
                    c.rotate_left(min);
                    found.insert(c);
                }
            }
        }
    }
    found
}

fn layer_of(file: &str) -> usize {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, (_, prefixes))| prefixes.iter().map(move |p| (i, *p)))
        .filter(|(_, p)| file.starts_with(p))
        .max_by_key(|(_, p)| p.len())
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("{file} is in no layer: add it to LAYERS in tests/layers.rs"))
}

fn show(cycle: &[String]) -> String {
    let mut s = cycle.join(" -> ");
    s.push_str(" -> ");
    s.push_str(&cycle[0]);
    s
}

#[test]
fn the_checker_sees_known_imports() {
    let graph = Crate::load().graph();
    let deps = |f: &str| graph.get(f).cloned().unwrap_or_default();
    // `use super::{...}` group, `crate::` path in code, re-export in mod.rs.
    assert!(deps("src/chain/state.rs").contains("src/chain/check.rs"));
    // A re-export (`pub use params::ChainParams` in chain/mod.rs) leads to
    // the defining file and is no import of the re-exporting one.
    assert!(deps("src/chain/state.rs").contains("src/chain/params.rs"));
    assert!(deps("src/mempool/mod.rs").contains("src/chain/params.rs"));
    assert!(!deps("src/chain/mod.rs").contains("src/chain/params.rs"));
    assert!(deps("src/sync/mod.rs").contains("src/chain/state.rs"));
    assert!(deps("src/lib.rs").contains("src/sync/mod.rs"));
    // Test-only files are not part of the graph.
    assert!(!graph.contains_key("src/mempool/tests.rs"));
    assert!(!graph.contains_key("src/rpc/tests.rs"));
}

#[test]
fn no_import_cycles() {
    let mut graph = Crate::load().graph();
    let full = graph.clone();
    let mut stale = Vec::new();
    for (from, to) in ALLOWED_BACK_EDGES {
        let exists = full.get(*from).is_some_and(|d| d.contains(*to));
        if !exists || shortest_path(&full, to, from).is_none() {
            stale.push(format!("{from} -> {to}"));
        }
        if let Some(d) = graph.get_mut(*from) {
            d.remove(*to);
        }
    }
    let left: Vec<String> = cycles(&graph).iter().map(|c| show(c)).collect();
    assert!(
        left.is_empty() && stale.is_empty(),
        "import cycles:\n  {}\nALLOWED_BACK_EDGES entries that close no cycle any more (remove them):\n  {}",
        left.join("\n  "),
        stale.join("\n  ")
    );
}

#[test]
fn layers_only_import_downwards() {
    let graph = Crate::load().graph();
    let mut upward = Vec::new();
    for (from, deps) in &graph {
        for to in deps {
            if layer_of(to) > layer_of(from)
                && !ALLOWED_UPWARD.contains(&(from.as_str(), to.as_str()))
            {
                upward.push(format!(
                    "{from} ({}) imports {to} ({})",
                    LAYERS[layer_of(from)].0,
                    LAYERS[layer_of(to)].0
                ));
            }
        }
    }
    let stale: Vec<_> = ALLOWED_UPWARD
        .iter()
        .filter(|(f, t)| graph.get(*f).is_none_or(|d| !d.contains(*t)))
        .collect();
    assert!(
        upward.is_empty() && stale.is_empty(),
        "imports going up a layer:\n  {}\nstale ALLOWED_UPWARD entries: {stale:?}",
        upward.join("\n  ")
    );
}

#[test]
fn chain_imports_nothing_above_the_store() {
    let graph = Crate::load().graph();
    for (from, deps) in graph.iter().filter(|(f, _)| f.starts_with("src/chain/")) {
        for to in deps {
            if ALLOWED_UPWARD.contains(&(from.as_str(), to.as_str())) {
                continue;
            }
            assert!(
                to.starts_with("src/chain/") || to.starts_with("src/store/") || layer_of(to) == 0,
                "{from} imports {to}: the consensus layer uses only the store and utilities"
            );
        }
    }
}
