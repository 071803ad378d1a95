//! inodes' measurement: one image set through every phase on a fresh filesystem
//! per layout, `statvfs` and a census walk after each phase.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::keys::{CensusDelta, ImageMeasure, Phase, PhaseTable, StoredDelta, NAME};
use super::params::Params;
use crate::image::{ImageSpec, NodeKind, SyntheticImage};
use crate::isolate::{Scratch, ScratchRequest};
use crate::layout::{ContainerDirs, Layout, Mounted, PreparedImage};
use crate::probe::census::census;
use crate::workload::harness::settle;
use crate::workload::WorkloadError;

/// A fresh scratch filesystem sized for `p`'s image sets of `layers` layers,
/// made like `like` (its backing kind and root).
pub fn fresh_scratch(
    p: &Params,
    layers: usize,
    like: &ScratchRequest,
) -> Result<Scratch, WorkloadError> {
    Ok(Scratch::create(&ScratchRequest {
        fs_size_bytes: p.estimate_bytes(layers).max(512 << 20),
        inodes: Some(p.estimate_inodes(layers)),
        planned_bytes: p.estimate_bytes(layers),
        ..like.clone()
    })?)
}

/// Runs every phase of one image set on `scratch` with `layout`.
pub fn measure_phases(
    layout: &dyn Layout,
    scratch: &Scratch,
    p: &Params,
    layers: usize,
) -> Result<PhaseTable, WorkloadError> {
    let root = scratch.path();
    let measure = |phase: Phase| -> Result<_, WorkloadError> {
        settle(root)?;
        Ok((
            phase,
            scratch.usage()?,
            census(root).map_err(WorkloadError::io("walking", root))?,
        ))
    };
    let mut out = vec![measure(Phase::Empty)?];
    let (base, images) = p
        .image_set(layers)
        .map_err(|e| WorkloadError::Verify(e.to_string()))?;
    let work = root.join(NAME);
    // One store per layout, as engines keep it: the images find their shared
    // base there by chain id (a layout that shares nothing flattens each anew).
    let store = work.join("store");
    if layout.capabilities().shares_layers && base.depth() > 0 {
        layout.import(&store, &SyntheticImage::new("inodes-base", base.clone()))?;
    }
    out.push(measure(Phase::BaseLayers)?);
    let mut prepared: Vec<PreparedImage> = Vec::new();
    for (i, img) in images.iter().enumerate() {
        prepared.push(layout.import(
            &store,
            &SyntheticImage::new(&format!("inodes-{i}"), img.clone()),
        )?);
    }
    out.push(measure(Phase::Layers)?);
    let mut containers = Vec::new();
    for (i, img) in prepared.iter().enumerate() {
        for j in 0..p.containers {
            containers.push((
                i,
                layout.create_container(img, &work.join(format!("ctr-{i}-{j}")))?,
            ));
        }
    }
    out.push(measure(Phase::ContainersCreated)?);
    let mut mounted: Vec<Mounted> = Vec::new();
    for (i, c) in &containers {
        mounted.push(layout.mount(&prepared[*i], c)?);
    }
    out.push(measure(Phase::ContainersMounted)?);
    for ((i, _), m) in containers.iter().zip(&mounted) {
        write_container(&m.merged, &images[*i], p)?;
    }
    out.push(measure(Phase::ContainersWritten)?);
    for m in mounted {
        m.unmount()?;
    }
    for (_, c) in &containers {
        layout.remove_container(c)?;
    }
    layout.settle_removals(root)?;
    out.push(measure(Phase::ContainersRemoved)?);
    layout.remove_store(&store)?;
    fs::remove_dir_all(&work).map_err(WorkloadError::io("removing", &work))?;
    layout.settle_removals(root)?;
    out.push(measure(Phase::ImagesRemoved)?);
    Ok(out)
}

