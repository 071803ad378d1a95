//! `overlaybench doctor`: what this host's kernel, filesystems, engine configs and
//! stores say about container storage — overlay2, containerd's snapshotter,
//! rootless overlay, fuse-overlayfs, btrfs, EROFS — the production limits each
//! store is near, and a recommendation among the stacks this host can run, each
//! reason citing a figure measured here. Reads only; its probes mount on a
//! private tmpfs of its own, inside the private mount namespace.

pub mod checks;
pub mod config;
pub mod images;
pub mod probe;
pub mod recommend;
mod render;
pub mod stack_mounts;
pub mod stacks;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::isolate::{MountInfo, Privilege};
use crate::layout::OVERLAY_FSTYPE;
use checks::Check;
use config::EngineConfig;
use probe::FeatureProbe;
use recommend::{ReportEvidence, StackAssessment};
pub use render::render_text;
use store::StoreInventory;

/// The version of doctor's JSON (fields are added without changing it).
pub const SCHEMA_VERSION: u32 = 1;

/// The kernel side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KernelReport {
    /// `uname -r`.
    pub release: String,
    /// Whether /proc/filesystems lists overlay.
    pub overlay_available: bool,
    /// `module`, `built-in` or `absent`.
    pub overlay_source: String,
    /// /sys/module/overlay/parameters.
    pub params: BTreeMap<String, String>,
    /// Features observed by mounting.
    pub features: Vec<FeatureProbe>,
    /// Deepest lower stack that mounted (None if not probed).
    pub max_lower_layers: Option<usize>,
    /// Why probes were skipped, if they were.
    pub probe_error: Option<String>,
    /// The filesystem the probes mounted on.
    pub probe_backing: Option<String>,
    /// The page size (classic mount(2) copies one page of options).
    #[serde(default)]
    pub page_bytes: u64,
}

/// The backing path (where the store lives).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PathReport {
    /// The path inspected.
    pub path: String,
    /// Filesystem type of the mount holding it.
    pub fstype: String,
    /// Its mount options.
    pub mount_options: String,
    /// Whether readdir reports entry types (overlay refuses a lower/upper without d_type).
    pub d_type: Option<bool>,
    /// Whether a file clone (reflink) is possible, by filesystem type and features.
    pub reflink: Option<bool>,
    /// How d_type and reflink were judged.
    pub detail: String,
    /// Size, bytes.
    pub size_bytes: u64,
    /// Free bytes.
    pub free_bytes: u64,
    /// Total inodes.
    pub inodes_total: u64,
    /// Free inodes.
    pub inodes_free: u64,
    /// Inode headroom in plain words.
    pub headroom: String,
    /// xfs only: whether it was made with `ftype=1` (from `xfs_info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xfs_ftype: Option<bool>,
}

/// One reason behind the recommendation, pointing at its figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reason {
    /// What it means.
    pub text: String,
    /// The report field and value it rests on.
    pub figure: String,
}

/// What to use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recommendation {
    /// The stack for a rootful engine: `containerd`, `overlay2`, `btrfs`,
    /// `overlay`, …, or `fix-host-first` / `no-overlay`.
    pub choice: String,
    /// Why.
    pub reasons: Vec<Reason>,
    /// Every stack as this host can run it.
    #[serde(default)]
    pub stacks: Vec<StackAssessment>,
    /// The stack for a rootless engine (`rootless`: native overlay with
    /// userxattr, or `fuse-overlayfs`), when one runs here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootless_choice: Option<String>,
    /// Figures from a `run` report given with `--from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<ReportEvidence>,
}

/// The whole doctor report (`--json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DoctorReport {
    /// Format version.
    pub schema_version: u32,
    /// Always `doctor`.
    pub kind: String,
    /// Kernel and overlay.
    pub kernel: KernelReport,
    /// The backing path.
    pub path: PathReport,
    /// Engine configs found.
    pub engines: Vec<EngineConfig>,
    /// The store whose filesystem `path` describes (the one named, else the first
    /// found), also listed in `stores`.
    pub store: Option<StoreInventory>,
    /// Every store inventoried: the one named with `--store`, or all found at the
    /// engines' default places (Docker, containers-storage, containerd, each
    /// user's rootless store).
    #[serde(default)]
    pub stores: Vec<StoreInventory>,
    /// Production limits, each with its figure.
    #[serde(default)]
    pub checks: Vec<Check>,
    /// The recommendation.
    pub recommendation: Recommendation,
    /// Per-layer profiles of the images asked for (`--image`) and of the
    /// store's images, read from their layer streams (nothing mounted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<images::DoctorImage>,
    /// Store images left out of `images` (beyond `images::MAX_STORE_IMAGES`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub store_images_left_out: usize,
    /// What could not be inspected (a store found but unreadable).
    #[serde(default)]
    pub notes: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Kernel facts that need no mounting, from a root (normally `/`).
