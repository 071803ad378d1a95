//! `overlaybench doctor`: what this host's kernel, filesystem, engine config and
//! store say about overlay storage, and a recommendation with its reasons. Reads
//! only; its probes mount tiny overlays on a scratch tmpfs of its own.

pub mod config;
pub mod probe;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::isolate::{MountInfo, Privilege};
use config::EngineConfig;
use probe::FeatureProbe;
use store::{LayerUsage, StoreInventory};

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
    /// `overlay2`, `overlay`, `fix-host-first`, or `no-overlay`.
    pub choice: String,
    /// Why.
    pub reasons: Vec<Reason>,
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
    /// Store inventory, when a store was found.
    pub store: Option<StoreInventory>,
    /// The recommendation.
    pub recommendation: Recommendation,
}

/// Kernel facts that need no mounting, from a root (normally `/`).
pub fn kernel_facts(root: &Path) -> KernelReport {
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap_or_default();
    let filesystems = read("proc/filesystems");
    let available = filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"));
    let in_modules = read("proc/modules")
        .lines()
        .any(|l| l.split_whitespace().next() == Some("overlay"));
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
    let reflink = match fstype.as_str() {
        "btrfs" => Some(true),
        "xfs" => mount.and_then(|m| xfs_reflink(&m.source)),
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

fn xfs_reflink(device: &str) -> Option<bool> {
    let out = crate::isolate::run_command(
        std::process::Command::new("xfs_info").arg(device),
        std::time::Duration::from_secs(30),
        "apt-get install xfsprogs",
    )
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find_map(|w| w.strip_prefix("reflink="))
        .map(|v| v.starts_with('1'))
}

/// The recommendation from the facts, each reason naming its figure.
pub fn recommend(
    k: &KernelReport,
    p: &PathReport,
    store: Option<&StoreInventory>,
    engines: &[EngineConfig],
) -> Recommendation {
    let mut reasons = Vec::new();
    let r = |text: String, figure: String| Reason { text, figure };
    if !k.overlay_available {
        return Recommendation {
            choice: "no-overlay".into(),
            reasons: vec![r(
                "the kernel has no overlay filesystem: load it (modprobe overlay) or use a copying driver (vfs)".into(),
                format!("kernel.overlay_source = {}", k.overlay_source),
            )],
        };
    }
    if p.d_type == Some(false) {
        return Recommendation {
            choice: "fix-host-first".into(),
            reasons: vec![r(
                format!("{} does not record d_type: overlay refuses such a lower/upper; on xfs reformat with ftype=1", p.path),
                "path.d_type = false".into(),
            )],
        };
    }
    let multi = k
        .features
        .iter()
        .find(|f| f.name == "multiple lowers")
        .map(|f| f.supported);
    if multi == Some(true) {
        reasons.push(r(
            "the kernel mounts many lowers: overlay2 stores each layer once and mounts them directly".into(),
            "kernel.features[multiple lowers].supported = true".into(),
        ));
    } else if multi.is_none() {
        // Not probed (--no-probe, or the probes could not run): say so, cite
        // nothing that was not observed.
        reasons.push(r(
            format!(
                "multiple lower layers were not probed ({}); overlay2 is the default of every current \
                 engine and needs them — run doctor without --no-probe to check this kernel",
                k.probe_error.as_deref().unwrap_or("no probe result")
            ),
            format!("kernel.release = {}", k.release),
        ));
    } else {
        return Recommendation {
            choice: "overlay".into(),
            reasons: vec![r(
                "this kernel refuses multiple lower layers: only the legacy single-lower layout works".into(),
                "kernel.features[multiple lowers].supported = false".into(),
            )],
        };
    }
    if let Some(s) = store {
        if s.format == "overlay" {
            reasons.push(r(
                format!(
                    "this store uses the legacy layout: {} inodes for {} layers, {} file paths shared by hard links; \
                     it re-creates every directory in every layer, so its inode use grows with depth × directories \
                     (run `overlaybench run --workloads inodes` for this host's figures)",
                    s.inodes, s.layers, s.hardlink_paths
                ),
                format!("store.inodes = {}", s.inodes),
            ));
        }
        if let Some(max) = k.max_lower_layers.filter(|m| *m > 0) {
            if s.deepest_chain * 10 >= max * 8 {
                reasons.push(r(
                    format!("the deepest chain ({}) is near the kernel's limit of {max} lower layers: squash images", s.deepest_chain),
                    format!("store.deepest_chain = {}", s.deepest_chain),
                ));
            }
        }
        if !s.broken_links.is_empty() {
            reasons.push(r(
                format!("{} short links in l/ point nowhere: the store is damaged (an interrupted removal?)", s.broken_links.len()),
                format!("store.broken_links = {}", s.broken_links.len()),
            ));
        }
    }
    if p.inodes_total > 0 && p.inodes_free * 10 < p.inodes_total {
        reasons.push(r(
            format!("less than 10% of inodes are free on {}: small-file images will run out of inodes before bytes", p.path),
            format!("path.inodes_free = {}", p.inodes_free),
        ));
    }
    if p.reflink == Some(true) {
        reasons.push(r(
            "this filesystem clones files: copy_up costs about the same whatever the file size"
                .into(),
            "path.reflink = true".into(),
        ));
    }
    for e in engines
        .iter()
        .filter(|e| e.driver.as_deref() == Some("overlay") && e.engine == "docker")
    {
        reasons.push(r(
            "Docker is configured with the legacy overlay driver; switch to overlay2 (images must be pulled again)".into(),
            format!("engines[{}].driver = overlay", e.file),
        ));
    }
    Recommendation {
        choice: "overlay2".into(),
        reasons,
    }
}

/// Human-readable rendering.
pub fn render_text(d: &DoctorReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let yn = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "unknown",
    };
    let _ = writeln!(
        s,
        "kernel      Linux {} · overlay {} ({})",
        d.kernel.release,
        if d.kernel.overlay_available {
            "available"
        } else {
            "ABSENT"
        },
        d.kernel.overlay_source
    );
    if !d.kernel.params.is_empty() {
        let p: Vec<String> = d
            .kernel
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(s, "parameters  {}", p.join(" "));
    }
    if let Some(e) = &d.kernel.probe_error {
        let _ = writeln!(s, "probes      not run: {e}");
    }
    if let Some(b) = &d.kernel.probe_backing {
        let _ = writeln!(s, "probes      mounted tiny overlays on {b}");
    }
    for f in &d.kernel.features {
        let _ = writeln!(
            s,
            "  {:<30} {:<4} {}",
            f.name,
            if f.supported { "yes" } else { "NO" },
            f.detail
        );
    }
    if let Some(m) = d.kernel.max_lower_layers {
        let _ = writeln!(s, "  {:<30} {m}", "max lower layers (mounted)");
    }
    let p = &d.path;
    let _ = writeln!(
        s,
        "\npath        {} ({}) · d_type {} · reflink {}",
        p.path,
        p.fstype,
        yn(p.d_type),
        yn(p.reflink)
    );
    let _ = writeln!(
        s,
        "space       {} free of {} · {}",
        crate::report::fmt_bytes(p.free_bytes as f64),
        crate::report::fmt_bytes(p.size_bytes as f64),
        p.headroom
    );
    for e in &d.engines {
        if !e.found {
            let _ = writeln!(s, "\n{:<11} {} not present", e.engine, e.file);
            continue;
        }
        let _ = writeln!(s, "\n{:<11} {}", e.engine, e.file);
        if let Some(err) = &e.error {
            let _ = writeln!(s, "  error: {err}");
        }
        if let Some(dr) = &e.driver {
            let _ = writeln!(s, "  driver {dr} {}", e.options.join(" "));
        }
        for w in &e.warnings {
            let _ = writeln!(s, "  warning: {w}");
        }
    }
    if let Some(st) = &d.store {
        let init = if st.init_layers > 0 {
            format!(" + {} init", st.init_layers)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "\nstore       {} ({}) · {} image layers, {} container layers{init} · deepest chain {} · {} inodes · {} · \
             {} whiteouts · {} hard-linked paths on {} inodes · {} broken links",
            st.path,
            st.format,
            st.image_layers,
            st.containers,
            st.deepest_chain,
            st.inodes,
            crate::report::fmt_bytes(st.bytes as f64),
            st.whiteouts,
            st.hardlink_paths,
            st.hardlink_inodes,
            st.broken_links.len()
        );
        let shown: Vec<&LayerUsage> = st.top_layers.iter().take(5).collect();
        let ids = store::short_ids(&shown.iter().map(|l| l.id.as_str()).collect::<Vec<_>>());
        for (l, id) in shown.iter().zip(ids) {
            let role = if l.container {
                "container"
            } else if l.init {
                "init"
            } else {
                "image"
            };
            let _ = writeln!(
                s,
                "  {id:<18} {:>8} inodes {:>10}  {role}",
                l.inodes,
                crate::report::fmt_bytes(l.bytes as f64),
            );
        }
    }
    let _ = writeln!(s, "\nrecommendation: {}", d.recommendation.choice);
    for r in &d.recommendation.reasons {
        let _ = writeln!(s, "  - {} [{}]", r.text, r.figure);
    }
    s
}

/// Runs the probes on a private tmpfs mounted over an existing directory inside
/// the private namespace: nothing is created or written on the host. Call it
/// after every read of the host's files (the tmpfs hides the directory it
/// covers from this process).
pub fn probe_kernel(k: &mut KernelReport, privilege: Privilege) {
    match crate::isolate::PrivateTmpfs::mount(64 << 20) {
        Ok(tmpfs) => match probe::probe_all(tmpfs.path(), privilege) {
            Ok((features, max)) => {
                k.probe_backing = Some(
                    "a private in-memory tmpfs (features can differ on other upper filesystems)"
                        .into(),
                );
                k.features = features;
                k.max_lower_layers = max;
            }
            Err(e) => k.probe_error = Some(e.to_string()),
        },
        Err(e) => k.probe_error = Some(e.to_string()),
    }
}
