//! The limits users hit in production, each checked against a figure measured
//! on this host: image depth against Docker's 125 layers, Docker overlay2's 128,
//! containers-storage's 500 and the kernel's lower-layer limit; the mount option
//! string a store's longest image needs against one page; legacy overlay's hard
//! link counts against ext4's 65,000 (`EMLINK`, "too many links"); `d_type`
//! (xfs `ftype=1`); inode and byte headroom against kubelet's eviction
//! thresholds. Each check is a pure function of the report's data, so captured
//! inputs test it.

use serde::{Deserialize, Serialize};

use super::store::StoreInventory;
use super::PathReport;
use crate::layout::stores::{LEGACY_OVERLAY, OVERLAY2};

/// Docker refuses an image deeper than this many layers (its layer store's
/// `maxLayerDepth`, "max depth exceeded").
pub const DOCKER_MAX_LAYERS: usize = 125;
/// Docker's overlay2 driver refuses a layer with more lowers than this (`maxDepth`).
pub const DOCKER_OVERLAY2_MAX_LAYERS: usize = 128;
/// containers-storage's overlay driver's `maxDepth`.
pub const CONTAINERS_STORAGE_MAX_LAYERS: usize = 500;
/// ext4's `EXT4_LINK_MAX`: link() fails with EMLINK ("too many links") past it.
pub const EXT4_LINK_MAX: u64 = 65_000;
/// kubelet evicts pods when the node filesystem's free inodes fall below this
/// percent (`nodefs.inodesFree<5%`, the default hard threshold).
pub const KUBELET_INODES_FREE_PCT: f64 = 5.0;
/// kubelet evicts when the image filesystem's available bytes fall below this
/// percent (`imagefs.available<15%`).
pub const KUBELET_IMAGEFS_AVAILABLE_PCT: f64 = 15.0;
/// A figure within this fraction of its limit is a warning.
const WARN_AT: f64 = 0.8;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CheckStatus {
    /// Within the limit, with room.
    Ok,
    /// Within the limit, but close to it (80 %) or relying on an engine's fallback.
    Warn,
    /// Past the limit: the engine or the kernel refuses, or kubelet evicts.
    Fail,
    /// The figure could not be measured here.
    Unknown,
    /// Nothing here the limit applies to (no store of that kind).
    NotApplicable,
}

impl CheckStatus {
    /// As printed in the text output.
    pub fn label(self) -> &'static str {
        match self {
            CheckStatus::Ok => "ok",
            CheckStatus::Warn => "WARN",
            CheckStatus::Fail => "FAIL",
            CheckStatus::Unknown => "?",
            CheckStatus::NotApplicable => "n/a",
        }
    }
}

/// One check with the figure it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// What is checked (`image depth`, `mount options`, …).
    pub name: String,
    /// How it came out.
    pub status: CheckStatus,
    /// The figure measured here, in words.
    pub figure: String,
    /// The limit it is held against.
    pub limit: String,
    /// The report field and value it rests on.
    pub field: String,
    /// What to do about it (empty when nothing).
    pub advice: String,
}

fn check(
    name: &str,
    status: CheckStatus,
    figure: String,
    limit: String,
    field: String,
    advice: &str,
) -> Check {
    Check {
        name: name.into(),
        status,
        figure,
        limit,
        field,
        advice: advice.into(),
    }
}

fn status_for(value: f64, limit: f64) -> CheckStatus {
    if value > limit {
        CheckStatus::Fail
    } else if value >= limit * WARN_AT {
        CheckStatus::Warn
    } else {
        CheckStatus::Ok
    }
}

fn store_label(s: &StoreInventory) -> String {
    match &s.rootless_user {
        Some(u) => format!("{} ({} {}, rootless: {u})", s.path, s.engine, s.format),
        None => format!("{} ({} {})", s.path, s.engine, s.format),
    }
}

