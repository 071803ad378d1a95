//! The timed path of the copy-up workload on a small file: a fresh overlay2
//! container per iteration (made outside the clock), then open-for-write + one
//! byte + close — the copy_up. For developers changing the timing code: the figure
//! must stay what the kernel costs, not what the harness adds.
//! Run as root: `cargo bench --bench copy_up`.

use std::path::PathBuf;

use criterion::{BatchSize, Criterion};

use overlaybench::image::SyntheticImage;
use overlaybench::image::{Change, ImageSpec, LayerSpec};
use overlaybench::isolate::{BackingKind, MountApi, Privilege, Scratch, ScratchRequest};
use overlaybench::layout::{self, LayoutConfig};
use overlaybench::workload::copy_up::keys::Op;
use overlaybench::workload::copy_up::measure::timed;

const SIZE: u64 = 64 * 1024;

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("copy_up bench: needs root (overlay mounts, loop devices); skipped");
        return;
    }
    // Before criterion or rayon start a thread.
    overlaybench::isolate::enter_private_namespace().expect("private mount namespace");
    let scratch = Scratch::create(&ScratchRequest {
        root: "/var/tmp/overlaybench-bench".into(),
        kind: BackingKind::Ext4,
        planned_bytes: 256 << 20,
        fs_size_bytes: 2 << 30,
        inodes: None,
    })
    .expect("ext4 scratch");
    let l = layout::make(
        "overlay2",
        &LayoutConfig {
            mount_api: MountApi::New,
            options: Vec::new(),
            privilege: Privilege::Root,
        },
    );
    let image = ImageSpec {
        layers: vec![
            LayerSpec {
                changes: vec![Change::File {
                    path: "f".into(),
                    mode: 0o644,
                    size: SIZE,
                    seed: 1,
                }],
            },
            LayerSpec {
                changes: vec![Change::File {
                    path: "top".into(),
                    mode: 0o644,
                    size: 1,
                    seed: 2,
                }],
            },
        ],
    };
    let img = l
        .prepare(
            &SyntheticImage::new("test", image.clone()),
            &scratch.path().join("img"),
        )
        .expect("image");
    let mut c = Criterion::default().configure_from_args();
    let mut n = 0usize;
    c.bench_function("copy_up first-write 64 KiB (overlay2, ext4)", |b| {
        b.iter_batched(
            || {
                n += 1;
                let dir: PathBuf = scratch.path().join(format!("c{n}"));
                let ctr = l.create_container(&img, &dir).expect("container");
                let m = l.mount(&img, &ctr).expect("mount");
                (m, dir)
            },
            |(m, dir)| {
                timed(Op::FirstWrite, &m.merged.join("f"), SIZE).expect("copy_up");
                (m, dir)
            },
            BatchSize::PerIteration,
        )
    });
    c.final_summary();
}
