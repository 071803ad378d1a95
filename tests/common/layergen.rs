//! A generator of hostile layers for property tests: raw tar headers written
//! byte by byte (so every field can lie), random type flags, GNU and PAX long
//! names, sizes that disagree with the content, names from `.`/`..`/absolute
//! to random bytes and `.wh.` forms, deep directory chains, xattrs, hard- and
//! symlink graphs over earlier entries, truncation and trailing bytes, and
//! the three compressions a layer may have. `oci_layout` writes the layers as
//! an OCI image layout with correct digests (so what is tested is the layer
//! content, not a digest check that would refuse everything first).
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

/// Whether the generator also makes the classes the tar reader refuses as
/// bad input (exit 2): unknown tar type flags, GNU sparse entries, an opaque
/// marker at the layer root, xattrs in an unknown namespace, a malformed
/// `security.capability` or ACL, a 70,000-byte value, a 300-byte xattr name,
/// a component past NAME_MAX (255), a path past PATH_MAX (4095). Off, the
/// layers are ones every layout can reproduce, so most cases reach the
/// appliers instead of stopping at the first refused entry. Set it before
/// building a strategy.
static REFUSED_CLASSES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// See `REFUSED_CLASSES`.
pub fn set_refused_classes(on: bool) {
    REFUSED_CLASSES.store(on, std::sync::atomic::Ordering::SeqCst);
}

fn refused_classes() -> bool {
    REFUSED_CLASSES.load(std::sync::atomic::Ordering::SeqCst)
}

/// How an entry's name reaches the reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameForm {
    /// In the header (cut at 100 bytes).
    Header,
    /// A GNU `L` record before the header.
    GnuLong,
    /// A PAX `path` record before the header.
    Pax,
}

/// One tar entry as written: every field chosen by the generator.
#[derive(Debug, Clone)]
pub struct RawEntry {
    pub name: Vec<u8>,
    pub form: NameForm,
    pub typeflag: u8,
    /// The size field of the header.
    pub size_field: u64,
    /// The content bytes actually written (may disagree with `size_field`).
    pub content: Vec<u8>,
    pub link: Vec<u8>,
    pub mode: u32,
    pub dev: (u32, u32),
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// How a layer blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// One generated layer.
#[derive(Debug, Clone)]
pub struct RawLayer {
    pub entries: Vec<RawEntry>,
    pub compression: Compression,
    /// Cut the uncompressed tar to this many bytes (a truncated stream).
    pub truncate: Option<usize>,
    /// Bytes after the end marker.
    pub trailing: Vec<u8>,
}

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0w$o}", v, w = field.len() - 1);
    let b = s.as_bytes();
    if b.len() < field.len() {
        field[..b.len()].copy_from_slice(b);
        field[b.len()] = 0;
    } else {
        // Too large for octal: GNU base-256 (as tar does past 8 GiB).
        field.fill(0);
        field[0] = 0x80;
        let n = field.len();
        for (i, byte) in v.to_be_bytes().iter().rev().enumerate() {
            if i + 1 < n {
                field[n - 1 - i] = *byte;
            }
        }
    }
}

fn header(
    name: &[u8],
    typeflag: u8,
    size: u64,
    link: &[u8],
    mode: u32,
    dev: (u32, u32),
) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(mode));
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    octal(&mut h[329..337], u64::from(dev.0));
    octal(&mut h[337..345], u64::from(dev.1));
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(512) {
        out.push(0);
    }
}

fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    // "LEN key=value\n", LEN counting itself.
    let body = key.len() + value.len() + 3;
    let mut len = body + 1;
    while format!("{len}").len() + body != len {
        len += 1;
    }
    let mut r = format!("{len} ").into_bytes();
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// The uncompressed tar of `layer`.
pub fn tar_bytes(layer: &RawLayer) -> Vec<u8> {
    let mut out = Vec::new();
    for e in &layer.entries {
        let mut pax = Vec::new();
        if e.form == NameForm::Pax {
            pax.extend(pax_record(b"path", &e.name));
        }
        for (k, v) in &e.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax.extend(pax_record(&key, v));
        }
        if !pax.is_empty() {
            out.extend(header(
                b"././@PaxHeader",
                b'x',
                pax.len() as u64,
                b"",
                0o644,
                (0, 0),
            ));
            out.extend(&pax);
            pad(&mut out);
        }
        if e.form == NameForm::GnuLong {
            let mut n = e.name.clone();
            n.push(0);
            out.extend(header(
                b"././@LongLink",
                b'L',
                n.len() as u64,
                b"",
                0o644,
                (0, 0),
            ));
            out.extend(&n);
            pad(&mut out);
        }
        out.extend(header(
            &e.name,
            e.typeflag,
            e.size_field,
            &e.link,
            e.mode,
            e.dev,
        ));
        out.extend(&e.content);
        pad(&mut out);
    }
    out.extend([0u8; 1024]);
    if let Some(t) = layer.truncate {
        out.truncate(t.min(out.len()));
    }
    out.extend(&layer.trailing);
    out
}

