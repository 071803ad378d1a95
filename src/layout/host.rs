//! What a layout needs from the host, and how `doctor` checks it: declared in
//! each layout's registry entry (`LayoutEntry::host`), so `run`, `plan` and
//! `doctor` judge host support from one list and a layout doctor has never
//! heard of is assessed by what it declares — never by its name.
//!
//! - `requires`: the kernel features and tools it needs. `run` and `plan` check
//!   those a look tells (`Feature::check`) before measuring; `doctor` reads the
//!   same features from its mount probes (`Feature::probe_name`).
//! - `probe`: how doctor's probe builds a tiny stack of this layout and mounts a
//!   container on it (this build's own layout code, so doctor never claims a
//!   stack `run` cannot build); `tools`: a check that needs no root.
//! - what doctor's reasons say about it (`notes`, `option_form`, `stores`).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{LayoutConfig, LayoutEntry, LayoutError};
use crate::image::{generate, GeneratorParams, ImageShape, SizeRange};
use crate::isolate::{
    erofs_available, mkfs_erofs_takes_tar, new_api_available, run_command, MountApi,
    OverlayParserFacts, Privilege,
};

/// Which engines run a layout (doctor chooses among each kind separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Engines running as real root.
    Rootful,
    /// Rootless engines (in a user namespace).
    Rootless,
}

/// A host feature a layout needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Real root; `why` says what needs it.
    RealRoot { why: &'static str },
    /// The kernel's overlay filesystem mounts.
    OverlayMount,
    /// Overlay stacks more than one lower layer.
    MultipleLowers,
    /// Overlay data-only lower layers (`lowerdir=A::DATA`, `datadir+`).
    DataOnlyLowers,
    /// Overlay's `lowerdir+` (the new mount API passing each layer on its own).
    AppendLowers,
    /// EROFS images mount.
    Erofs,
    /// `mkfs.erofs` (erofs-utils) runs.
    MkfsErofs,
}

impl Feature {
    /// The name of doctor's probe of this feature in `kernel.features` (None:
    /// doctor has no probe of its own for it; its stack probes cover it).
    pub fn probe_name(self) -> Option<&'static str> {
        match self {
            Feature::OverlayMount => Some("overlay mount"),
            Feature::MultipleLowers => Some("multiple lowers"),
            Feature::DataOnlyLowers => Some("data-only lower layers"),
            Feature::AppendLowers => Some(APPEND_LOWERS_PROBE),
            Feature::Erofs => Some("EROFS images"),
            Feature::RealRoot { .. } | Feature::MkfsErofs => None,
        }
    }

    /// What an error says is missing.
    pub fn label(self) -> &'static str {
        match self {
            Feature::RealRoot { .. } => "real root",
            Feature::OverlayMount => "overlay in the kernel",
            Feature::MultipleLowers => "multiple overlay lower layers",
            Feature::DataOnlyLowers => "overlay data-only lower layers",
            Feature::AppendLowers => "overlay's lowerdir+ (new mount API)",
            Feature::Erofs => "EROFS in the kernel",
            Feature::MkfsErofs => "mkfs.erofs (erofs-utils)",
        }
    }

    /// Checked without mounting anything of a layout (`run`'s and `plan`'s
    /// preflight), from `facts`: Err with the detail when missing; None when
    /// only a mount tells (the run's own mounts find out, doctor's probes
    /// report it).
    pub fn check(self, privilege: Privilege, facts: &HostFacts) -> Option<Result<(), String>> {
        let overlay = |judge: fn(&OverlayParserFacts) -> Result<(), String>| {
            facts.overlay.as_ref().map_err(Clone::clone).and_then(judge)
        };
        match self {
            Feature::RealRoot { why } => Some(match privilege {
                Privilege::Root => Ok(()),
                Privilege::Rootless => Err(why.to_string()),
            }),
            Feature::Erofs => Some(facts.erofs.clone()),
            Feature::MkfsErofs => Some(facts.mkfs_erofs.clone()),
            Feature::DataOnlyLowers => Some(overlay(OverlayParserFacts::data_only_lowers)),
            Feature::AppendLowers => Some(overlay(OverlayParserFacts::append_lowers)),
            Feature::OverlayMount | Feature::MultipleLowers => None,
        }
    }
}

