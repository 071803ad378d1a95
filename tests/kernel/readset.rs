//! The start-up read-set recorder (`probe::readset`, issue 26) against the
//! real kernel and a real image: the python fixture mounted through the
//! overlay2 layout, its command run in a chroot of the merged mount in its own
//! mount and pid namespaces with the recorder on; strace of the same command
//! in a chroot of the same rootfs (umoci's unpack) is the oracle.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use libtest_mimic::{Failed, Trial};
use overlaybench::isolate::MountApi;
use overlaybench::probe::readset::{own_pid_namespace, Filter, Options, ReadSet, Recorder};

use crate::appimage::{app_images_or_panic, PYTHON_OUTPUT};

pub fn tests() -> Vec<Trial> {
    vec![trial!(python_start_read_set_agrees_with_strace)]
}

/// Runs `command` chrooted into `root` in new mount and pid namespaces, with a
/// recorder on `root` counting only processes outside this process's pid
/// namespace; returns its stdout and the read set.
fn record(root: &Path, command: &[String]) -> Result<(String, ReadSet), Failed> {
    // `unshare --fork` makes the new pid namespace and forks chroot into it as
    // its pid 1, which execs the command: every process of the start is in a
    // namespace that is not ours, from its first instruction, and unshare
    // itself (in ours) is left out. Known before anything runs, so the
    // recorder starts first (a recorder filtering on the new namespace could
    // only start once it exists, after the start began).
    let own = own_pid_namespace()?;
    let rec = Recorder::start(root, Options::new(Filter::OutsidePidNamespace(own)))?;
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount", "--", "chroot"])
        .arg(root)
        .args(command)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("unshare (util-linux): {e}"));
    let set = rec.stop()?;
    let out = out?;
    if !out.status.success() {
        return Err(format!(
            "{command:?} in {}: {}\n{}",
            root.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), set))
}

/// `path` (absolute inside `root`) resolved inside `root`, symlinks included
/// (an absolute target restarts at `root`), as a path relative to it.
fn resolve_in(root: &Path, path: &Path) -> Option<PathBuf> {
    let mut todo: Vec<PathBuf> = vec![path.to_path_buf()];
    let mut out = PathBuf::new();
    let mut hops = 0;
    while let Some(p) = todo.pop() {
        let mut comps: Vec<Component> = p.components().collect();
        comps.reverse();
        while let Some(c) = comps.pop() {
            match c {
                Component::RootDir => out = PathBuf::new(),
                Component::CurDir | Component::Prefix(_) => {}
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(n) => {
                    let cand = out.join(n);
                    let m = fs::symlink_metadata(root.join(&cand)).ok()?;
                    if m.file_type().is_symlink() {
                        hops += 1;
                        if hops > 40 {
                            return None;
                        }
                        let target = fs::read_link(root.join(&cand)).ok()?;
                        let rest: PathBuf = comps.iter().rev().collect();
                        comps.clear();
                        todo.push(target.join(rest));
                    } else {
                        out = cand;
                    }
                }
            }
        }
    }
    Some(out)
}

