//! Each of Docker's claims checked on the real kernel, one test per claim: the
//! experiment runs on a fresh ext4 scratch filesystem with every registered
//! layout, leaves no mount and no file behind, and finds what this kernel does.
//! Verdicts that rest on timings are not asserted (the suite runs on busy
//! machines); what the kernel does structurally is.

use libtest_mimic::{Failed, Trial};

use overlaybench::claims::{self, Settings};
use overlaybench::isolate::{BackingKind, MountApi, Scratch};
use overlaybench::layout::{self, Layout, MAX_LOWER_LAYERS};
use overlaybench::report::{ClaimRecord, ClaimVerdict};
use overlaybench::workload::Suite;

/// Quick settings, smaller still: the tests check behaviour, not figures.
fn settings() -> Settings {
    Settings {
        copy_sizes_mib: vec![1, 4, 8],
        copy_samples: 2,
        whole_file_mib: 4,
        shared_file_mib: 4,
        sharing_containers: 3,
        inode_images: 2,
        inode_layers: 6,
        inode_containers: 1,
        io_mib: 8,
        random_writes: 128,
        fsyncs: 8,
        io_rounds: 3,
        ..Settings::for_suite(Suite::Quick)
    }
}

fn check_on(slug: &str, kind: BackingKind) -> Result<ClaimRecord, Failed> {
    let (tmp, scratch): (_, Scratch) = crate::scratch(kind);
    let config = crate::config(MountApi::New);
    let layouts: Vec<Box<dyn Layout>> = layout::LAYOUTS
        .iter()
        .filter(|e| e.host_support(config.privilege).is_ok())
        .map(|e| (e.create)(&config))
        .collect();
    let entry = claims::entry(slug).ok_or("no such claim")?;
    let r = claims::check_one(entry, &scratch, &layouts, &config, &settings());
    let left = crate::common::mounts_under(scratch.path());
    if left.len() > 1 {
        return Err(format!("mounts left after {slug}: {left:?}").into());
    }
    if scratch.path().join("claims").join(slug).exists() {
        return Err(format!("{slug} left its directory behind").into());
    }
    drop(scratch);
    drop(tmp);
    if let Some(e) = &r.error {
        return Err(format!("{slug}: the experiment failed: {e}").into());
    }
    if r.verdict == ClaimVerdict::NotTestable && r.reason.is_none() {
        return Err(format!("{slug}: not testable without a reason").into());
    }
    Ok(r)
}

fn check(slug: &str) -> Result<ClaimRecord, Failed> {
    check_on(slug, BackingKind::Ext4)
}

fn expect(r: &ClaimRecord, verdict: ClaimVerdict) -> Result<(), Failed> {
    if r.verdict != verdict {
        return Err(format!(
            "claim {} ({}): {:?}, expected {verdict:?}: {r:#?}",
            r.id, r.slug, r.verdict
        )
        .into());
    }
    Ok(())
}

fn observed(r: &ClaimRecord, what: &str) -> Result<(), Failed> {
    if !r.observations.iter().any(|o| o.contains(what)) && !r.figure.contains(what) {
        return Err(format!("claim {} ({}) does not say '{what}': {r:#?}", r.id, r.slug).into());
    }
    Ok(())
}

fn layer_limit() -> Result<(), Failed> {
    let r = check("layer-limit")?;
    expect(&r, ClaimVerdict::Changed)?;
    if r.value != Some(MAX_LOWER_LAYERS as f64) || r.unit != "layers" {
        return Err(format!("expected {MAX_LOWER_LAYERS} layers: {r:#?}").into());
    }
    observed(&r, "501 layers: refused (Invalid argument")?;
    observed(&r, "125, 128, 500 layers: mounted")
}

fn legacy_hardlinks() -> Result<(), Failed> {
    let r = check("legacy-hardlinks")?;
    expect(&r, ClaimVerdict::Confirmed)?;
    observed(&r, "1 lower layer(s) in force")?;
    observed(&r, "is 1 inode(s) across 4 layer roots (link count 4)")
}

fn read_union() -> Result<(), Failed> {
    let r = check("read-union")?;
    expect(&r, ClaimVerdict::Confirmed)?;
    observed(&r, "4 of 4 read cases as stated")?;
    observed(&r, "the hidden lower file is intact")
}

fn copy_whole_file() -> Result<(), Failed> {
    let r = check("copy-whole-file")?;
    // Whether later writes match a plain file's is timing; the copy is not.
    observed(&r, "copies all of it")?;
    observed(&r, "the upper copy is 4.0 MiB long")
}

