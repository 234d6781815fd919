//! Tidy tests: the invariants ARCHITECTURE.md states, checked against the
//! source tree (in the spirit of rust-analyzer's `tidy.rs`). Each rule names
//! the section of ARCHITECTURE.md it enforces; when one fails, either the
//! change broke a boundary or the document must say why the rule changed.

use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;
/// A file may exceed `MAX_LINES` when its first lines say why.
const LONG_FILE_REASON: &str = "Over 600 lines because";

struct SourceFile {
    /// Path relative to `src/`, with `/` separators.
    rel: String,
    text: String,
    /// Declared `#[cfg(test)] mod x;` by its parent: test code as a whole.
    test_only: bool,
}

impl SourceFile {
    /// The file without its `#[cfg(test)]` items: rules about what code
    /// does at run time don't apply to its tests.
    fn production_code(&self) -> &str {
        if self.test_only {
            return "";
        }
        match self.text.find("#[cfg(test)]") {
            Some(at) => &self.text[..at],
            None => &self.text,
        }
    }

    fn in_module(&self, module: &str) -> bool {
        self.rel == format!("{module}.rs") || self.rel.starts_with(&format!("{module}/"))
    }
}

fn sources() -> Vec<SourceFile> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<SourceFile>) {
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = fs::read_to_string(&path).unwrap();
                out.push(SourceFile {
                    rel,
                    text,
                    test_only: false,
                });
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = Vec::new();
    walk(&root, &root, &mut out);
    // A child module file lives in the directory named after its parent
    // (`form.rs` → `form/x.rs`; `mod.rs`, `lib.rs` → the same directory).
    let mut test_modules = Vec::new();
    for f in &out {
        let dir = match f.rel.rsplit_once('/') {
            Some((dir, "mod.rs")) => format!("{dir}/"),
            None if f.rel == "lib.rs" || f.rel == "main.rs" => String::new(),
            _ => format!("{}/", f.rel.trim_end_matches(".rs")),
        };
        for decl in f.text.split("#[cfg(test)]\n").skip(1) {
            let decl = decl.trim_start();
            let decl = decl
                .strip_prefix("pub(crate) ")
                .or_else(|| decl.strip_prefix("pub "))
                .unwrap_or(decl);
            if let Some(name) = decl
                .strip_prefix("mod ")
                .and_then(|rest| rest.split_once(';'))
                .map(|(name, _)| name.trim())
                .filter(|name| !name.contains(char::is_whitespace))
            {
                test_modules.push(format!("{dir}{name}.rs"));
            }
        }
    }
    for f in &mut out {
        f.test_only = test_modules.contains(&f.rel);
    }
    assert!(out.len() > 50, "expected the whole source tree under src/");
    out
}

/// Files outside `allowed` modules whose production code contains `needle`.
fn offenders(needles: &[&str], allowed: &[&str]) -> Vec<String> {
    sources()
        .iter()
        .filter(|f| !allowed.iter().any(|m| f.in_module(m)))
        .filter_map(|f| {
            let code = f.production_code();
            needles
                .iter()
                .find(|n| code.contains(*n))
                .map(|n| format!("src/{} uses `{n}`", f.rel))
        })
        .collect()
}

#[test]
fn only_store_speaks_sql() {
    let found = offenders(&["rusqlite", "postgres::"], &["store"]);
    assert!(
        found.is_empty(),
        "ARCHITECTURE.md, invariant \"only `store` touches SQL\":\n{}",
        found.join("\n")
    );
}

#[test]
fn only_outbound_builds_http_clients() {
    let found = offenders(
        &["Client::builder", "ClientBuilder", "reqwest::Client::new"],
        &["outbound"],
    );
    assert!(
        found.is_empty(),
        "ARCHITECTURE.md, invariant \"only `outbound` builds HTTP clients\":\n{}",
        found.join("\n")
    );
}

#[test]
fn domain_and_providers_do_no_io() {
    // Types such as `std::net::IpAddr` are values, not I/O; these are the
    // things that reach the outside world or the clock.
    let io = [
        "tokio",
        "reqwest",
        "hyper",
        "rusqlite",
        "std::fs",
        "std::process",
        "std::env::var",
        "TcpStream",
        "TcpListener",
        "UdpSocket",
        "SystemTime::now",
        "Instant::now",
        "crate::store",
        "crate::http",
        "crate::dispatch",
        "crate::shops",
        "crate::outbound",
    ];
    let all_but_pure: Vec<String> = sources()
        .iter()
        .map(|f| {
            f.rel
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_owned()
        })
        .filter(|m| m != "domain" && m != "providers")
        .collect();
    let allowed: Vec<&str> = all_but_pure.iter().map(String::as_str).collect();
    let found = offenders(&io, &allowed);
    assert!(
        found.is_empty(),
        "ARCHITECTURE.md, invariant \"`domain` and `providers` do no I/O\":\n{}",
        found.join("\n")
    );
}

#[test]
fn no_source_file_is_long_without_a_reason() {
    let long: Vec<String> = sources()
        .iter()
        .filter(|f| f.text.lines().count() > MAX_LINES)
        .filter(|f| !f.text.lines().take(5).any(|l| l.contains(LONG_FILE_REASON)))
        .map(|f| format!("src/{} ({} lines)", f.rel, f.text.lines().count()))
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_LINES} lines need `//! {LONG_FILE_REASON} …` at the top (or a split):\n{}",
        long.join("\n")
    );
}

#[test]
fn architecture_md_names_every_module() {
    let map =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md")).unwrap();
    // The code map's sections: "### `src/store/`" and what follows it.
    let sections: Vec<(&str, &str)> = map
        .split("\n### ")
        .skip(1)
        .map(|s| s.split_once('\n').unwrap_or((s, "")))
        .collect();
    let section_of = |dir: &str| {
        let heading = format!("`src/{dir}/`");
        sections
            .iter()
            .filter(|(h, _)| h.contains(&heading))
            .map(|(_, body)| *body)
            .collect::<String>()
    };
    let mut missing = Vec::new();
    for f in sources() {
        // Every module directory, and every module file one level below it
        // (`store/apply.rs`), named in full or in its directory's section;
        // tests and the crate roots aside.
        let parts: Vec<&str> = f.rel.split('/').collect();
        if f.test_only || parts.len() > 2 {
            continue;
        }
        let named = match parts.as_slice() {
            ["lib.rs" | "main.rs"] => true,
            [file] => map.contains(&format!("src/{file}")),
            [dir, "mod.rs"] => map.contains(&format!("`src/{dir}/`")),
            [dir, file] => {
                map.contains(&format!("{dir}/{file}"))
                    || section_of(dir).contains(&format!("`{file}`"))
            }
            _ => true,
        };
        if !named {
            missing.push(f.rel.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map omits (name each in its directory's section):\n{}",
        missing.join("\n")
    );
}