/// Image depth in each store against the limits that apply to it.
pub fn image_depth(stores: &[StoreInventory], kernel_max: Option<usize>) -> Vec<Check> {
    const NAME: &str = "image depth";
    let mut out = Vec::new();
    for (i, s) in stores.iter().enumerate() {
        let Some(img) = s.deepest_image() else {
            continue;
        };
        let mut limits: Vec<(String, usize)> = Vec::new();
        if s.engine == "docker" {
            limits.push(("Docker".into(), DOCKER_MAX_LAYERS));
            if s.format == OVERLAY2.name {
                limits.push(("Docker overlay2".into(), DOCKER_OVERLAY2_MAX_LAYERS));
            }
        }
        if s.engine == "containers-storage" && s.format == OVERLAY2.name {
            limits.push((
                "containers-storage overlay".into(),
                CONTAINERS_STORAGE_MAX_LAYERS,
            ));
        }
        // Stores whose containers stack one lower per image layer.
        if crate::layout::caps_of(&s.format).lower_per_layer {
            let (max, how) = match kernel_max {
                Some(m) => (m, "probed"),
                None => (crate::isolate::MAX_LOWER_LAYERS, "not probed"),
            };
            limits.push((format!("kernel ({how})"), max));
        }
        let shown = if img.name.is_empty() {
            format!("top layer {}", img.top_layer)
        } else {
            img.name.clone()
        };
        let figure = format!(
            "deepest image {shown}: {} layers in {}",
            img.layers,
            store_label(s)
        );
        let field = format!("stores[{i}].images[0].layers = {}", img.layers);
        let limit_text = if limits.is_empty() {
            "no layer limit applies (one lower, or nothing mounted)".to_string()
        } else {
            limits
                .iter()
                .map(|(n, l)| format!("{n} {l}"))
                .collect::<Vec<_>>()
                .join(" · ")
        };
        let Some((tightest, limit)) = limits.iter().min_by_key(|(_, l)| *l).cloned() else {
            out.push(check(NAME, CheckStatus::Ok, figure, limit_text, field, ""));
            continue;
        };
        if !s.chains_known {
            out.push(check(
                NAME,
                CheckStatus::Unknown,
                format!("{figure} as far as recorded (the store does not record every parent)"),
                limit_text,
                field,
                "",
            ));
            continue;
        }
        let status = status_for(img.layers as f64, limit as f64);
        let advice = match status {
            CheckStatus::Fail => format!("{tightest} refuses images deeper than {limit} layers: squash this image (e.g. a multi-stage build)"),
            CheckStatus::Warn => format!("within 80 % of {tightest}'s {limit}: squash before it grows"),
            _ => String::new(),
        };
        out.push(check(NAME, status, figure, limit_text, field, &advice));
    }
    if out.is_empty() {
        out.push(check(
            NAME,
            CheckStatus::NotApplicable,
            "no image in any store found".into(),
            format!(
                "Docker {DOCKER_MAX_LAYERS} · Docker overlay2 {DOCKER_OVERLAY2_MAX_LAYERS} · kernel {}",
                kernel_max.unwrap_or(crate::isolate::MAX_LOWER_LAYERS)
            ),
            "stores[*].images = []".into(),
            "",
        ));
    }
    out
}

/// The longest mount option string a store's images need, against one page.
pub fn mount_options(stores: &[StoreInventory]) -> Vec<Check> {
    const NAME: &str = "mount options";
    let mut out = Vec::new();
    for (i, s) in stores.iter().enumerate() {
        let Some((img, m)) = s.longest_mount() else {
            continue;
        };
        let idx = s
            .images
            .iter()
            .position(|x| std::ptr::eq(x, img))
            .unwrap_or(0);
        let usable = m.page_bytes.saturating_sub(1);
        let mut forms = vec![format!("absolute {} B", m.absolute_bytes)];
        if let Some(b) = m.short_links_bytes {
            forms.push(format!("l/ short names {b} B"));
        }
        if let Some(b) = m.relative_bytes {
            forms.push(format!("relative {b} B"));
        }
        let shown = if img.name.is_empty() {
            format!("top layer {}", img.top_layer)
        } else {
            img.name.clone()
        };
        let figure = format!(
            "{shown} ({} layers) in {}: the engine passes {} = {} B ({})",
            img.layers,
            store_label(s),
            m.engine_form,
            m.engine_bytes,
            forms.join(", ")
        );
        let limit = format!(
            "one page: {usable} bytes of option data (mount(2) copies {} with its NUL)",
            m.page_bytes
        );
        let field = format!(
            "stores[{i}].images[{idx}].mount_options.engine_bytes = {}",
            m.engine_bytes
        );
        let (status, advice) = if m.engine_bytes > usable {
            (CheckStatus::Fail, "the engine cannot mount a container on this image (\"mount options is too long\" / \"mount label too large\"): squash it".to_string())
        } else if m.engine_bytes as f64 >= usable as f64 * WARN_AT {
            (
                CheckStatus::Warn,
                "within 80 % of a page: a few more layers and containers on it cannot start"
                    .to_string(),
            )
        } else {
            (CheckStatus::Ok, String::new())
        };
        out.push(check(NAME, status, figure, limit, field, &advice));
    }
    if out.is_empty() {
        out.push(check(
            NAME,
            CheckStatus::NotApplicable,
            "no overlay store with images found".into(),
            "one page of option data".into(),
            "stores[*].images[*].mount_options = none".into(),
            "",
        ));
    }
    out
}