/// The name of doctor's `lowerdir+` probe in `kernel.features`.
pub const APPEND_LOWERS_PROBE: &str = "new mount API (lowerdir+)";

/// What `Feature::check` judges from: the kernel's and tools' answers, looked
/// up once (`HostFacts::look`), or written down for another kernel in a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// Overlay's option parser (Err: overlay cannot even be opened).
    pub overlay: Result<OverlayParserFacts, String>,
    /// EROFS in the kernel.
    pub erofs: Result<(), String>,
    /// `mkfs.erofs` that takes a tar.
    pub mkfs_erofs: Result<(), String>,
}

impl HostFacts {
    /// This host's.
    pub fn look() -> HostFacts {
        HostFacts {
            overlay: OverlayParserFacts::look(),
            erofs: erofs_available(),
            mkfs_erofs: mkfs_erofs_takes_tar().map(|_| ()),
        }
    }
}

/// A judgement of whether this host runs a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// It runs (its probe worked, or every feature it needs was seen working).
    Runnable,
    /// It cannot: `missing` is what failed (None: its own probe failed).
    Unsupported { missing: Option<Feature> },
    /// Not known (nothing it rests on was probed).
    Unknown,
}

impl Support {
    /// As doctor's JSON says it (`runnable`: true, false or absent).
    pub fn runnable(&self) -> Option<bool> {
        match self {
            Support::Runnable => Some(true),
            Support::Unsupported { .. } => Some(false),
            Support::Unknown => None,
        }
    }
}

/// What a doctor probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// Whether it worked.
    pub supported: bool,
    /// What was done, or the error.
    pub detail: String,
    /// The tool's version, where the probe ran one.
    pub version: Option<String>,
    /// Wall time of the container mount (or of making the container, for a
    /// layout that mounts nothing).
    pub took: Option<Duration>,
}

impl ProbeOutcome {
    /// A failed probe.
    pub fn failed(detail: String) -> ProbeOutcome {
        ProbeOutcome {
            supported: false,
            detail,
            version: None,
            took: None,
        }
    }

    /// From a stack's outcome.
    pub fn of(r: Result<(String, Duration), String>) -> ProbeOutcome {
        match r {
            Ok((detail, took)) => ProbeOutcome {
                supported: true,
                detail,
                version: None,
                took: Some(took),
            },
            Err(detail) => ProbeOutcome::failed(detail),
        }
    }
}

/// Where a doctor probe runs.
#[derive(Debug, Clone, Copy)]
pub struct ProbeHost<'a> {
    /// An empty dir of its own on doctor's private tmpfs.
    pub dir: &'a Path,
    /// Root, or in a user namespace.
    pub privilege: Privilege,
    /// /proc/filesystems' text.
    pub filesystems: &'a str,
}

/// One of doctor's probes of a layout.
#[derive(Debug, Clone, Copy)]
pub struct StackProbe {
    /// Its name in doctor's `kernel.features` (stable: reports cite it).
    pub name: &'static str,
    /// Needs real root (trusted xattrs, loop devices): a rootless doctor leaves it unprobed.
    pub root_only: bool,
    /// Runs it.
    pub run: fn(&ProbeHost<'_>) -> ProbeOutcome,
}

/// What a doctor reason about a layout rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cite {
    /// A feature's probe (the reason shows whatever it found).
    Feature(Feature),
    /// A feature's probe, its detail first (`"{detail}; {text}"`), or "not probed".
    FeatureDetail(Feature),
    /// A feature's probe, said only when the layout's own probe did not run.
    Unprobed(Feature),
    /// The idmapped-mount probe of the store's filesystem, said only when it worked.
    IdmapWorks,
    /// The store path's filesystem type against `Capabilities::needs_fstype`
    /// (the text follows when it is another).
    PathFstype,
    /// Each of this host's stores of this layout (the text names the kind:
    /// "this host's {text} store …").
    Stores,
    /// How deep an image fits one page of classic mount options in this form
    /// (the text may name `{fit}` layers, the `{page}` size and the kernel's
    /// `{max}` lowers).
    OptionPage(OptionForm),
    /// Nothing: it always holds (the baseline).
    Always,
}

