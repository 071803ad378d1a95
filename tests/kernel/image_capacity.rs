//! The honesty test of `plan --image`: a real image (Debian packages' files
//! as installed here, built into an OCI layout by `umoci`) is planned onto a
//! small real ext4 from its measured per-layer costs, then copies of it are
//! stored on that ext4 — each with a mounted container writing as the
//! measurement's did — until the kernel says ENOSPC. The plan must land
//! within 10 % of the real count and name the resource that really ran out,
//! with the base shared by every copy and with nothing shared.

use std::sync::Arc;

use libtest_mimic::{Failed, Trial};

use overlaybench::capacity::filesystem_at;
use overlaybench::capacity::images::{project_images, ImageDemand};
use overlaybench::image::source::{self, ImageRef, OpenOptions};
use overlaybench::image::{IndexedImage, Replica};
use overlaybench::isolate::{BackingKind, MountApi, Scratch, ScratchRequest};
use overlaybench::layout::{self, Layout, Mounted};
use overlaybench::workload::inodes::measure::write_image_container;

use crate::realimage::{bytes, layer_tar, oci_layout, package_items, Item};

/// Files each container modifies (and creates; it deletes half as many).
const WRITES: usize = 10;

/// Three layers: a base of several installed packages' files, a layer of
/// another package and data, a top layer that whites out docs and adds a file.
fn layers() -> Vec<Vec<u8>> {
    let mut seen = std::collections::BTreeMap::new();
    let base = package_items(&["findutils", "grep", "sed", "gzip"], &mut seen);
    let mut mid = package_items(&["tar"], &mut seen);
    mid.extend([
        Item::Dir("srv".into(), 0o755),
        Item::File("srv/app.bin".into(), 0o755, bytes(3, 700 << 10)),
        Item::File("srv/conf".into(), 0o644, bytes(4, 3000)),
    ]);
    let top = vec![
        Item::Dir("usr/share/doc".into(), 0o755),
        Item::Whiteout("usr/share/doc/grep".into()),
        Item::Dir("srv".into(), 0o755),
        Item::File("srv/state".into(), 0o644, bytes(5, 40_000)),
    ];
    vec![layer_tar(&base), layer_tar(&mid), layer_tar(&top)]
}

/// Stores copies of `img` (sharing its bottom `shared` layers) on `scratch`,
/// each with one mounted container that writes, until the filesystem
/// refuses. Returns how many copies completed, the error that stopped the
/// fill, the resource that was exhausted then, and the mounts to undo.
fn fill(
    l: &dyn Layout,
    scratch: &Scratch,
    img: &IndexedImage,
    shared: usize,
) -> Result<(u64, String, &'static str, Vec<Mounted>), Failed> {
    let index = img.index()?;
    let root = scratch.path().join("fill");
    let store = root.join("store");
    std::fs::create_dir_all(&store)?;
    let mut mounted = Vec::new();
    for copy in 0..100_000u64 {
        let step = |mounted: &mut Vec<Mounted>| -> Result<(), String> {
            let replica = Replica::new(img.source().clone(), copy, shared);
            let prepared = l.import(&store, &replica).map_err(|e| e.to_string())?;
            let c = l
                .create_container(&prepared, &root.join(format!("ctr-{copy}")))
                .map_err(|e| e.to_string())?;
            let m = l.mount(&prepared, &c).map_err(|e| e.to_string())?;
            let merged = m.merged.clone();
            mounted.push(m);
            write_image_container(&merged, &index, WRITES).map_err(|e| e.to_string())
        };
        if let Err(e) = step(&mut mounted) {
            let u = scratch.usage()?;
            let total = u.used_inodes + u.free_inodes;
            // ENOSPC means either; the one (nearly) used up is the one that ran out.
            let resource = if u.free_inodes * 100 < total {
                "inodes"
            } else {
                "bytes"
            };
            return Ok((copy, e, resource, mounted));
        }
    }
    Ok((100_000, "never ran out".into(), "none", mounted))
}

fn plan_for_an_image_predicts_real_enospc() -> Result<(), Failed> {
    let tmp = tempfile::Builder::new()
        .prefix("obk-imgcap-")
        .tempdir_in("/var/tmp")?;
    let reference = oci_layout(tmp.path(), &layers())?;
    let src = source::open(&ImageRef::parse(&reference)?, &OpenOptions::default())?;
    let img = Arc::new(IndexedImage::new(Arc::from(src)));
    let request = ScratchRequest {
        root: tmp.path().join("scratch"),
        kind: BackingKind::Ext4,
        planned_bytes: 0,
        fs_size_bytes: 0,
        inodes: None,
    };
    let costs_of = overlaybench::workload::cost_source().ok_or("no cost source registered")?;
    let mut said = Vec::new();
    // Docker's two overlay drivers and the baseline, as the synthetic
    // honesty test (btrfs needs a btrfs backing; the others store as overlay2).
    for &kind in layout::DEFAULT_LAYOUTS {
        let l = layout::make(kind, &crate::config(MountApi::New));
        // (shared bottom layers, ext4 size, inodes): the sizes keep each fill
        // at tens of copies, so one copy off is well inside 10 %; the last
        // case has few inodes, so they run out first.
        for (shared, fs_mib, inodes) in
            [(1usize, 160u64, None), (0, 320, None), (1, 320, Some(6000))]
        {
            let demand = vec![ImageDemand {
                reference: img.reference().to_string(),
                layers: img.info().layers.len(),
                copies: 1,
                shared_layers: shared,
                containers: 1,
            }];
            let costs = costs_of.measure_images(
                std::slice::from_ref(&img),
                &demand,
                WRITES,
                std::slice::from_ref(&l),
                &request,
            )?;
            let small = Scratch::create(&ScratchRequest {
                fs_size_bytes: fs_mib << 20,
                inodes,
                ..request.clone()
            })?;
            let fs = filesystem_at(small.path())?;
            let plan = project_images(&demand, &fs, &costs)?[0].clone();
            let (real, stopped_by, resource, mounted) = fill(l.as_ref(), &small, &img, shared)?;
            for m in mounted {
                m.unmount()?;
            }
            drop(small);
            crate::common::assert_nothing_left(tmp.path(), 10);
            let case = format!(
                "{kind}, {}: plan {} images ({}), real {real} ({resource})",
                match (shared, inodes) {
                    (0, _) => "nothing shared".to_string(),
                    (_, None) => "base shared".to_string(),
                    (_, Some(n)) => format!("base shared, {n} inodes"),
                },
                plan.max_images,
                plan.limited_by
            );
            if !stopped_by.contains("No space left on device") {
                return Err(
                    format!("{case}: the fill stopped on something else: {stopped_by}").into(),
                );
            }
            let off = (plan.max_images as f64 - real as f64).abs() / real.max(1) as f64;
            said.push(format!("{case} — {:.1}% off", 100.0 * off));
            if real < 5 || off > 0.10 || plan.limited_by != resource {
                return Err(format!("plan vs reality: {}", said.join("; ")).into());
            }
        }
    }
    eprintln!("image capacity honesty: {}", said.join("; "));
    Ok(())
}

pub fn tests() -> Vec<Trial> {
    vec![trial!(plan_for_an_image_predicts_real_enospc)]
}
