//! The honesty test of `plan`: predict how many images fit on a small real ext4,
//! then fill it until the kernel says ENOSPC, and compare. Also: the real ENOSPC
//! gives a clear error and leaves no mount behind.

use libtest_mimic::{Failed, Trial};

use overlaybench::capacity::{filesystem_at, project, Fleet};
use overlaybench::image::SyntheticImage;
use overlaybench::isolate::{BackingKind, MountApi, Scratch, ScratchRequest};
use overlaybench::layout::{self, Mounted};
use overlaybench::workload::inodes::measure::write_container;
use overlaybench::workload::inodes::{measure_costs, measurement_params, Params as InodesPlan};

fn fleet() -> Fleet {
    Fleet {
        images: 1000,
        layers: 4,
        shared_pct: 50,
        files_per_layer: 40,
        dirs_per_layer: 10,
        containers: 1,
        writes: 4,
    }
}

/// Materialises images (each with its container, mounted and written) until the
/// filesystem refuses; returns how many completed and the error that stopped it.
fn fill(kind: &str, scratch: &Scratch, plan: &InodesPlan) -> (usize, String, Vec<Mounted>) {
    let l = layout::make(kind, &crate::config(MountApi::New));
    let (base, images) = plan.image_set(fleet().layers).expect("image set");
    let root = scratch.path().join("fill");
    let mut mounted = Vec::new();
    // One store, as the measurement used: images share their base by chain id.
    let store = root.join("store");
    if l.capabilities().shares_layers {
        if let Err(e) = l.import(&store, &SyntheticImage::new("base", base.clone())) {
            return (0, e.to_string(), mounted);
        }
    }
    for (i, spec) in images.iter().enumerate() {
        let step = || -> Result<Mounted, String> {
            let img = l
                .import(
                    &store,
                    &SyntheticImage::new(&format!("image-{i}"), spec.clone()),
                )
                .map_err(|e| e.to_string())?;
            let c = l
                .create_container(&img, &root.join(format!("ctr-{i}")))
                .map_err(|e| e.to_string())?;
            let m = l.mount(&img, &c).map_err(|e| e.to_string())?;
            write_container(&m.merged, spec, plan).map_err(|e| e.to_string())?;
            Ok(m)
        };
        match step() {
            Ok(m) => mounted.push(m),
            Err(e) => return (i, e, mounted),
        }
    }
    (images.len(), "never ran out".into(), mounted)
}

fn plan_predicts_real_enospc_within_10_percent() -> Result<(), Failed> {
    let tmp = tempfile::Builder::new()
        .prefix("obk-cap-")
        .tempdir_in("/var/tmp")?;
    let request = ScratchRequest {
        root: tmp.path().join("scratch"),
        kind: BackingKind::Ext4,
        planned_bytes: 0,
        fs_size_bytes: 0,
        inodes: None,
    };
    let mut report = Vec::new();
    // The default rows (the plan's own defaults); the other rows' costs come from
    // the same inodes measurement, checked by the workload's tests.
    for &kind in layout::DEFAULT_LAYOUTS {
        let m = measurement_params(&fleet(), 1);
        let costs = measure_costs(
            &m,
            &[layout::make(kind, &crate::config(MountApi::New))],
            &request,
        )?;
        let small = Scratch::create(&ScratchRequest {
            fs_size_bytes: 256 << 20,
            inodes: Some(8000),
            ..request.clone()
        })?;
        let fs = filesystem_at(small.path())?;
        let predicted = project(&fleet(), &fs, &costs).expect("measured costs project")[0].clone();
        // The same generator and seeds as the measurement, many more images.
        let real_plan = InodesPlan { images: 1000, ..m };
        let (real, stopped_by, mounted) = fill(kind, &small, &real_plan);
        for mnt in mounted {
            mnt.unmount()?;
        }
        drop(small);
        crate::common::assert_nothing_left(tmp.path(), 10);
        if !stopped_by.contains("No space left on device") || !stopped_by.contains("/fill/") {
            return Err(
                format!("{kind}: the fill stopped with an unclear error: {stopped_by}").into(),
            );
        }
        let err = (predicted.max_images as f64 - real as f64).abs() / real.max(1) as f64;
        report.push(format!(
            "{kind}: plan {} images ({}), real {real} — {:.1}% off",
            predicted.max_images,
            predicted.limited_by,
            100.0 * err
        ));
        if real < 5 || err > 0.10 {
            return Err(format!("plan vs reality beyond 10%: {}", report.join("; ")).into());
        }
    }
    eprintln!("capacity honesty: {}", report.join("; "));
    Ok(())
}

pub fn tests() -> Vec<Trial> {
    vec![trial!(plan_predicts_real_enospc_within_10_percent)]
}
