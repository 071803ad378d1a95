//! Claim 2: the legacy `overlay` driver mounts one lower layer and builds a
//! multi-layer image out of hard links, so an unchanged file is the same inode
//! in every layer — which saves space. Checked on the layout that implements
//! that driver: the lowers in force, the inode of an unchanged file in every
//! layer root, the directories' inodes, and the bytes the image takes.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::rig::{self, Container};
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::isolate::mountinfo::overlay_lowers;
use crate::report::{fmt_bytes, ClaimVerdict};

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 2,
    slug: "legacy-hardlinks",
    statement: "The legacy overlay driver uses one lower layer and builds multi-layer images with hard links: \
                an unchanged file has the same inode in every layer, which saves space.",
    check,
    compares: None,
};

/// The driver the statement is about (Docker's `overlay`, removed in Docker 24).
const DRIVER: &str = "overlay";
const LAYERS: usize = 4;
const BIG: u64 = 1 << 20;

fn inode(path: &Path) -> Result<(u64, u64, u64), ClaimError> {
    let m = std::fs::symlink_metadata(path).map_err(ClaimError::io("stat", path))?;
    Ok((m.dev(), m.ino(), m.nlink()))
}

fn check(ctx: &ClaimContext<'_>) -> Result<Finding, ClaimError> {
    let layout = match rig::named(ctx, DRIVER) {
        Ok(l) => l,
        Err(f) => return Ok(f),
    };
    // Layer 0 lays down a base; each later layer changes one file and adds one.
    let mut layers = vec![vec![
        rig::dir("etc"),
        rig::dir("usr"),
        rig::dir("usr/lib"),
        rig::file("etc/config", 512, 1),
        rig::file("usr/lib/libbig.so", BIG, 2),
    ]];
    for i in 1..LAYERS {
        layers.push(vec![
            rig::file("etc/config", 512, 10 + i as u64),
            rig::file(&format!("usr/lib/add{i}.so"), 4096, 20 + i as u64),
        ]);
    }
    // Writeback (and frees of earlier claims) first, so the delta is this image's.
    rig::settle(&ctx.dir)?;
    let before = ctx.scratch.usage()?;
    let img = layout.prepare_spec(&rig::image(layers), &ctx.dir.join("img"))?;
    rig::settle(&ctx.dir)?;
    let after = ctx.scratch.usage()?;
    let roots = &img.layer_dirs;
    let unchanged: Vec<_> = roots
        .iter()
        .map(|r| inode(&r.join("usr/lib/libbig.so")))
        .collect::<Result<_, _>>()?;
    let distinct_files: BTreeSet<_> = unchanged.iter().map(|(d, i, _)| (*d, *i)).collect();
    let links = unchanged.iter().map(|(_, _, n)| *n).max().unwrap_or(0);
    let dirs: BTreeSet<_> = roots
        .iter()
        .map(|r| inode(&r.join("usr/lib")).map(|(d, i, _)| (d, i)))
        .collect::<Result<_, _>>()?;
    let changed: BTreeSet<_> = roots
        .iter()
        .map(|r| inode(&r.join("etc/config")).map(|(d, i, _)| (d, i)))
        .collect::<Result<_, _>>()?;
    let c = Container::new(layout, &img, &ctx.dir.join("c"))?;
    let lowers = overlay_lowers(c.mounted.options_in_force.as_deref().unwrap_or("")).len();
    c.unmount()?;
    // What the same layer roots would cost as full copies of every file.
    let copies = BIG * LAYERS as u64;
    let stored = after.used_bytes.saturating_sub(before.used_bytes);
    let obs = vec![
        format!("a container mounts {lowers} lower layer(s) in force (mountinfo)"),
        format!(
            "the unchanged {} file is {} inode(s) across {} layer roots (link count {links})",
            fmt_bytes(BIG as f64),
            distinct_files.len(),
            roots.len()
        ),
        format!(
            "a file changed in every layer is {} distinct inodes; a directory is re-created in every layer: {} inodes \
             for one directory (the inode cost claim 9 measures)",
            changed.len(),
            dirs.len()
        ),
        format!(
            "the {}-layer image takes {} on disk; full copies of its unchanged file alone would take {}",
            roots.len(),
            fmt_bytes(stored as f64),
            fmt_bytes(copies as f64)
        ),
    ];
    let shared = distinct_files.len() == 1 && links as usize >= roots.len();
    let verdict = if lowers == 1 && shared && stored < copies {
        ClaimVerdict::Confirmed
    } else {
        ClaimVerdict::Refuted
    };
    Ok(Finding::new(
        verdict,
        format!(
            "{lowers} lower in force; an unchanged file is {} inode shared by {} layers (nlink {links}); image {} vs {} as copies",
            distinct_files.len(),
            roots.len(),
            fmt_bytes(stored as f64),
            fmt_bytes(copies as f64)
        ),
    )
    .with_value(if shared { roots.len() as f64 } else { 0.0 }, "layers sharing one inode")
    .with_observations(obs))
}