/// Legacy overlay's hard links against ext4's link limit.
pub fn hard_links(stores: &[StoreInventory]) -> Vec<Check> {
    const NAME: &str = "hard links";
    let mut out = Vec::new();
    for (i, s) in stores
        .iter()
        .enumerate()
        .filter(|(_, s)| s.format == LEGACY_OVERLAY.name)
    {
        let figure = format!(
            "a file with {} links in {}{}",
            s.max_links,
            store_label(s),
            s.max_links_path
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default()
        );
        let field = format!("stores[{i}].max_links = {}", s.max_links);
        let limit = format!("ext4 {EXT4_LINK_MAX} links per inode (EMLINK, \"too many links\")");
        if !s.fstype.starts_with("ext") {
            out.push(check(
                NAME,
                CheckStatus::NotApplicable,
                figure,
                format!(
                    "{limit}; this store is on {}",
                    if s.fstype.is_empty() {
                        "an unknown filesystem"
                    } else {
                        &s.fstype
                    }
                ),
                field,
                "",
            ));
            continue;
        }
        let status = status_for(s.max_links as f64, EXT4_LINK_MAX as f64);
        let advice = match status {
            CheckStatus::Fail | CheckStatus::Warn => "the legacy driver links every file into each layer above it: layer creation fails with \"too many links\" at the limit; move to overlay2 or containerd",
            _ => "",
        };
        out.push(check(NAME, status, figure, limit, field, advice));
    }
    if out.is_empty() {
        out.push(check(
            NAME,
            CheckStatus::NotApplicable,
            "no legacy overlay store".into(),
            format!("ext4 {EXT4_LINK_MAX} links per inode"),
            "stores[*].format != overlay".into(),
            "",
        ));
    }
    out
}

/// d_type on the inspected path (xfs: `ftype=1`).
pub fn d_type(p: &PathReport) -> Check {
    const NAME: &str = "d_type";
    let limit =
        "overlay needs readdir entry types on its lower and upper filesystems (xfs: ftype=1)"
            .to_string();
    match (p.d_type, p.xfs_ftype) {
        (Some(false), _) | (_, Some(false)) => check(
            NAME,
            CheckStatus::Fail,
            format!(
                "{} ({}) does not record entry types{}",
                p.path,
                p.fstype,
                if p.xfs_ftype == Some(false) {
                    " (xfs ftype=0)"
                } else {
                    ""
                }
            ),
            limit,
            format!(
                "path.d_type = {:?}, path.xfs_ftype = {:?}",
                p.d_type, p.xfs_ftype
            ),
            "overlay refuses such a filesystem: reformat it (mkfs.xfs -n ftype=1)",
        ),
        (Some(true), _) | (None, Some(true)) => check(
            NAME,
            CheckStatus::Ok,
            format!(
                "{} ({}) records entry types{}",
                p.path,
                p.fstype,
                if p.xfs_ftype == Some(true) {
                    " (xfs ftype=1)"
                } else {
                    ""
                }
            ),
            limit,
            format!("path.d_type = {:?}", p.d_type),
            "",
        ),
        (None, None) => check(
            NAME,
            CheckStatus::Unknown,
            format!("{} is an empty directory: readdir cannot tell", p.path),
            limit,
            "path.d_type = null".into(),
            "name a non-empty --path on the same filesystem",
        ),
    }
}

/// Free inodes against kubelet's `nodefs.inodesFree<5%`.
pub fn inode_headroom(p: &PathReport) -> Check {
    const NAME: &str = "inode headroom";
    let limit = format!("kubelet evicts pods at nodefs.inodesFree < {KUBELET_INODES_FREE_PCT}%");
    if p.inodes_total == 0 {
        return check(
            NAME,
            CheckStatus::NotApplicable,
            format!(
                "{} ({}) has no fixed inode count (statvfs f_files = 0)",
                p.path, p.fstype
            ),
            limit,
            "path.inodes_total = 0".into(),
            "",
        );
    }
    let pct = 100.0 * p.inodes_free as f64 / p.inodes_total as f64;
    let status = if pct < KUBELET_INODES_FREE_PCT {
        CheckStatus::Fail
    } else if pct < 2.0 * KUBELET_INODES_FREE_PCT {
        CheckStatus::Warn
    } else {
        CheckStatus::Ok
    };
    check(
        NAME,
        status,
        format!("{pct:.1}% free ({} of {} inodes) on {} ({})", p.inodes_free, p.inodes_total, p.path, p.fstype),
        limit,
        format!("path.inodes_free = {}", p.inodes_free),
        match status {
            CheckStatus::Fail => "below kubelet's eviction threshold: remove unused images (small-file images run out of inodes before bytes)",
            CheckStatus::Warn => "less than twice kubelet's threshold left",
            _ => "",
        },
    )
}