/// One reason doctor gives about a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note {
    /// What it says.
    pub text: &'static str,
    /// What it rests on.
    pub cite: Cite,
}

/// How a container's classic mount option string grows with depth (doctor
/// works out how deep an image fits one page).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionForm {
    /// Docker's `l/<26 chars>` short links relative to the store root.
    ShortLinks,
    /// containerd's lowerdirs relative to the snapshots dir past 3584 bytes.
    RelativeToSnapshots,
}

/// What doctor advises when a host's images are already in a store of this layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreAdvice {
    /// Doctor does not read stores of this layout.
    None,
    /// Keep it; the text may name `{layers}` and `{engine}`.
    Keep(&'static str),
    /// Move to the default store of new installs; the text says why.
    Replace(&'static str),
}

/// What a layout needs from the host and what doctor says about it.
#[derive(Debug, Clone, Copy)]
pub struct HostProfile {
    /// Which engines run it.
    pub engine: Engine,
    /// Features it needs (in the order a missing one is reported).
    pub requires: &'static [Feature],
    /// Doctor's probe of a container of it, made and mounted by this build.
    pub probe: Option<StackProbe>,
    /// Doctor's check that needs no root (its tools, its filesystem in the kernel).
    pub tools: Option<StackProbe>,
    /// What doctor's reasons say about it, in order.
    pub notes: &'static [Note],
    /// A host's store of it.
    pub stores: StoreAdvice,
    /// The store new installs get (`Some(why)`): doctor's choice when nothing
    /// else decides (one entry says so).
    pub default_for_new_hosts: Option<&'static str>,
}

impl HostProfile {
    /// Nothing declared: a rootful layout doctor only knows by its capabilities.
    pub const fn rootful() -> HostProfile {
        HostProfile {
            engine: Engine::Rootful,
            requires: &[],
            probe: None,
            tools: None,
            notes: &[],
            stores: StoreAdvice::None,
            default_for_new_hosts: None,
        }
    }
}

impl LayoutEntry {
    /// Whether this host runs the layout, from what doctor's probes saw
    /// (`seen(name)`: the probe of that name worked, failed, or did not run).
    /// Its own probe decides when it ran; else its tools and every feature it
    /// needs that doctor probes (unknown if any was not probed); the baseline
    /// always runs.
    pub fn judge(&self, seen: impl Fn(&str) -> Option<bool>) -> Support {
        if self.caps.baseline {
            return Support::Runnable;
        }
        // A required feature seen missing decides first, whatever the layout's
        // own probe did: `run` refuses (or skips) the layout for the same
        // feature (`host_support`), so doctor and run never disagree on it.
        if let Some(f) = self
            .host
            .requires
            .iter()
            .find(|f| f.probe_name().is_some_and(|n| seen(n) == Some(false)))
        {
            return Support::Unsupported { missing: Some(*f) };
        }
        if let Some(own) = self.host.probe.and_then(|p| seen(p.name)) {
            return if own {
                Support::Runnable
            } else {
                Support::Unsupported { missing: None }
            };
        }
        let mut known = Vec::new();
        if let Some(t) = self.host.tools {
            known.push((None, seen(t.name)));
        }
        for f in self.host.requires {
            if let Some(name) = f.probe_name() {
                known.push((Some(*f), seen(name)));
            }
        }
        if known.is_empty() || known.iter().any(|(_, s)| s.is_none()) {
            return Support::Unknown;
        }
        match known.iter().find(|(_, s)| *s == Some(false)) {
            Some((missing, _)) => Support::Unsupported { missing: *missing },
            None => Support::Runnable,
        }
    }

    /// Whether this host can run the layout with `privilege`, by the features
    /// it needs that a look tells (`Feature::check`); `LayoutError::Unsupported`
    /// names the first one missing. `run`, `plan` and `claims` ask this before
    /// measuring; doctor's judgement (`judge`) puts the same features first.
    pub fn host_support(&self, privilege: Privilege) -> Result<(), LayoutError> {
        self.host_support_on(privilege, &HostFacts::look())
    }

    /// `host_support` judged from `facts` (another kernel's, in a test).
    pub fn host_support_on(
        &self,
        privilege: Privilege,
        facts: &HostFacts,
    ) -> Result<(), LayoutError> {
        for f in self.host.requires {
            if let Some(Err(detail)) = f.check(privilege, facts) {
                return Err(LayoutError::Unsupported {
                    layout: self.name,
                    feature: f.label(),
                    detail,
                });
            }
        }
        Ok(())
    }
}

/// Layers of the probes' image: enough for a real stack of lowers.
const PROBE_LAYERS: usize = 3;
/// How long a tool may take in a probe.
pub(super) const TOOL_TIMEOUT: Duration = Duration::from_secs(30);

fn io(what: &str, p: &Path) -> impl Fn(std::io::Error) -> String {
    let p = p.display().to_string();
    let what = what.to_string();
    move |e| format!("{what} {p}: {e}")
}

/// Whether /proc/filesystems (its text) lists `fs`.
pub fn kernel_has(filesystems: &str, fs: &str) -> bool {
    filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some(fs))
}

