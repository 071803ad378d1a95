//! Pure: what the user's images (`--image`) show, as inodes cases and
//! figures — per layer of each image's streams (before any layout stores it),
//! and per stored unit, image and container of one layout's measurement.

use super::keys::{ImageMeasure, ImageView, Quantity, Resource, NAME, STREAM};
use crate::report::Derived;
use crate::workload::{CaseView, Recorded};

/// Records what the images' streams show (layout `stream`): per layer,
/// entries by kind and bytes; per image, the largest directories.
pub fn record_profiles(out: &mut Recorded, profiles: &[crate::image::ImageProfile]) {
    for p in profiles {
        let n = p.layers.len();
        for l in &p.layers {
            let v = ImageView {
                layer: Some(l.index),
                digest: Some(l.digest.clone()),
                chain_id: Some(l.chain_id.clone()),
                ..ImageView::new(&p.reference, n, Quantity::Layer)
            };
            for (metric, unit, value) in [
                ("stream_entries", "entries", l.entries),
                ("stream_files", "entries", l.files),
                ("stream_dirs", "entries", l.dirs + l.implicit_dirs),
                ("stream_symlinks", "entries", l.symlinks),
                ("stream_hardlinks", "entries", l.hardlinks),
                ("stream_whiteouts", "entries", l.whiteouts),
                ("stream_opaques", "entries", l.opaques),
                ("stream_devices", "entries", l.devices),
                ("stream_file_bytes", "bytes", l.file_bytes),
                ("stream_hidden_file_bytes", "bytes", l.hidden_file_bytes),
                ("stream_median_file_bytes", "bytes", l.median_file_bytes),
                ("stream_max_file_bytes", "bytes", l.max_file_bytes),
            ] {
                out.case_of(&v, STREAM, metric, unit, vec![value as f64]);
            }
        }
        for d in &p.largest_dirs {
            let v = ImageView {
                dir: Some(d.path.clone()),
                ..ImageView::new(&p.reference, n, Quantity::Image)
            };
            out.case_of(&v, STREAM, "dir_entries", "entries", vec![d.entries as f64]);
        }
        let v = ImageView::new(&p.reference, n, Quantity::Image);
        for (metric, unit, value) in [
            ("stream_paths", "entries", p.paths),
            ("stream_hardlink_paths", "entries", p.hardlink_paths),
            ("stream_file_bytes", "bytes", p.file_bytes),
        ] {
            out.case_of(&v, STREAM, metric, unit, vec![value as f64]);
        }
    }
}

/// Records one layout's measurement of the images: per stored unit, per
/// image and per container, inodes and bytes (cases, and `per-unit` derived
/// figures a plan reads back), and what a walk of the store found per image.
pub fn record_images(
    out: &mut Recorded,
    backing: &str,
    layout: &str,
    writes: usize,
    measured: &[ImageMeasure],
) {
    let per_unit =
        |out: &mut Recorded, v: &ImageView, resource: Resource, value: f64, per: &str| {
            let word = match resource {
                Resource::Inodes => "inodes",
                Resource::Bytes => "bytes",
            };
            out.derived.push(Derived {
                workload: NAME.into(),
                layout: layout.into(),
                kind: "per-unit".into(),
                params: ImageView {
                    resource: Some(resource),
                    ..v.clone()
                }
                .params(),
                value,
                unit: format!("{word}/{per}"),
                r2: None,
                intercept: None,
                n: 1,
                ..Default::default()
            });
        };
    for m in measured {
        let base = ImageView {
            backing: Some(backing.into()),
            ..ImageView::new(&m.reference, m.layers, Quantity::Layer)
        };
        let (mut inodes, mut bytes) = (0i64, 0i64);
        for u in &m.stored {
            let v = ImageView {
                quantity: if u.flattened {
                    Quantity::Image
                } else {
                    Quantity::Layer
                },
                layer: Some(u.layer),
                digest: Some(u.digest.clone()),
                chain_id: Some(u.chain_id.clone()),
                flattened: Some(u.flattened),
                stored_before: Some(u.stored_before),
                ..base.clone()
            };
            out.case_of(&v, layout, "stored_inodes", "inodes", vec![u.inodes as f64]);
            out.case_of(&v, layout, "stored_bytes", "bytes", vec![u.bytes as f64]);
            if !u.stored_before {
                let per = if u.flattened { "image" } else { "layer" };
                per_unit(out, &v, Resource::Inodes, u.inodes as f64, per);
                per_unit(out, &v, Resource::Bytes, u.bytes as f64, per);
            }
            inodes += u.inodes;
            bytes += u.bytes;
        }
        let img = ImageView {
            quantity: Quantity::Image,
            ..base.clone()
        };
        out.case_of(&img, layout, "stored_inodes", "inodes", vec![inodes as f64]);
        out.case_of(&img, layout, "stored_bytes", "bytes", vec![bytes as f64]);
        for (metric, value) in [
            ("walk_dirs", m.census.dirs),
            ("walk_files", m.census.files),
            ("walk_whiteouts", m.census.whiteouts),
            ("walk_symlinks", m.census.symlinks),
            ("walk_hardlink_paths", m.census.hardlink_paths),
            ("walk_inodes", m.census.inodes),
        ] {
            out.case_of(&img, layout, metric, "entries", vec![value as f64]);
        }
        if m.containers > 0 {
            let c = ImageView {
                quantity: Quantity::Container,
                containers: Some(m.containers),
                writes: Some(writes),
                ..base.clone()
            };
            let n = m.containers as f64;
            let (ci, cb) = (
                m.containers_inodes as f64 / n,
                m.containers_bytes as f64 / n,
            );
            out.case_of(&c, layout, "container_inodes", "inodes", vec![ci]);
            out.case_of(&c, layout, "container_bytes", "bytes", vec![cb]);
            per_unit(out, &c, Resource::Inodes, ci, "container");
            per_unit(out, &c, Resource::Bytes, cb, "container");
        }
    }
}