/// Available bytes against kubelet's `imagefs.available<15%`.
pub fn byte_headroom(p: &PathReport) -> Check {
    const NAME: &str = "byte headroom";
    let limit = format!("kubelet evicts pods at imagefs.available < {KUBELET_IMAGEFS_AVAILABLE_PCT}% (image GC starts at 85% used)");
    if p.size_bytes == 0 {
        return check(
            NAME,
            CheckStatus::Unknown,
            format!("{}: statvfs gave no size", p.path),
            limit,
            "path.size_bytes = 0".into(),
            "",
        );
    }
    let pct = 100.0 * p.free_bytes as f64 / p.size_bytes as f64;
    let status = if pct < KUBELET_IMAGEFS_AVAILABLE_PCT {
        CheckStatus::Fail
    } else if pct < KUBELET_IMAGEFS_AVAILABLE_PCT + 5.0 {
        CheckStatus::Warn
    } else {
        CheckStatus::Ok
    };
    check(
        NAME,
        status,
        format!(
            "{pct:.1}% available ({} of {}) on {} ({})",
            crate::report::fmt_bytes(p.free_bytes as f64),
            crate::report::fmt_bytes(p.size_bytes as f64),
            p.path,
            p.fstype
        ),
        limit,
        format!("path.free_bytes = {}", p.free_bytes),
        match status {
            CheckStatus::Fail => {
                "below kubelet's eviction threshold: free space or move the image store"
            }
            CheckStatus::Warn => "within 5 points of kubelet's threshold",
            _ => "",
        },
    )
}

/// Every check, in the order the text output prints them.
pub fn all(stores: &[StoreInventory], p: &PathReport, kernel_max: Option<usize>) -> Vec<Check> {
    let mut out = image_depth(stores, kernel_max);
    out.extend(mount_options(stores));
    out.extend(hard_links(stores));
    out.push(d_type(p));
    out.push(inode_headroom(p));
    out.push(byte_headroom(p));
    out
}

#[cfg(test)]
mod tests {
    use super::super::store::{ImageUsage, MountOptionBytes};
    use super::*;

    fn store(format: &str, engine: &str, depth: usize) -> StoreInventory {
        StoreInventory {
            path: "/var/lib/x".into(),
            format: format.into(),
            engine: engine.into(),
            chains_known: true,
            fstype: "ext4".into(),
            images: vec![ImageUsage {
                name: "img:t".into(),
                top_layer: "top".into(),
                layers: depth,
                inodes: 10,
                bytes: 4096,
                mount_options: None,
            }],
            ..Default::default()
        }
    }

    fn path(inodes_free: u64, inodes_total: u64, free: u64, size: u64) -> PathReport {
        PathReport {
            path: "/var/lib/docker".into(),
            fstype: "ext4".into(),
            d_type: Some(true),
            inodes_free,
            inodes_total,
            free_bytes: free,
            size_bytes: size,
            ..Default::default()
        }
    }

    #[test]
    fn depth_is_held_against_the_tightest_limit_that_applies() {
        let c = &image_depth(&[store("overlay2", "docker", 126)], Some(500))[0];
        assert_eq!(c.status, CheckStatus::Fail, "{c:?}");
        assert!(
            c.advice.contains("Docker refuses images deeper than 125"),
            "{c:?}"
        );
        assert!(c.limit.contains("Docker overlay2 128") && c.limit.contains("kernel (probed) 500"));
        assert_eq!(c.field, "stores[0].images[0].layers = 126");
        // containers-storage: 500 and the kernel's limit, not Docker's.
        let c = &image_depth(&[store("overlay2", "containers-storage", 126)], Some(500))[0];
        assert_eq!(c.status, CheckStatus::Ok, "{c:?}");
        assert_eq!(
            image_depth(&[store("containerd", "containerd", 420)], Some(500))[0].status,
            CheckStatus::Warn
        );
        assert_eq!(
            image_depth(&[store("containerd", "containerd", 501)], None)[0].status,
            CheckStatus::Fail
        );
        let mut unknown = store("overlay", "unknown", 3);
        unknown.chains_known = false;
        let c = &image_depth(&[unknown], Some(500))[0];
        assert_eq!(
            c.status,
            CheckStatus::Ok,
            "no limit applies to a legacy store of no known engine"
        );
        let mut unknown = store("containerd", "containerd", 3);
        unknown.chains_known = false;
        assert_eq!(
            image_depth(&[unknown], Some(500))[0].status,
            CheckStatus::Unknown
        );
        assert_eq!(
            image_depth(&[], Some(500))[0].status,
            CheckStatus::NotApplicable
        );
    }

