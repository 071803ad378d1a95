//! Writing report folders: every file via temp + rename, so a reader never sees a
//! half-written file and a crash loses nothing already measured. Output folders
//! are claimed once: a fresh default folder is never one that exists already,
//! and a named one holding files is only replaced when asked (`--force`).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{exporters_for, Report, ReportError, RunStatus, Section};

/// Serialises report writes with the abort path of a second signal, which marks
/// the report on disk and exits while holding it (no write can follow).
static WRITING: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Writes `bytes` to `path` atomically (temp file in the same dir, fsync, rename);
/// the temp file is removed again when anything fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let io = |what, p: &Path| {
        let path = p.to_path_buf();
        move |source| ReportError::Io { what, path, source }
    };
    if path.is_dir() {
        return Err(ReportError::Io {
            what: "writing",
            path: path.to_path_buf(),
            source: std::io::Error::from(nix::errno::Errno::EISDIR),
        });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let written = (|| {
        let mut f = fs::File::create(&tmp).map_err(io("creating", &tmp))?;
        f.write_all(bytes).map_err(io("writing", &tmp))?;
        f.sync_all().map_err(io("syncing", &tmp))?;
        fs::rename(&tmp, path).map_err(io("renaming into", path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Writes `report.json` plus every file `sections` render into `dir`; returns
/// the paths written. When any write fails (the disk is full, the folder went
/// read-only) the report files already in `dir` are removed — unlinking needs
/// no space — so a `report.json` saying `running` cannot stay behind as if the
/// run were still going or whole; the error says so.
pub fn write_report_dir(
    dir: &Path,
    report: &Report,
    sections: &[&'static (dyn Section + Sync)],
) -> Result<Vec<PathBuf>, ReportError> {
    let mut active = WRITING.lock().unwrap_or_else(|p| p.into_inner());
    *active = Some(dir.to_path_buf());
    write_all_files(dir, report, sections).map_err(|e| {
        discard_report_files(dir);
        ReportError::Unwritten {
            dir: dir.to_path_buf(),
            source: Box::new(e),
        }
    })
}

fn write_all_files(
    dir: &Path,
    report: &Report,
    sections: &[&'static (dyn Section + Sync)],
) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        what: "creating report dir",
        path: dir.to_path_buf(),
        source,
    })?;
    let json = serde_json::to_vec_pretty(report).map_err(|e| ReportError::Render {
        what: "report.json".into(),
        detail: e.to_string(),
    })?;
    let mut written = vec![dir.join("report.json")];
    write_atomic(&written[0], &json)?;
    for exporter in exporters_for(report, sections) {
        let path = dir.join(exporter.file_name());
        write_atomic(&path, &exporter.render(report)?)?;
        written.push(path);
    }
    Ok(written)
}

/// Removes the files a report writes (and temp files) from `dir`, then `dir`
/// itself if that left it empty. Best effort: this runs after a write failed.
fn discard_report_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if ours(&name) && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(e.path());
        }
    }
    let _ = fs::remove_dir(dir);
}

/// For a second signal: marks the report this process is writing `interrupted`
/// if it still says `running` (with a note), then keeps every other write out
/// until the process exits. Best effort; never blocks for long.
pub fn mark_active_interrupted(note: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let guard = loop {
        match WRITING.try_lock() {
            Ok(g) => break Some(g),
            Err(std::sync::TryLockError::Poisoned(p)) => break Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::sync::TryLockError::WouldBlock) => break None,
        }
    };
    let Some(guard) = guard else { return };
    if let Some(dir) = guard.as_ref() {
        let file = dir.join("report.json");
        if let Ok(mut r) = read_report(&file) {
            if r.status == RunStatus::Running {
                r.status = RunStatus::Interrupted;
                r.notes.push(note.to_string());
                if let Ok(json) = serde_json::to_vec_pretty(&r) {
                    let _ = write_atomic(&file, &json);
                }
            }
        }
    }
    // Held until exit: the main thread must not write a report after this.
    std::mem::forget(guard);
}