/// The stored blob of `layer` and its media type.
pub fn blob(layer: &RawLayer, tar: &[u8]) -> (Vec<u8>, &'static str) {
    match layer.compression {
        Compression::None => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).expect("gzip");
            (
                e.finish().expect("gzip"),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Compression::Zstd => (
            zstd::encode_all(tar, 1).expect("zstd"),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    }
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

/// Writes `layers` as an OCI layout at `dir` (tag `t`), digests and diff_ids
/// right; returns `oci:DIR:t`.
pub fn oci_layout(dir: &Path, layers: &[RawLayer]) -> String {
    let stored: Vec<(Vec<u8>, String, String)> = layers
        .iter()
        .map(|l| {
            let tar = tar_bytes(l);
            let (b, media_type) = blob(l, &tar);
            (b, media_type.to_string(), sha(&tar))
        })
        .collect();
    write_oci_layout(dir, &stored)
}

/// Writes stored layers — (blob, media type, diff_id), bottom first — as an
/// OCI layout at `dir` (tag `t`); returns `oci:DIR:t`.
pub fn write_oci_layout(dir: &Path, layers: &[(Vec<u8>, String, String)]) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).expect("mkdir");
    let put = |b: &[u8]| {
        let d = sha(b);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), b).expect("write");
        d
    };
    let descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|(b, media_type, _)| {
            serde_json::json!({"mediaType": media_type, "digest": put(b), "size": b.len()})
        })
        .collect();
    let diff_ids: Vec<&String> = layers.iter().map(|l| &l.2).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config), "size": config.len()},
        "layers": descs,
    }))
    .expect("json");
    let md = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
            "size": manifest.len(), "annotations": {"org.opencontainers.image.ref.name": "t"}}],
    });
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("write");
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("write");
    format!("oci:{}:t", dir.display())
}

// ---- strategies -------------------------------------------------------------

/// A name component: mostly from a small pool (so entries meet: parents,
/// replacements, whiteouts of earlier names, link targets), sometimes hostile.
fn component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(vec!["a", "b", "c", "d", "lib", "etc"]).prop_map(|s| s.as_bytes().to_vec()),
        1 => Just(b".".to_vec()),
        1 => Just(b"..".to_vec()),
        1 => prop::sample::select(vec![".wh.a", ".wh.b", ".wh..wh..opq", ".wh..wh.plnk", ".wh.", ".wh..", ".wh..."])
            .prop_map(|s| s.as_bytes().to_vec()),
        // Random bytes without NUL or '/'.
        2 => prop::collection::vec(1u8..=255, 1..12)
            .prop_map(|v| v.into_iter().map(|b| if b == b'/' { b'_' } else { b }).collect()),
        // Up to NAME_MAX, and past it.
        1 => (250usize..if refused_classes() { 300 } else { 256 }).prop_map(|n| vec![b'n'; n]),
    ]
}

/// A path: 1 to 4 components, sometimes absolute, sometimes with a trailing
/// slash or doubled slashes, sometimes a chain hundreds to thousands deep.
fn path() -> impl Strategy<Value = Vec<u8>> {
    let shallow =
        (any::<u8>(), prop::collection::vec(component(), 1..4)).prop_map(|(style, comps)| {
            let mut p = Vec::new();
            if style % 11 == 0 {
                p.push(b'/');
            }
            if style % 7 == 0 {
                p.extend_from_slice(b"./");
            }
            let sep: &[u8] = if style % 13 == 0 { b"//" } else { b"/" };
            p.extend(comps.join(sep));
            if style % 5 == 0 {
                p.push(b'/');
            }
            p
        });
    prop_oneof![
        12 => shallow,
        // Deep chains: the path cap is 4095 bytes (2,047 levels of "d/").
        1 => prop::sample::select(if refused_classes() {
            vec![100usize, 1500, 2000, 2100]
        } else {
            vec![100usize, 1500, 2000]
        })
        .prop_map(|n| {
            let mut p = b"d".to_vec();
            for _ in 1..n {
                p.extend_from_slice(b"/d");
            }
            p
        }),
    ]
}

