//! Hostile images, one crafted archive each: every one must end in a clear
//! error of the usage class (exit 2) naming the layer and, where there is one,
//! the entry — and nothing may be written outside the destination.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use libtest_mimic::{Failed, Trial};
use sha2::{Digest as _, Sha256};

use overlaybench::error::ErrorClass;
use overlaybench::image::apply::apply_layer;
use overlaybench::image::source::{self, ImageRef, OpenOptions};
use overlaybench::image::ImageSource;

use crate::images::{layer_tar, E, IN_PLACE};

pub fn tests() -> Vec<Trial> {
    vec![
        trial!(dotdot_and_absolute_names),
        trial!(symlink_then_entry_through_it),
        trial!(hard_links_outside_or_missing),
        trial!(whiteout_of_dotdot),
        trial!(truncated_gzip),
        trial!(corrupt_zstd),
        trial!(digest_mismatch),
        trial!(manifest_names_a_missing_blob),
        trial!(oversized_manifest_and_config),
        trial!(more_than_500_layers),
        trial!(fifo_and_dev_zero_as_archive),
    ]
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// One stored layer: its bytes, media type suffix ("tar", "tar+gzip", "tar+zstd"),
/// and the uncompressed tar (for the diff_id).
struct Stored {
    blob: Vec<u8>,
    kind: &'static str,
    tar: Vec<u8>,
}

/// Writes an OCI layout by hand (so every field can be made wrong) and
/// returns its `oci:` reference. `layers` repeats one descriptor per entry.
fn layout(dir: &Path, layers: &[&Stored], manifest_pad: usize, config_pad: usize) -> String {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs).unwrap();
    let put = |b: &[u8]| {
        let d = sha(b);
        fs::write(blobs.join(d.trim_start_matches("sha256:")), b).unwrap();
        d
    };
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(&l.tar)).collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "pad": " ".repeat(config_pad),
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cd = put(&config);
    let descs: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "mediaType": format!("application/vnd.oci.image.layer.v1.{}", l.kind),
                "digest": put(&l.blob), "size": l.blob.len(),
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs,
        "annotations": {"pad": " ".repeat(manifest_pad)},
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let md = put(&manifest);
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "t"}}],
    });
    fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    format!("oci:{}:t", dir.display())
}

/// A one-layer gzip image of `tar` under `dir/img`.
pub fn single_layer_image(dir: &Path, tar: &[u8]) -> Result<Box<dyn ImageSource>, Failed> {
    let img = dir.join("img");
    let r = layout(
        &img,
        &[&Stored {
            blob: gzip(tar),
            kind: "tar+gzip",
            tar: tar.to_vec(),
        }],
        0,
        0,
    );
    Ok(source::open(
        &ImageRef::parse(&r)?,
        &OpenOptions::default(),
    )?)
}

struct Case {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::Builder::new()
            .prefix("obk-hostile-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let root = tmp.path().to_path_buf();
        fs::create_dir_all(root.join("outside")).unwrap();
        fs::create_dir_all(root.join("dest")).unwrap();
        Case { _tmp: tmp, root }
    }

    /// Applies every layer in place; returns the error's message and class.
    fn apply(&self, src: &dyn ImageSource) -> Result<(String, ErrorClass), Failed> {
        for i in 0..src.info().layers.len() {
            if let Err(e) = apply_layer(src, i, &self.root.join("dest"), &IN_PLACE) {
                return Ok((format!("{e:#}"), e.class()));
            }
        }
        Err("the hostile image was applied without an error".into())
    }

    /// Nothing may appear outside dest (beside the image itself).
    fn nothing_outside(&self) -> Result<(), Failed> {
        let outside: Vec<_> = fs::read_dir(self.root.join("outside"))?.collect();
        if !outside.is_empty() {
            return Err(format!("written outside dest: {outside:?}").into());
        }
        for e in fs::read_dir(&self.root)? {
            let name = e?.file_name();
            if !["outside", "dest", "img"].contains(&name.to_string_lossy().as_ref()) {
                return Err(format!("written beside dest: {name:?}").into());
            }
        }
        Ok(())
    }