/// Reads a report from a `report.json` or a folder holding one; refuses other
/// versions. The file must be a regular file of at most 256 MiB.
pub fn read_report(path: &Path) -> Result<Report, ReportError> {
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_path_buf()
    };
    let text = crate::input::read_text(
        &file,
        crate::input::REPORT_MAX_BYTES,
        "a report",
        crate::input::Follow::Symlinks,
    )?;
    parse_report(&text, &file)
}

/// Parses and validates a report's text (`file` names it in errors): its
/// version first, read as written, then the whole report, then its values
/// (`validate::check`). Parsed straight into the report: no intermediate tree,
/// which for a 256 MiB report of samples would take several times its size.
pub fn parse_report(text: &str, file: &Path) -> Result<Report, ReportError> {
    /// Only the version, as its raw text (a 2^64 is named as given).
    #[derive(serde::Deserialize)]
    struct Version<'a> {
        #[serde(borrow, default)]
        schema_version: Option<&'a serde_json::value::RawValue>,
    }
    let version: Version<'_> = serde_json::from_str(text).map_err(|source| ReportError::Parse {
        path: file.to_path_buf(),
        source,
    })?;
    super::validate::check_schema_version(version.schema_version.map(|r| r.get())).map_err(
        |detail| ReportError::SchemaVersion {
            path: file.to_path_buf(),
            detail,
        },
    )?;
    let report: Report = serde_json::from_str(text).map_err(|source| ReportError::Parse {
        path: file.to_path_buf(),
        source,
    })?;
    super::validate::check(&report).map_err(|detail| ReportError::Invalid {
        path: file.to_path_buf(),
        detail,
    })?;
    Ok(report)
}

/// Where a command writes its folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutDir {
    /// A folder the user named (canonical); replacing files in it needs `force`.
    Given {
        /// The folder.
        path: PathBuf,
        /// Replace what a previous report left there.
        force: bool,
    },
    /// A new folder `<parent>/<prefix><UTC stamp>`, with `-2`, `-3`, … added
    /// when that name is taken (by an earlier run in the same second).
    Fresh {
        /// Parent folder (canonical), made if missing.
        parent: PathBuf,
        /// Name prefix (`plan-` or empty).
        prefix: &'static str,
    },
}

/// Files a report folder holds that a `--force` run replaces.
fn ours(name: &str) -> bool {
    name == "report.json"
        || name == "summary.md"
        || name == "plan.json"
        || name.ends_with(".svg")
        // Sections' text files (app-readset.txt): fixed names, never data's.
        || name.ends_with("-readset.txt")
        || (name.starts_with('.') && name.contains(".tmp-"))
}

/// Kernel pseudo-filesystems (statfs magic, name): their files are kernel
/// interfaces, and writing a report "there" either fails part-way or pokes
/// the kernel.
const PSEUDO_FS: &[(i64, &str)] = &[
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0x7363_6673, "securityfs"),
    (0x1cd1, "devpts"),
    (0xcafe_4a11, "bpf"),
    (0x6265_6570, "configfs"),
    (0x6165_676c, "pstore"),
    (0xde5e_81e4, "efivarfs"),
];

fn writable_ancestor(p: &Path) -> Result<(), String> {
    let mut a = p.to_path_buf();
    while !a.exists() {
        if !a.pop() {
            break;
        }
    }
    if let Ok(st) = nix::sys::statfs::statfs(&a) {
        let kind = st.filesystem_type().0;
        if let Some((_, name)) = PSEUDO_FS.iter().find(|(m, _)| *m == kind) {
            return Err(format!(
                "{} is on {name}, a kernel pseudo-filesystem, not storage; name a directory on a disk",
                a.display()
            ));
        }
    }
    nix::unistd::access(&a, nix::unistd::AccessFlags::W_OK).map_err(|e| {
        format!(
            "{} cannot be written ({})",
            a.display(),
            std::io::Error::from(e)
        )
    })
}