fn typeflag() -> impl Strategy<Value = u8> {
    let mut known: Vec<u8> = b"0\x0012345672".to_vec();
    if refused_classes() {
        known.extend_from_slice(b"SgLKxVMN ");
    }
    prop_oneof![
        10 => prop::sample::select(known),
        1 => if refused_classes() { any::<u8>().boxed() } else { Just(b'0').boxed() },
    ]
}

fn xattr() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let mut names: Vec<Vec<u8>> = vec![
        b"user.x".to_vec(),
        b"user.overlay.opaque".to_vec(),
        b"trusted.overlay.opaque".to_vec(),
        b"trusted.overlay.redirect".to_vec(),
    ];
    let mut values: Vec<Vec<u8>> = vec![b"y".to_vec(), b"".to_vec(), vec![7u8; 40]];
    if refused_classes() {
        names.extend([
            b"security.capability".to_vec(),
            b"system.posix_acl_access".to_vec(),
            b"bogus.ns".to_vec(),
            [b"user.".to_vec(), vec![b'x'; 300]].concat(),
        ]);
        values.push(vec![b'v'; 70_000]);
    }
    (
        prop::sample::select(names),
        prop_oneof![
            3 => prop::collection::vec(any::<u8>(), 0..32),
            1 => prop::sample::select(values),
        ],
    )
}

/// Whether `name` is the opaque marker at the layer root once normalised.
fn is_root_opaque(name: &[u8]) -> bool {
    let comps: Vec<&[u8]> = name
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect();
    comps == [&b".wh..wh..opq"[..]]
}

/// One entry; `earlier` are names already in the layer (link targets).
fn entry(earlier: Vec<Vec<u8>>) -> impl Strategy<Value = RawEntry> {
    let link = {
        let earlier = earlier.clone();
        prop_oneof![
            3 => if earlier.is_empty() { path().boxed() } else { prop::sample::select(earlier).boxed() },
            1 => path(),
            1 => Just(b"/etc/passwd".to_vec()),
            1 => Just(b"../../../../etc".to_vec()),
            1 => Just(Vec::new()),
        ]
    };
    (
        path(),
        prop::sample::select(vec![NameForm::Header, NameForm::Header, NameForm::GnuLong, NameForm::Pax]),
        typeflag(),
        prop::collection::vec(any::<u8>(), 0..600),
        prop_oneof![8 => Just(None), 1 => (0u64..5000).prop_map(Some), 1 => Just(Some(u64::MAX >> 2))],
        link,
        prop::sample::select(vec![0o644u32, 0o755, 0o4755, 0o7777, 0]),
        prop_oneof![4 => Just((0u32, 0u32)), 1 => (0u32..300, 0u32..300)],
        prop::collection::vec(xattr(), 0..3),
    )
        .prop_map(|(name, form, typeflag, content, lie, link, mode, dev, xattrs)| {
            let name = if !refused_classes() && is_root_opaque(&name) {
                [b"a/".to_vec(), name].concat()
            } else {
                name
            };
            let content = if matches!(typeflag, b'0' | 0 | b'7') { content } else { Vec::new() };
            RawEntry {
                name,
                form,
                typeflag,
                size_field: lie.unwrap_or(content.len() as u64),
                content,
                link,
                mode,
                dev,
                xattrs,
            }
        })
}

/// A layer of up to `max_entries` entries, each able to link to the earlier ones.
pub fn layer(max_entries: usize) -> impl Strategy<Value = RawLayer> {
    let entries = (1..=max_entries).prop_flat_map(|n| {
        // Entries are drawn one after the other so links can name earlier ones.
        let mut s: BoxedStrategy<Vec<RawEntry>> = Just(Vec::new()).boxed();
        for _ in 0..n {
            s = s
                .prop_flat_map(|prev| {
                    let names: Vec<Vec<u8>> = prev.iter().map(|e| e.name.clone()).collect();
                    (Just(prev), entry(names))
                })
                .prop_map(|(mut prev, e)| {
                    prev.push(e);
                    prev
                })
                .boxed();
        }
        s
    });
    (
        entries,
        prop::sample::select(vec![
            Compression::None,
            Compression::Gzip,
            Compression::Zstd,
        ]),
        prop_oneof![8 => Just(None), 1 => (0usize..4000).prop_map(Some)],
        prop_oneof![8 => Just(Vec::new()), 1 => prop::collection::vec(any::<u8>(), 1..700)],
    )
        .prop_map(|(entries, compression, truncate, trailing)| RawLayer {
            entries,
            compression,
            truncate,
            trailing,
        })
}

/// An image: 1 to 3 layers.
pub fn image(max_entries: usize) -> impl Strategy<Value = Vec<RawLayer>> {
    prop::collection::vec(layer(max_entries), 1..=3)
}
