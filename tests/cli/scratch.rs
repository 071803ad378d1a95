//! The scratch root and report folder as an attacker or a full disk would
//! meet them: a root another user owns or can write is refused before
//! anything is made; a run dir renamed and replaced under a live run cannot
//! steer mkfs; two runs that are both PID 1 (two pods on one node) share a
//! scratch root; a locked run dir is never "stale"; `dir:` is mounted
//! nosuid,nodev; `--out` on a kernel pseudo-filesystem, an over-long path
//! and a backslash are refused before a folder is made; a report that cannot
//! be written leaves no "running" report behind.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use super::*;

/// A small lookup run over `scratch` (any path) writing to `out`.
fn run_with(scratch: &Path, out: &Path) -> Vec<String> {
    let mut args = small_run_args(Path::new("/unused"));
    let i = args.iter().position(|a| a == "--scratch").expect("scratch") + 1;
    args[i] = scratch.display().to_string();
    let i = args.iter().position(|a| a == "--out").expect("out") + 1;
    args[i] = out.display().to_string();
    args
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Waits (up to `secs`) for the file `flag` a `wait=` fault point makes.
fn wait_for_flag(child: &mut Child, flag: &Path, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !flag.exists() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) before reaching its fault point");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the run never reached its fault point in {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn scratch_root_not_ours_is_refused_before_anything_is_written() {
    let d = tmp();
    let out = d.path().join("out");
    let root = d.path().join("scratch");
    std::fs::create_dir(&root).expect("mkdir");
    std::os::unix::fs::chown(&root, Some(65534), Some(65534)).expect("chown");
    let refused = |scratch: &Path, why: &str| {
        let o = bin().args(run_with(scratch, &out)).output().expect("runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{}: {err}", scratch.display());
        assert!(err.contains(why), "{}: {err}", scratch.display());
        assert!(!out.exists(), "a refused run made its report folder");
    };
    refused(&root, "owned by uid 65534");
    std::os::unix::fs::chown(&root, Some(0), Some(0)).expect("chown");
    chmod(&root, 0o777);
    refused(&root, "others can write it");
    // A parent others can write (not sticky) lets them rename the root away.
    let open = d.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    chmod(&open, 0o777);
    refused(&open.join("scratch"), "can be written by others");
    assert!(!open.join("scratch").exists());
    // Sticky, like /var/tmp: others cannot rename what is ours; the fresh
    // root is made 0700.
    let sticky = d.path().join("sticky");
    std::fs::create_dir(&sticky).expect("mkdir");
    chmod(&sticky, 0o1777);
    let fresh = sticky.join("scratch");
    bin().args(run_with(&fresh, &out)).assert().success();
    let mode = std::fs::metadata(&fresh)
        .expect("made")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o700, "{mode:o}");
    assert!(common::run_dirs(&fresh).is_empty());
}