/// The regular files of `root` that `strace -f` saw `command` open or exec
/// successfully after it entered the chroot, by (device, inode) in `root`,
/// with the first name.
fn strace_set(root: &Path, command: &[String]) -> Result<BTreeMap<(u64, u64), PathBuf>, Failed> {
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("strace.log");
    let out = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-s",
            "4096",
            "-e",
            "trace=open,openat,openat2,execve",
            "-o",
        ])
        .arg(&log)
        .arg("chroot")
        .arg(root)
        .args(command)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("strace: {e} (scripts/setup installs it)"))?;
    if !out.status.success() {
        return Err(format!(
            "strace {command:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let text = fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut set = BTreeMap::new();
    let mut inside = false;
    for line in text.lines() {
        // "PID call(ARGS) = RESULT"; a call split by another thread's line is
        // "<unfinished ...>" then "<... call resumed>": take the call's start.
        let Some((_, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let (call, args) = match rest.split_once('(') {
            Some(x) => x,
            None => continue,
        };
        let ok = line
            .rsplit_once(" = ")
            .is_some_and(|(_, r)| !r.starts_with('-'));
        let Some(name) = args.split('"').nth(1) else {
            continue;
        };
        let name = Path::new(name);
        if call == "execve" && ok && name.file_name().is_some_and(|n| n != "chroot") {
            inside = true;
        }
        if !inside || !ok {
            continue;
        }
        // Only names relative to the cwd (/ here) or absolute; a name
        // relative to another dirfd is not this oracle's business.
        if call != "execve" && !(args.starts_with("AT_FDCWD") || call == "open") {
            continue;
        }
        let Some(rel) = resolve_in(root, &Path::new("/").join(name)) else {
            continue;
        };
        let Ok(m) = fs::metadata(root.join(&rel)) else {
            continue;
        };
        if m.is_file() {
            set.entry((m.dev(), m.ino())).or_insert(rel);
        }
    }
    if !inside {
        return Err(format!("strace saw no exec of {command:?}:\n{text}").into());
    }
    Ok(set)
}

fn python_start_read_set_agrees_with_strace() -> Result<(), Failed> {
    let py = &app_images_or_panic().python;
    let scratches = crate::differential::Scratches::new();
    let l = overlaybench::layout::make("overlay2", &crate::config(MountApi::New));
    let scratch = scratches.for_layout(l.as_ref())?;
    let dir = tempfile::Builder::new()
        .prefix("readset-")
        .tempdir_in(scratch.path())?;
    let src = crate::images::open(&py.source)?;
    let img = l
        .prepare(&*src, &dir.path().join("img"))
        .map_err(|e| format!("prepare: {e}"))?;
    let c = l
        .create_container(&img, &dir.path().join("c"))
        .map_err(|e| format!("create container: {e}"))?;
    let m = l.mount(&img, &c).map_err(|e| format!("mount: {e}"))?;
    let recorded = record(&m.merged, &py.command);
    m.unmount().map_err(|e| format!("unmount: {e}"))?;
    l.remove_container(&c)
        .map_err(|e| format!("remove container: {e}"))?;
    let (stdout, set) = recorded?;
    crate::common::assert_nothing_left(dir.path(), 10);

    if stdout.trim() != PYTHON_OUTPUT {
        return Err(format!("the python fixture did not run: stdout {stdout:?}").into());
    }
    let paths: Vec<String> = set
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    if !paths
        .iter()
        .any(|p| p.ends_with("python3.11/json/__init__.py"))
    {
        return Err(format!("no json/__init__.py in the read set: {paths:#?}").into());
    }
    if set.incomplete() || set.files.is_empty() {
        return Err(format!("read set incomplete: {set:?}").into());
    }
    // The interpreter was exec'd and read; the fractions are of the image.
    if !set
        .files
        .iter()
        .any(|f| f.exec && f.path.ends_with("python3.11"))
    {
        return Err(format!("python3.11 not recorded as exec'd: {paths:#?}").into());
    }
    if !(set.file_fraction() > 0.0 && set.file_fraction() < 0.5 && set.byte_fraction() < 0.5) {
        return Err(format!("fractions {} {}", set.file_fraction(), set.byte_fraction()).into());
    }

    // The oracle, by (device, inode) in umoci's unpack of the same image.
    let oracle = strace_set(&py.rootfs, &py.command)?;
    let mut ours = BTreeMap::new();
    for f in &set.files {
        let m = fs::metadata(py.rootfs.join(&f.path))
            .map_err(|e| format!("{}: recorded but not in the image: {e}", f.path.display()))?;
        ours.insert((m.dev(), m.ino()), f.path.clone());
    }
    let missing: BTreeSet<&PathBuf> = oracle
        .iter()
        .filter(|(k, _)| !ours.contains_key(k))
        .map(|(_, p)| p)
        .collect();
    let extra: BTreeSet<&PathBuf> = ours
        .iter()
        .filter(|(k, _)| !oracle.contains_key(k))
        .map(|(_, p)| p)
        .collect();
    // Tolerance: the dynamic loader is opened by the kernel at exec (fanotify
    // sees that open, strace sees only the execve), so the recorder may have
    // it more; nothing the process opened may be missing.
    let extra_ok = extra
        .iter()
        .all(|p| p.to_string_lossy().contains("ld-linux"));
    if !missing.is_empty() || !extra_ok {
        return Err(format!(
            "read set ({} files) vs strace ({} files): missing {missing:#?}, extra {extra:#?}",
            ours.len(),
            oracle.len()
        )
        .into());
    }
    Ok(())
}