pub fn kernel_facts(root: &Path) -> KernelReport {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_default();
    let filesystems = if root == Path::new("/") {
        crate::host::kernel_filesystems().to_string()
    } else {
        read("proc/filesystems")
    };
    let available = filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some(OVERLAY_FSTYPE));
    let in_modules = read("proc/modules")
        .lines()
        .any(|l| l.split_whitespace().next() == Some(OVERLAY_FSTYPE));
    let host = crate::host::HostInfo::collect(root);
    KernelReport {
        release: host.kernel_release,
        overlay_available: available,
        overlay_source: if !available {
            "absent".into()
        } else if in_modules {
            "module".into()
        } else {
            "built-in".into()
        },
        params: host.overlay_params,
        page_bytes: host.page_size,
        ..Default::default()
    }
}

/// Filesystem facts about `path`, read only.
pub fn path_facts(path: &Path) -> std::io::Result<PathReport> {
    let canon = path.canonicalize()?;
    let info = MountInfo::current()?;
    let mount = info
        .entries
        .iter()
        .filter(|e| canon.starts_with(&e.mount_point))
        .max_by_key(|e| e.mount_point.as_os_str().len());
    let fstype = mount.map(|m| m.fstype.clone()).unwrap_or_default();
    let st = nix::sys::statvfs::statvfs(&canon).map_err(std::io::Error::from)?;
    let frsize = st.fragment_size() as u64;
    let (total, free) = (st.files() as u64, st.files_free() as u64);
    // d_type: readdir's entry types (DT_UNKNOWN means the fs does not record them).
    let mut d_type = None;
    if let Ok(mut dir) = nix::dir::Dir::open(
        &canon,
        nix::fcntl::OFlag::O_RDONLY,
        nix::sys::stat::Mode::empty(),
    ) {
        for e in dir.iter().flatten() {
            let name = e.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            d_type = Some(e.file_type().is_some());
            break;
        }
    }
    let xfs = if fstype == "xfs" {
        mount.and_then(|m| xfs_info(&m.source))
    } else {
        None
    };
    // A filesystem a block-CoW layout needs clones files by design (btrfs).
    let block_cow = crate::layout::LAYOUTS.iter().any(|l| {
        l.caps.copy_up == crate::layout::CopyUp::BlockCow
            && l.caps.needs_fstype == Some(fstype.as_str())
    });
    let reflink = match fstype.as_str() {
        _ if block_cow => Some(true),
        "xfs" => xfs.and_then(|x| x.0),
        "ext4" | "ext3" | "ext2" | "tmpfs" => Some(false),
        _ => None,
    };
    let used_pct = if total > 0 {
        100.0 * (total - free) as f64 / total as f64
    } else {
        0.0
    };
    Ok(PathReport {
        path: canon.display().to_string(),
        mount_options: mount.map(|m| format!("{},{}", m.mount_options, m.super_options)).unwrap_or_default(),
        d_type,
        reflink,
        detail: format!(
            "d_type from readdir of {} ({}); reflink from the filesystem type{} — nothing is written to probe it",
            canon.display(),
            if d_type.is_some() { "an entry's type" } else { "empty dir: unknown" },
            if fstype == "xfs" { " and xfs_info" } else { "" }
        ),
        fstype,
        size_bytes: st.blocks() as u64 * frsize,
        free_bytes: st.blocks_available() as u64 * frsize,
        inodes_total: total,
        inodes_free: free,
        xfs_ftype: xfs.and_then(|x| x.1),
        headroom: if total == 0 {
            "this filesystem has no fixed inode count (allocated on demand)".into()
        } else {
            format!(
                "{used_pct:.1}% of {total} inodes used, {free} free — room for about {} more image layers of 1000 files each",
                free / 1000
            )
        },
    })
}

