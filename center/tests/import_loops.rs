//! The layout stays a layering: no module of `center`, `agent-node` or `shared` imports, through
//! any chain of other modules, a module that imports it. A loop is how "one owner for each piece
//! of state" erodes — the struct that holds state starts calling the features that use it — so it
//! is caught here, at the next change, instead of in a review months later.
//!
//! A module is one source file. It depends on another when it names it in a `use crate::…`
//! tree, a `crate::…` path or a `super::…` path outside its tests; a name re-exported with
//! `pub use` (the crate root's included) counts as the file that defines it. A parent module
//! and its own children are one unit: paths from a parent down into its children (`mod x;`,
//! `x::f()`) are not followed, so a child may use its parent's types while the parent calls
//! the child. Method calls are not followed either (an `impl App` block in a feature file
//! depends on `app`, and `app` must then not depend on that feature).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

type Module = Vec<String>;

/// Every `.rs` file under `src` as its module path (`lib.rs` and `main.rs` are the roots).
fn modules(src: &Path) -> BTreeMap<Module, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading a source folder") {
            let path = entry.expect("reading a source folder").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(src)
                    .expect("under src")
                    .with_extension("");
                let module: Module = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if module == ["lib"] || module == ["main"] {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("reading a source file");
                out.insert(module, text);
            }
        }
    }
    out
}

/// The text that counts: without `//` comments and without the items marked `#[cfg(test)]`.
fn code(text: &str) -> String {
    let text = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        rest = skip_item(&rest[at + "#[cfg(test)]".len()..]);
    }
    out.push_str(rest);
    out
}

/// `text` after its first item: up to the `;` that ends it, or the brace that closes its body.
fn skip_item(text: &str) -> &str {
    let mut depth = 0usize;
    for (i, ch) in text.char_indices() {
        match ch {
            ';' if depth == 0 => return &text[i + 1..],
            '{' => depth += 1,
            '}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return &text[i + 1..];
                }
            }
            _ => {}
        }
    }
    ""
}

/// Splits a `use` tree's inside at its top-level commas.
fn split_top(tree: &str) -> Vec<String> {
    let (mut items, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for ch in tree.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(ch);
    }
    items.push(cur);
    items
        .into_iter()
        .map(|i| i.trim().to_owned())
        .filter(|i| !i.is_empty())
        .collect()
}

/// The paths a `use` tree names: `a::{b, c::{d}}` → `a::b`, `a::c::d`.
fn expand(prefix: &[String], tree: &str, out: &mut Vec<Vec<String>>) {
    for item in split_top(tree) {
        if let Some(open) = item.find('{') {
            let mut p = prefix.to_vec();
            p.extend(segments(&item[..open]));
            let inner = item[open + 1..].trim_end().trim_end_matches('}');
            expand(&p, inner, out);
        } else {
            let item = item.split(" as ").next().unwrap_or_default();
            let mut p = prefix.to_vec();
            p.extend(segments(item));
            out.push(p);
        }
    }
}

fn segments(path: &str) -> Vec<String> {
    path.split("::")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Each `use …;` statement's tree (the text between `use` and `;`) and whether it is `pub`.
fn use_statements(code: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let word_start = at == 0
            || before
                .chars()
                .last()
                .is_some_and(|c| c.is_whitespace() || c == ')');
        let after = &rest[at + 4..];
        let Some(end) = after.find(';') else { break };
        if word_start {
            let line = before.rsplit('\n').next().unwrap_or_default().trim();
            let public = line.starts_with("pub");
            out.push((public, after[..end].trim().to_owned()));
            rest = &after[end..];
        } else {
            rest = after;
        }
    }
    out
}

struct Graph {
    modules: BTreeSet<Module>,
    /// (module, name) → the module that defines what `module` re-exports as `name`.
    reexports: BTreeMap<(Module, String), Module>,
}

impl Graph {
    /// The module a path names (the longest module prefix), following re-exports (the crate
    /// root's too).
    fn resolve(&self, path: &[String], depth: usize) -> Option<Module> {
        if let Some(first) = path.first()
            && depth < 5
            && let Some(target) = self.reexports.get(&(Vec::new(), first.clone()))
        {
            let mut p = target.clone();
            p.extend_from_slice(path);
            return self.resolve(&p, depth + 1);
        }
        for n in (1..=path.len()).rev() {
            let m: Module = path[..n].to_vec();
            if !self.modules.contains(&m) {
                continue;
            }
            if n < path.len()
                && depth < 5
                && let Some(target) = self.reexports.get(&(m.clone(), path[n].clone()))
            {
                let mut p = target.clone();
                p.push(path[n].clone());
                return self.resolve(&p, depth + 1).or(Some(m));
            }
            return Some(m);
        }
        None
    }
}