    fn expect(&self, tar: &[u8], words: &[&str]) -> Result<(), Failed> {
        let src = single_layer_image(&self.root, tar)?;
        let layer = src.info().layers[0].digest.clone();
        let (msg, class) = self.apply(&*src)?;
        if class != ErrorClass::Usage {
            return Err(format!("{msg}: class {class:?}, want Usage").into());
        }
        for w in words.iter().chain([&layer.as_str()]) {
            if !msg.contains(w) {
                return Err(format!("{msg:?} does not mention {w:?}").into());
            }
        }
        self.nothing_outside()
    }
}

fn dotdot_and_absolute_names() -> Result<(), Failed> {
    Case::new().expect(
        &layer_tar(&[E::Raw(b"../outside/x", b'0', b"pwned", b"")]),
        &["../outside/x", "`..`"],
    )?;
    Case::new().expect(
        &layer_tar(&[E::Raw(b"a/../../outside/x", b'0', b"pwned", b"")]),
        &["`..`"],
    )?;
    let c = Case::new();
    let abs = format!("{}/outside/x", c.root.display());
    c.expect(
        &layer_tar(&[E::Raw(abs.as_bytes(), b'0', b"pwned", b"")]),
        &["absolute", &abs],
    )
}

fn symlink_then_entry_through_it() -> Result<(), Failed> {
    let c = Case::new();
    let outside = c.root.join("outside").display().to_string();
    c.expect(
        &layer_tar(&[E::Sym("l", &outside), E::File("l/x", 0o644, b"pwned")]),
        &["l/x", "symlink"],
    )?;
    let c = Case::new();
    c.expect(
        &layer_tar(&[E::Sym("l", "../outside"), E::File("l/x", 0o644, b"pwned")]),
        &["l/x", "symlink"],
    )?;
    // Through a symlink a lower layer left in the tree.
    let c = Case::new();
    std::os::unix::fs::symlink(c.root.join("outside"), c.root.join("dest/lower")).unwrap();
    c.expect(
        &layer_tar(&[E::File("lower/x", 0o644, b"pwned")]),
        &["lower/x", "symlink"],
    )
}

fn hard_links_outside_or_missing() -> Result<(), Failed> {
    Case::new().expect(
        &layer_tar(&[E::Raw(b"h", b'1', b"", b"../../etc/shadow")]),
        &["\"h\"", "outside the layer"],
    )?;
    Case::new().expect(
        &layer_tar(&[E::Raw(b"h", b'1', b"", b"/etc/shadow")]),
        &["outside the layer"],
    )?;
    Case::new().expect(
        &layer_tar(&[E::Raw(b"h", b'1', b"", b"nowhere")]),
        &["nowhere", "not an earlier"],
    )?;
    // A target that exists in dest (from a lower layer) but not earlier in this layer.
    let c = Case::new();
    fs::write(c.root.join("dest/lowerfile"), b"lower").unwrap();
    c.expect(
        &layer_tar(&[E::Raw(b"h", b'1', b"", b"lowerfile")]),
        &["lowerfile", "not an earlier"],
    )
}

fn whiteout_of_dotdot() -> Result<(), Failed> {
    Case::new().expect(
        &layer_tar(&[E::Raw(b"a/.wh...", b'0', b"", b"")]),
        &["whiteout"],
    )?;
    Case::new().expect(
        &layer_tar(&[E::Raw(b".wh..", b'0', b"", b"")]),
        &["whiteout"],
    )
}

fn open_err(reference: &str) -> Result<(String, ErrorClass), Failed> {
    match source::open(&ImageRef::parse(reference)?, &OpenOptions::default()) {
        Ok(_) => Err(format!("{reference} opened").into()),
        Err(e) => Ok((e.to_string(), e.class())),
    }
}

fn usage(msg: &str, class: ErrorClass, words: &[&str]) -> Result<(), Failed> {
    if class != ErrorClass::Usage {
        return Err(format!("{msg}: class {class:?}, want Usage").into());
    }
    for w in words {
        if !msg.contains(w) {
            return Err(format!("{msg:?} does not mention {w:?}").into());
        }
    }
    Ok(())
}

fn big_tar() -> Vec<u8> {
    layer_tar(&[
        E::File("a", 0o644, &crate::images::bytes(9, 300_000)),
        E::File("b", 0o644, b"b"),
    ])
}

