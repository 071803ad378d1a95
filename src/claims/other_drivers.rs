//! Claim 10: overlay/overlay2 perform better than aufs and devicemapper, and in
//! production overlay2 better than btrfs. aufs and devicemapper are answered
//! from this host's kernel and Docker's own removal notes; the btrfs half needs
//! a btrfs layout and backing in this build, and then compares overlay2 on the
//! claims' scratch filesystem with btrfs on a fresh btrfs one on every figure
//! where they differ in production: a container's start-up, the first write to
//! a big image file, the sequential write of a new file, and the page cache K
//! containers reading one file take. The figures disagree on some hosts (btrfs
//! copies blocks, not files, but shares no page cache between snapshots): the
//! verdict is then *depends*, naming each side's figures (`weigh`).

use std::fs;
use std::path::Path;
use std::process::Command;

use std::time::Instant;

use super::page_cache;
use super::rig::{self, Container, MIB};
use super::weigh::weigh;
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::findings::{Contender, Question};
use crate::isolate::{BackingKind, Scratch, ScratchRequest};
use crate::layout::{self, Layout};
use crate::report::fmt_bytes;

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 10,
    slug: "other-drivers",
    statement: "overlay and overlay2 perform better than aufs and devicemapper, and in production overlay2 \
                performs better than btrfs.",
    check,
    compares: Some(("overlay2", BTRFS)),
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

/// One layout's samples of claim 10's timed figures, ns.
#[derive(Debug, Default)]
struct Race {
    /// A container made and mounted (its start-up before any process runs).
    startup: Vec<f64>,
    /// The first one-byte write to a big image file, cold.
    first: Vec<f64>,
    /// A new file of the same size written sequentially in the container.
    seq: Vec<f64>,
}

/// Times, in `samples` fresh containers of `layout`, a container's start-up,
/// the first one-byte write to a big image file (cold) and a new file written
/// sequentially.
fn race(layout: &dyn Layout, root: &Path, samples: usize, size: u64) -> Result<Race, ClaimError> {
    let img = layout.prepare_spec(
        &rig::image(vec![vec![rig::file("big", size, 1)]]),
        &root.join("img"),
    )?;
    let lower = layout.lower_file(&img, "big".as_ref());
    let buf = rig::buffer();
    let mut out = Race::default();
    for s in 0..samples {
        let dir = root.join(format!("c{s}"));
        rig::settle(root)?;
        let t = Instant::now();
        let c = Container::new(layout, &img, &dir)?;
        out.startup.push(t.elapsed().as_nanos() as f64);
        rig::settle(root)?;
        if let Some(l) = &lower {
            rig::evict(l)?;
        }
        out.first.push(rig::one_byte_write_ns(&c.path("big"))?);
        out.seq
            .push(rig::sequential_write_ns(&c.path("new"), size, &buf)?);
        c.unmount()?;
        rig::remove(&dir)?;
    }
    Ok(out)
}

/// A figure of the experiment as the findings' question it answers.
fn question(
    backing: &str,
    what: String,
    unit: &str,
    lower_is_better: bool,
    sides: [(&str, Vec<f64>); 2],
) -> Question {
    Question {
        workload: CLAIM.slug.into(),
        backing: backing.into(),
        question: what,
        unit: unit.into(),
        lower_is_better,
        contenders: sides
            .into_iter()
            .map(|(layout, samples)| Contender {
                layout: layout.into(),
                figure: String::new(),
                samples,
            })
            .collect(),
        crossover: None,
        condition: None,
    }
}

fn btrfs_half(
    ctx: &ClaimContext<'_>,
    btrfs: &dyn Layout,
    overlay2: &dyn Layout,
) -> Result<Finding, ClaimError> {
    let Ok(kind) = BTRFS.parse::<BackingKind>() else {
        return Ok(Finding::not_testable("no btrfs backing in this build"));
    };
    // overlay2 on the claims' scratch, btrfs on a btrfs of its own.
    let on = format!("{} vs {kind}", ctx.scratch.kind());
    let like = ctx.scratch.request();
    let fs = Scratch::create(&ScratchRequest {
        kind,
        ..like.clone()
    })?;
    let size = ctx.settings.whole_file_mib * MIB;
    let n = ctx.settings.copy_samples;
    let (o, b) = (overlay2.name(), btrfs.name());
    let ro = race(overlay2, &ctx.dir.join(o), n, size)?;
    let rb = race(btrfs, &fs.path().join("claim-btrfs"), n, size)?;
    let shared = ctx.settings.shared_file_mib * MIB;
    let k = ctx.settings.sharing_containers;
    // Page-cache sharing needs a disk backing on the overlay side: on tmpfs the
    // data is the page cache itself and nothing can be compared.
    let cached = if ctx.scratch.kind().data_is_page_cache() {
        None
    } else {
        let co = page_cache::cached_after_reads_in(
            &ctx.dir.join("share-overlay2"),
            overlay2,
            shared,
            k,
        )?;
        let cb = page_cache::cached_after_reads_in(
            &fs.path().join("claim-btrfs-share"),
            btrfs,
            shared,
            k,
        )?;
        Some((co.0, cb.0))
    };
    drop(fs);
    let big = fmt_bytes(size as f64);
    let question = |what, unit, lower, sides| question(&on, what, unit, lower, sides);
    let mut questions = vec![
        question(
            "container start-up (made and mounted) of a 1-layer image".into(),
            "ns",
            true,
            [(o, ro.startup), (b, rb.startup)],
        ),
        question(
            format!("first write to a {big} image file, cold"),
            "ns",
            true,
            [(o, ro.first), (b, rb.first)],
        ),
        question(
            format!("new {big} file written sequentially in a container"),
            "ns",
            true,
            [(o, ro.seq), (b, rb.seq)],
        ),
    ];
    if let Some((co, cb)) = cached {
        questions.push(question(
            format!(
                "page cache taken by {k} containers each reading one {} file",
                fmt_bytes(shared as f64)
            ),
            "bytes",
            true,
            [(o, vec![co as f64]), (b, vec![cb as f64])],
        ));
    }
    let mut finding = weigh(o, b, &questions).finding();
    if cached.is_none() {
        finding.observations.push(
            "page-cache sharing not weighed: on tmpfs the file data is the page cache itself"
                .into(),
        );
    }
    finding.observations.push(format!(
        "medians of {n} fresh containers per layout (timings), page cache read with mincore; \
         a figure counts only when its ratio's 95 % bootstrap interval excludes 1"
    ));
    Ok(finding)
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
