//! Integration tests against the real kernel: real mounts, real filesystems.
//!
//! A custom harness (libtest-mimic) so that `main` can enter a private mount
//! namespace *before* any test thread starts, as the binary does: every mount the
//! tests make dies with this process. Needs root; without it the tests are listed
//! as ignored with the reason.

mod capacity;
mod claims;
#[path = "../common/mod.rs"]
mod common;
mod copy_up;
mod differential;
mod doctor;
mod hostile;
mod image_capacity;
mod images;
mod mounts;
#[path = "../common/realimage.rs"]
#[allow(dead_code)]
mod realimage;
mod registry;
mod stacks;
mod storm;

use libtest_mimic::{Arguments, Trial};

fn main() {
    let args = Arguments::from_args();
    let root = common::is_root();
    if root {
        overlaybench::isolate::enter_private_namespace()
            .expect("entering a private mount namespace");
    } else {
        eprintln!("kernel tests need root (real mounts, loop devices): they are ignored here; CI runs them as root");
    }
    let tests: Vec<Trial> = [
        differential::tests(),
        mounts::tests(),
        copy_up::tests(),
        capacity::tests(),
        doctor::tests(),
        images::tests(),
        hostile::tests(),
        registry::tests(),
        image_capacity::tests(),
        claims::tests(),
        stacks::tests(),
        storm::tests(),
    ]
    .into_iter()
    .flatten()
    .map(|t| t.with_ignored_flag(!root))
    .collect();
    let conclusion = libtest_mimic::run(&args, tests);
    // The shared image fixture lives in a static, which is never dropped.
    images::remove_fixture();
    conclusion.exit();
}

/// A scratch filesystem in a fresh temp dir, for one test.
pub fn scratch(
    kind: overlaybench::isolate::BackingKind,
) -> (tempfile::TempDir, overlaybench::isolate::Scratch) {
    let dir = tempfile::Builder::new()
        .prefix("obk-")
        .tempdir_in("/var/tmp")
        .expect("tempdir");
    let s = overlaybench::isolate::Scratch::create(&overlaybench::isolate::ScratchRequest {
        root: dir.path().join("scratch"),
        kind,
        planned_bytes: 64 << 20,
        fs_size_bytes: 1 << 30,
        inodes: Some(200_000),
    })
    .expect("scratch fs");
    (dir, s)
}

/// Layout settings as root with the given API.
pub fn config(api: overlaybench::isolate::MountApi) -> overlaybench::layout::LayoutConfig {
    overlaybench::layout::LayoutConfig {
        mount_api: api,
        options: Vec::new(),
        privilege: overlaybench::isolate::Privilege::Root,
    }
}
