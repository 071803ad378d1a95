//! inodes' measurement: one image set through every phase on a fresh filesystem
//! per layout, `statvfs` and a census walk after each phase.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::analyze::{Phase, PhaseTable};
use super::params::Params;
use super::NAME;
use crate::capacity::UnitCosts;
use crate::image::{ImageSpec, NodeKind, SyntheticImage};
use crate::isolate::{Scratch, ScratchRequest};
use crate::layout::{Layout, Mounted, PreparedImage};
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

/// Measures `p`'s per-unit costs for each layout, each on a fresh scratch
/// filesystem made like `like` (what `overlaybench plan` does without --from).
pub fn measure_costs(
    p: &Params,
    layouts: &[Box<dyn Layout>],
    like: &ScratchRequest,
) -> Result<BTreeMap<String, UnitCosts>, WorkloadError> {
    let layers = p.layers.first().copied().unwrap_or(1);
    let mut out = BTreeMap::new();
    for layout in layouts {
        let fresh = fresh_scratch(p, layers, like)?;
        let phases = measure_phases(layout.as_ref(), &fresh, p, layers)?;
        if let Some(c) = super::analyze::unit_costs(p, &phases) {
            out.insert(layout.name().to_string(), c);
        }
    }
    Ok(out)
}
