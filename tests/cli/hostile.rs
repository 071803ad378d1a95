//! Hostile inputs and faults, one test per class of issue 12: each failed before
//! its fix and passes now. Every case checks the contract: an exit code from
//! the README, no panic, nothing written where it must not be.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use super::*;

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/example")
}

fn std_bin() -> StdCommand {
    StdCommand::new(assert_cmd::cargo::cargo_bin("overlaybench"))
}

fn assert_code(cmd: StdCommand, code: i32, needle: &str) {
    let shown = format!("{cmd:?}");
    let (got, err) = bounded(cmd, 30);
    assert_eq!(got, Some(code), "{shown}: {err}");
    assert!(!err.contains("panicked"), "{shown}: {err}");
    assert!(
        err.contains(needle),
        "{shown}: expected '{needle}' in: {err}"
    );
}

fn unbounded_or_odd_inputs_are_refused_with_exit_2() {
    let d = tmp();
    let fifo = d.path().join("fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let huge = d.path().join("huge.json");
    // Sparse: 300 MiB without writing them; over the 256 MiB report cap.
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(300 << 20))
        .expect("sparse file");
    let garbage = d.path().join("garbage.json");
    std::fs::write(&garbage, b"\xff\xfe not text").expect("write");
    let loop_a = d.path().join("loop-a");
    std::os::unix::fs::symlink("loop-b", &loop_a).expect("symlink");
    std::os::unix::fs::symlink("loop-a", d.path().join("loop-b")).expect("symlink");
    let gate = d.path().join("gate.toml");
    std::fs::File::create(&gate)
        .and_then(|f| f.set_len(2 << 20))
        .expect("sparse gate file");
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (
            vec!["compare".into(), example().into(), "/dev/zero".into()],
            "character device",
        ),
        (
            vec!["report".into(), "/dev/zero".into()],
            "character device",
        ),
        (vec!["report".into(), fifo.clone().into()], "a FIFO"),
        (
            vec!["compare".into(), fifo.into(), example().into()],
            "a FIFO",
        ),
        (
            vec!["report".into(), huge.clone().into()],
            "268435456-byte limit",
        ),
        (vec!["report".into(), garbage.clone().into()], "not UTF-8"),
        (
            vec!["compare".into(), example().into(), garbage.into()],
            "not UTF-8",
        ),
        (
            vec!["report".into(), loop_a.clone().into()],
            "symbolic links",
        ),
        (
            vec!["compare".into(), loop_a.into(), example().into()],
            "symbolic links",
        ),
        (
            vec![
                "compare".into(),
                example().into(),
                example().into(),
                "--gate-file".into(),
                gate.into(),
            ],
            "1048576-byte limit",
        ),
        (vec!["report".into(), d.path().into()], "report.json"),
    ];
    for (args, needle) in cases {
        let mut c = std_bin();
        c.args(&args);
        assert_code(c, 2, needle);
    }
}

/// Runs `args` with stdout a pipe whose reader is already gone.
fn with_closed_stdout(args: &[&str]) -> (Option<i32>, String) {
    let (r, w) = nix::unistd::pipe().expect("pipe");
    drop(r);
    let mut child = std_bin()
        .args(args)
        .stdout(Stdio::from(w))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    (child.wait().expect("wait").code(), err)
}