impl OutDir {
    /// Checks, without writing, that the folder can be claimed; `option` names
    /// the flag in errors.
    pub fn check(&self, option: &str) -> Result<(), String> {
        match self {
            OutDir::Given { path, force } => {
                if path.exists() && !path.is_dir() {
                    return Err(format!(
                        "{option} {} is a file; name a directory for the output",
                        path.display()
                    ));
                }
                if path.is_dir() && !force {
                    let entries: Vec<String> = fs::read_dir(path)
                        .map_err(|e| format!("{option} {}: {e}", path.display()))?
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect();
                    if entries
                        .iter()
                        .any(|n| n == "report.json" || n == "plan.json")
                    {
                        return Err(format!(
                            "{option} {} already holds a report; name a new folder, or pass --force to replace it",
                            path.display()
                        ));
                    }
                    if !entries.is_empty() {
                        return Err(format!(
                            "{option} {} is not empty; name a new or empty folder, or pass --force to write into it",
                            path.display()
                        ));
                    }
                }
                writable_ancestor(path).map_err(|e| format!("{option} {}: {e}", path.display()))
            }
            OutDir::Fresh { parent, .. } => {
                if parent.exists() && !parent.is_dir() {
                    return Err(format!(
                        "{} is a file, not a folder for reports",
                        parent.display()
                    ));
                }
                writable_ancestor(parent)
                    .map_err(|e| format!("the default report folder {}: {e}", parent.display()))
            }
        }
    }

    /// Makes the folder (a fresh one never exists before) and, with `force`,
    /// removes the files a previous report left in it; returns its path.
    pub fn claim(&self, stamp: &str) -> Result<PathBuf, ReportError> {
        let io = |what: &'static str, p: &Path| {
            let path = p.to_path_buf();
            move |source| ReportError::Io { what, path, source }
        };
        match self {
            OutDir::Given { path, force } => {
                fs::create_dir_all(path).map_err(io("creating report dir", path))?;
                if *force {
                    for e in fs::read_dir(path).map_err(io("reading", path))?.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if ours(&name) && e.file_type().is_ok_and(|t| t.is_file()) {
                            fs::remove_file(e.path()).map_err(io("removing", &e.path()))?;
                        }
                    }
                }
                Ok(path.clone())
            }
            OutDir::Fresh { parent, prefix } => {
                fs::create_dir_all(parent).map_err(io("creating", parent))?;
                for n in 1..10_000 {
                    let name = match n {
                        1 => format!("{prefix}{stamp}"),
                        n => format!("{prefix}{stamp}-{n}"),
                    };
                    let dir = parent.join(name);
                    // create_dir is atomic: two processes never claim one name.
                    match fs::create_dir(&dir) {
                        Ok(()) => return Ok(dir),
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                        Err(e) => return Err(io("creating report dir", &dir)(e)),
                    }
                }
                Err(io("creating report dir", parent)(std::io::Error::from(
                    nix::errno::Errno::EEXIST,
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_folders_are_unique_and_given_ones_need_force() {
        let d = tempfile::tempdir().expect("tempdir");
        let fresh = OutDir::Fresh {
            parent: d.path().join("reports"),
            prefix: "",
        };
        fresh.check("--out").expect("ok");
        let a = fresh.claim("20260101T000000Z").expect("first");
        let b = fresh.claim("20260101T000000Z").expect("second");
        assert_ne!(a, b);
        assert!(b.ends_with("20260101T000000Z-2"), "{b:?}");
        fs::write(a.join("report.json"), "{}").expect("write");
        let given = OutDir::Given {
            path: a.clone(),
            force: false,
        };
        assert!(given.check("--out").unwrap_err().contains("--force"));
        let forced = OutDir::Given {
            path: a.clone(),
            force: true,
        };
        forced.check("--out").expect("forced");
        forced.claim("x").expect("claimed");
        assert!(!a.join("report.json").exists());
        fs::write(d.path().join("file"), "x").expect("write");
        let file = OutDir::Given {
            path: d.path().join("file"),
            force: true,
        };
        assert!(file.check("--out").unwrap_err().contains("is a file"));
    }

    #[test]
    fn a_failed_atomic_write_leaves_no_temp_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let target = d.path().join("out");
        fs::create_dir(&target).expect("mkdir");
        assert!(write_atomic(&target, b"x").is_err());
        let left: Vec<_> = fs::read_dir(d.path()).expect("read").flatten().collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }
}
