//! copy-up against the kernel: what the workload times really is a copy_up, and
//! its check notices when it is not.

use libtest_mimic::{Failed, Trial};

use overlaybench::image::SyntheticImage;
use overlaybench::image::{Change, ImageSpec, LayerSpec};
use overlaybench::isolate::{BackingKind, MountApi};
use overlaybench::layout::{self};
use overlaybench::workload::copy_up::analyze::Op;
use overlaybench::workload::copy_up::measure::{timed, verify_upper};
use overlaybench::workload::copy_up::Variant;

const SIZE: u64 = 4 << 20;

fn image() -> ImageSpec {
    ImageSpec {
        layers: vec![
            LayerSpec {
                changes: vec![
                    Change::Dir {
                        path: "data".into(),
                        mode: 0o755,
                    },
                    Change::File {
                        path: format!("data/size-{SIZE}").into(),
                        mode: 0o644,
                        size: SIZE,
                        seed: 9,
                    },
                ],
            },
            LayerSpec {
                changes: vec![Change::File {
                    path: "top".into(),
                    mode: 0o644,
                    size: 1,
                    seed: 1,
                }],
            },
        ],
    }
}

fn check(variant: Variant, op: Op) -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let opts = match variant {
        Variant::Metacopy => vec![("metacopy".to_string(), Some("on".to_string()))],
        _ => vec![],
    };
    let l = layout::make("overlay2", &crate::config(MountApi::New).with_options(opts));
    let img = l.prepare(
        &SyntheticImage::new("test", image().clone()),
        &scratch.path().join("img"),
    )?;
    let c = l.create_container(&img, &scratch.path().join("c"))?;
    let m = l.mount(&img, &c)?;
    let rel = format!("data/size-{SIZE}");
    let upper = l
        .upper_file(&c, std::path::Path::new(&rel))
        .ok_or("overlay2 has an upper dir")?;
    // Before any write the check must fail: nothing was copied up yet.
    let on = variant == Variant::Metacopy;
    if verify_upper(&upper, op, SIZE, on, "trusted.overlay.metacopy").is_ok() {
        return Err("verify_upper accepted an upper dir with no copy".into());
    }
    let ns = timed(op, &m.merged.join(format!("data/size-{SIZE}")), SIZE)?;
    verify_upper(&upper, op, SIZE, on, "trusted.overlay.metacopy")?;
    // The same state judged with the other variant's expectation must fail.
    if op == Op::Chmod && verify_upper(&upper, op, SIZE, !on, "trusted.overlay.metacopy").is_ok() {
        return Err(format!("chmod under {variant:?} also passed with metacopy {}", !on).into());
    }
    m.unmount()?;
    if ns <= 0.0 {
        return Err("no time measured".into());
    }
    Ok(())
}

pub fn tests() -> Vec<Trial> {
    vec![
        Trial::test("copy_up::first_write_copies_the_whole_file", || {
            check(Variant::Default, Op::FirstWrite)
        }),
        Trial::test("copy_up::chmod_copies_data_without_metacopy", || {
            check(Variant::Default, Op::Chmod)
        }),
        Trial::test("copy_up::chmod_with_metacopy_copies_metadata_only", || {
            check(Variant::Metacopy, Op::Chmod)
        }),
        Trial::test("copy_up::truncate_and_append_copy_up", || {
            check(Variant::Default, Op::Truncate)?;
            check(Variant::Default, Op::Append)
        }),
    ]
}