fn closed_or_full_output_never_panics() {
    let ex = example();
    let ex = ex.to_str().expect("utf-8 path");
    for (args, code) in [
        (vec!["report", ex, "--format", "bmf"], 0),
        (vec!["compare", ex, ex, "--format", "json"], 0),
        (vec!["doctor", "--no-probe", "--path", "/"], 0),
        (vec!["--help"], 0),
    ] {
        let (got, err) = with_closed_stdout(&args);
        assert_eq!(got, Some(code), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };
    let out = std_bin()
        .args(["doctor", "--no-probe", "--path", "/"])
        .stdout(full())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("No space left") && !err.contains("panicked"),
        "{err}"
    );
    // stderr full: the exit code of the real error stays.
    let out = std_bin()
        .args(["run", "--depths", "0"])
        .stderr(full())
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

fn errors_are_said_once_and_bad_numbers_name_their_option() {
    let d = tmp();
    let tar = d.path().join("image.tar");
    let mut bytes = vec![0u8; 1024];
    bytes[..9].copy_from_slice(b"manifest\0");
    bytes[257..262].copy_from_slice(b"ustar");
    bytes[600] = 0xff;
    std::fs::write(&tar, &bytes).expect("write");
    let out = bin()
        .args(["plan", "--fs-size", "1G", "--from"])
        .arg(&tar)
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("tar archive"), "{err}");
    assert_eq!(err.matches("not UTF-8").count(), 1, "said once: {err}");
    bin()
        .args(["run", "--depths", "-1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--depths"));
    bin()
        .args(["plan", "--fs-size", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--fs-size 0"));
    bin()
        .args(["plan", "--path", "/nonexistent/fs"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/fs"));
    std::fs::write(d.path().join("file"), "x").expect("write");
    bin()
        .arg("report")
        .arg(example())
        .arg("--out")
        .arg(d.path().join("file"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is a file"));
}

fn gate_refuses_partial_empty_and_misspelt_input() {
    let d = tmp();
    let base = read_report(&example()).expect("example");
    let write = |name: &str, r: &Report| {
        let p = d.path().join(name);
        std::fs::write(&p, serde_json::to_vec(r).expect("json")).expect("write");
        p
    };
    let mut empty = base.clone();
    for c in &mut empty.cases {
        c.samples.clear();
    }
    let empty = write("empty.json", &empty);
    bin()
        .arg("compare")
        .arg(example())
        .arg(&empty)
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("FAIL").and(predicate::str::contains("missing in current")),
        );
    let mut partial = base.clone();
    partial.status = RunStatus::Interrupted;
    let partial = write("partial.json", &partial);
    bin()
        .arg("compare")
        .arg(example())
        .arg(&partial)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--allow-partial"));
    bin()
        .arg("compare")
        .arg(example())
        .arg(&partial)
        .arg("--allow-partial")
        .assert()
        .code(0);
    bin()
        .arg("compare")
        .arg(example())
        .arg(example())
        .args(["--workload-threshold", "copyup=5%"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("copyup").and(predicate::str::contains("copy-up")));
    let gate = d.path().join("gate.toml");
    std::fs::write(&gate, "[workloads]\nbogus = \"5%\"\n").expect("write");
    bin()
        .arg("compare")
        .arg(example())
        .arg(example())
        .arg("--gate-file")
        .arg(&gate)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("bogus").and(predicate::str::contains("lookup")));
    for n in ["18446744073709551615", "10"] {
        bin()
            .arg("compare")
            .arg(example())
            .arg(example())
            .args(["--resamples", n])
            .assert()
            .code(2)
            .stderr(predicate::str::contains("--resamples"));
    }
    let outdir = d.path().join("outdir");
    std::fs::create_dir(&outdir).expect("mkdir");
    bin()
        .arg("compare")
        .arg(example())
        .arg(example())
        .arg("--output")
        .arg(&outdir)
        .assert()
        .code(2);
    let stray: Vec<_> = std::fs::read_dir(d.path())
        .expect("read")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

fn output_folders_are_never_reused_silently() {
    let d = tmp();
    let plan = |extra: &[&str]| {
        let mut c = bin();
        c.current_dir(d.path())
            .arg("plan")
            .arg("--from")
            .arg(example())
            .args(["--images", "500", "--layers", "20", "--fs-size", "200G"])
            .args(extra);
        c
    };
    plan(&[]).assert().success();
    plan(&[]).assert().success();
    let made: Vec<_> = std::fs::read_dir(d.path().join("reports"))
        .expect("reports")
        .flatten()
        .collect();
    assert_eq!(made.len(), 2, "two plans, two folders: {made:?}");
    let taken = made[0].path();
    plan(&["--out", taken.to_str().expect("utf-8")])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--force"));
    plan(&["--out", taken.to_str().expect("utf-8"), "--force"])
        .assert()
        .success();
}

fn refused_runs_write_nothing_outside_their_dirs() {
    let d = tmp();
    let cwd = d.path().join("cwd");
    std::fs::create_dir(&cwd).expect("mkdir");
    let file = d.path().join("file");
    std::fs::write(&file, "x").expect("write");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--backing".into(), "dir:/nonexistent-overlaybench".into()],
            "does not exist",
        ),
        (
            vec!["--backing".into(), "dir:relative".into()],
            "does not exist",
        ),
        (
            vec!["--scratch".into(), file.display().to_string()],
            "not a directory",
        ),
        (
            vec!["--out".into(), file.display().to_string()],
            "is a file",
        ),
    ];
    for (args, needle) in cases {
        bin()
            .current_dir(&cwd)
            .arg("run")
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(needle));
    }
    assert!(!Path::new("/nonexistent-overlaybench").exists());
    assert_eq!(
        std::fs::read_dir(&cwd).expect("cwd").count(),
        0,
        "nothing made in the cwd"
    );
}

fn out_on_a_read_only_filesystem_is_bad_input() {
    let d = tmp();
    let ro = d.path().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    let exe = assert_cmd::cargo::cargo_bin("overlaybench");
    let script = format!(
        "mount -t tmpfs -o ro tmpfs {ro} && exec {exe} run --workloads lookup --out {ro}/x --scratch {s}",
        ro = ro.display(),
        exe = exe.display(),
        s = d.path().join("scratch").display()
    );
    let mut c = StdCommand::new("unshare");
    c.args(["-m", "--propagation", "private", "sh", "-c", &script]);
    assert_code(c, 2, "cannot be written");
    assert!(
        !d.path().join("scratch").exists(),
        "refused before anything was made"
    );
}

fn sizes_are_checked_against_the_plan_and_the_host() {
    let d = tmp();
    let s = d.path().join("scratch");
    let s = s.to_str().expect("utf-8");
    for (args, needle) in [
        (vec!["--fs-size", "1M"], "at least 64 MiB"),
        (
            vec!["--backing", "xfs", "--fs-size", "100M"],
            "at least 300 MiB",
        ),
        (
            vec![
                "--workloads",
                "copy-up",
                "--sizes",
                "64M",
                "--fs-size",
                "100M",
            ],
            "use --fs-size",
        ),
        (vec!["--fs-size", "100T"], "free"),
    ] {
        let mut c = std_bin();
        c.arg("run")
            .args(&args)
            .args(["--no-progress", "--scratch", s, "--out"]);
        c.arg(d.path().join("out"));
        assert_code(c, 2, needle);
        assert!(!d.path().join("out").exists(), "{args:?}: nothing written");
    }
}

fn the_tools_own_sizing_holds_for_what_it_accepts() {
    // tmpfs charges an inode per hard link, and the legacy layout hard-links
    // every older file into every later root: both ran out of the inodes the
    // tool gave the tmpfs (ENOSPC) before the estimates counted the links.
    for args in [
        &[
            "--workloads",
            "lookup",
            "--layouts",
            "overlay,plain",
            "--depths",
            "200",
            "--rounds",
            "1",
            "--names",
            "16",
            "--batch",
            "8",
        ][..],
        &[
            "--workloads",
            "inodes",
            "--layouts",
            "overlay",
            "--layers",
            "50",
            "--dirs-per-layer",
            "0",
        ][..],
    ] {
        let d = tmp();
        let out = d.path().join("out");
        let o = run_in(d.path(), &out, args)
            .args(["--backing", "tmpfs"])
            .output()
            .expect("runs");
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_clean(d.path());
    }
}

/// A `mkfs.ext4` that never finishes, first in PATH.
fn hanging_mkfs(dir: &Path) -> std::ffi::OsString {
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).expect("mkdir");
    let fake = bin_dir.join("mkfs.ext4");
    std::fs::write(&fake, "#!/bin/sh\nexec sleep 1000\n").expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut p = bin_dir.into_os_string();
    p.push(":");
    p.push(path);
    p
}

fn signal(child: &Child, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).expect("kill");
}

fn wait_for(dir: &Path, what: &str, ok: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "{}: {what} never happened",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn every_stop_signal_marks_the_report_and_cleans_up() {
    use nix::sys::signal::Signal;
    for (sig, code) in [(Signal::SIGTERM, 143), (Signal::SIGHUP, 129)] {
        let d = tmp();
        let child = super::isolation::start_long_run(d.path());
        signal(&child, sig);
        let out = child.wait_with_output().expect("wait");
        assert_eq!(
            out.status.code(),
            Some(code),
            "{sig}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_clean(d.path());
        let r = read_report(&d.path().join("out")).expect("report");
        assert_eq!(r.status, RunStatus::Interrupted, "{sig}");
    }
}

fn a_second_signal_aborts_but_marks_and_cleans() {
    let d = tmp();
    let child = super::isolation::start_long_run(d.path());
    signal(&child, nix::sys::signal::Signal::SIGINT);
    std::thread::sleep(Duration::from_millis(10));
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let out = child.wait_with_output().expect("wait");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(d.path());
    let r = read_report(&d.path().join("out")).expect("report");
    assert_eq!(r.status, RunStatus::Interrupted);
}

fn a_hung_child_is_killed_on_interrupt() {
    let d = tmp();
    let mut args = small_run_args(d.path());
    args.extend(["--backing".into(), "ext4".into()]);
    let child = StdCommand::new(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args(&args)
        .env("PATH", hanging_mkfs(d.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for(d.path(), "the fake mkfs start", || {
        std::fs::read_dir("/proc").is_ok_and(|rd| {
            rd.flatten().any(|e| {
                std::fs::read_to_string(e.path().join("cmdline"))
                    .is_ok_and(|c| c.starts_with("sleep\u{0}1000"))
            })
        }) && d.path().join("out/report.json").exists()
    });
    let started = Instant::now();
    signal(&child, nix::sys::signal::Signal::SIGINT);
    let out = child.wait_with_output().expect("wait");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(d.path());
    let r = read_report(&d.path().join("out")).expect("report");
    assert_eq!(r.status, RunStatus::Interrupted);
}

fn paths_as_typed_work_once_canonicalised() {
    let d = tmp();
    let real = d.path().join("real");
    std::fs::create_dir(&real).expect("mkdir");
    std::os::unix::fs::symlink(&real, d.path().join("link")).expect("symlink");
    let data = d.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::os::unix::fs::symlink(&data, d.path().join("data-link")).expect("symlink");
    let quick = [
        "run",
        "--workloads",
        "lookup",
        "--depths",
        "1,2",
        "--rounds",
        "1",
        "--names",
        "16",
        "--batch",
        "8",
        "--no-progress",
    ];
    for (i, (scratch, backing)) in [
        ("link/s1", "tmpfs"),
        ("real//x/../s2/./", "tmpfs"),
        ("real/s3", "dir:data-link"),
    ]
    .into_iter()
    .enumerate()
    {
        let out = bin()
            .current_dir(d.path())
            .args(quick)
            .args(["--scratch", scratch, "--backing", backing, "--out"])
            .arg(format!("out{i}"))
            .output()
            .expect("runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{scratch} {backing}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    common::assert_nothing_left(d.path(), 10);
}

fn doctor_writes_nothing_and_reads_the_store_it_is_given() {
    let d = tmp();
    let cwd = d.path().join("cwd");
    std::fs::create_dir(&cwd).expect("mkdir");
    let out = bin()
        .current_dir(&cwd)
        .args(["doctor", "--json", "--scratch"])
        .arg(d.path().join("scratch"))
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !d.path().join("scratch").exists(),
        "doctor made its --scratch"
    );
    assert_eq!(std::fs::read_dir(&cwd).expect("cwd").count(), 0);
    let r: overlaybench::doctor::DoctorReport = serde_json::from_slice(&out.stdout).expect("json");
    let volatile = r
        .kernel
        .features
        .iter()
        .find(|f| f.name == "volatile")
        .expect("volatile");
    assert!(
        volatile.supported && !volatile.detail.contains("not in force"),
        "{volatile:?}"
    );
    // A store of overlay2's shape on another filesystem: --store alone inspects it.
    let store = d.path().join("store/overlay2/abc/diff");
    std::fs::create_dir_all(&store).expect("mkdir");
    let out = bin()
        .args(["doctor", "--json", "--no-probe", "--store"])
        .arg(d.path().join("store"))
        .output()
        .expect("runs");
    let r: overlaybench::doctor::DoctorReport = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        Path::new(&r.path.path),
        std::fs::canonicalize(d.path().join("store")).expect("canon")
    );
    assert!(
        r.recommendation
            .reasons
            .iter()
            .all(|x| !x.figure.contains("supported = false")),
        "{:?}",
        r.recommendation
    );
    bin()
        .args(["doctor", "--no-probe", "--store"])
        .arg(&cwd)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a container store"));
}

fn doctor_reads_the_packaged_storage_conf() {
    let d = tmp();
    let conf = d.path().join("usr/share/containers");
    std::fs::create_dir_all(&conf).expect("mkdir");
    std::fs::write(
        conf.join("storage.conf"),
        "[storage]\ndriver = \"overlay\"\n",
    )
    .expect("write");
    let out = bin()
        .args([
            "doctor",
            "--json",
            "--no-probe",
            "--path",
            "/",
            "--config-root",
        ])
        .arg(d.path())
        .output()
        .expect("runs");
    let r: overlaybench::doctor::DoctorReport = serde_json::from_slice(&out.stdout).expect("json");
    let cs = r
        .engines
        .iter()
        .find(|e| e.engine == "containers-storage")
        .expect("cs");
    assert!(
        cs.found
            && cs.file.ends_with("usr/share/containers/storage.conf")
            && cs.driver.as_deref() == Some("overlay"),
        "{cs:?}"
    );
}

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(unbounded_or_odd_inputs_are_refused_with_exit_2, user),
        cli_trial!(closed_or_full_output_never_panics, user),
        cli_trial!(errors_are_said_once_and_bad_numbers_name_their_option, user),
        cli_trial!(gate_refuses_partial_empty_and_misspelt_input, user),
        cli_trial!(output_folders_are_never_reused_silently, user),
        cli_trial!(refused_runs_write_nothing_outside_their_dirs, user),
        cli_trial!(out_on_a_read_only_filesystem_is_bad_input),
        cli_trial!(sizes_are_checked_against_the_plan_and_the_host),
        cli_trial!(the_tools_own_sizing_holds_for_what_it_accepts),
        cli_trial!(every_stop_signal_marks_the_report_and_cleans_up),
        cli_trial!(a_second_signal_aborts_but_marks_and_cleans),
        cli_trial!(a_hung_child_is_killed_on_interrupt),
        cli_trial!(paths_as_typed_work_once_canonicalised),
        cli_trial!(doctor_writes_nothing_and_reads_the_store_it_is_given),
        cli_trial!(doctor_reads_the_packaged_storage_conf, user),
    ]
}
