//! The app workload end to end, with the real runtime (crun) and a real image
//! (an OCI layout of busybox, built here by umoci): the application really
//! runs on every layout, becomes ready on its line, a command that never
//! becomes ready fails its layout with the output tail and leaves nothing
//! running or mounted, and what cannot be run is refused naming it.

use std::fs;
use std::path::Path;

use super::realimage::{layer_tar, oci_layout, run, Item};
use super::*;

/// A busybox image at `dir/oci`: tag `t` runs `echo` with a marker from its
/// Env as user `app`; tag `bare` has no Entrypoint and no Cmd; tag `nouser`
/// names a user the image does not have.
fn busybox_image(dir: &Path) -> String {
    let items = busybox_items();
    let reference = oci_layout(dir, &[layer_tar(&items)]).expect("umoci builds the layout");
    let oci = dir.join("oci").display().to_string();
    let config = |tag: &str, args: &[&str]| {
        let mut a = vec!["config", "--no-history", "--image"];
        let from = format!("{oci}:t");
        a.push(&from);
        a.extend(["--tag", tag]);
        a.extend(args);
        run("umoci", &a).expect("umoci config");
    };
    config("bare", &["--config.env", "PATH=/bin"]);
    config(
        "nouser",
        &["--config.user", "nobody-here", "--config.cmd", "/bin/true"],
    );
    config(
        "t",
        &[
            "--config.env",
            "PATH=/bin",
            "--config.env",
            "MARK=app-really-ran",
            "--config.user",
            "app",
            "--config.workingdir",
            "/tmp",
            "--config.entrypoint",
            "/bin/sh",
            "--config.cmd",
            "-c",
            "--config.cmd",
            "echo $MARK as $(id -u) in $(pwd)",
        ],
    );
    let _ = reference;
    format!("oci:{oci}")
}

/// A static busybox with a shell and a few applets, users root and app.
fn busybox_items() -> Vec<Item> {
    let busybox = fs::read("/usr/bin/busybox").expect("busybox (static) installed");
    let mut items = vec![
        Item::Dir("bin".into(), 0o755),
        Item::Dir("etc".into(), 0o755),
        Item::Dir("tmp".into(), 0o1777),
        Item::File("bin/busybox".into(), 0o755, busybox),
        Item::File(
            "etc/passwd".into(),
            0o644,
            b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\n".to_vec(),
        ),
        Item::File(
            "etc/group".into(),
            0o644,
            b"root:x:0:\napp:x:1000:\n".to_vec(),
        ),
    ];
    for a in ["sh", "echo", "sleep", "cat", "id", "true"] {
        items.push(Item::Sym(format!("bin/{a}"), "busybox".into()));
    }
    items
}

/// A layer holding one character device node, `name`, major:minor.
fn device_layer(name: &str, major: u32, minor: u32) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_mode(0o666);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h.set_device_major(major).expect("major");
    h.set_device_minor(minor).expect("minor");
    b.append_data(&mut h, name, std::io::empty())
        .expect("device entry");
    b.into_inner().expect("layer tar")
}

/// A device node an image carries opens nothing in its container: the
/// runtime's device cgroup denies all but the standard devices (the
/// runtime's own remount of the rootfs drops the `nodev` our mounts carry,
/// which keep the tool's own opens of the image's files safe). The node here
/// is a copy of /dev/kmsg (1:11, harmless should it open): the command writes
/// to it and says which way it went.
fn an_images_device_node_opens_nothing_in_its_container() {
    let d = tmp();
    let layers = [
        layer_tar(&busybox_items()),
        device_layer("kmsg-copy", 1, 11),
    ];
    oci_layout(d.path(), &layers).expect("umoci builds the layout");
    let image = format!("oci:{}:t", d.path().join("oci").display());
    let out = d.path().join("out");
    let args = app_args(
        &image,
        &[
            "--app-command",
            "/bin/busybox sh -c 'if echo overlaybench-device-test > /kmsg-copy; then echo DEVICE-OPENED; else echo DEVICE-REFUSED; fi'",
            "--layouts",
            "overlay2,overlay,plain",
        ],
    );
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    run_in(d.path(), &out, &args).assert().success();
    assert_clean(d.path());
    let r = read_report(&out).expect("report");
    assert_eq!(r.status, RunStatus::Complete, "{:?}", r.errors);
    for layout in ["overlay2", "overlay", "plain"] {
        let said: Vec<&String> = r
            .notes
            .iter()
            .filter(|n| n.contains(&format!("app: {layout}:")))
            .collect();
        assert!(
            said.iter().any(|n| n.contains("DEVICE-REFUSED"))
                && !said.iter().any(|n| n.contains("DEVICE-OPENED")),
            "{layout}: {said:?}"
        );
    }
}

