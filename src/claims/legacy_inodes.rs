//! Claim 9: the legacy `overlay` driver can consume excessive inodes, especially
//! with many images and containers; prefer overlay2. The same image set (images
//! sharing a base, as real ones do, each with its containers) is built by the
//! legacy layout and by overlay2 on the same scratch filesystem; `statvfs` of
//! that filesystem alone gives each one's inodes and bytes.

use super::rig;
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::image::{self, GeneratorParams, ImageShape, ImageSpec, SizeRange, SyntheticImage};
use crate::layout::Layout;
use crate::report::{fmt_bytes, ClaimVerdict};

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 9,
    slug: "legacy-inodes",
    statement:
        "The legacy overlay driver can consume excessive inodes, especially with many images and \
                containers; prefer overlay2.",
    check,
    compares: None,
};

/// The driver the statement is about.
const LEGACY: &str = "overlay";
/// More than this many times overlay2's inodes is "excessive".
const EXCESSIVE: f64 = 1.2;

/// A layer shape: `files` files and `dirs` directories per layer, small files.
fn shape(seed: u64, layers: usize, files: usize, dirs: usize) -> Result<ImageShape, ClaimError> {
    ImageShape::try_from(GeneratorParams {
        seed,
        layers,
        files_per_layer: files,
        dirs_per_layer: dirs,
        sizes: SizeRange {
            min_bytes: 0,
            max_bytes: 8 * 1024,
        },
        ..GeneratorParams::default()
    })
    .map_err(|e| ClaimError::Unexpected(format!("image shape: {e}")))
}

/// The shared base and the images built on it, shaped like real ones: a
/// distribution layer with many directories, then thin layers that add a few
/// files each (60 % of each image's layers are shared).
fn image_set(ctx: &ClaimContext<'_>) -> Result<(ImageSpec, Vec<ImageSpec>), ClaimError> {
    let s = ctx.settings;
    let shared = (s.inode_layers * 6 / 10).max(1);
    let distro = image::generate(&shape(1, 1, 600, 300)?);
    let base = if shared > 1 {
        image::extend(&distro, &shape(2, shared - 1, 20, 2)?)
    } else {
        distro
    };
    let children = (0..s.inode_images)
        .map(|i| {
            Ok(image::extend(
                &base,
                &shape(100 + i as u64, (s.inode_layers - shared).max(1), 20, 2)?,
            ))
        })
        .collect::<Result<_, ClaimError>>()?;
    Ok((base, children))
}

/// Inodes and bytes the whole set and its containers take with `layout`.
fn cost(
    ctx: &ClaimContext<'_>,
    layout: &dyn Layout,
    base: &ImageSpec,
    children: &[ImageSpec],
) -> Result<(u64, u64), ClaimError> {
    let root = ctx.dir.join(layout.name());
    rig::settle(&ctx.dir)?;
    let before = ctx.scratch.usage()?;
    // One store, as engines keep it: the children find the base by chain id.
    let store = root.join("store");
    layout.import(&store, &SyntheticImage::new("base", base.clone()))?;
    for (i, child) in children.iter().enumerate() {
        let img = layout.import(
            &store,
            &SyntheticImage::new(&format!("img{i}"), child.clone()),
        )?;
        for c in 0..ctx.settings.inode_containers {
            layout.create_container(&img, &root.join(format!("img{i}-c{c}")))?;
        }
    }
    rig::settle(&ctx.dir)?;
    let after = ctx.scratch.usage()?;
    Ok((
        after.used_inodes.saturating_sub(before.used_inodes),
        after.used_bytes.saturating_sub(before.used_bytes),
    ))
}

fn check(ctx: &ClaimContext<'_>) -> Result<Finding, ClaimError> {
    let legacy = match rig::named(ctx, LEGACY) {
        Ok(l) => l,
        Err(f) => return Ok(f),
    };
    let overlay2 = match rig::overlay_layout(ctx) {
        Ok(l) => l,
        Err(f) => return Ok(f),
    };
    let (base, children) = image_set(ctx)?;
    let (legacy_inodes, legacy_bytes) = cost(ctx, legacy, &base, &children)?;
    let (ov2_inodes, ov2_bytes) = cost(ctx, overlay2, &base, &children)?;
    let ratio = legacy_inodes as f64 / ov2_inodes.max(1) as f64;
    let s = ctx.settings;
    let set = format!(
        "{} images of {} layers ({} shared) with {} containers each",
        s.inode_images,
        s.inode_layers,
        base.depth(),
        s.inode_containers
    );
    let obs = vec![
        format!("legacy {}: {legacy_inodes} inodes, {}", legacy.name(), fmt_bytes(legacy_bytes as f64)),
        format!("{}: {ov2_inodes} inodes, {}", overlay2.name(), fmt_bytes(ov2_bytes as f64)),
        format!("the set: {set}; statvfs of the scratch filesystem before and after, written back"),
        "the legacy layout re-creates every directory in every layer's root; its files are hard links (no inode)"
            .into(),
    ];
    let verdict = if ratio > EXCESSIVE {
        ClaimVerdict::Confirmed
    } else {
        ClaimVerdict::Refuted
    };
    Ok(Finding::new(
        verdict,
        format!(
            "legacy {} uses {legacy_inodes} inodes vs {}'s {ov2_inodes} (×{ratio:.2}) for {set}",
            legacy.name(),
            overlay2.name()
        ),
    )
    .with_value(ratio, "x")
    .with_observations(obs))
}