    #[test]
    fn mount_options_are_held_against_one_page() {
        let mut s = store("containerd", "containerd", 60);
        let opts = |engine_bytes| MountOptionBytes {
            absolute_bytes: 4700,
            short_links_bytes: None,
            relative_bytes: Some(engine_bytes),
            engine_form: "lowers relative to the snapshots dir (chdir)".into(),
            engine_bytes,
            page_bytes: 4096,
        };
        s.images[0].mount_options = Some(opts(700));
        let c = &mount_options(std::slice::from_ref(&s))[0];
        assert_eq!(c.status, CheckStatus::Ok, "{c:?}");
        assert!(
            c.figure.contains("absolute 4700 B") && c.figure.contains("relative 700 B"),
            "{c:?}"
        );
        s.images[0].mount_options = Some(opts(3500));
        assert_eq!(
            mount_options(std::slice::from_ref(&s))[0].status,
            CheckStatus::Warn
        );
        s.images[0].mount_options = Some(opts(4096));
        let c = &mount_options(std::slice::from_ref(&s))[0];
        assert_eq!(c.status, CheckStatus::Fail);
        assert_eq!(
            c.field,
            "stores[0].images[0].mount_options.engine_bytes = 4096"
        );
    }

    #[test]
    fn legacy_links_are_held_against_ext4s_limit() {
        let mut s = store("overlay", "docker", 3);
        s.max_links = 64_999;
        assert_eq!(
            hard_links(std::slice::from_ref(&s))[0].status,
            CheckStatus::Warn
        );
        s.max_links = 65_001;
        let c = &hard_links(std::slice::from_ref(&s))[0];
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.advice.contains("too many links"));
        s.max_links = 12;
        assert_eq!(
            hard_links(std::slice::from_ref(&s))[0].status,
            CheckStatus::Ok
        );
        s.fstype = "xfs".into();
        assert_eq!(hard_links(&[s])[0].status, CheckStatus::NotApplicable);
        assert_eq!(
            hard_links(&[store("overlay2", "docker", 3)])[0].status,
            CheckStatus::NotApplicable
        );
    }

    #[test]
    fn d_type_and_xfs_ftype() {
        let mut p = path(1, 1, 1, 1);
        assert_eq!(d_type(&p).status, CheckStatus::Ok);
        p.xfs_ftype = Some(false);
        assert_eq!(d_type(&p).status, CheckStatus::Fail);
        p.xfs_ftype = None;
        p.d_type = None;
        assert_eq!(d_type(&p).status, CheckStatus::Unknown);
    }

    #[test]
    fn headroom_against_kubelets_thresholds() {
        // 4.9 % of inodes free: kubelet evicts.
        let c = inode_headroom(&path(49, 1000, 50, 100));
        assert_eq!(c.status, CheckStatus::Fail);
        assert!(c.figure.starts_with("4.9% free"), "{c:?}");
        assert_eq!(
            inode_headroom(&path(90, 1000, 50, 100)).status,
            CheckStatus::Warn
        );
        assert_eq!(
            inode_headroom(&path(500, 1000, 50, 100)).status,
            CheckStatus::Ok
        );
        assert_eq!(
            inode_headroom(&path(0, 0, 50, 100)).status,
            CheckStatus::NotApplicable,
            "btrfs"
        );
        // 14 % available: below imagefs.available<15%.
        let c = byte_headroom(&path(1, 1, 14, 100));
        assert_eq!(c.status, CheckStatus::Fail);
        assert_eq!(c.field, "path.free_bytes = 14");
        assert_eq!(
            byte_headroom(&path(1, 1, 17, 100)).status,
            CheckStatus::Warn
        );
        assert_eq!(byte_headroom(&path(1, 1, 60, 100)).status, CheckStatus::Ok);
    }
}