fn app_args(image: &str, extra: &[&str]) -> Vec<String> {
    ["--workloads", "app", "--image", image, "--app-rounds", "2"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

fn app_starts_the_image_on_every_layout_cold_and_warm() {
    let d = tmp();
    let image = busybox_image(d.path());
    let out = d.path().join("out");
    let args = app_args(&format!("{image}:t"), &[]);
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    run_in(d.path(), &out, &args)
        .assert()
        .success()
        .stdout(predicate::str::contains("app on ext4"));
    assert_clean(d.path());
    let r = read_report(&out).expect("report");
    assert_eq!(r.status, RunStatus::Complete, "{:?}", r.errors);
    for layout in ["overlay2", "overlay", "plain"] {
        for cache in ["cold", "warm"] {
            let c = r
                .cases
                .iter()
                .find(|c| {
                    c.workload == "app"
                        && c.layout == layout
                        && c.metric == "time_to_ready"
                        && c.param_str("cache") == cache
                })
                .unwrap_or_else(|| panic!("no {cache} case for {layout}"));
            assert_eq!(c.samples.len(), 2, "{layout} {cache}");
            assert!(c.stats.median > 0.0);
        }
        // The application ran, as the image's user, in its working dir, with its Env.
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains(&format!("app: {layout}:"))
                    && n.contains("app-really-ran as 1000 in /tmp")),
            "{layout}: {:?}",
            r.notes
        );
    }
    assert!(
        r.notes.iter().any(|n| n.contains("crun version")),
        "the runtime and its version are named: {:?}",
        r.notes
    );
    assert!(r
        .derived
        .iter()
        .any(|x| x.workload == "app" && x.kind == "ratio" && x.layout == "overlay2"));
    let svg = fs::read_to_string(out.join("app.svg")).expect("app.svg");
    assert!(svg.contains("overlay2") && svg.contains("cold"), "chart");
    let summary = fs::read_to_string(out.join("summary.md")).expect("summary");
    assert!(summary.contains("app:") && summary.contains("95 % interval"));
}

fn app_ready_line_stops_a_server_and_a_never_ready_start_fails_clean() {
    let d = tmp();
    let image = busybox_image(d.path());
    let out = d.path().join("out");
    // A server: prints its line, then would run for ever; stopped by SIGTERM.
    let args = app_args(
        &format!("{image}:t"),
        &[
            "--app-command",
            "sh -c 'echo starting; echo Ready to accept connections; exec sleep 1000'",
            "--app-ready-line",
            "Ready to accept",
            "--layouts",
            "overlay2",
        ],
    );
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let started = Instant::now();
    run_in(d.path(), &out, &args).assert().success();
    // Stopped by SIGTERM, not by the 5 s SIGKILL grace (sleep as pid 1 of its
    // namespace ignores SIGTERM, so SIGKILL does it: bounded either way).
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_clean(d.path());
    let r = read_report(&out).expect("report");
    assert_eq!(r.status, RunStatus::Complete, "{:?}", r.errors);
    assert!(r
        .cases
        .iter()
        .any(|c| c.workload == "app" && c.param_str("ready") == "line"));
    assert!(common::processes_mentioning(d.path()).is_empty());

    // Never ready: its layout fails with the output tail, nothing left behind.
    let out = d.path().join("out2");
    let args = app_args(
        &format!("{image}:t"),
        &[
            "--app-command",
            "sh -c 'echo still-starting; exec sleep 1000'",
            "--app-ready-line",
            "x",
            "--app-timeout",
            "3s",
        ],
    );
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let started = Instant::now();
    run_in(d.path(), &out, &args).assert().code(1);
    assert!(started.elapsed() < Duration::from_secs(90));
    assert_clean(d.path());
    common::assert_no_process_mentions(d.path(), 5);
    let sleepers = StdCommand::new("pgrep")
        .args(["-f", "sleep 1000"])
        .output()
        .expect("pgrep");
    assert!(
        sleepers.stdout.is_empty(),
        "a container process is left: {}",
        String::from_utf8_lossy(&sleepers.stdout)
    );
    let r = read_report(&out).expect("report");
    assert_eq!(r.status, RunStatus::Failed);
    let e = r
        .errors
        .iter()
        .find(|e| e.workload.as_deref() == Some("app"))
        .expect("the app error");
    assert!(
        e.message.contains("not ready after 3s")
            && e.message.contains("still-starting")
            && e.message.contains("overlay2"),
        "{}",
        e.message
    );
}