/// `(reflink, ftype)` of an xfs filesystem, from `xfs_info`.
fn xfs_info(device: &str) -> Option<(Option<bool>, Option<bool>)> {
    let out = crate::isolate::run_command(
        std::process::Command::new("xfs_info").arg(device),
        std::time::Duration::from_secs(30),
        "apt-get install xfsprogs",
    )
    .ok()?;
    Some(parse_xfs_info(&String::from_utf8_lossy(&out.stdout)))
}

/// `(reflink, ftype)` from `xfs_info`'s text (`reflink=1`, `ftype=1`).
pub fn parse_xfs_info(text: &str) -> (Option<bool>, Option<bool>) {
    let flag = |key: &str| {
        text.split([' ', ','])
            .find_map(|w| w.strip_prefix(key))
            .map(|v| v.starts_with('1'))
    };
    (flag("reflink="), flag("ftype="))
}

/// The checks that fail (`name: figure`), for `--exit-code`: a node-problem-detector
/// plugin reports a problem exactly when one of them does.
pub fn failing_checks(d: &DoctorReport) -> Vec<String> {
    d.checks
        .iter()
        .filter(|c| c.status == checks::CheckStatus::Fail)
        .map(|c| format!("{}: {}", c.name, c.figure))
        .collect()
}

/// Runs the probes. First those that mount nothing visible (idmapped clones of
/// `path`'s mount, detached and never attached), then the overlay and stack
/// probes on a private tmpfs mounted over an existing directory inside the
/// private namespace: nothing is created or written on the host. Call it after
/// every read of the host's files (the tmpfs hides the directory it covers from
/// this process).
pub fn probe_kernel(k: &mut KernelReport, privilege: Privilege, path: &Path) {
    let filesystems = crate::host::kernel_filesystems();
    let mut stack_probes = Vec::new();
    if privilege == Privilege::Root {
        let shown = format!("{} ({})", path.display(), fstype_of(path));
        match std::fs::File::open(path) {
            Ok(f) => stack_probes.push(stacks::idmap_path(&std::os::fd::OwnedFd::from(f), &shown)),
            Err(e) => stack_probes.push(FeatureProbe {
                name: format!("{}: {shown}", stacks::IDMAP_PATH),
                supported: false,
                detail: format!("opening {}: {e}", path.display()),
                version: None,
                mount_us: None,
            }),
        }
    }
    match crate::isolate::PrivateTmpfs::mount(64 << 20) {
        Ok(tmpfs) => match probe::probe_all(tmpfs.path(), privilege) {
            Ok((features, max)) => {
                k.probe_backing = Some(
                    "a private in-memory tmpfs (features can differ on other upper filesystems)"
                        .into(),
                );
                k.features = features;
                k.max_lower_layers = max;
                let stacks_dir = tmpfs.path().join("stacks");
                k.features.extend(stack_mounts::probe_layouts(
                    &stacks_dir,
                    privilege,
                    filesystems,
                    false,
                ));
                k.features.push(stacks::idmap_tmpfs(tmpfs.path()));
                // Each engine's own mount; most need real root (trusted
                // xattrs, loop devices), so a rootless doctor leaves them unprobed.
                k.features.extend(stack_mounts::probe_layouts(
                    &stacks_dir,
                    privilege,
                    filesystems,
                    true,
                ));
                k.features.extend(stack_probes);
            }
            Err(e) => k.probe_error = Some(e.to_string()),
        },
        Err(e) => k.probe_error = Some(e.to_string()),
    }
}

fn fstype_of(path: &Path) -> String {
    let Ok(canon) = path.canonicalize() else {
        return String::new();
    };
    MountInfo::current()
        .ok()
        .and_then(|info| {
            info.entries
                .iter()
                .filter(|e| canon.starts_with(&e.mount_point))
                .max_by_key(|e| e.mount_point.as_os_str().len())
                .map(|e| e.fstype.clone())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xfs_info_gives_reflink_and_ftype() {
        let text = "meta-data=/dev/loop0 isize=512 agcount=4, agsize=65536 blks\n\
                    \t=                       sectsz=512   attr=2, projid32bit=1\n\
                    \t=                       crc=1        finobt=1, sparse=1, rmapbt=0\n\
                    \t=                       reflink=1    bigtime=1 inobtcount=1 nrext64=0\n\
                    naming   =version 2              bsize=4096   ascii-ci=0, ftype=1\n";
        assert_eq!(parse_xfs_info(text), (Some(true), Some(true)));
        assert_eq!(
            parse_xfs_info("naming =version 2 bsize=4096 ascii-ci=0, ftype=0\n"),
            (None, Some(false))
        );
    }
}
