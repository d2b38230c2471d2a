//! The shape of `src/`: no import cycle between top-level modules (a file or folder directly
//! under `src/`), and axum only at the HTTP edge (`src/http/`, `server.rs`, `main.rs`,
//! `lib.rs`). `crate::x` paths and `use crate::{x, …}` groups count; `#[cfg(test)] mod tests`
//! does not.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code without line comments and without the trailing unit-test module.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(cut) => &text[..cut],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn identifiers_after(text: &str, marker: &str) -> BTreeSet<String> {
    text.match_indices(marker)
        .map(|(i, _)| {
            text[i + marker.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Top-level modules named by `crate::x` and inside `crate::{…}` groups. Inside a group every
/// path segment counts, nested ones too (`crate::{store::{catch_up::X}}` names `catch_up`): a
/// nested segment that shares a top-level module's name reads as a use of that module, as the
/// review tool reads it, so such imports go on a line of their own.
fn referenced_modules(code: &str) -> BTreeSet<String> {
    let mut out = identifiers_after(code, "crate::");
    for (i, _) in code.match_indices("crate::{") {
        let rest = &code[i + "crate::".len()..];
        let mut depth = 0;
        let mut end = rest.len();
        for (k, c) in rest.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k;
                        break;
                    }
                }
                _ => {}
            }
        }
        let group = &rest[1..end];
        let chars: Vec<char> = group.chars().collect();
        let mut k = 0;
        while k < chars.len() {
            let starts = k == 0 || matches!(chars[k - 1], ' ' | '\n' | '\t' | ',' | '{');
            if starts && (chars[k].is_ascii_lowercase() || chars[k] == '_') {
                let mut e = k;
                while e < chars.len() && (chars[e].is_ascii_alphanumeric() || chars[e] == '_') {
                    e += 1;
                }
                let ident: String = chars[k..e].iter().collect();
                let mut f = e;
                while f < chars.len() && chars[f].is_whitespace() {
                    f += 1;
                }
                let follows = chars.get(f).copied();
                if f >= chars.len() || matches!(follows, Some(',' | '}' | ':')) {
                    out.insert(ident);
                }
                k = e;
            } else {
                k += 1;
            }
        }
    }
    out
}

fn graph() -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = fs::read_dir(&src)
        .expect("src")
        .map(|e| e.expect("entry").path())
        .filter_map(|p| {
            let stem = p.file_stem()?.to_str()?.to_string();
            (p.is_dir() || p.extension().is_some_and(|e| e == "rs")).then_some(stem)
        })
        .filter(|m| m != "main" && m != "lib")
        .collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut axum_outside = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        let rel_s = rel.to_string_lossy().replace('\\', "/");
        let code = code(&fs::read_to_string(&file).expect("read"));
        let edge = ["http/", "server.rs", "main.rs", "lib.rs"];
        if code.contains("axum::") && !edge.iter().any(|p| rel_s.starts_with(p)) {
            axum_outside.push(rel_s.clone());
        }
        let first = rel_s.split('/').next().unwrap_or_default();
        let me = first.trim_end_matches(".rs").to_string();
        if me == "main" || me == "lib" {
            continue;
        }
        let targets = edges.entry(me.clone()).or_default();
        for m in referenced_modules(&code) {
            if m != me && modules.contains(&m) {
                targets.insert(m);
            }
        }
    }
    (edges, axum_outside)
}

/// A cycle through `start`, if there is one.
fn cycle_from(
    edges: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    node: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    for next in edges.get(node).into_iter().flatten() {
        if next == start {
            let mut cycle = path.clone();
            cycle.push(start.to_string());
            return Some(cycle);
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if let Some(c) = cycle_from(edges, start, next, path, seen) {
                return Some(c);
            }
            path.pop();
        }
    }
    None
}

#[test]
fn no_import_cycle_between_top_level_modules() {
    let (edges, _) = graph();
    assert!(
        edges.len() > 10 && edges.values().any(|t| !t.is_empty()),
        "the module graph was not read: {edges:?}"
    );
    for start in edges.keys() {
        let mut path = vec![start.clone()];
        if let Some(cycle) = cycle_from(&edges, start, start, &mut path, &mut BTreeSet::new()) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn axum_only_at_the_http_edge() {
    let (_, outside) = graph();
    assert!(
        outside.is_empty(),
        "axum used outside the HTTP edge: {outside:?}"
    );
}

#[test]
fn the_reference_parser_sees_grouped_and_nested_imports() {
    let code = "use crate::{a::b, c, d::{e, f}};\nfn x() { crate::g::h(); }";
    let found: Vec<String> = referenced_modules(code).into_iter().collect();
    // Items of a nested group count too (`e`, `f`), as the review tool counts them.
    assert_eq!(found, ["a", "c", "d", "e", "f", "g"]);
}

#[test]
fn the_readme_layout_names_every_source_file() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(root.join("README.md")).expect("README");
    let layout = readme
        .split("## Development")
        .nth(1)
        .expect("a Development section");
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let missing: Vec<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(root)
                .expect("under the root")
                .to_string_lossy()
                .replace('\\', "/")
        })
        .filter(|f| !layout.contains(&format!("`{f}`")))
        .collect();
    assert!(missing.is_empty(), "README's layout misses {missing:?}");
}