/// The swap of issue 23: while a run holds its new `backing.img` (before
/// mkfs), its run dir is renamed away and replaced by one whose `backing.img`
/// is a symlink to a root file. mkfs works on the file the run created and
/// holds open, so the victim is untouched; the run notices its dir was
/// replaced and stops.
fn a_swapped_run_dir_cannot_steer_mkfs() {
    let d = tmp();
    let victim = d.path().join("victim");
    let content = vec![0xabu8; 1 << 20];
    std::fs::write(&victim, &content).expect("victim");
    chmod(&victim, 0o600);
    let flag = d.path().join("flag");
    let root = d.path().join("scratch");
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args(run_with(&root, &d.path().join("out")))
        .env(
            "OVERLAYBENCH_FAULT",
            format!("scratch-image-made:wait={}", flag.display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for_flag(&mut child, &flag, 120);
    let runs = common::run_dirs(&root);
    assert_eq!(runs.len(), 1, "{runs:?}");
    let run = &runs[0];
    let meta = std::fs::metadata(run).expect("run dir");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
    assert_eq!(meta.uid(), 0);
    let root_mode = std::fs::metadata(&root).expect("root").permissions().mode();
    assert_eq!(root_mode & 0o7777, 0o700, "{root_mode:o}");
    std::fs::rename(run, root.join("moved")).expect("rename");
    std::fs::create_dir(run).expect("mkdir");
    std::os::unix::fs::symlink(&victim, run.join("backing.img")).expect("symlink");
    std::fs::create_dir(run.join("fs")).expect("mkdir");
    std::fs::remove_file(&flag).expect("release");
    let out = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        std::fs::read(&victim).expect("victim"),
        content,
        "mkfs wrote through the planted symlink: {err}"
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("was replaced"), "{err}");
    common::assert_nothing_left(d.path(), 10);
}

/// Two runs that are both PID 1 of their own PID namespace (two fleet pods
/// on one node) share one scratch root: neither takes the other's live run
/// dir as stale.
fn two_pid_namespaces_share_a_scratch_root() {
    let d = tmp();
    let root = d.path().join("scratch");
    let spawn = |out: &str| {
        StdCommand::new("unshare")
            .args(["--pid", "--fork", "--"])
            .arg(assert_cmd::cargo::cargo_bin("overlaybench"))
            .args(run_with(&root, &d.path().join(out)))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare")
    };
    let (a, b) = (spawn("out-a"), spawn("out-b"));
    for (name, child) in [("a", a), ("b", b)] {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "run {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_clean(d.path());
}

/// A run dir whose lock another process holds is live, whatever its name or
/// PID namespace; once the lock is free it is stale and the next run removes it.
fn a_locked_run_dir_is_not_stale() {
    let d = tmp();
    let root = d.path().join("scratch");
    let out = |n: &str| d.path().join(n);
    bin().args(run_with(&root, &out("o1"))).assert().success();
    let live = root.join("run-00000000deadbeef");
    std::fs::create_dir(&live).expect("mkdir");
    // --no-fork: the lock holder is the process we kill, not a child of it.
    let mut holder = StdCommand::new("flock")
        .args(["--exclusive", "--no-fork"])
        .arg(&live)
        .args(["sleep", "600"])
        .spawn()
        .expect("flock");
    // flock(1) takes the lock before it runs sleep: wait until it holds it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while StdCommand::new("flock")
        .args(["--nonblock", "--exclusive"])
        .arg(&live)
        .arg("true")
        .status()
        .expect("flock")
        .success()
    {
        assert!(Instant::now() < deadline, "flock never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    bin().args(run_with(&root, &out("o2"))).assert().success();
    assert!(live.exists(), "a locked run dir was removed as stale");
    holder.kill().expect("kill");
    holder.wait().expect("reap");
    bin().args(run_with(&root, &out("o3"))).assert().success();
    assert!(!live.exists(), "an unlocked run dir stayed");
}

/// What keeps image content (setuid files, device nodes) inert: every
/// backing, `dir:` included, is mounted nosuid,nodev, and the report says so.
fn backings_are_nosuid_nodev() {
    let d = tmp();
    let dir = d.path().join("dirback");
    std::fs::create_dir(&dir).expect("mkdir");
    let mut args = run_with(&d.path().join("scratch"), &d.path().join("out"));
    args.extend(["--backing".into(), "ext4".into()]);
    args.extend(["--backing".into(), format!("dir:{}", dir.display())]);
    bin().args(&args).assert().success();
    let r = read_report(&d.path().join("out")).expect("report");
    assert_eq!(r.host.backings.len(), 2);
    for b in &r.host.backings {
        let opts: Vec<&str> = b.mount_options.split(',').collect();
        assert!(
            opts.contains(&"nosuid") && opts.contains(&"nodev"),
            "{}: {}",
            b.fstype,
            b.mount_options
        );
        assert!(
            b.protection.as_deref().is_some_and(|p| p.contains("0700")),
            "{:?}",
            b.protection
        );
    }
    assert_clean(d.path());
}

/// `--out` and `--scratch` values the kernel or overlay cannot take are
/// refused (exit 2, naming the value) before any folder is made.
fn unusable_paths_are_refused_before_any_folder() {
    let d = tmp();
    let scratch = d.path().join("scratch");
    let long = (0..25).fold(d.path().to_path_buf(), |p, _| p.join("x".repeat(200)));
    for (out, why) in [
        (PathBuf::from("/proc/overlaybench-out"), "pseudo-filesystem"),
        (
            PathBuf::from("/sys/fs/overlaybench-out"),
            "pseudo-filesystem",
        ),
        (long.clone(), "PATH_MAX"),
        (d.path().join("n".repeat(300)), "255 bytes"),
    ] {
        let o = bin().args(run_with(&scratch, &out)).output().expect("runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{why}: {err}");
        assert!(err.contains(why), "{why}: {err}");
        assert!(!out.exists(), "{why}: the folder was made");
        assert!(err.len() < 2000, "the error quotes a huge path: {err}");
    }
    let out = d.path().join("out");
    for bad in ["back\\slash", "space\\040name"] {
        let o = bin()
            .args(run_with(&d.path().join(bad), &out))
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains('\\'), "{bad}: {err}");
        assert!(!out.exists() && !d.path().join(bad).exists(), "{bad}");
    }
}

/// The report folder fills up mid-run: the run says it could not write its
/// report and leaves no `report.json` claiming to be running (or whole).
fn a_full_out_leaves_no_running_report() {
    let d = tmp();
    let fsdir = d.path().join("outfs");
    std::fs::create_dir(&fsdir).expect("mkdir");
    let st = StdCommand::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&fsdir)
        .status()
        .expect("mount");
    assert!(st.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = StdCommand::new("umount").arg(&self.0).status();
        }
    }
    let unmount = Unmount(fsdir.clone());
    let out = fsdir.join("out");
    let flag = d.path().join("flag");
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args(run_with(&d.path().join("scratch"), &out))
        .env(
            "OVERLAYBENCH_FAULT",
            format!("scratch-image-made:wait={}", flag.display()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for_flag(&mut child, &flag, 120);
    let running = std::fs::read_to_string(out.join("report.json")).expect("running report");
    assert!(running.contains("\"running\""), "{running}");
    // Fill what is left of the folder's filesystem.
    let _ = StdCommand::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", fsdir.join("filler").display()))
        .stderr(Stdio::null())
        .status();
    std::fs::remove_file(&flag).expect("release");
    let o = child.wait_with_output().expect("wait");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("could not write the report"), "{err}");
    let left = std::fs::read_to_string(out.join("report.json")).unwrap_or_default();
    assert!(
        !left.contains("\"running\""),
        "a report saying running stayed: {left}"
    );
    drop(unmount);
    assert_clean(d.path());
}

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(scratch_root_not_ours_is_refused_before_anything_is_written),
        cli_trial!(a_swapped_run_dir_cannot_steer_mkfs),
        cli_trial!(two_pid_namespaces_share_a_scratch_root),
        cli_trial!(a_locked_run_dir_is_not_stale),
        cli_trial!(backings_are_nosuid_nodev),
        cli_trial!(unusable_paths_are_refused_before_any_folder),
        cli_trial!(a_full_out_leaves_no_running_report),
    ]
}
