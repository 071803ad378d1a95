//! Fixture building speed: files per second each layout materialises an image at
//! (all cores, rayon). Run: `cargo bench --bench materialize`. As root it builds on
//! the tool's default backing (a fresh ext4 on a loop device, in a private mount
//! namespace); otherwise in /var/tmp, without overlay2 (whiteouts and trusted
//! xattrs need root).

use std::path::Path;

use criterion::{BatchSize, Criterion, Throughput};

use overlaybench::image::SyntheticImage;
use overlaybench::image::{generate, GeneratorParams, ImageShape, SizeRange};
use overlaybench::isolate::{BackingKind, MountApi, Privilege, Scratch, ScratchRequest};
use overlaybench::layout::{self, LayoutConfig};

fn bench(c: &mut Criterion, base: &Path) {
    let image = generate(
        &ImageShape::try_from(GeneratorParams {
            seed: 7,
            layers: 8,
            files_per_layer: 2_000,
            dirs_per_layer: 100,
            sizes: SizeRange {
                min_bytes: 0,
                max_bytes: 16 * 1024,
            },
            ..GeneratorParams::default()
        })
        .expect("valid shape"),
    );
    let config = LayoutConfig {
        mount_api: MountApi::New,
        options: Vec::new(),
        privilege: Privilege::Root,
    };
    let mut group = c.benchmark_group("materialize");
    group.sample_size(10);
    for kind in layout::names() {
        let l = layout::make(kind, &config);
        let caps = l.capabilities();
        if caps.lower_per_layer && !nix::unistd::geteuid().is_root() {
            eprintln!("skipping {kind}: needs root (whiteouts, trusted xattrs)");
            continue;
        }
        // Entries the layout writes or links: a diff per layer, a whole tree per
        // layer (the legacy driver re-creates it), or one flattened tree.
        let files: usize = if caps.lower_per_layer {
            image.layers.iter().map(|l| l.changes.len()).sum()
        } else if caps.shares_layers {
            (0..image.depth())
                .map(|k| image.tree_at(k).nodes.len())
                .sum()
        } else {
            image.flatten().nodes.len()
        };
        group.throughput(Throughput::Elements(files as u64));
        group.bench_function(kind, |b| {
            b.iter_batched(
                || {
                    tempfile::Builder::new()
                        .prefix("obbench-")
                        .tempdir_in(base)
                        .expect("tempdir")
                },
                |dir| {
                    l.prepare(
                        &SyntheticImage::new("test", image.clone()),
                        &dir.path().join("img"),
                    )
                    .expect("prepare");
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

fn main() {
    let root = nix::unistd::geteuid().is_root();
    // The namespace must come before criterion or rayon start a thread.
    let scratch = root.then(|| {
        overlaybench::isolate::enter_private_namespace().expect("private mount namespace");
        Scratch::create(&ScratchRequest {
            root: "/var/tmp/overlaybench-bench".into(),
            kind: BackingKind::Ext4,
            planned_bytes: 2 << 30,
            fs_size_bytes: 8 << 30,
            inodes: Some(2_000_000),
        })
        .expect("ext4 scratch")
    });
    let base = scratch
        .as_ref()
        .map(|s| s.path().to_path_buf())
        .unwrap_or_else(|| "/var/tmp".into());
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &base);
    c.final_summary();
}
