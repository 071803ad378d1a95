//! Claim 8: containers reading the same file share one page-cache entry, so
//! overlay uses memory efficiently. K containers of one image read one file
//! through their mounts; the kernel then says (`mincore` over every distinct
//! file backing what they read) how much of it is cached — through the overlay
//! layout, and through the copying baseline as the control.

use std::path::{Path, PathBuf};

use super::rig::{self, Container, MIB};
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::layout::Layout;
use crate::probe::residency::resident_distinct;
use crate::report::{fmt_bytes, ClaimVerdict};

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 8,
    slug: "page-cache-sharing",
    statement: "Containers reading the same file share one page-cache entry: overlay uses memory efficiently.",
    check,
    compares: None,
};

const FILE: &str = "shared";

/// Bytes cached and distinct backing files after K containers read the file.
fn cached_after_reads(
    ctx: &ClaimContext<'_>,
    layout: &dyn Layout,
    size: u64,
) -> Result<(u64, usize), ClaimError> {
    let root = ctx.dir.join(layout.name());
    cached_after_reads_in(&root, layout, size, ctx.settings.sharing_containers)
}

/// `cached_after_reads` with its image and `k` containers under `root` (claim
/// 10 reads btrfs on its own filesystem).
pub(super) fn cached_after_reads_in(
    root: &Path,
    layout: &dyn Layout,
    size: u64,
    k: usize,
) -> Result<(u64, usize), ClaimError> {
    let root = root.to_path_buf();
    let img = layout.prepare_spec(
        &rig::image(vec![vec![rig::file(FILE, size, 1)]]),
        &root.join("img"),
    )?;
    let containers: Vec<Container> = (0..k)
        .map(|i| Container::new(layout, &img, &root.join(format!("c{i}"))))
        .collect::<Result<_, _>>()?;
    // What the containers read (residency) and, evicted too, the image's own copy.
    let lower: Vec<PathBuf> = layout.lower_file(&img, FILE.as_ref()).into_iter().collect();
    let mut files: Vec<PathBuf> = Vec::new();
    for c in &containers {
        if let Some(f) = layout.data_file(&img, &c.dirs, FILE.as_ref()) {
            if !files.contains(&f) {
                files.push(f);
            }
        }
    }
    rig::settle(&root)?;
    for f in files.iter().chain(&lower) {
        rig::evict(f)?;
    }
    for c in &containers {
        let (_, n) = rig::sequential_read_ns(&c.path(FILE))?;
        if n != size {
            return Err(ClaimError::Unexpected(format!(
                "read {n} bytes of a {size}-byte file"
            )));
        }
    }
    let cached = resident_distinct(&files)
        .map_err(ClaimError::io("reading residency (mincore) under", &root))?;
    for c in containers {
        c.unmount()?;
    }
    Ok(cached)
}

fn check(ctx: &ClaimContext<'_>) -> Result<Finding, ClaimError> {
    if ctx.scratch.kind().data_is_page_cache() {
        return Ok(Finding::not_testable(
            "on tmpfs the file data is the page cache itself; run the claims on a disk backing (ext4, xfs)",
        ));
    }
    let overlay = match rig::overlay_layout(ctx) {
        Ok(l) => l,
        Err(f) => return Ok(f),
    };
    let baseline = match rig::baseline_layout(ctx) {
        Ok(l) => l,
        Err(f) => return Ok(f),
    };
    let size = ctx.settings.shared_file_mib * MIB;
    let k = ctx.settings.sharing_containers as u64;
    let (ov_bytes, ov_files) = cached_after_reads(ctx, overlay, size)?;
    let (base_bytes, base_files) = cached_after_reads(ctx, baseline, size)?;
    let sharing = (k * size) as f64 / ov_bytes.max(1) as f64;
    let shares = ov_files == 1 && (ov_bytes as f64) <= 1.25 * size as f64;
    let control = (base_bytes as f64) >= 0.75 * (k * size) as f64;
    let obs = vec![
        format!(
            "{k} {} containers read one {} file: {} cached in {ov_files} backing file(s) (mincore)",
            overlay.name(),
            fmt_bytes(size as f64),
            fmt_bytes(ov_bytes as f64)
        ),
        format!(
            "{k} {} containers (full copies, the control): {} cached in {base_files} backing files{}",
            baseline.name(),
            fmt_bytes(base_bytes as f64),
            if control { "" } else { " — fewer than K copies: the control did not show duplication" }
        ),
        "after a container copies the file up it has its own copy and its own pages (the page-cache workload \
         measures that phase)"
            .into(),
    ];
    let verdict = if shares {
        ClaimVerdict::Confirmed
    } else {
        ClaimVerdict::Refuted
    };
    Ok(Finding::new(
        verdict,
        format!(
            "{k} containers reading one {} file cache {} through overlay (×{sharing:.1} sharing) vs {} as copies",
            fmt_bytes(size as f64),
            fmt_bytes(ov_bytes as f64),
            fmt_bytes(base_bytes as f64)
        ),
    )
    .with_value(sharing, "x")
    .with_observations(obs))
}