fn copy_up_latency() -> Result<(), Failed> {
    let r = check("copy-up-latency")?;
    if r.unit != "ns/MiB" || r.observations.len() != 4 {
        return Err(format!("expected a per-MiB fit over 3 sizes: {r:#?}").into());
    }
    observed(&r, "fit: ")
}

fn whiteouts() -> Result<(), Failed> {
    let r = check("whiteouts")?;
    // The kernel whiteouts a deleted directory too; opaque only once it is made again.
    expect(&r, ClaimVerdict::Refuted)?;
    observed(
        &r,
        "deleting a lower file left a whiteout (char device 0/0)",
    )?;
    observed(&r, "deleting a lower directory tree left a whiteout")?;
    observed(&r, "making the directory again left an opaque directory")?;
    observed(&r, "are unchanged")
}

fn rename_exdev() -> Result<(), Failed> {
    let r = check("rename-exdev")?;
    expect(&r, ClaimVerdict::Changed)?;
    observed(&r, "redirect_dir=off: lower file ok, lower directory EXDEV")?;
    observed(
        &r,
        "redirect_dir=on: lower file ok, lower directory ok (redirect xattr written)",
    )
}

fn page_cache_sharing() -> Result<(), Failed> {
    let r = check("page-cache-sharing")?;
    expect(&r, ClaimVerdict::Confirmed)?;
    observed(&r, "cached in 1 backing file(s)")?;
    observed(&r, "cached in 3 backing files")
}

fn page_cache_sharing_not_testable_on_tmpfs() -> Result<(), Failed> {
    let r = check_on("page-cache-sharing", BackingKind::Tmpfs)?;
    expect(&r, ClaimVerdict::NotTestable)?;
    observed(&r, "tmpfs")
}

fn legacy_inodes() -> Result<(), Failed> {
    let r = check("legacy-inodes")?;
    expect(&r, ClaimVerdict::Confirmed)?;
    match r.value {
        Some(v) if v > 1.2 && r.unit == "x" => Ok(()),
        _ => Err(format!("expected more inodes for the legacy layout: {r:#?}").into()),
    }
}

fn other_drivers() -> Result<(), Failed> {
    let r = check("other-drivers")?;
    if layout::entry("btrfs").is_none() {
        expect(&r, ClaimVerdict::NotTestable)?;
        observed(&r, "no btrfs layout in this build")?;
    } else if r.verdict != ClaimVerdict::NotTestable {
        // Weighed on every figure, never one: start-up, both writes and the
        // page cache (the claims' scratch here is a disk backing).
        for what in [
            "container start-up",
            "first write to a",
            "written sequentially",
            "page cache taken by",
        ] {
            observed(&r, what)?;
        }
        if r.verdict == ClaimVerdict::Depends
            && !(r.figure.contains("overlay2 better on") && r.figure.contains("btrfs better on"))
        {
            return Err(format!("depends names both sides: {r:#?}").into());
        }
    }
    observed(&r, "aufs: ")?;
    observed(&r, "devicemapper: ")?;
    observed(&r, "removed its devicemapper driver in Engine 25.0")
}

fn volumes() -> Result<(), Failed> {
    let r = check("volumes")?;
    observed(&r, "volume (bind mount, same backing)")?;
    observed(&r, "95 % interval")
}

fn fast_disks() -> Result<(), Failed> {
    let r = check("fast-disks")?;
    observed(&r, "backing ext4 on /dev/loop")?;
    observed(&r, "through overlay")
}

type Test = fn() -> Result<(), Failed>;

/// This module's tests.
pub fn tests() -> Vec<Trial> {
    let t: [(&str, Test); 13] = [
        ("claims::1_layer_limit_is_the_kernels_500", layer_limit),
        ("claims::2_legacy_layers_share_inodes", legacy_hardlinks),
        ("claims::3_upper_hides_lower", read_union),
        (
            "claims::4_first_write_copies_the_whole_file",
            copy_whole_file,
        ),
        (
            "claims::5_copy_up_latency_is_fitted_per_mib",
            copy_up_latency,
        ),
        ("claims::6_deleted_dirs_are_whiteouts_not_opaque", whiteouts),
        ("claims::7_rename_depends_on_redirect_dir", rename_exdev),
        ("claims::8_containers_share_page_cache", page_cache_sharing),
        (
            "claims::8_not_testable_on_tmpfs",
            page_cache_sharing_not_testable_on_tmpfs,
        ),
        ("claims::9_legacy_layout_uses_more_inodes", legacy_inodes),
        ("claims::10_aufs_and_devicemapper_are_gone", other_drivers),
        ("claims::11_volumes_measured_beside_the_layer", volumes),
        ("claims::12_backing_measured_beside_overlay", fast_disks),
    ];
    t.into_iter()
        .map(|(name, f)| Trial::test(name, f))
        .collect()
}
