//! Claim 10: overlay/overlay2 perform better than aufs and devicemapper, and in
//! production overlay2 better than btrfs. aufs and devicemapper are answered
//! from this host's kernel and Docker's own removal notes; the btrfs half needs
//! a btrfs layout and backing in this build, and then compares overlay2 on the
//! claims' scratch filesystem with btrfs on a fresh btrfs one: the first write
//! to a big image file and the sequential write of a new file in a container.

use std::fs;
use std::path::Path;
use std::process::Command;

use super::rig::{self, Container, MIB};
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::isolate::{BackingKind, Scratch, ScratchRequest};
use crate::layout::{self, Layout};
use crate::report::{fmt_ns, ClaimVerdict};

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 10,
    slug: "other-drivers",
    statement: "overlay and overlay2 perform better than aufs and devicemapper, and in production overlay2 \
                performs better than btrfs.",
    check,
};

/// The named driver of the statement's btrfs half.
const BTRFS: &str = "btrfs";

/// What this host's kernel and Docker say about aufs, from /proc/filesystems
/// and the kernel's module directory (`None` when the host has none).
pub fn aufs_evidence(proc_filesystems: &str, modules: Option<&str>) -> String {
    let in_kernel = proc_filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("aufs"));
    let as_module = modules.is_some_and(|m| m.contains("/aufs.ko"));
    let here = match (in_kernel, as_module) {
        (true, _) => "this kernel has aufs",
        (false, true) => "aufs is only a module here (not loaded)",
        (false, false) => "this kernel has no aufs (not in /proc/filesystems, no module)",
    };
    format!("aufs: {here}; it was never in mainline Linux, and Docker removed its aufs driver in Engine 24.0")
}

/// What this host says about device-mapper, from /proc/misc.
pub fn devicemapper_evidence(proc_misc: &str) -> String {
    let dm = proc_misc
        .lines()
        .any(|l| l.split_whitespace().last() == Some("device-mapper"));
    format!(
        "devicemapper: {}; Docker removed its devicemapper driver in Engine 25.0 (deprecated since 18.09)",
        if dm {
            "this kernel has device-mapper"
        } else {
            "this kernel has no device-mapper (no /proc/misc entry)"
        }
    )
}

fn dockerd_version() -> Option<String> {
    let out = Command::new("dockerd").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

fn host_evidence() -> Vec<String> {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default();
    let release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let modules =
        fs::read_to_string(Path::new("/lib/modules").join(&release).join("modules.dep")).ok();
    let mut out = vec![
        aufs_evidence(crate::host::kernel_filesystems(), modules.as_deref()),
        devicemapper_evidence(&read("/proc/misc")),
    ];
    out.push(match dockerd_version() {
        Some(v) => format!(
            "dockerd on this host: {v} (a build from before those removals still lists them)"
        ),
        None => "no dockerd on this host".into(),
    });
    out
}

/// First one-byte write to a big image file (cold) and a new file written
/// sequentially, in containers of `layout`; medians, ns.
fn race(
    layout: &dyn Layout,
    root: &Path,
    samples: usize,
    size: u64,
) -> Result<(f64, f64), ClaimError> {
    let img = layout.prepare_spec(
        &rig::image(vec![vec![rig::file("big", size, 1)]]),
        &root.join("img"),
    )?;
    let lower = layout.lower_file(&img, "big".as_ref());
    let buf = rig::buffer();
    let (mut first, mut seq) = (Vec::new(), Vec::new());
    for s in 0..samples {
        let dir = root.join(format!("c{s}"));
        let c = Container::new(layout, &img, &dir)?;
        rig::settle(root)?;
        if let Some(l) = &lower {
            rig::evict(l)?;
        }
        first.push(rig::one_byte_write_ns(&c.path("big"))?);
        seq.push(rig::sequential_write_ns(&c.path("new"), size, &buf)?);
        c.unmount()?;
        rig::remove(&dir)?;
    }
    Ok((rig::median(&first), rig::median(&seq)))
}

fn btrfs_half(
    ctx: &ClaimContext<'_>,
    btrfs: &dyn Layout,
    overlay2: &dyn Layout,
) -> Result<Finding, ClaimError> {
    let Ok(kind) = BTRFS.parse::<BackingKind>() else {
        return Ok(Finding::not_testable("no btrfs backing in this build"));
    };
    let like = ctx.scratch.request();
    let fs = Scratch::create(&ScratchRequest {
        kind,
        ..like.clone()
    })?;
    let size = ctx.settings.whole_file_mib * MIB;
    let n = ctx.settings.copy_samples;
    let (o_first, o_seq) = race(overlay2, &ctx.dir.join("overlay2"), n, size)?;
    let (b_first, b_seq) = race(btrfs, &fs.path().join("claim-btrfs"), n, size)?;
    drop(fs);
    let wins = usize::from(o_first <= b_first) + usize::from(o_seq <= b_seq);
    let verdict = if wins == 2 {
        ClaimVerdict::Confirmed
    } else {
        ClaimVerdict::Refuted
    };
    Ok(Finding::new(
        verdict,
        format!(
            "overlay2 vs btrfs: first write to a big file {} vs {}; new-file sequential write {} vs {}",
            fmt_ns(o_first),
            fmt_ns(b_first),
            fmt_ns(o_seq),
            fmt_ns(b_seq)
        ),
    )
    .with_value(b_seq / o_seq.max(1.0), "x"))
}

fn check(ctx: &ClaimContext<'_>) -> Result<Finding, ClaimError> {
    let evidence = host_evidence();
    let finding = match (layout::entry(BTRFS), rig::overlay_layout(ctx)) {
        (None, _) => Finding::not_testable(
            "no btrfs layout in this build (the btrfs half); aufs and devicemapper are gone",
        ),
        (Some(_), Err(f)) => f,
        (Some(entry), Ok(overlay2)) => {
            let btrfs = (entry.create)(ctx.config);
            btrfs_half(ctx, btrfs.as_ref(), overlay2)?
        }
    };
    Ok(finding.with_observations(evidence))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_reads_the_kernel_lists() {
        let fs = "nodev\tsysfs\n\text4\nnodev\toverlay\n";
        assert!(aufs_evidence(fs, None).contains("no aufs"));
        assert!(aufs_evidence("nodev\taufs\n", None).contains("has aufs"));
        assert!(aufs_evidence(fs, Some("kernel/fs/aufs/aufs.ko:\n")).contains("only a module"));
        assert!(
            devicemapper_evidence(" 58 rfkill\n236 device-mapper\n").contains("has device-mapper")
        );
        assert!(devicemapper_evidence(" 58 rfkill\n").contains("no device-mapper"));
    }
}