/// A container's writes: modify (copy_up), create, delete — spread over the image.
pub fn write_container(merged: &Path, image: &ImageSpec, p: &Params) -> Result<(), WorkloadError> {
    let tree = image.flatten();
    let files: Vec<&Path> = tree
        .nodes
        .iter()
        .filter(|(_, n)| matches!(n.kind, NodeKind::File { .. }))
        .map(|(p, _)| p.as_path())
        .collect();
    let step = |n: usize| (files.len() / n.max(1)).max(1);
    for f in files.iter().step_by(step(p.writes)).take(p.writes) {
        let path = merged.join(f);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.write_at(b"w", 0).map(drop))
            .map_err(WorkloadError::io("writing", &path))?;
    }
    for f in files
        .iter()
        .skip(1)
        .step_by(step(p.deletes))
        .take(p.deletes)
    {
        let path = merged.join(f);
        match fs::remove_file(&path) {
            // Already modified-then-deleted or gone with a parent: fine.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            r => r.map_err(WorkloadError::io("deleting", &path))?,
        }
    }
    for j in 0..p.new_files {
        let path = merged.join(format!("container-new-{j}"));
        fs::write(&path, vec![b'n'; 4096]).map_err(WorkloadError::io("creating", &path))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The user's images (`--image`): what each layer of each image adds to a
// store, what a container of it adds, on a fresh filesystem per layout.

fn census_delta(a: &crate::probe::census::Census, b: &crate::probe::census::Census) -> CensusDelta {
    let d = |x: u64, y: u64| x as i64 - y as i64;
    CensusDelta {
        dirs: d(b.dirs, a.dirs),
        files: d(b.files, a.files),
        whiteouts: d(b.whiteouts, a.whiteouts),
        symlinks: d(b.symlinks, a.symlinks),
        hardlink_paths: d(b.hardlink_paths, a.hardlink_paths),
        inodes: d(b.distinct_inodes, a.distinct_inodes),
    }
}

/// A fresh scratch filesystem, made like `like`, with room for `images` in
/// one layout and `containers` containers of each (a plain container is a
/// full copy).
pub fn fresh_image_scratch(
    images: &crate::workload::ImageFootprint,
    containers: usize,
    like: &ScratchRequest,
) -> Result<Scratch, WorkloadError> {
    let room = images.room(1, containers as u64);
    Ok(Scratch::create(&ScratchRequest {
        fs_size_bytes: (room.bytes + (128 << 20)).max(512 << 20),
        inodes: Some(room.inodes * 2 + 20_000),
        planned_bytes: room.bytes,
        ..like.clone()
    })?)
}

/// Imports every image into one store on `scratch` — a layout that shares
/// layers one layer at a time (each image's prefixes in turn), so each
/// layer's cost is a `statvfs` delta — then makes `containers` containers of
/// each image, mounted, each writing `writes` files. Everything is removed at
/// the end, and a filesystem that does not come back to where it started is
/// a leak (an error).
pub fn measure_images(
    layout: &dyn Layout,
    scratch: &Scratch,
    images: &[std::sync::Arc<crate::image::IndexedImage>],
    containers: usize,
    writes: usize,
) -> Result<Vec<ImageMeasure>, WorkloadError> {
    use crate::image::Prefix;
    let root = scratch.path();
    let usage = || -> Result<crate::isolate::FsUsage, WorkloadError> {
        settle(root)?;
        Ok(scratch.usage()?)
    };
    let work = root.join("inodes-images");
    let store = work.join("store");
    let empty = usage()?;
    fs::create_dir_all(&store).map_err(WorkloadError::io("creating", &store))?;
    let walk = |p: &Path| census(p).map_err(WorkloadError::io("walking", p));
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut prepared = Vec::new();
    for img in images {
        let info = img.info();
        let n = info.layers.len();
        let before_census = walk(&store)?;
        let mut stored = Vec::new();
        let mut last = None;
        let units: Vec<usize> = if layout.capabilities().shares_layers {
            (0..n).collect()
        } else {
            n.checked_sub(1).into_iter().collect()
        };
        for k in units {
            let l = &info.layers[k];
            let before = usage()?;
            let prefix = Prefix::new(img.source().clone(), k + 1);
            last = Some(layout.import(&store, &prefix)?);
            let after = usage()?;
            let flat = !layout.capabilities().shares_layers;
            stored.push(StoredDelta {
                layer: k,
                chain_id: l.chain_id.clone(),
                digest: l.digest.clone(),
                layers: if flat { n } else { 1 },
                flattened: flat,
                stored_before: !seen.insert(if flat {
                    format!("flat {}", l.chain_id)
                } else {
                    l.chain_id.clone()
                }),
                inodes: after.used_inodes as i64 - before.used_inodes as i64,
                bytes: after.used_bytes as i64 - before.used_bytes as i64,
            });
        }
        let Some(image) = last else {
            return Err(WorkloadError::Verify(format!(
                "{} has no layers to import",
                img.reference()
            )));
        };
        let after_census = walk(&store)?;
        out.push(ImageMeasure {
            reference: img.reference().to_string(),
            layers: n,
            stored,
            census: census_delta(&before_census, &after_census),
            containers,
            containers_inodes: 0,
            containers_bytes: 0,
        });
        prepared.push(image);
    }
    let mut mounted: Vec<(ContainerDirs, Mounted)> = Vec::new();
    let result = (|| -> Result<(), WorkloadError> {
        for (i, (img, image)) in images.iter().zip(&prepared).enumerate() {
            let index = img
                .index()
                .map_err(|e| WorkloadError::Verify(e.to_string()))?;
            let before = usage()?;
            for j in 0..containers {
                let c = layout.create_container(image, &work.join(format!("ctr-{i}-{j}")))?;
                let m = layout.mount(image, &c)?;
                let merged = m.merged.clone();
                mounted.push((c, m));
                write_image_container(&merged, &index, writes)?;
            }
            let after = usage()?;
            out[i].containers_inodes = after.used_inodes as i64 - before.used_inodes as i64;
            out[i].containers_bytes = after.used_bytes as i64 - before.used_bytes as i64;
        }
        Ok(())
    })();
    let mut cleanup = Ok(());
    for (c, m) in mounted {
        cleanup = cleanup.and(m.unmount().map_err(WorkloadError::from));
        cleanup = cleanup.and(layout.remove_container(&c).map_err(WorkloadError::from));
    }
    result?;
    cleanup?;
    layout.remove_store(&store)?;
    fs::remove_dir_all(&work).map_err(WorkloadError::io("removing", &work))?;
    layout.settle_removals(root)?;
    let end = usage()?;
    if end.used_inodes != empty.used_inodes {
        return Err(WorkloadError::Verify(format!(
            "{}: {} inodes still used after removing the images and containers (empty: {}) — a leak",
            layout.name(),
            end.used_inodes,
            empty.used_inodes
        )));
    }
    Ok(out)
}

/// The image's regular files a path can name (`image::index::nameable`).
fn nameable_files(index: &crate::image::ImageIndex) -> Vec<(&Path, u64)> {
    index
        .regular_files()
        .into_iter()
        .filter(|(p, _)| crate::image::index::nameable(p))
        .collect()
}

/// The regular files a container of `index` modifies: `n` of them, evenly
/// spaced in path order (the same ones every time, in every layout).
pub fn image_write_set(index: &crate::image::ImageIndex, n: usize) -> Vec<PathBuf> {
    let files = nameable_files(index);
    if n == 0 || files.is_empty() {
        return Vec::new();
    }
    let step = (files.len() / n).max(1);
    files
        .iter()
        .step_by(step)
        .take(n)
        .map(|(p, _)| p.to_path_buf())
        .collect()
}

/// A container's writes on a real image: `writes` of its files modified
/// (each a copy-up), as many new 4 KiB files, half as many deleted — the
/// synthetic containers' pattern on the image's own files.
pub fn write_image_container(
    merged: &Path,
    index: &crate::image::ImageIndex,
    writes: usize,
) -> Result<(), WorkloadError> {
    let modify = image_write_set(index, writes);
    for f in &modify {
        let path = merged.join(f);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.write_at(b"w", 0).map(drop))
            .map_err(WorkloadError::io("writing", &path))?;
    }
    let files = nameable_files(index);
    let deletes = writes / 2;
    if deletes > 0 && !files.is_empty() {
        let step = (files.len() / deletes).max(1);
        for (f, _) in files.iter().skip(1).step_by(step).take(deletes) {
            let path = merged.join(f);
            match fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                r => r.map_err(WorkloadError::io("deleting", &path))?,
            }
        }
    }
    for j in 0..writes {
        let path = merged.join(format!("container-new-{j}"));
        fs::write(&path, vec![b'n'; 4096]).map_err(WorkloadError::io("creating", &path))?;
    }
    Ok(())
}
