//! Hostile layer content through `run --image`, over every layout the host
//! runs (the default set): what follows the tar end marker is bounded, a file
//! larger than `--fs-size` is refused from its header, a signal ends a layer
//! being inflated at once, names and paths are capped by Linux's limits with
//! memory independent of depth, and what the layouts could not reproduce
//! alike (a char 0/0 device, a root opaque marker, sockets, sparse files, bad
//! xattrs) is bad input: exit 2 naming the entry, nothing made or mounted.
//! Layers are written with the `tar` crate (raw headers where the builder
//! would refuse the name), stored in an OCI layout written by hand.

use std::io::Read;

use sha2::{Digest as _, Sha256};

use super::*;

pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(unreproducible_entries_exit_2_naming_them_on_every_layout),
        cli_trial!(names_of_255_bytes_import_on_every_layout),
        cli_trial!(inflation_is_bounded_and_stops_on_a_signal),
        cli_trial!(deep_and_long_paths_take_bounded_memory),
    ]
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

/// One tar entry: PAX records (written first when any), name, type, content,
/// device numbers. Names up to 100 bytes go in the header, longer ones need a
/// `path` record.
struct T<'a> {
    pax: Vec<(&'a str, Vec<u8>)>,
    name: &'a [u8],
    kind: u8,
    data: &'a [u8],
    dev: (u32, u32),
}

fn t<'a>(name: &'a str, kind: u8, data: &'a [u8]) -> T<'a> {
    T {
        pax: Vec::new(),
        name: name.as_bytes(),
        kind,
        data,
        dev: (0, 0),
    }
}

fn pad(out: &mut Vec<u8>) {
    out.resize(out.len().div_ceil(512) * 512, 0);
}

/// The entries as tar bytes; `end` appends the end marker.
fn tar_bytes(entries: &[T], end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if !e.pax.is_empty() {
            let mut recs = Vec::new();
            for (k, v) in &e.pax {
                let body = 1 + k.len() + 1 + v.len() + 1;
                let mut len = body + 1;
                while len != body + len.to_string().len() {
                    len = body + len.to_string().len();
                }
                recs.extend_from_slice(format!("{len} {k}=").as_bytes());
                recs.extend_from_slice(v);
                recs.push(b'\n');
            }
            let mut x = tar::Header::new_ustar();
            x.set_entry_type(tar::EntryType::XHeader);
            x.as_old_mut().name[..3].copy_from_slice(b"pax");
            x.set_size(recs.len() as u64);
            x.set_mode(0o644);
            x.set_cksum();
            out.extend_from_slice(x.as_bytes());
            out.extend_from_slice(&recs);
            pad(&mut out);
        }
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::new(e.kind));
        h.set_mode(if e.kind == b'5' { 0o755 } else { 0o644 });
        h.set_mtime(1_700_000_000);
        h.set_size(e.data.len() as u64);
        let n = e.name.len().min(100);
        h.as_old_mut().name[..n].copy_from_slice(&e.name[..n]);
        h.set_device_major(e.dev.0).expect("major");
        h.set_device_minor(e.dev.1).expect("minor");
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(e.data);
        pad(&mut out);
    }
    if end {
        out.extend_from_slice(&[0u8; 1024]);
    }
    out
}