/// Every path starting with `crate::` or `super::` in `code`, made absolute for `module`.
fn paths(module: &Module, code: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (_, tree) in use_statements(code) {
        let mut expanded = Vec::new();
        expand(&[], &tree, &mut expanded);
        out.extend(expanded);
    }
    let bytes = code.as_bytes();
    for start in ["crate::", "super::"] {
        for (at, _) in code.match_indices(start) {
            if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                continue;
            }
            if start == "super::" && at >= 2 && &code[at - 2..at] == "::" {
                continue;
            }
            let tail: String = code[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push(segments(&tail));
        }
    }
    out.into_iter()
        .filter_map(|p| absolute(module, &p))
        .collect()
}

/// `crate::a::b` → `[a, b]`; `super::x` from `m/n` → `[m, x]`; others are not ours.
fn absolute(module: &Module, path: &[String]) -> Option<Vec<String>> {
    match path.first().map(String::as_str) {
        Some("crate") => Some(path[1..].to_vec()),
        Some("super") => {
            let ups = path.iter().take_while(|s| *s == "super").count();
            let base = module.len().checked_sub(ups)?;
            let mut p = module[..base].to_vec();
            p.extend_from_slice(&path[ups..]);
            Some(p)
        }
        _ => None,
    }
}

/// Each module's dependencies on the crate's other modules.
fn dependencies(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let files = modules(src);
    let mut graph = Graph {
        modules: files.keys().cloned().collect(),
        reexports: BTreeMap::new(),
    };
    let root = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let with_root = files
        .iter()
        .map(|(m, t)| (m.clone(), t.clone()))
        .chain([(Vec::new(), root)]);
    for (module, text) in with_root {
        let module = &module;
        for (public, tree) in use_statements(&code(&text)) {
            if !public {
                continue;
            }
            let mut expanded = Vec::new();
            expand(&[], &tree, &mut expanded);
            for path in expanded {
                let Some(name) = path.last().cloned() else {
                    continue;
                };
                let from: Vec<String> = match path.first().map(String::as_str) {
                    Some("crate") | Some("super") => {
                        match absolute(module, &path[..path.len() - 1]) {
                            Some(p) => p,
                            None => continue,
                        }
                    }
                    Some("self") => {
                        let mut p = module.clone();
                        p.extend_from_slice(&path[1..path.len() - 1]);
                        p
                    }
                    _ => {
                        let mut p = module.clone();
                        p.extend_from_slice(&path[..path.len() - 1]);
                        p
                    }
                };
                if name != "self" {
                    graph.reexports.insert((module.clone(), name), from);
                }
            }
        }
    }
    files
        .iter()
        .map(|(module, text)| {
            let deps = paths(module, &code(text))
                .iter()
                .filter_map(|p| graph.resolve(p, 0))
                .filter(|d| d != module)
                .collect();
            (module.clone(), deps)
        })
        .collect()
}

/// The strongly connected components with more than one module (Tarjan).
fn loops(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in &s.graph[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.join("/"));
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

#[test]
fn no_module_imports_itself_through_others() {
    let mut found = Vec::new();
    for krate in ["center", "agent-node", "shared"] {
        let graph = dependencies(&crate_src(krate));
        assert!(graph.len() > 5, "{krate}: too few modules found");
        for component in loops(&graph) {
            found.push(format!("{krate}: {}", component.join(" ↔ ")));
        }
    }
    assert!(
        found.is_empty(),
        "import loops (each line: modules that import each other through a chain):\n{}",
        found.join("\n")
    );
}

#[test]
fn a_loop_is_found() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let src = dir.path();
    std::fs::create_dir_all(src.join("b")).expect("a folder");
    std::fs::write(src.join("a.rs"), "use crate::b::c::Thing;\n").expect("a file");
    std::fs::write(src.join("b.rs"), "mod c;\npub use c::Thing;\n").expect("a file");
    std::fs::write(
        src.join("b/c.rs"),
        "pub struct Thing;\nfn f() { super::super::a::g(); }\n",
    )
    .expect("a file");
    std::fs::write(src.join("d.rs"), "use crate::{a, b::{self, Thing}};\n").expect("a file");
    std::fs::write(
        src.join("e.rs"),
        "// crate::a::g\n#[cfg(test)]\nuse crate::d;\n",
    )
    .expect("a file");
    std::fs::write(
        src.join("f.rs"),
        "#[cfg(test)]\nfn t() { crate::a::g(); }\nfn u() { crate::d::h(); }\n",
    )
    .expect("a file");
    std::fs::write(src.join("lib.rs"), "mod a;\npub use a::Root;\n").expect("a file");
    std::fs::write(src.join("g.rs"), "use crate::Root;\n").expect("a file");
    let graph = dependencies(src);
    let module = |s: &str| -> Module { s.split('/').map(str::to_owned).collect() };
    assert!(
        graph[&module("d")].contains(&module("b/c")),
        "a re-export counts as its file"
    );
    assert!(
        graph[&module("e")].is_empty(),
        "comments and tests do not count"
    );
    assert_eq!(
        graph[&module("f")],
        BTreeSet::from([module("d")]),
        "only a test item is skipped, not the code after it"
    );
    assert!(
        graph[&module("g")].contains(&module("a")),
        "the crate root's re-exports count"
    );
    assert_eq!(loops(&graph), vec![vec!["a".to_owned(), "b/c".to_owned()]]);
}
