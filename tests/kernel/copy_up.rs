//! copy-up against the kernel: what the workload times really is a copy_up, and
//! its check notices when it is not.

use libtest_mimic::{Failed, Trial};

use overlaybench::image::SyntheticImage;
use overlaybench::image::{Change, ImageSpec, LayerSpec};
use overlaybench::isolate::MountApi;
use overlaybench::layout::{self, CopyUp, CopyUpCheck, Touch};
use overlaybench::workload::copy_up::keys::Op;
use overlaybench::workload::copy_up::measure::{check_of, runs_variant, timed};
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
    check_layout("overlay2", variant, op)
}

/// The layout's own check must fail before the op (nothing copied yet) and
/// pass after it; judged with another expectation it must fail.
fn check_layout(name: &str, variant: Variant, op: Op) -> Result<(), Failed> {
    let scratches = crate::differential::Scratches::new();
    let l = layout::make(
        name,
        &crate::config(MountApi::New).with_options(variant.options()),
    );
    let scratch = scratches.for_layout(l.as_ref())?;
    let img = l.prepare(
        &SyntheticImage::new("test", image().clone()),
        &scratch.path().join("img"),
    )?;
    let c = l.create_container(&img, &scratch.path().join("c"))?;
    let m = l.mount(&img, &c)?;
    let rel_name = format!("data/size-{SIZE}");
    let rel = std::path::Path::new(&rel_name);
    let want = check_of(op, SIZE, variant == Variant::Metacopy);
    l.verify_not_copied(&img, &c, rel)?;
    // Before any write the after-check must fail: nothing was copied (or un-shared) yet.
    // (A chmod copies nothing on btrfs: its check holds before and after.)
    let before_differs = op != Op::Chmod || l.capabilities().copy_up != CopyUp::BlockCow;
    if before_differs && l.verify_copy_up(&img, &c, rel, &want).is_ok() {
        return Err(format!("{name}: the copy-up check passed before any write").into());
    }
    let ns = timed(op, &m.merged.join(rel), SIZE)?;
    l.verify_copy_up(&img, &c, rel, &want)?;
    // Truncating a snapshot's file copies nothing either: only data writes un-share.
    let copies =
        op != Op::Chmod && !(l.capabilities().copy_up == CopyUp::BlockCow && op == Op::Truncate);
    if copies && l.verify_not_copied(&img, &c, rel).is_ok() {
        return Err(
            format!("{name}: after {op:?} the layout still says nothing was copied").into(),
        );
    }
    // The same state judged with another expectation must fail.
    let other = if op == Op::Chmod {
        CopyUpCheck {
            metadata_only: !want.metadata_only,
            ..want
        }
    } else {
        CopyUpCheck {
            touch: Touch::Chmod,
            metadata_only: false,
            ..want
        }
    };
    // Which wrong expectations the state can tell apart: sizes always; a
    // private extent from none on btrfs; a metacopy file from a full copy only
    // where metacopy exists (a full copy after a write looks like one after a chmod).
    let caps = l.capabilities();
    let distinguishes = match (caps.copy_up, op) {
        (_, Op::Append | Op::Truncate) => true,
        (CopyUp::BlockCow, Op::FirstWrite) => true,
        (CopyUp::OverlayXattr, Op::Chmod) => caps.metacopy,
        _ => false,
    };
    if distinguishes && l.verify_copy_up(&img, &c, rel, &other).is_ok() {
        return Err(format!("{name}: {op:?} also passed as {other:?}").into());
    }
    m.unmount()?;
    l.remove_container(&c)?;
    if ns <= 0.0 {
        return Err("no time measured".into());
    }
    Ok(())
}

pub fn tests() -> Vec<Trial> {
    let mut t = vec![
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
    ];
    // Every new layout verifies its own kind of copy: kernel overlay markers
    // (containerd, rootless's user.overlay.*), the FUSE daemon's origin xattr,
    // btrfs extents shared before and private after.
    for name in ["containerd", "rootless", "fuse-overlayfs", "btrfs"] {
        t.push(Trial::test(
            format!("copy_up::{}_verifies_its_own_copy", name.replace('-', "_")),
            move || {
                for op in [Op::FirstWrite, Op::Chmod, Op::Append, Op::Truncate] {
                    check_layout(name, Variant::Default, op)?;
                }
                Ok(())
            },
        ));
    }
    t.push(Trial::test(
        "copy_up::rootless_refuses_metacopy_by_capability",
        || {
            let l = layout::make("rootless", &crate::config(MountApi::New));
            if l.capabilities().metacopy
                || l.with_options(&Variant::Metacopy.options()).is_some()
                || runs_variant(l.as_ref(), Variant::Metacopy)
            {
                return Err("rootless must refuse metacopy through its capabilities".into());
            }
            Ok(())
        },
    ));
    t
}