/// The first line of a tool's `--version` output that names a version, without
/// fuse-overlayfs 1.10's "unknown argument ignored: lazytime" noise.
pub fn version_line(output: &str, tool: &str) -> Option<String> {
    output
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("unknown argument ignored"))
        .find(|l| {
            l.starts_with(tool) && l.contains(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
        })
        .map(str::to_string)
}

/// A tool's stdout and stderr, within a short time limit.
pub(super) fn tool_output(program: &str, args: &[&str]) -> Result<String, String> {
    let out = run_command(
        Command::new(program).args(args),
        Duration::from_secs(5),
        "scripts/setup installs it",
    )
    .map_err(|e| e.to_string())?;
    Ok(format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

/// Runs a tool to completion within the time limit; its stderr on failure.
pub(super) fn tool(cmd: &mut Command, hint: &str) -> Result<(), String> {
    let shown = format!("{:?}", cmd.get_program());
    let out = run_command(cmd, TOOL_TIMEOUT, hint).map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A container of a tiny synthetic image, made and mounted by this build's
/// layout `entry` under `dir`: one listing and one write through the mount,
/// checked in the container's own layer where the layout has one. Returns what
/// was done and the mount time (for a layout that mounts nothing, the time to
/// make the container).
pub fn probe_stack(
    entry: &LayoutEntry,
    dir: &Path,
    privilege: Privilege,
) -> Result<(String, Duration), String> {
    let config = LayoutConfig {
        mount_api: if new_api_available() {
            MountApi::New
        } else {
            MountApi::Classic
        },
        options: Vec::new(),
        privilege,
    };
    let l = (entry.create)(&config);
    let shape = ImageShape::try_from(GeneratorParams {
        seed: 13,
        layers: PROBE_LAYERS,
        files_per_layer: 8,
        dirs_per_layer: 2,
        sizes: SizeRange {
            min_bytes: 0,
            max_bytes: 4096,
        },
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    let spec = generate(&shape);
    let img = l
        .prepare_spec(&spec, &dir.join("store"))
        .map_err(|e| format!("building a {PROBE_LAYERS}-layer image: {e}"))?;
    let started = Instant::now();
    let c = l
        .create_container(&img, &dir.join("containers"))
        .map_err(|e| format!("making a container: {e}"))?;
    let created = started.elapsed();
    let m = l
        .mount(&img, &c)
        .map_err(|e| format!("mounting a container: {e}"))?;
    let rel = Path::new("doctor-probe");
    let used = (|| {
        let listed = fs::read_dir(&m.merged)
            .map_err(io("listing", &m.merged))?
            .count();
        if listed == 0 {
            return Err(format!("{} lists nothing", m.merged.display()));
        }
        let probe = m.merged.join(rel);
        fs::write(&probe, "p").map_err(io("writing", &probe))?;
        match l.upper_file(&c, rel) {
            Some(own) if !own.is_file() => Err(format!(
                "a file written through the mount is not at {}",
                own.display()
            )),
            _ => Ok(listed),
        }
    })();
    let took = m.mount_time;
    m.unmount().map_err(|e| e.to_string())?;
    let listed = used?;
    // A layout that mounts nothing (btrfs: the container is a snapshot) pays
    // its start-up cost in making the container: that is its figure.
    let (what, took) = match took {
        Some(t) => ("mounted a container", t),
        None => ("made a container (nothing to mount)", created),
    };
    Ok((
        format!(
            "this build's {} layout built a {PROBE_LAYERS}-layer image, {what} in {} µs, \
             listed its {listed} top entries and wrote a file into the container's own layer",
            entry.name,
            took.as_micros()
        ),
        took,
    ))
}

/// Runs `probe` on a filesystem of its own: a sparse `bytes`-byte image
/// `dir/<fstype>.img` formatted by `mkfs` (given the image path last), on a
/// loop device, mounted at `dir/m` — how doctor probes a layout on the kind
/// of filesystem its store really lives on, not on its tmpfs. Unmounted and
/// detached before it returns. Says what was made, then `probe`'s detail.
pub(super) fn on_own_filesystem(
    dir: &Path,
    fstype: &str,
    bytes: u64,
    mkfs: &mut Command,
    hint: &str,
    probe: impl FnOnce(&Path) -> Result<(String, Duration), String>,
) -> Result<(String, Duration), String> {
    fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let img = dir.join(format!("{fstype}.img"));
    fs::File::create(&img)
        .and_then(|f| f.set_len(bytes))
        .map_err(io("creating", &img))?;
    let program = mkfs.get_program().to_string_lossy().into_owned();
    tool(mkfs.arg(&img), hint)?;
    let dev = crate::isolate::LoopDevice::attach(&img).map_err(|e| e.to_string())?;
    let m = dir.join("m");
    fs::create_dir_all(&m).map_err(io("creating", &m))?;
    let started = Instant::now();
    let guard =
        crate::isolate::mount_device(dev.path(), &m, fstype, false).map_err(|e| e.to_string())?;
    let took = started.elapsed();
    let used = probe(&m);
    guard.unmount().map_err(|e| e.to_string())?;
    drop(dev);
    let (detail, probe_took) = used?;
    Ok((
        format!(
            "{program} made a filesystem on a loop device, mounted in {} µs; {detail}",
            took.as_micros()
        ),
        probe_took,
    ))
}

/// The probe every layout without a special one uses: `probe_stack` as root.
pub(super) fn probe_as_root(entry: &LayoutEntry, at: &ProbeHost<'_>) -> ProbeOutcome {
    ProbeOutcome::of(probe_stack(entry, at.dir, Privilege::Root))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_versions_and_filesystems_from_captured_output() {
        let fuse = "unknown argument ignored: lazytime\nfusermount3 version: 3.14.0\nfuse-overlayfs: version 1.10\nFUSE library version 3.14.0\nusing FUSE kernel interface version 7.31\n";
        assert_eq!(
            version_line(fuse, "fuse-overlayfs").as_deref(),
            Some("fuse-overlayfs: version 1.10")
        );
        assert_eq!(
            version_line(fuse, "FUSE library").as_deref(),
            Some("FUSE library version 3.14.0")
        );
        let fs = "nodev\tsysfs\nnodev\ttmpfs\n\text4\n\tbtrfs\nnodev\tfuse\n\terofs\n";
        assert!(kernel_has(fs, "btrfs") && kernel_has(fs, "fuse") && !kernel_has(fs, "xfs"));
        assert!(!kernel_has(fs, "tmp"), "whole names only");
    }

    /// Debian 12's 6.1: overlay's legacy parser (accepts every fsconfig key,
    /// so it tells nothing of data-only lowers), EROFS and mkfs.erofs there.
    fn facts_6_1() -> HostFacts {
        HostFacts {
            overlay: Ok(OverlayParserFacts {
                unknown_key: Ok(()),
                lowerdir_append: Ok(()),
                data_only: Ok(()),
            }),
            erofs: Ok(()),
            mkfs_erofs: Ok(()),
        }
    }

    #[test]
    fn on_6_1_composefs_is_refused_naming_the_feature_and_rootless_is_not() {
        let f = facts_6_1();
        let composefs = super::super::entry("composefs").expect("layout");
        let e = composefs
            .host_support_on(Privilege::Root, &f)
            .expect_err("composefs")
            .to_string();
        assert!(
            e.contains("data-only lower layers") && e.contains("6.5"),
            "{e}"
        );
        // Rootless mounts with the classic option string where lowerdir+ is
        // missing: nothing refuses it before its mounts (whether overlay
        // mounts in a user namespace, only a mount tells).
        for name in [
            "overlay2",
            "overlay",
            "plain",
            "containerd",
            "rootless",
            "erofs",
            "fuse-overlayfs",
        ] {
            let e = super::super::entry(name).expect("layout");
            assert!(e.host_support_on(Privilege::Root, &f).is_ok(), "{name}");
        }
        // Doctor judges rootless from its own probe (a real mount), not from
        // the lowerdir+ probe.
        let rootless = super::super::entry("rootless").expect("rootless");
        assert_eq!(
            rootless.judge(|n| Some(n != APPEND_LOWERS_PROBE)),
            Support::Runnable
        );
    }

    #[test]
    fn every_layout_is_judged_by_what_it_declares() {
        use std::collections::BTreeMap;
        // Nothing probed: only the baseline is known to run.
        for e in super::super::LAYOUTS {
            let s = e.judge(|_| None);
            assert_eq!(s == Support::Runnable, e.caps.baseline, "{}", e.name);
        }
        // Every probe worked: every layout runs.
        for e in super::super::LAYOUTS {
            assert_eq!(e.judge(|_| Some(true)), Support::Runnable, "{}", e.name);
        }
        // Its own probe failed: unsupported, whatever the features say.
        for e in super::super::LAYOUTS {
            if let Some(p) = e.host.probe {
                let s = e.judge(|n| Some(n != p.name));
                assert_eq!(s, Support::Unsupported { missing: None }, "{}", e.name);
            }
        }
        // Without its own probe, a missing required feature is named.
        let seen: BTreeMap<&str, bool> = BTreeMap::from([("multiple lowers", false)]);
        for e in super::super::LAYOUTS {
            if e.host.requires.contains(&Feature::MultipleLowers) && e.host.tools.is_none() {
                let all_but = |n: &str| {
                    if e.host.probe.is_some_and(|p| p.name == n) {
                        None
                    } else {
                        Some(seen.get(n).copied().unwrap_or(true))
                    }
                };
                assert_eq!(
                    e.judge(all_but),
                    Support::Unsupported {
                        missing: Some(Feature::MultipleLowers)
                    },
                    "{}",
                    e.name
                );
            }
        }
    }
}
