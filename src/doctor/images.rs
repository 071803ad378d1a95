//! Images in doctor: the per-layer profile of an image (`doctor --image`) and
//! of every image a store holds, read from the layers' streams alone —
//! nothing is mounted, nothing written. Each comes with the reference `plan
//! --image` takes, so a store's images go straight into a capacity plan.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::image::source::{self, ImageRef, OpenOptions};
use crate::image::{ImageError, ImageIndex, ImageProfile};
use crate::report::{fmt_bytes, Table};

/// Most images of a store profiled (each layer is walked once; a busy host
/// holds hundreds of images).
pub const MAX_STORE_IMAGES: usize = 50;

/// One image's profile, or why it could not be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DoctorImage {
    /// The reference (`plan --image` takes it as is).
    pub reference: String,
    /// Where it came from: `--image` or `store`.
    pub found_in: String,
    /// Its layers and flattened tree, when it could be read.
    pub profile: Option<ImageProfile>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// Profiles one image by streaming its layers (each verified as it streams).
pub fn try_profile(
    reference: &str,
    found_in: &str,
    opts: &OpenOptions,
) -> Result<DoctorImage, ImageError> {
    let r = ImageRef::parse(reference)?;
    let s = source::open(&r, opts)?;
    let index = ImageIndex::build(&*s)?;
    Ok(DoctorImage {
        reference: reference.into(),
        found_in: found_in.into(),
        profile: Some(index.profile()),
        error: None,
    })
}

/// Profiles one image; why it cannot be read is kept in the profile (a
/// store's images: one unreadable image does not hide the others).
pub fn profile(reference: &str, found_in: &str, opts: &OpenOptions) -> DoctorImage {
    try_profile(reference, found_in, opts).unwrap_or_else(|e| DoctorImage {
        reference: reference.into(),
        found_in: found_in.into(),
        profile: None,
        error: Some(e.to_string()),
    })
}

/// Profiles the images of the store at `store` (at most `MAX_STORE_IMAGES`;
/// the second value counts those left out).
pub fn store_images(store: &Path) -> (Vec<DoctorImage>, usize) {
    let refs = match source::store_images(store) {
        Ok(r) => r,
        Err(e) => {
            return (
                vec![DoctorImage {
                    reference: store.display().to_string(),
                    found_in: "store".into(),
                    profile: None,
                    error: Some(e.to_string()),
                }],
                0,
            )
        }
    };
    let left_out = refs.len().saturating_sub(MAX_STORE_IMAGES);
    let images = refs
        .iter()
        .take(MAX_STORE_IMAGES)
        .map(|r| profile(r, "store", &OpenOptions::default()))
        .collect();
    (images, left_out)
}

/// The per-layer table of one image profile.
pub fn layer_table(p: &ImageProfile) -> Table {
    let mut t = Table::new([
        "layer",
        "digest",
        "stored",
        "entries",
        "files",
        "dirs",
        "symlinks",
        "hard links",
        "whiteouts",
        "opaques",
        "devices",
        "file bytes",
        "hidden later",
        "median file",
        "p99 file",
        "largest file",
        "est. inodes",
        "est. disk",
    ]);
    let n = p.layers.len();
    for l in &p.layers {
        t.row(vec![
            format!("{} of {n}", l.index + 1),
            l.digest
                .trim_start_matches("sha256:")
                .chars()
                .take(12)
                .collect(),
            fmt_bytes(l.stored_bytes as f64),
            l.entries.to_string(),
            l.files.to_string(),
            (l.dirs + l.implicit_dirs).to_string(),
            l.symlinks.to_string(),
            l.hardlinks.to_string(),
            l.whiteouts.to_string(),
            l.opaques.to_string(),
            l.devices.to_string(),
            fmt_bytes(l.file_bytes as f64),
            fmt_bytes(l.hidden_file_bytes as f64),
            fmt_bytes(l.median_file_bytes as f64),
            fmt_bytes(l.p99_file_bytes as f64),
            fmt_bytes(l.max_file_bytes as f64),
            l.est_inodes.to_string(),
            fmt_bytes(l.est_disk_bytes as f64),
        ]);
    }
    t
}

/// The text doctor prints for its images.
pub fn render_text(images: &[DoctorImage], store_left_out: usize) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    for i in images {
        let _ = write!(s, "\nimage       {} ({})", i.reference, i.found_in);
        let Some(p) = &i.profile else {
            let _ = writeln!(
                s,
                "\n  cannot be read: {}",
                i.error.as_deref().unwrap_or("unknown error")
            );
            continue;
        };
        let stored: u64 = p.layers.iter().map(|l| l.file_bytes).sum();
        let _ = writeln!(
            s,
            "\n  {} layers · {} paths · {} files, {} as a container sees them · {} of the {} the layers store \
             is hidden by later layers · {} hard-linked paths",
            p.layers.len(),
            p.paths,
            p.files,
            fmt_bytes(p.file_bytes as f64),
            fmt_bytes(p.hidden_file_bytes as f64),
            fmt_bytes(stored as f64),
            p.hardlink_paths
        );
        for line in layer_table(p).to_text().lines() {
            let _ = writeln!(s, "  {line}");
        }
        if !p.largest_dirs.is_empty() {
            let dirs: Vec<String> = p
                .largest_dirs
                .iter()
                .take(5)
                .map(|d| format!("{} ({})", d.path, d.entries))
                .collect();
            let _ = writeln!(s, "  largest directories: {}", dirs.join(", "));
        }
        let _ = writeln!(
            s,
            "  plan for N copies: overlaybench plan --image '{}' --count N --fs-size SIZE",
            i.reference
        );
    }
    if store_left_out > 0 {
        let _ = writeln!(
            s,
            "\n{store_left_out} more images in the store are not profiled (at most {MAX_STORE_IMAGES}); \
             name one with --image"
        );
    }
    s
}
