//! Integration tests against the real kernel: real mounts, real filesystems.
//!
//! A custom harness (libtest-mimic) so that `main` can enter a private mount
//! namespace *before* any test thread starts, as the binary does: every mount the
//! tests make dies with this process. Needs root; without it the tests are listed
//! as ignored with the reason.

// First, in a group of its own: its test-registering macros are in scope
// for the modules below.
#[macro_use]
#[path = "../common/mod.rs"]
mod common;

#[path = "../common/appimage.rs"]
#[allow(dead_code)]
mod appimage;
mod capacity;
mod claims;
mod copy_up;
mod differential;
mod doctor;
mod hostile;
mod image_capacity;
mod images;
mod mounts;
mod readset;
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
        readset::tests(),
    ]
    .into_iter()
    .flatten()
    .map(|t| {
        let missing = if root { missing_for(t.name()) } else { None };
        if let Some(why) = &missing {
            eprintln!("{}: ignored on this kernel: {why}", t.name());
        }
        t.with_ignored_flag(!root || missing.is_some())
    })
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

/// What a test needs that this kernel lacks (the kernel matrix boots Debian
/// 12's 6.1 and 6.12 besides the newest): judged by the same host-support
/// check `run` uses, so a test is ignored exactly where `run` would refuse.
fn missing_for(name: &str) -> Option<String> {
    use overlaybench::isolate::{new_api_available, Privilege};
    let layout = |n: &str| {
        overlaybench::layout::entry(n)
            .and_then(|e| e.host_support(Privilege::Root).err())
            .map(|e| e.to_string())
    };
    let lowerdir_append =
        || (!new_api_available()).then(|| "overlay's lowerdir+ (Linux 6.8 and later)".to_string());
    match name {
        "mounts::rootless_mounts_with_userxattr"
        | "copy_up::rootless_verifies_its_own_copy"
        | "copy_up::rootless_refuses_metacopy_by_capability" => layout("rootless"),
        "stacks::composefs_stores_each_file_once"
        | "stacks::composefs_chmod_defers_the_data_copy"
        | "stacks::data_only_overlay_mounts_both_ways"
        | "stacks::real_image_matches_umoci_in_erofs_layouts" => layout("composefs"),
        "mounts::deepest_stack_mounts_with_the_new_api" | "claims::1_layer_limit_is_the_kernels_500" => {
            lowerdir_append()
        }
        "storm::idmapped_lowers_per_layer" | "storm::idmapped_lowers_at_the_common_parent" => {
            (!lowerdir_takes_fds()).then(|| {
                "overlay's lowerdir+ given a file descriptor (Linux 6.13 and later): storm passes idmapped lowers so"
                    .to_string()
            })
        }
        _ => None,
    }
}

/// Whether overlay takes `lowerdir+` as a file descriptor (Linux 6.13): asked
/// of a fresh fs context with the root dir's fd; nothing is mounted.
fn lowerdir_takes_fds() -> bool {
    use rustix::mount::{fsconfig_set_fd, fsopen, FsOpenFlags};
    use std::os::fd::AsFd;
    let (Ok(fs), Ok(root)) = (
        fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC),
        std::fs::File::open("/"),
    ) else {
        return false;
    };
    fsconfig_set_fd(fs.as_fd(), "lowerdir+", root.as_fd()).is_ok()
}

/// Layout settings as root with the given API — the classic one on a kernel
/// without `lowerdir+` (before 6.8), as `run --mount-api auto` picks.
pub fn config(api: overlaybench::isolate::MountApi) -> overlaybench::layout::LayoutConfig {
    use overlaybench::isolate::{new_api_available, MountApi};
    let api = if api == MountApi::New && !new_api_available() {
        MountApi::Classic
    } else {
        api
    };
    overlaybench::layout::LayoutConfig {
        mount_api: api,
        options: Vec::new(),
        privilege: overlaybench::isolate::Privilege::Root,
    }
}