fn app_refuses_what_cannot_be_run_naming_it() {
    let d = tmp();
    let image = busybox_image(d.path());
    let scratch = d.path().join("scratch");
    let n = std::cell::Cell::new(0);
    let refused = |args: Vec<String>, says: &[&str]| {
        n.set(n.get() + 1);
        let out = bin()
            .args(["run", "--no-progress", "--scratch"])
            .arg(&scratch)
            .arg("--out")
            .arg(d.path().join(format!("out-{}", n.get())))
            .args(&args)
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for s in says {
            assert!(err.contains(s), "{args:?}: {s} missing in {err}");
        }
    };
    refused(
        vec!["--workloads".into(), "app".into()],
        &["--image", "app"],
    );
    refused(
        app_args(&format!("{image}:bare"), &[]),
        &["Entrypoint", "Cmd", "--app-command"],
    );
    // Checked before anything is made: no report folder.
    assert!(!d.path().join("out-2").exists());
    refused(app_args(&format!("{image}:nouser"), &[]), &["nobody-here"]);
    refused(
        app_args(&format!("{image}:t"), &["--app-ready-line", "(unclosed"]),
        &["--app-ready-line", "(unclosed"],
    );
    refused(
        app_args(&format!("{image}:t"), &["--app-command", "sh 'x"]),
        &["--app-command"],
    );
    assert_clean(d.path());
}

/// Every layout this host runs (as `run` judges it), comma-separated.
fn host_layouts() -> String {
    overlaybench::layout::names()
        .into_iter()
        .filter(|n| {
            overlaybench::layout::entry(n).is_some_and(|e| {
                e.host_support(overlaybench::isolate::Privilege::Root)
                    .is_ok()
            })
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn app_python_fixture_runs_on_every_layout_with_its_read_set() {
    let py = &super::appimage::app_images_or_panic().python;
    let d = tmp();
    let out = d.path().join("out");
    let layouts = host_layouts();
    let args = [
        "--workloads",
        "app",
        "--image",
        &py.source,
        "--app-rounds",
        "1",
        "--layouts",
        &layouts,
    ];
    let done = run_in(d.path(), &out, &args).assert().success();
    assert_clean(d.path());
    // The terminal says how much the start read, and its share of the image.
    let stdout = String::from_utf8_lossy(&done.get_output().stdout).into_owned();
    assert!(
        stdout.contains("read at start on") && stdout.contains("of the image's files"),
        "{stdout}"
    );
    let r = read_report(&out).expect("report");
    assert_eq!(r.status, RunStatus::Complete, "{:?}", r.errors);
    let ran: Vec<&str> = r
        .cases
        .iter()
        .filter(|c| c.workload == "app" && c.metric == "time_to_ready")
        .map(|c| c.layout.as_str())
        .collect();
    for layout in layouts.split(',') {
        if r.skipped.iter().any(|s| s.layout == layout) {
            continue;
        }
        assert!(ran.contains(&layout), "{layout} not started: {ran:?}");
        // The application really ran there: its output.
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains(&format!("app: {layout}:"))
                    && n.contains(super::appimage::PYTHON_OUTPUT)),
            "{layout}: {:?}",
            r.notes
        );
        let one = |metric: &str| {
            r.cases
                .iter()
                .find(|c| c.workload == "app" && c.layout == layout && c.metric == metric)
                .unwrap_or_else(|| panic!("{layout}: no {metric}"))
                .samples[0]
        };
        assert!(one("readset_files") > 10.0, "{layout}");
        for f in ["readset_file_fraction", "readset_byte_fraction"] {
            let v = one(f);
            assert!(v > 0.0 && v < 1.0, "{layout} {f} {v}");
        }
    }
    let list = fs::read_to_string(out.join("app-readset.txt")).expect("app-readset.txt");
    assert!(
        list.lines()
            .any(|l| l.ends_with("python3.11/json/__init__.py")),
        "{list}"
    );
    let summary = fs::read_to_string(out.join("summary.md")).expect("summary");
    assert!(
        summary.contains("top directories") && summary.contains("/usr/lib/python3.11"),
        "{summary}"
    );
}

fn app_redis_fixture_becomes_ready_on_its_line() {
    let redis = &super::appimage::app_images_or_panic().redis;
    let d = tmp();
    let out = d.path().join("out");
    let args = [
        "--workloads",
        "app",
        "--image",
        &redis.source,
        "--app-rounds",
        "1",
        "--layouts",
        "overlay2,plain",
        "--app-ready-line",
        super::appimage::REDIS_READY,
    ];
    run_in(d.path(), &out, &args).assert().success();
    assert_clean(d.path());
    common::assert_no_process_mentions(d.path(), 5);
    let left = StdCommand::new("pgrep")
        .args(["-x", "redis-server"])
        .output()
        .expect("pgrep");
    assert!(left.stdout.is_empty(), "redis-server left running");
    let r = read_report(&out).expect("report");
    assert_eq!(r.status, RunStatus::Complete, "{:?}", r.errors);
    for layout in ["overlay2", "plain"] {
        assert!(
            r.cases.iter().any(|c| c.workload == "app"
                && c.layout == layout
                && c.metric == "time_to_ready"
                && c.param_str("ready") == "line"),
            "{layout}"
        );
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains(&format!("app: {layout}:"))
                    && n.contains(super::appimage::REDIS_READY)),
            "{:?}",
            r.notes
        );
    }
}