fn stored_case(
    blob: Vec<u8>,
    kind: &'static str,
    tar: Vec<u8>,
    words: &[&str],
) -> Result<(), Failed> {
    let c = Case::new();
    let r = layout(
        &c.root.join("img"),
        &[&Stored {
            blob: blob.clone(),
            kind,
            tar,
        }],
        0,
        0,
    );
    let src = source::open(&ImageRef::parse(&r)?, &OpenOptions::default())?;
    let (msg, class) = c.apply(&*src)?;
    let mut w = words.to_vec();
    let d = sha(&blob);
    w.push(&d);
    usage(&msg, class, &w)?;
    c.nothing_outside()
}

fn truncated_gzip() -> Result<(), Failed> {
    let tar = big_tar();
    let gz = gzip(&tar);
    stored_case(gz[..gz.len() / 2].to_vec(), "tar+gzip", tar, &["\"a\""])
}

fn corrupt_zstd() -> Result<(), Failed> {
    let tar = big_tar();
    let mut z = zstd::encode_all(&tar[..], 3)?;
    let mid = z.len() / 2;
    for b in &mut z[mid..mid + 64] {
        *b ^= 0x5a;
    }
    stored_case(z, "tar+zstd", tar, &[])
}

fn digest_mismatch() -> Result<(), Failed> {
    let c = Case::new();
    let tar = big_tar();
    let r = layout(
        &c.root.join("img"),
        &[&Stored {
            blob: tar.clone(),
            kind: "tar",
            tar: tar.clone(),
        }],
        0,
        0,
    );
    // Same size, one byte of file data changed, stored under the original digest.
    let path = c
        .root
        .join("img/blobs/sha256")
        .join(sha(&tar).trim_start_matches("sha256:"));
    let mut bad = tar.clone();
    bad[2000] ^= 1;
    fs::write(&path, &bad)?;
    let src = source::open(&ImageRef::parse(&r)?, &OpenOptions::default())?;
    let (msg, class) = c.apply(&*src)?;
    usage(&msg, class, &["digest mismatch", &sha(&tar), &sha(&bad)])?;
    c.nothing_outside()
}

fn manifest_names_a_missing_blob() -> Result<(), Failed> {
    let c = Case::new();
    let tar = big_tar();
    let gz = gzip(&tar);
    let r = layout(
        &c.root.join("img"),
        &[&Stored {
            blob: gz.clone(),
            kind: "tar+gzip",
            tar,
        }],
        0,
        0,
    );
    fs::remove_file(
        c.root
            .join("img/blobs/sha256")
            .join(sha(&gz).trim_start_matches("sha256:")),
    )?;
    let src = source::open(&ImageRef::parse(&r)?, &OpenOptions::default())?;
    let (msg, class) = c.apply(&*src)?;
    usage(&msg, class, &["missing", &sha(&gz)])?;
    c.nothing_outside()
}

fn oversized_manifest_and_config() -> Result<(), Failed> {
    let tar = big_tar();
    let l = Stored {
        blob: gzip(&tar),
        kind: "tar+gzip",
        tar,
    };
    let c = Case::new();
    let r = layout(&c.root.join("img"), &[&l], 5 << 20, 0);
    let (msg, class) = open_err(&r)?;
    usage(&msg, class, &["manifest", "4194304"])?;
    let c = Case::new();
    let r = layout(&c.root.join("img"), &[&l], 0, 5 << 20);
    let (msg, class) = open_err(&r)?;
    usage(&msg, class, &["config", "4194304"])
}

fn more_than_500_layers() -> Result<(), Failed> {
    let c = Case::new();
    let tar = layer_tar(&[E::File("f", 0o644, b"f")]);
    let l = Stored {
        blob: gzip(&tar),
        kind: "tar+gzip",
        tar,
    };
    let layers: Vec<&Stored> = (0..501).map(|_| &l).collect();
    let r = layout(&c.root.join("img"), &layers, 0, 0);
    let (msg, class) = open_err(&r)?;
    usage(&msg, class, &["501 layers", "500"])
}

fn fifo_and_dev_zero_as_archive() -> Result<(), Failed> {
    let c = Case::new();
    let fifo = c.root.join("outside/pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))?;
    for r in [
        format!("oci-archive:{}", fifo.display()),
        format!("docker-archive:{}", fifo.display()),
        "docker-archive:/dev/zero".to_string(),
    ] {
        let (msg, class) = open_err(&r)?;
        usage(&msg, class, &["not a regular file"])?;
    }
    fs::remove_file(&fifo)?;
    Ok(())
}
