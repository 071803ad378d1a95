//! What the read-set recorder (`probe::readset`) costs the start it watches:
//! the python fixture's command (`python3 -c 'import json, email.parser,
//! http.client'`, scripts/make-app-images) run in a chroot of a copy of its
//! rootfs on a tmpfs of its own (so the filesystem mark sees only it), 40
//! times with and 40 without the recorder, interleaved; prints both medians
//! and the difference. Run as root: `cargo bench --bench readset_overhead`
//! (ROUNDS overrides 40).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use overlaybench::probe::readset::{Filter, Options, Recorder};

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("readset_overhead bench: needs root (fanotify, chroot, mounts); skipped");
        return;
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(here.join("scripts/make-app-images"))
        .stderr(Stdio::inherit())
        .output()
        .expect("scripts/make-app-images");
    assert!(out.status.success(), "scripts/make-app-images failed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rootfs = stdout
        .lines()
        .find_map(|l| l.strip_prefix("python ").and_then(|r| r.split(' ').nth(1)))
        .expect("python fixture line");
    overlaybench::isolate::enter_private_namespace().expect("private mount namespace");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    std::fs::create_dir(&root).expect("mkdir");
    nix::mount::mount(
        Some("tmpfs"),
        &root,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1g"),
    )
    .expect("tmpfs");
    let cp = Command::new("cp")
        .args(["-a", &format!("{rootfs}/."), &root.display().to_string()])
        .status()
        .expect("cp");
    assert!(cp.success(), "copying the rootfs");
    let run = || {
        let t = Instant::now();
        let s = Command::new("chroot")
            .arg(&root)
            .args(["python3", "-c", "import json, email.parser, http.client"])
            .status()
            .expect("chroot python3");
        assert!(s.success());
        t.elapsed()
    };
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(40);
    // Warm the page cache first: the figure is the recorder's cost, not the disk's.
    for _ in 0..3 {
        run();
    }
    let (mut without, mut with) = (Vec::new(), Vec::new());
    let mut files = 0;
    for _ in 0..rounds {
        without.push(run());
        let rec = Recorder::start(&root, Options::new(Filter::Everyone)).expect("recorder");
        with.push(run());
        files = rec.stop().expect("stop").files.len();
    }
    let (a, b) = (median(&mut without), median(&mut with));
    let diff = b.as_secs_f64() - a.as_secs_f64();
    println!(
        "readset overhead: python start {:.1} ms without the recorder, {:.1} ms with it \
         ({} files recorded): {:+.1} ms ({:+.1} %), medians of {rounds}",
        a.as_secs_f64() * 1e3,
        b.as_secs_f64() * 1e3,
        files,
        diff * 1e3,
        diff / a.as_secs_f64() * 100.0
    );
    let _ = nix::mount::umount2(&root, nix::mount::MntFlags::MNT_DETACH);
}