/// `--image` with app and storm: storm's containers are the image's, in
/// every layout that shares it, each reading the files the image's own start
/// read (app-readset.txt, every one opened and read, or the run fails); plain,
/// which would copy the whole image into each container, is skipped with why.
fn storm_containers_of_the_image_read_its_start_up_read_set() {
    let py = &super::appimage::app_images_or_panic().python;
    let d = tmp();
    let out = d.path().join("out");
    let args = [
        // Named storm first: the run still runs app first (the registry's order).
        "--workloads",
        "storm,app",
        "--image",
        &py.source,
        "--app-rounds",
        "1",
        "--storm-rounds",
        "1",
        "--concurrency",
        "1,2",
        "--idmap",
        "none",
        "--mounts-held",
        "0",
        "--layouts",
        "overlay2,plain",
    ];
    run_in(d.path(), &out, &args).assert().success();
    assert_clean(d.path());
    let r = read_report(&out).expect("report");
    assert_eq!(r.status, RunStatus::Complete, "{:?}", r.errors);
    let list = fs::read_to_string(out.join("app-readset.txt")).expect("app-readset.txt");
    let files = list.lines().count();
    assert!(files > 10, "{list}");
    let starts: Vec<_> = r
        .cases
        .iter()
        .filter(|c| c.workload == "storm" && c.metric == "time_to_ready")
        .collect();
    assert!(!starts.is_empty(), "no storm start cases");
    for c in &starts {
        assert_eq!(c.layout, "overlay2", "{}", c.key());
        assert_eq!(c.param_str("image"), py.source, "{}", c.key());
        assert_eq!(
            c.params.get("read_set").and_then(|v| v.as_u64()),
            Some(files as u64),
            "{}",
            c.key()
        );
        // The fixture is one layer.
        assert_eq!(
            c.params.get("depth").and_then(|v| v.as_u64()),
            Some(1),
            "{}",
            c.key()
        );
    }
    for says in ["storm: containers of", "storm: plain skipped with --image"] {
        assert!(
            r.notes.iter().any(|n| n.contains(says)),
            "{says}: {:?}",
            r.notes
        );
    }
}

/// This module's tests, each with whether it needs root.
pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(app_starts_the_image_on_every_layout_cold_and_warm),
        cli_trial!(app_ready_line_stops_a_server_and_a_never_ready_start_fails_clean),
        cli_trial!(app_refuses_what_cannot_be_run_naming_it),
        cli_trial!(app_python_fixture_runs_on_every_layout_with_its_read_set),
        cli_trial!(app_redis_fixture_becomes_ready_on_its_line),
        cli_trial!(storm_containers_of_the_image_read_its_start_up_read_set),
        cli_trial!(an_images_device_node_opens_nothing_in_its_container),
    ]
}
