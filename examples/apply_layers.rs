//! Imports every layer of an image into overlay diff dirs, all layers in
//! parallel (one thread per layer, at most one per core at a time), and
//! prints the wall time and what was written. The import benchmark
//! (`scripts/bench-import`) runs it under `/usr/bin/time -v` beside
//! `containers-storage import-layer` on the same blobs.
//!
//! Usage: apply_layers IMAGE-REF DEST-DIR [--in-place]

use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;

use overlaybench::image::apply::{
    apply_layer, inherit_implicit_dirs, ApplyOptions, DevicePolicy, WhiteoutStyle,
};
use overlaybench::image::source::{self, ImageRef, OpenOptions};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(reference), Some(dest)) = (args.get(1), args.get(2)) else {
        anyhow::bail!("usage: apply_layers IMAGE-REF DEST-DIR [--in-place]");
    };
    let in_place = args.iter().any(|a| a == "--in-place");
    let dest = PathBuf::from(dest);
    let src = source::open(&ImageRef::parse(reference)?, &OpenOptions::default())?;
    let n = src.info().layers.len();
    let start = Instant::now();
    let stats = if in_place {
        let opts = ApplyOptions {
            style: WhiteoutStyle::InPlace,
            devices: DevicePolicy::Create,
            owners: true,
        };
        std::fs::create_dir_all(&dest)?;
        (0..n)
            .map(|i| apply_layer(&*src, i, &dest, &opts))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        let opts = ApplyOptions {
            style: WhiteoutStyle::OverlayDiff {
                xattr_prefix: "trusted.overlay.",
            },
            devices: DevicePolicy::Create,
            owners: true,
        };
        let dirs: Vec<PathBuf> = (0..n).map(|i| dest.join(format!("{i}/diff"))).collect();
        let stats = dirs
            .par_iter()
            .enumerate()
            .map(|(i, d)| {
                std::fs::create_dir_all(d)?;
                Ok(apply_layer(&*src, i, d, &opts)?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let implicit: Vec<Vec<PathBuf>> = stats.iter().map(|s| s.implicit_dirs.clone()).collect();
        inherit_implicit_dirs(&dirs, &implicit)?;
        stats
    };
    let secs = start.elapsed().as_secs_f64();
    let bytes: u64 = stats.iter().map(|s| s.bytes).sum();
    let entries: u64 = stats.iter().map(|s| s.entries).sum();
    println!("{reference}: {n} layers, {entries} entries, {bytes} bytes in {secs:.3} s");
    for (i, s) in stats.iter().enumerate() {
        println!(
            "  layer {i}: files {} dirs {} symlinks {} hardlinks {} whiteouts {} opaques {} devices {} fifos {} xattrs {} bytes {}",
            s.files, s.dirs, s.symlinks, s.hardlinks, s.whiteouts, s.opaques, s.devices, s.fifos, s.xattrs, s.bytes
        );
    }
    Ok(())
}
