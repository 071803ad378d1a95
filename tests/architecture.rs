//! The architecture, checked from the source text (root-free, no build tool
//! needed): `cargo test --test architecture` prints the module graph.
//!
//! - the library's top-level modules form a DAG (each `crate::x` reference in
//!   `src/<m>/…` is an edge m → x); a folder is one unit;
//! - no library file names the command-line parser (the CLI lives in the binary:
//!   `src/main.rs` and `src/cli/`);
//! - no workload names a layout, and no renderer, gate or planner names a
//!   workload: outside tests, their code holds none of the registries' names as
//!   string literals nor a path into a workload's folder.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The source without comments and without its `#[cfg(test)]` tail (unit tests
/// may name anything).
fn code_of(path: &Path) -> String {
    let text = fs::read_to_string(path).expect("source file");
    let text = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text,
    };
    text.lines()
        .map(|l| match l.trim_start().starts_with("//") {
            true => "",
            false => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Library files by top-level module (`src/x.rs` and `src/x/**` → `x`).
fn library() -> BTreeMap<String, Vec<PathBuf>> {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let mut out: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix("src").expect("under src").to_path_buf();
        let first = rel
            .components()
            .next()
            .map(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .trim_end_matches(".rs")
                    .to_string()
            })
            .unwrap_or_default();
        if matches!(first.as_str(), "main" | "cli" | "lib") {
            continue;
        }
        out.entry(first).or_default().push(f);
    }
    out
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let lib = library();
    let re = |code: &str| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + 7..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
        out
    };
    lib.iter()
        .map(|(m, files)| {
            let deps: BTreeSet<String> = files
                .iter()
                .flat_map(|f| re(&code_of(f)))
                .filter(|d| d != m && lib.contains_key(d))
                .collect();
            (m.clone(), deps)
        })
        .collect()
}

fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            match state.get(d).copied().unwrap_or(0) {
                1 => {
                    let at = stack.iter().position(|s| s == d).unwrap_or(0);
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(d, g, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for n in g.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, g, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn top_level_modules_form_a_dag() {
    let g = edges();
    for (m, deps) in &g {
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        println!("{m:>9} -> {}", deps.join(", "));
    }
    if let Some(cycle) = find_cycle(&g) {
        panic!("module cycle: {}", cycle.join(" -> "));
    }
    // The layering DESIGN.md describes: nothing below `app` reaches up into it,
    // and the pure or generic layers stay below the workloads.
    for low in [
        "stats", "error", "probe", "isolate", "image", "layout", "report", "capacity", "sys",
    ] {
        let deps = g.get(low).cloned().unwrap_or_default();
        for high in ["app", "config", "workload", "doctor"] {
            assert!(!deps.contains(high), "{low} must not depend on {high}");
        }
    }
    // The raw system calls stand on nothing of ours.
    let sys = g.get("sys").cloned().unwrap_or_default();
    assert!(
        sys.is_empty(),
        "sys must depend on no other module: {sys:?}"
    );
}

#[test]
fn the_library_knows_no_command_line() {
    for files in library().values() {
        for f in files {
            let code = code_of(f);
            for word in ["clap::", "crate::cli", "ValueEnum", "#[arg("] {
                assert!(!code.contains(word), "{} mentions {word}", f.display());
            }
        }
    }
}

fn literals(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = code.split('"');
    it.next();
    while let Some(lit) = it.next() {
        out.push(lit.to_string());
        it.next();
    }
    out
}

fn registry_names(file: &str, field: &str) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(Path::new(file), &mut files);
    let mut out = Vec::new();
    for f in files {
        let code = code_of(&f);
        let key = format!("{field}: \"");
        for (i, _) in code.match_indices(&key) {
            let rest = &code[i + key.len()..];
            if let Some(end) = rest.find('"') {
                out.push(rest[..end].to_string());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn no_workload_names_a_layout() {
    let layouts = registry_names("src/layout", "name");
    assert!(layouts.contains(&"overlay2".to_string()), "{layouts:?}");
    let mut files = Vec::new();
    rust_files(Path::new("src/workload"), &mut files);
    for f in files {
        let code = code_of(&f);
        for lit in literals(&code) {
            assert!(
                !layouts.contains(&lit),
                "{} names the layout \"{lit}\": ask its capabilities instead",
                f.display()
            );
        }
    }
}

#[test]
fn no_renderer_gate_or_planner_names_a_workload() {
    let mut files = Vec::new();
    rust_files(Path::new("src/workload"), &mut files);
    let mut workloads: Vec<String> = Vec::new();
    for f in &files {
        let code = code_of(f);
        let key = "pub const NAME: &str = \"";
        if let Some(i) = code.find(key) {
            let rest = &code[i + key.len()..];
            if let Some(end) = rest.find('"') {
                workloads.push(rest[..end].to_string());
            }
        }
    }
    assert!(workloads.len() >= 4, "{workloads:?}");
    let folders: Vec<String> = workloads.iter().map(|w| w.replace('-', "_")).collect();
    for dir in [
        "src/report",
        "src/compare",
        "src/capacity",
        "src/app",
        "src/fleet",
    ] {
        let mut files = Vec::new();
        rust_files(Path::new(dir), &mut files);
        for f in files {
            let code = code_of(&f);
            // A workload's name used to select or match its data (an axis label
            // that happens to read "inodes" is not a selection).
            for w in &workloads {
                let lit = format!("\"{w}\"");
                for (i, _) in code.match_indices(&lit) {
                    let before = code[..i].trim_end();
                    let after = code[i + lit.len()..].trim_start();
                    let selects = ["==", "!=", "cases_of(", "entry(", "get("]
                        .iter()
                        .any(|p| before.ends_with(p))
                        || after.starts_with("=>");
                    assert!(
                        !selects,
                        "{} selects the workload {lit} by name",
                        f.display()
                    );
                }
            }
            for folder in &folders {
                assert!(
                    !code.contains(&format!("workload::{folder}")),
                    "{} reaches into workload::{folder}",
                    f.display()
                );
            }
        }
    }
}

/// Doctor judges and describes every layout by what its registry entry
/// declares (`LayoutEntry::host`): outside tests, no file under `src/doctor`
/// holds a layout's name as a string literal, so a layout doctor has never
/// heard of is neither misreported nor left out.
#[test]
fn doctor_names_no_layout() {
    let layouts = registry_names("src/layout", "name");
    for known in [
        "overlay2",
        "overlay",
        "plain",
        "containerd",
        "rootless",
        "fuse-overlayfs",
        "btrfs",
        "erofs",
        "composefs",
    ] {
        assert!(layouts.contains(&known.to_string()), "{known}: {layouts:?}");
    }
    let mut files = Vec::new();
    rust_files(Path::new("src/doctor"), &mut files);
    assert!(files.len() >= 5, "{files:?}");
    for f in files {
        let code = code_of(&f);
        for lit in literals(&code) {
            assert!(
                !layouts.contains(&lit),
                "{} names the layout \"{lit}\": declare it in the layout's entry (LayoutEntry::host) instead",
                f.display()
            );
        }
    }
}

/// A workload's `run` flags live in its own file: every workload folder with
/// user options (`pub struct Options` in its `params.rs`) has
/// `src/cli/workloads/<folder>.rs`, registered with one line in `GROUPS`; only
/// that file reaches into its folder, and `src/cli/run.rs` (the shared flags)
/// names no workload's options.
#[test]
fn each_workloads_flags_are_one_file_and_one_registry_line() {
    let cli = Path::new("src/cli/workloads");
    let registry = code_of(&cli.join("mod.rs"));
    let mut with_options = Vec::new();
    for e in fs::read_dir("src/workload")
        .expect("src/workload")
        .flatten()
    {
        let params = e.path().join("params.rs");
        if params.is_file() && code_of(&params).contains("pub struct Options") {
            with_options.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    assert!(with_options.len() >= 5, "{with_options:?}");
    let run = code_of(Path::new("src/cli/run.rs"));
    let mut files = Vec::new();
    rust_files(cli, &mut files);
    for folder in &with_options {
        let own = cli.join(format!("{folder}.rs"));
        assert!(
            own.is_file(),
            "{folder} has options but no {}",
            own.display()
        );
        assert!(
            registry.contains(&format!("pub mod {folder};"))
                && registry.contains(&format!("group::<{folder}::")),
            "{} is not registered in cli::workloads::GROUPS",
            own.display()
        );
        assert!(
            code_of(&own).contains(&format!("workload::{folder}")),
            "{} does not lower into workload::{folder}",
            own.display()
        );
        let reach = format!("workload::{folder}");
        assert!(!run.contains(&reach), "src/cli/run.rs reaches into {reach}");
        for f in files.iter().filter(|f| **f != own) {
            assert!(
                !code_of(f).contains(&reach),
                "{} reaches into {reach}",
                f.display()
            );
        }
    }
}

/// The paths a file's code names (`a::b::c` tokens), comments left out;
/// unit tests included.
fn path_tokens(path: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(path).expect("source file");
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .flat_map(|l| {
            l.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One system-call crate per job: `nix` (the brief's) for what it covers,
/// `rustix` for what nix lacks (the new mount API, xattrs, `openat2` and the
/// `*at` calls that return owned fds, which the walks over hostile image trees
/// hold), never both in one file; the `libc` crate only in `src/sys.rs`,
/// behind wrappers that each say why they are sound.
#[test]
fn one_syscall_crate_per_file() {
    let mut files = Vec::new();
    rust_files(Path::new("src"), &mut files);
    let (mut nix, mut rustix) = (0, 0);
    for f in &files {
        let tokens = path_tokens(f);
        let names = |krate: &str| {
            tokens
                .iter()
                .any(|t| t == krate || t.starts_with(&format!("{krate}::")))
        };
        let (n, r, l) = (names("nix"), names("rustix"), names("libc"));
        assert!(
            !(n && r),
            "{} uses both nix and rustix: take nix where it covers the call, \
             rustix only for what nix lacks, in a file of its own",
            f.display()
        );
        assert!(
            !l || f == Path::new("src/sys.rs"),
            "{} names libc: raw calls go through src/sys.rs",
            f.display()
        );
        nix += usize::from(n);
        rustix += usize::from(r);
    }
    // The check saw both crates in use (a tokenizer that finds nothing passes vacuously).
    assert!(
        nix >= 10 && rustix >= 5,
        "nix in {nix} files, rustix in {rustix}"
    );
}

/// The files of one workload folder that `code` (of the file `own`) reaches
/// by path: `super::x`, `crate::workload::<folder>::x` and, from `mod.rs`, a
/// path that starts at a child (`analyze::record`, `self::keys::View`). A
/// path to something that is not a sibling file (`super::NAME`) reaches `mod`.
fn folder_refs(code: &str, own: &str, folder: &str, files: &BTreeSet<String>) -> BTreeSet<String> {
    fn ident(s: &str) -> &str {
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        &s[..end]
    }
    // The first segment of each path a `use` group or a single path names.
    fn heads(rest: &str) -> Vec<String> {
        let rest = rest.trim_start();
        let Some(group) = rest.strip_prefix('{') else {
            return vec![ident(rest).to_string()];
        };
        let (mut depth, mut out, mut start) = (0usize, Vec::new(), 0usize);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    out.push(ident(group[start..i].trim_start()).to_string());
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    out.push(ident(group[start..i].trim_start()).to_string());
                    start = i + 1;
                }
                _ => {}
            }
        }
        out
    }
    let mut out = BTreeSet::new();
    let mut reach = |name: &str| {
        if name.is_empty() || name == own {
            return;
        }
        let to = match files.contains(name) {
            true => name,
            false => "mod",
        };
        if to != own {
            out.insert(to.to_string());
        }
    };
    let parent = format!("crate::workload::{folder}::");
    for prefix in ["super::", parent.as_str()] {
        for (i, _) in code.match_indices(prefix) {
            // `super::super::` leaves the folder; `crate::…::super::` is not ours.
            let before = &code[..i];
            if prefix == "super::" && (before.ends_with("::") || own == "mod") {
                continue;
            }
            let rest = &code[i + prefix.len()..];
            if rest.starts_with("super::") {
                continue;
            }
            for h in heads(rest) {
                reach(&h);
            }
        }
    }
    if own == "mod" {
        let bytes = code.as_bytes();
        for (i, _) in code.match_indices("::") {
            let start = code[..i]
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |p| p + 1);
            let name = &code[start..i];
            let lead = code[..start].trim_end_matches(' ');
            let rooted = lead.ends_with("self::") && !lead.ends_with("::self::")
                || !(lead.ends_with("::") || start > 0 && bytes[start - 1] == b'.');
            if rooted && files.contains(name) {
                reach(name);
            }
        }
    }
    out
}

/// Inside one workload folder the files form a DAG: `keys` (the names, enums
/// and typed views) at the bottom, `params`, the pure `analyze` and its kin,
/// `render`, and `measure` (the timed loops), which only the folder's
/// `mod.rs` runs — so `analyze` never reaches into `measure` and no two files
/// import each other.
#[test]
fn workload_folders_have_no_import_cycles() {
    let mut folders = 0;
    let Ok(entries) = fs::read_dir("src/workload") else {
        panic!("src/workload is missing");
    };
    for dir in entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
        let folder = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut paths = Vec::new();
        rust_files(&dir, &mut paths);
        let files: BTreeSet<String> = paths
            .iter()
            .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        let g: BTreeMap<String, BTreeSet<String>> = paths
            .iter()
            .map(|p| {
                let own = p
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let refs = folder_refs(&code_of(p), &own, &folder, &files);
                (own, refs)
            })
            .collect();
        for (f, deps) in &g {
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            println!("{folder:>10}/{f:<8} -> {}", deps.join(", "));
        }
        if let Some(cycle) = find_cycle(&g) {
            panic!(
                "import cycle in src/workload/{folder}: {}",
                cycle.join(" -> ")
            );
        }
        for (f, deps) in &g {
            assert!(
                f == "mod" || !deps.contains("measure"),
                "src/workload/{folder}/{f}.rs imports measure: only the folder's mod.rs runs the timed loops; \
                 move what both need into keys.rs"
            );
        }
        if let Some(keys) = g.get("keys") {
            assert!(
                keys.is_empty(),
                "src/workload/{folder}/keys.rs imports {keys:?}: keys are the bottom of the folder"
            );
        }
        folders += 1;
    }
    assert!(folders >= 6, "{folders} workload folders");
}