/// A stored layer: blob, media type suffix, diff_id.
type Stored = (Vec<u8>, &'static str, String);

fn plain(tar: Vec<u8>) -> Stored {
    let d = sha(&tar);
    (tar, "tar", d)
}

/// Writes an OCI layout of `layers` (bottom first) under `dir`; its reference.
fn layout(dir: &Path, layers: &[Stored]) -> String {
    let stored: Vec<(Vec<u8>, String, String)> = layers
        .iter()
        .map(|(b, suffix, diff_id)| {
            (
                b.clone(),
                format!("application/vnd.oci.image.layer.v1.{suffix}"),
                diff_id.clone(),
            )
        })
        .collect();
    crate::layergen::write_oci_layout(dir, &stored)
}

/// `run --workloads lookup --image IMAGE` (every default layout), confined to `dir`.
fn run_image(dir: &Path, image: &str, extra: &[&str]) -> StdCommand {
    run_with(dir, "lookup", image, extra)
}

fn run_with(dir: &Path, workloads: &str, image: &str, extra: &[&str]) -> StdCommand {
    let mut c = StdCommand::new(assert_cmd::cargo::cargo_bin("overlaybench"));
    c.args([
        "run",
        "--workloads",
        workloads,
        "--image",
        image,
        "--image-only",
        "--rounds",
        "1",
        "--storm-rounds",
        "1",
        "--containers",
        "1",
        "--page-cache-containers",
        "1",
        "--image-files",
        "2",
        "--no-progress",
        "--scratch",
    ])
    .arg(dir.join("scratch"))
    .arg("--out")
    .arg(dir.join("out"))
    .args(extra)
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    c
}

/// Runs `c` to its end (killed past `secs`): exit code, stderr, time taken.
fn finish(
    mut c: StdCommand,
    secs: u64,
    signal: Option<(nix::sys::signal::Signal, u64)>,
) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut child = c.spawn().expect("spawn");
    let mut err = String::new();
    let mut stderr = child.stderr.take().expect("stderr");
    let reader = std::thread::spawn(move || {
        let _ = stderr.read_to_string(&mut err);
        err
    });
    let mut sent = false;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let err = reader.join().expect("stderr reader");
            assert!(!err.contains("panicked"), "{err}");
            return (status.code(), err, started.elapsed());
        }
        if let Some((sig, after_ms)) = signal {
            if !sent && started.elapsed() >= Duration::from_millis(after_ms) {
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig)
                    .expect("kill");
                sent = true;
            }
        }
        if started.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{c:?} still running after {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A refused run: exit 2 naming every word, nothing made (no report, no
/// scratch), nothing mounted.
fn assert_refused(dir: &Path, image: &str, extra: &[&str], words: &[&str], secs: u64) {
    let (code, err, took) = finish(run_image(dir, image, extra), secs, None);
    assert_eq!(code, Some(2), "{image}: {err}");
    for w in words {
        assert!(err.contains(w), "{image}: {w:?} not in {err}");
    }
    assert!(took < Duration::from_secs(secs), "{image}: {took:?}");
    assert!(
        !dir.join("out").exists(),
        "{image}: a refused run wrote a report"
    );
    assert!(
        !dir.join("scratch").exists(),
        "{image}: a refused run made its scratch"
    );
    common::assert_nothing_left(dir, 10);
}

fn unreproducible_entries_exit_2_naming_them_on_every_layout() {
    let d = tmp();
    let cap_v1 = b"\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00".to_vec();
    let lower = plain(tar_bytes(
        &[t("d", b'5', b""), t("d/a", b'0', b"lower")],
        true,
    ));
    let zero_dev = plain(tar_bytes(&[t("d/a", b'3', b"")], true));
    let n256 = format!("d/{}", "m".repeat(256));
    let cases: Vec<(&str, Vec<Stored>, Vec<&str>)> = vec![
        (
            "char-0-0",
            vec![lower.clone(), zero_dev],
            vec!["\"d/a\"", "0/0", "whiteout"],
        ),
        (
            "name-256",
            vec![plain(tar_bytes(
                &[T {
                    pax: vec![("path", n256.as_bytes().to_vec())],
                    ..t("x", b'0', b"x")
                }],
                true,
            ))],
            vec![n256.as_str(), "NAME_MAX"],
        ),
        (
            "socket",
            vec![plain(tar_bytes(&[t("sock", b's', b"")], true))],
            vec!["\"sock\"", "entry type"],
        ),
        (
            "opaque-root",
            vec![
                lower.clone(),
                plain(tar_bytes(&[t(".wh..wh..opq", b'0', b"")], true)),
            ],
            vec![".wh..wh..opq", "layer root"],
        ),
        (
            "sparse",
            vec![plain(tar_bytes(&[t("sparse", b'S', b"")], true))],
            vec!["\"sparse\"", "sparse"],
        ),
        (
            "xattr-namespace",
            vec![plain(tar_bytes(
                &[T {
                    pax: vec![("SCHILY.xattr.bogus.key", b"v".to_vec())],
                    ..t("f1", b'0', b"")
                }],
                true,
            ))],
            vec!["\"f1\"", "bogus.key"],
        ),
        (
            "xattr-capability",
            vec![plain(tar_bytes(
                &[T {
                    pax: vec![("SCHILY.xattr.security.capability", cap_v1)],
                    ..t("f2", b'0', b"")
                }],
                true,
            ))],
            vec!["\"f2\"", "security.capability", "malformed"],
        ),
        (
            "xattr-70000",
            vec![plain(tar_bytes(
                &[T {
                    pax: vec![("SCHILY.xattr.user.big", vec![b'v'; 70_000])],
                    ..t("f3", b'0', b"")
                }],
                true,
            ))],
            vec!["\"f3\"", "70000-byte"],
        ),
    ];
    for (name, layers, words) in cases {
        let dir = d.path().join(name);
        std::fs::create_dir(&dir).expect("mkdir");
        let image = layout(&dir.join("img"), &layers);
        assert_refused(&dir, &image, &[], &words, 60);
    }
}

fn names_of_255_bytes_import_on_every_layout() {
    let d = tmp();
    let n255 = "n".repeat(255);
    let file = format!("d/{n255}");
    let under = format!("{n255}/f");
    let long = |p: &str| -> Vec<(&'static str, Vec<u8>)> { vec![("path", p.as_bytes().to_vec())] };
    let layer = tar_bytes(
        &[
            t("d", b'5', b""),
            T {
                pax: long(&file),
                ..t("x", b'0', b"x")
            },
            T {
                pax: long(&n255),
                ..t("x", b'5', b"")
            },
            T {
                pax: long(&under),
                ..t("x", b'0', b"y")
            },
        ],
        true,
    );
    let image = layout(&d.path().join("img"), &[plain(layer)]);
    // import converts the image into every layout's store (and runs
    // mkfs.erofs on its layers, which erofs-utils 1.5 cannot do: skipped,
    // with a note); lookup mounts and walks it.
    let c = run_with(d.path(), "import,lookup", &image, &[]);
    let (code, err, _) = finish(c, 900, None);
    assert_eq!(code, Some(0), "{err}");
    assert_clean(d.path());
    let r = read_report(&d.path().join("out")).expect("report");
    assert_eq!(r.status, RunStatus::Complete);
}

/// `frames` × 64 MiB of zeros as concatenated zstd frames (~2 KB each).
fn zero_frames(frames: usize) -> Vec<u8> {
    let one = zstd::encode_all(&vec![0u8; 64 << 20][..], 19).expect("zstd");
    one.repeat(frames)
}

fn inflation_is_bounded_and_stops_on_a_signal() {
    use nix::sys::signal::Signal;
    let d = tmp();
    // 16 GiB of zeros after the end marker: refused after 1 MiB, not
    // inflated (the diff_id is the tar's: that check never comes).
    let head = tar_bytes(&[t("f", b'0', b"hi")], true);
    let mut bomb = zstd::encode_all(&head[..], 3).expect("zstd");
    bomb.extend(zero_frames(256));
    let dir = d.path().join("bomb");
    std::fs::create_dir(&dir).expect("mkdir");
    let image = layout(&dir.join("img"), &[(bomb, "tar+zstd", sha(&head))]);
    assert_refused(&dir, &image, &[], &["end marker", "1048576"], 20);
    // A 64 GiB file against a 700 MiB scratch: refused from its header.
    let big = T {
        pax: vec![("size", (64u64 << 30).to_string().into_bytes())],
        ..t("big", b'0', b"")
    };
    let big_head = tar_bytes(&[big], false);
    let mut big_blob = zstd::encode_all(&big_head[..], 3).expect("zstd");
    big_blob.extend(zero_frames(1024));
    let dir = d.path().join("big");
    std::fs::create_dir(&dir).expect("mkdir");
    let image = layout(&dir.join("img"), &[(big_blob, "tar+zstd", sha(&big_head))]);
    assert_refused(
        &dir,
        &image,
        &["--fs-size", "700M", "--backing", "tmpfs"],
        &["\"big\"", "68719476736", "734003200", "--fs-size"],
        20,
    );
    // Without --fs-size it is inflated and hashed: a signal ends that at once.
    for (sig, want) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let (code, err, took) = finish(run_image(&dir, &image, &[]), 30, Some((sig, 1500)));
        assert_eq!(code, Some(want), "{sig}: {err}");
        assert!(
            took < Duration::from_millis(2500),
            "{sig}: exit {took:?} after start, signal at 1.5 s"
        );
        assert!(
            !dir.join("out").exists() && !dir.join("scratch").exists(),
            "{sig}"
        );
        common::assert_nothing_left(&dir, 10);
    }
}

/// Peak RSS of `c` (run under /usr/bin/time), KiB, with its exit code and stderr.
fn peak_rss(c: StdCommand, dir: &Path) -> (Option<i32>, String, u64) {
    let out = dir.join("rss");
    let mut timed = StdCommand::new("/usr/bin/time");
    timed
        .args(["-f", "%M", "-o"])
        .arg(&out)
        .arg(c.get_program())
        .args(c.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let (code, err, _) = finish(timed, 120, None);
    let kib = std::fs::read_to_string(&out)
        .ok()
        .and_then(|s| s.split_whitespace().last().and_then(|v| v.parse().ok()))
        .expect("time wrote the peak RSS");
    (code, err, kib)
}

fn deep_and_long_paths_take_bounded_memory() {
    let d = tmp();
    // One entry 20,000 levels deep: a few hundred bytes compressed.
    let deep = format!("{}f", "a/".repeat(20_000));
    let deep_tar = tar_bytes(
        &[T {
            pax: vec![("path", deep.into_bytes())],
            ..t("x", b'0', b"x")
        }],
        true,
    );
    // 80,000 entries of 3,930-byte paths in one directory, zstd --long.
    let parent = vec!["q".repeat(245); 15].join("/");
    let paths: Vec<String> = (0..80_000).map(|i| format!("{parent}/{i:0240}")).collect();
    let entries: Vec<T> = paths
        .iter()
        .map(|p| T {
            pax: vec![("path", p.as_bytes().to_vec())],
            ..t("x", b'0', b"")
        })
        .collect();
    let long_tar = tar_bytes(&entries, true);
    let mut enc = zstd::Encoder::new(Vec::new(), 3).expect("zstd");
    enc.long_distance_matching(true).expect("ldm");
    enc.window_log(27).expect("window");
    std::io::copy(&mut &long_tar[..], &mut enc).expect("compress");
    let long_blob = enc.finish().expect("zstd");
    for (name, tar, blob, word) in [
        (
            "deep",
            &deep_tar,
            zstd::encode_all(&deep_tar[..], 19).expect("zstd"),
            "PATH_MAX",
        ),
        ("long", &long_tar, long_blob, "paths"),
    ] {
        let dir = d.path().join(name);
        std::fs::create_dir(&dir).expect("mkdir");
        let image = layout(&dir.join("img"), &[(blob.clone(), "tar+zstd", sha(tar))]);
        let (code, err, kib) = peak_rss(run_image(&dir, &image, &[]), &dir);
        assert_eq!(code, Some(2), "{name} ({} stored bytes): {err}", blob.len());
        assert!(err.contains(word), "{name}: {err}");
        assert!(
            kib < 64 << 10,
            "{name} ({} stored bytes): peak RSS {} MiB",
            blob.len(),
            kib >> 10
        );
        eprintln!(
            "{name}: {} stored bytes, peak RSS {} MiB",
            blob.len(),
            kib >> 10
        );
    }
}
