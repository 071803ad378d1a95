//! The recommendation: which storage stack to run on this host, chosen among the
//! stacks it can run (each assessed from what the probes observed), each reason
//! citing a figure measured here. Doctor is the one place that names stacks and
//! ranks them; a `run` report given with `--from` adds its measured figures, by
//! the layout names the report itself carries, ranked by the rules of the
//! workload that measured them (never by a name known here).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::checks::{Check, CheckStatus};
use super::config::EngineConfig;
use super::probe::FeatureProbe;
use super::store::{Mounts, StoreInventory};
use super::{stack_mounts, stacks};
use super::{KernelReport, PathReport, Reason, Recommendation};
use crate::report::Report;

/// The stacks doctor assesses, in the order it prints them.
pub const STACKS: &[&str] = &[
    "containerd",
    "overlay2",
    "rootless",
    "fuse-overlayfs",
    "btrfs",
    "erofs",
    "composefs",
    "overlay",
    "plain",
];
/// Stacks a rootful engine runs (the choice is among these).
const ROOTFUL: &[&str] = &[
    "containerd",
    "overlay2",
    "btrfs",
    "erofs",
    "composefs",
    "overlay",
];
/// Stacks a rootless engine runs.
const ROOTLESS: &[&str] = &["rootless", "fuse-overlayfs"];
/// Report figures cited in the reasons at most (the JSON carries them all).
const CITED_FIGURES: usize = 6;

/// One stack as this host can run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StackAssessment {
    /// Stack name (`containerd`, `overlay2`, `rootless`, `fuse-overlayfs`, `btrfs`, …).
    pub name: String,
    /// Whether the probes saw it work here (`None`: not probed).
    pub runnable: Option<bool>,
    /// What that rests on.
    pub reasons: Vec<Reason>,
    /// How long the stack's own probe took here to have a container up,
    /// microseconds (its engine's way of mounting, on doctor's tmpfs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_us: Option<u64>,
}

/// One figure a `run` report measured for several layouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportFigure {
    /// Workload that measured it.
    pub workload: String,
    /// `slope`, `ratio`, …
    pub kind: String,
    /// Its parameters, `k=v` joined by commas.
    pub params: String,
    /// Unit.
    pub unit: String,
    /// Whether larger is better (the workload's gate rules say).
    pub higher_is_better: bool,
    /// Value per layout.
    pub values: BTreeMap<String, f64>,
    /// The layout with the best value.
    pub best: String,
}

/// What a `run` report contributes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportEvidence {
    /// The report, as named.
    pub report: String,
    /// The kernel it was measured on.
    pub kernel: String,
    /// Whether that is this host's kernel (only then may it change the choice).
    pub same_kernel: bool,
    /// The report's status (`complete`, `interrupted`, …).
    pub status: String,
    /// Layouts it measured.
    pub layouts: Vec<String>,
    /// The gated figures it measured for two layouts or more.
    pub figures: Vec<ReportFigure>,
}

/// Workload, derived kind, parameters and unit: one figure, across layouts.
type FigureKey = (String, String, String, String);

/// The gated figures of `report` (each workload's gate rules pick and rank
/// them), grouped across layouts.
pub fn evidence(report: &Report, shown: &str, this_kernel: &str) -> ReportEvidence {
    let mut groups: BTreeMap<FigureKey, (bool, BTreeMap<String, f64>)> = BTreeMap::new();
    for d in &report.derived {
        let Some(w) = crate::workload::entry(&d.workload) else {
            continue;
        };
        if !w.gate.gated(d, report) || !d.value.is_finite() {
            continue;
        }
        let params = d
            .params
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(",");
        let key = (d.workload.clone(), d.kind.clone(), params, d.unit.clone());
        let e = groups
            .entry(key)
            .or_insert_with(|| (w.gate.higher_is_better(d), BTreeMap::new()));
        e.1.insert(d.layout.clone(), d.value);
    }
    let mut layouts: Vec<String> = report.cases.iter().map(|c| c.layout.clone()).collect();
    layouts.sort();
    layouts.dedup();
    ReportEvidence {
        report: shown.into(),
        kernel: report.host.kernel_release.clone(),
        same_kernel: report.host.kernel_release == this_kernel,
        status: format!("{:?}", report.status).to_lowercase(),
        layouts,
        figures: groups
            .into_iter()
            .filter(|(_, (_, v))| v.len() >= 2)
            .map(|((workload, kind, params, unit), (higher, values))| {
                let best = best_of(&values, higher, |_| true).unwrap_or_default();
                ReportFigure {
                    workload,
                    kind,
                    params,
                    unit,
                    higher_is_better: higher,
                    values,
                    best,
                }
            })
            .collect(),
    }
}

fn best_of(
    values: &BTreeMap<String, f64>,
    higher: bool,
    keep: impl Fn(&str) -> bool,
) -> Option<String> {
    values
        .iter()
        .filter(|(k, _)| keep(k))
        .max_by(|a, b| {
            let o = a.1.total_cmp(b.1);
            if higher {
                o
            } else {
                o.reverse()
            }
        })
        .map(|(k, _)| k.clone())
}

fn r(text: String, figure: String) -> Reason {
    Reason { text, figure }
}

fn feature<'a>(k: &'a KernelReport, name: &str) -> Option<&'a FeatureProbe> {
    k.features.iter().find(|f| f.name == name)
}

fn supported(k: &KernelReport, name: &str) -> Option<bool> {
    feature(k, name).map(|f| f.supported)
}

fn cite(k: &KernelReport, name: &str) -> String {
    match feature(k, name) {
        Some(FeatureProbe {
            mount_us: Some(us), ..
        }) => format!("kernel.features[{name}].mount_us = {us}"),
        Some(f) => format!("kernel.features[{name}].supported = {}", f.supported),
        None => format!("kernel.features[{name}] not probed"),
    }
}

/// The reason a stack's own mount probe gives, and whether it worked; `None`
/// when it did not run (no root, `--no-probe`), so the caller falls back to
/// what the general probes say.
fn mounted(k: &KernelReport, name: &str, reasons: &mut Vec<Reason>) -> Option<bool> {
    let f = feature(k, name)?;
    reasons.push(r(f.detail.clone(), cite(k, name)));
    Some(f.supported)
}

/// The deepest image `mounts` fits in one page, up to `cap` layers.
fn layers_in_a_page(mounts: &Mounts, page: usize, cap: usize) -> usize {
    let ids: Vec<String> = (0..cap).map(|i| format!("{:064x}", i + 100)).collect();
    let short: Vec<String> = (0..cap).map(|i| (i + 100).to_string()).collect();
    let mut fit = 0;
    for n in 1..=cap {
        let chain: Vec<&str> = match mounts {
            Mounts::Containerd { .. } => short[..n].iter().map(String::as_str).collect(),
            _ => ids[..n].iter().map(String::as_str).collect(),
        };
        match mounts.option_bytes(&chain, page) {
            Some(m) if m.engine_bytes < page => fit = n,
            _ => break,
        }
    }
    fit
}

/// Each stack as this host can run it.
pub fn assess(k: &KernelReport, p: &PathReport, stores: &[StoreInventory]) -> Vec<StackAssessment> {
    let multi = supported(k, "multiple lowers");
    let basic = supported(k, "overlay mount");
    let max = k
        .max_lower_layers
        .unwrap_or(crate::isolate::MAX_LOWER_LAYERS);
    let max_fig = match k.max_lower_layers {
        Some(m) => format!("kernel.max_lower_layers = {m}"),
        None => format!("kernel.max_lower_layers not probed (the kernel's documented {max})"),
    };
    let page = if k.page_bytes > 0 {
        k.page_bytes as usize
    } else {
        4096
    };
    let overlay_needs = |name: &str| -> Reason {
        r(
            format!("{name} mounts the kernel's overlay with many lowers"),
            cite(k, "multiple lowers"),
        )
    };
    let idmap_path = k
        .features
        .iter()
        .find(|f| f.name.starts_with(stacks::IDMAP_PATH));
    let mut out = Vec::new();
    for &name in STACKS {
        let mut reasons = Vec::new();
        let runnable = match name {
            "containerd" => {
                let own = mounted(k, stack_mounts::CONTAINERD, &mut reasons);
                if own.is_none() {
                    reasons.push(overlay_needs("containerd's overlayfs snapshotter"));
                }
                let fit = layers_in_a_page(
                    &Mounts::Containerd {
                        snapshots: format!(
                            "/var/lib/containerd/{}/snapshots",
                            super::store::CONTAINERD_SNAPSHOTTER
                        ),
                        container_id_len: 4,
                    },
                    page,
                    max,
                );
                reasons.push(r(
                    format!(
                        "with lowers relative to its snapshots dir an image of {fit} layers fits one {page}-byte page, \
                         so the kernel's limit of {max} lowers is what binds"
                    ),
                    max_fig.clone(),
                ));
                if let Some(f) = idmap_path.filter(|f| f.supported) {
                    reasons.push(r(
                        "idmapped lowers work on the store's filesystem (containerd 2.x user-namespaced pods)".into(),
                        format!("kernel.features[{}].supported = true", f.name),
                    ));
                }
                own.or(multi)
            }
            "overlay2" => {
                let own = mounted(k, stack_mounts::OVERLAY2, &mut reasons);
                if own.is_none() {
                    reasons.push(overlay_needs("Docker's and containers-storage's overlay2"));
                }
                let fit = layers_in_a_page(
                    &Mounts::Overlay2 {
                        home: "/var/lib/docker/overlay2".into(),
                        links: Default::default(),
                        init_layer: true,
                    },
                    page,
                    max,
                );
                reasons.push(r(
                    format!(
                        "its l/ short names fit {fit} layers in one {page}-byte page; Docker stops at 125 layers \
                         per image and its overlay2 at 128"
                    ),
                    max_fig.clone(),
                ));
                own.or(multi)
            }
            "rootless" => {
                reasons.push(r(
                    feature(k, stacks::ROOTLESS).map_or("not probed".into(), |f| f.detail.clone()),
                    cite(k, stacks::ROOTLESS),
                ));
                supported(k, stacks::ROOTLESS)
            }
            "fuse-overlayfs" => {
                let f = feature(k, stacks::FUSE_OVERLAYFS);
                reasons.push(r(
                    f.map_or("not probed".into(), |f| {
                        format!(
                            "{}{}",
                            f.detail,
                            f.version
                                .as_deref()
                                .map(|v| format!(" ({v})"))
                                .unwrap_or_default()
                        )
                    }),
                    cite(k, stacks::FUSE_OVERLAYFS),
                ));
                if supported(k, stacks::ROOTLESS) == Some(true) {
                    reasons.push(r(
                        "the kernel's own overlay works in a user namespace here, so rootless engines need no FUSE daemon \
                         (fuse-overlayfs adds a round trip to the daemon per uncached lookup and a copy per write)"
                            .into(),
                        cite(k, stacks::ROOTLESS),
                    ));
                }
                supported(k, stacks::FUSE_OVERLAYFS)
            }
            "btrfs" => {
                let own = mounted(k, stack_mounts::BTRFS, &mut reasons);
                reasons.push(r(
                    feature(k, stacks::BTRFS).map_or("not probed".into(), |f| {
                        format!(
                            "{}{}",
                            f.detail,
                            f.version
                                .as_deref()
                                .map(|v| format!(" ({v})"))
                                .unwrap_or_default()
                        )
                    }),
                    cite(k, stacks::BTRFS),
                ));
                reasons.push(if p.fstype == "btrfs" {
                    r(format!("{} is on btrfs already", p.path), format!("path.fstype = {}", p.fstype))
                } else {
                    r(
                        format!(
                            "{} is on {}: the btrfs driver needs a btrfs filesystem of its own; snapshots share blocks \
                             but not page cache, and there is no inode limit to watch",
                            p.path, p.fstype
                        ),
                        format!("path.fstype = {}", p.fstype),
                    )
                });
                own.or(supported(k, stacks::BTRFS))
            }
            "erofs" => {
                let own = mounted(k, stack_mounts::EROFS, &mut reasons);
                reasons.push(r(
                    feature(k, stacks::EROFS).map_or("not probed".into(), |f| {
                        format!("{}; containerd ≥ 2.1's erofs snapshotter stores each layer as one file", f.detail)
                    }),
                    cite(k, stacks::EROFS),
                ));
                own.or(supported(k, stacks::EROFS).zip(multi).map(|(a, b)| a && b))
            }
            "composefs" => {
                let own = mounted(k, stack_mounts::COMPOSEFS, &mut reasons);
                reasons.push(r(
                    "composefs mounts one EROFS image per image over a content-addressed object store as a data-only \
                     lower: identical files share disk and page cache across images"
                        .into(),
                    cite(k, "data-only lower layers"),
                ));
                reasons.push(r("it needs EROFS".into(), cite(k, stacks::EROFS)));
                own.or(supported(k, "data-only lower layers")
                    .zip(supported(k, stacks::EROFS))
                    .map(|(a, b)| a && b))
            }
            "overlay" => {
                let own = mounted(k, stack_mounts::LEGACY, &mut reasons);
                reasons.push(r(
                    "Docker's legacy driver (removed in Docker 24): one lower, every directory re-created and every file \
                     hard-linked in each layer above"
                        .into(),
                    cite(k, "overlay mount"),
                ));
                for (i, s) in stores
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.format == "overlay")
                {
                    reasons.push(r(
                        format!(
                            "this host's legacy store {} holds {} inodes for {} layers; its most-linked file has {} links \
                             (ext4 stops at 65,000)",
                            s.path, s.inodes, s.layers, s.max_links
                        ),
                        format!("stores[{i}].max_links = {}", s.max_links),
                    ));
                }
                own.or(basic)
            }
            _ => {
                reasons.push(r(
                    "the baseline (Docker's vfs): a full copy of the image per container, nothing shared".into(),
                    "always runnable".into(),
                ));
                Some(true)
            }
        };
        let own_probe = match name {
            "containerd" => Some(stack_mounts::CONTAINERD),
            "overlay2" => Some(stack_mounts::OVERLAY2),
            "overlay" => Some(stack_mounts::LEGACY),
            "btrfs" => Some(stack_mounts::BTRFS),
            "erofs" => Some(stack_mounts::EROFS),
            "composefs" => Some(stack_mounts::COMPOSEFS),
            "rootless" => Some(stacks::ROOTLESS),
            "fuse-overlayfs" => Some(stacks::FUSE_OVERLAYFS),
            _ => None,
        };
        out.push(StackAssessment {
            name: name.into(),
            runnable,
            reasons,
            mount_us: own_probe
                .and_then(|p| feature(k, p))
                .and_then(|f| f.mount_us),
        });
    }
    out
}

/// The recommendation from the facts, each reason naming its figure.
pub fn recommend(
    k: &KernelReport,
    p: &PathReport,
    stores: &[StoreInventory],
    engines: &[EngineConfig],
    checks: &[Check],
    evidence: Option<ReportEvidence>,
) -> Recommendation {
    let stacks = assess(k, p, stores);
    let runnable = |name: &str| {
        stacks
            .iter()
            .any(|s| s.name == name && s.runnable == Some(true))
    };
    let reasons_of = |name: &str| -> Vec<Reason> {
        stacks
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.reasons.clone())
            .unwrap_or_default()
    };
    let rootless_choice = ROOTLESS.iter().find(|s| runnable(s)).map(|s| s.to_string());
    let done =
        |choice: &str, reasons: Vec<Reason>, evidence: Option<ReportEvidence>| Recommendation {
            choice: choice.into(),
            reasons,
            stacks: stacks.clone(),
            rootless_choice: rootless_choice.clone(),
            evidence,
        };
    if !k.overlay_available {
        let mut reasons = vec![r(
            "the kernel has no overlay filesystem: load it (modprobe overlay)".into(),
            format!("kernel.overlay_source = {}", k.overlay_source),
        )];
        for alt in ["btrfs", "fuse-overlayfs"] {
            if runnable(alt) {
                reasons.extend(reasons_of(alt));
                return done(alt, reasons, evidence);
            }
        }
        return done("no-overlay", reasons, evidence);
    }
    if p.d_type == Some(false) || p.xfs_ftype == Some(false) {
        return done(
            "fix-host-first",
            vec![r(
                format!(
                    "{} does not record d_type: overlay refuses such a lower/upper; on xfs reformat with ftype=1",
                    p.path
                ),
                format!("path.d_type = {:?}, path.xfs_ftype = {:?}", p.d_type, p.xfs_ftype),
            )],
            evidence,
        );
    }
    let multi = supported(k, "multiple lowers");
    if multi == Some(false) {
        return done(
            "overlay",
            vec![r(
                "this kernel refuses multiple lower layers: only the legacy single-lower layout works".into(),
                "kernel.features[multiple lowers].supported = false".into(),
            )],
            evidence,
        );
    }
    // The engine already in use stays unless something says otherwise; a new
    // host gets containerd's snapshotter, Docker 29's default store.
    let with_layers = |f: &str| {
        stores
            .iter()
            .position(|s| s.format == f && s.layers > 0 && s.rootless_user.is_none())
    };
    let (mut choice, mut reasons) = if let Some(i) = with_layers("containerd") {
        (
            "containerd",
            vec![r(
                format!("this host's images are in containerd's overlayfs snapshotter ({} layers): keep it", stores[i].layers),
                format!("stores[{i}].layers = {}", stores[i].layers),
            )],
        )
    } else if let Some(i) = with_layers("overlay2") {
        (
            "overlay2",
            vec![r(
                format!(
                    "this host's images are in an overlay2 store ({} layers, {} engine): keep it; moving to containerd's \
                     store means pulling every image again",
                    stores[i].layers, stores[i].engine
                ),
                format!("stores[{i}].layers = {}", stores[i].layers),
            )],
        )
    } else if let Some(i) = with_layers("overlay") {
        (
            "containerd",
            vec![r(
                "this host's images are in Docker's legacy overlay store, removed in Docker 24: a new store on a current \
                 Docker uses containerd's snapshotter"
                    .into(),
                format!("stores[{i}].format = overlay"),
            )],
        )
    } else if let Some(i) = with_layers("btrfs") {
        (
            "btrfs",
            vec![r(
                format!("this host's images are in a btrfs driver store ({} layers): keep it unless the figures below say otherwise", stores[i].layers),
                format!("stores[{i}].layers = {}", stores[i].layers),
            )],
        )
    } else {
        (
            "containerd",
            vec![r(
                "no image store with layers here: containerd's overlayfs snapshotter is Docker 29's default for new installs"
                    .into(),
                format!("stores = {}", stores.len()),
            )],
        )
    };
    if multi.is_none() {
        reasons.push(r(
            format!(
                "multiple lower layers were not probed ({}); every overlay stack needs them — run doctor without \
                 --no-probe to check this kernel",
                k.probe_error.as_deref().unwrap_or("no probe result")
            ),
            format!("kernel.release = {}", k.release),
        ));
    }
    // A run report on this kernel may rank the runnable rootful stacks.
    let mut cited = Vec::new();
    if let Some(ev) = &evidence {
        let stack_of = |layout: &str| STACKS.iter().find(|s| **s == layout).copied();
        if !ev.same_kernel {
            reasons.push(r(
                format!(
                    "{} was measured on kernel {}, not this host's {}: its figures are shown, not used",
                    ev.report, ev.kernel, k.release
                ),
                format!("evidence.kernel = {}", ev.kernel),
            ));
        } else {
            let rivals: Vec<&str> = ROOTFUL
                .iter()
                .copied()
                .filter(|s| *s != choice && runnable(s) && ev.layouts.iter().any(|l| l == s))
                .collect();
            let mut best: Option<(&str, usize, usize)> = None;
            for rival in rivals {
                let (mut ours, mut theirs) = (0, 0);
                for f in &ev.figures {
                    let (Some(a), Some(b)) = (f.values.get(choice), f.values.get(rival)) else {
                        continue;
                    };
                    let rival_better = if f.higher_is_better { b > a } else { b < a };
                    if rival_better {
                        theirs += 1;
                    } else if a != b {
                        ours += 1;
                    }
                }
                if theirs > ours && best.is_none_or(|(_, o, t)| theirs - ours > t - o) {
                    best = Some((rival, ours, theirs));
                }
            }
            if let Some((rival, ours, theirs)) = best {
                reasons.insert(
                    0,
                    r(
                        format!(
                            "{} measured {rival} better than {choice} on {theirs} of {} figures both have",
                            ev.report,
                            ours + theirs
                        ),
                        format!("evidence.figures: {rival} best on {theirs}, {choice} on {ours}"),
                    ),
                );
                choice = ROOTFUL
                    .iter()
                    .copied()
                    .find(|s| *s == rival)
                    .unwrap_or(choice);
            }
        }
        for (i, f) in ev.figures.iter().enumerate() {
            let here: Vec<String> = f
                .values
                .iter()
                .filter(|(l, _)| stack_of(l).is_some())
                .map(|(l, v)| format!("{l} {}", fmt_value(*v)))
                .collect();
            if f.values.contains_key(choice) && here.len() >= 2 && cited.len() < CITED_FIGURES {
                cited.push(r(
                    format!(
                        "{} {} ({}): {} {} — {} better, best {}",
                        f.workload,
                        f.kind,
                        f.params,
                        here.join(", "),
                        f.unit,
                        if f.higher_is_better {
                            "higher"
                        } else {
                            "lower"
                        },
                        f.best
                    ),
                    format!("evidence.figures[{i}]"),
                ));
            }
        }
    }
    reasons.extend(reasons_of(choice));
    reasons.extend(cited);
    // Store and host facts that hold whatever the choice.
    for (i, s) in stores.iter().enumerate() {
        if !s.broken_links.is_empty() {
            reasons.push(r(
                format!("{} short links in {}/l point nowhere: the store is damaged (an interrupted removal?)", s.broken_links.len(), s.path),
                format!("stores[{i}].broken_links = {}", s.broken_links.len()),
            ));
        }
    }
    for c in checks
        .iter()
        .filter(|c| matches!(c.status, CheckStatus::Fail | CheckStatus::Warn))
    {
        reasons.push(r(
            format!(
                "{} {}: {} — {}",
                c.name,
                c.status.label(),
                c.figure,
                c.advice
            ),
            c.field.clone(),
        ));
    }
    if p.reflink == Some(true) && choice != "btrfs" {
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
            "Docker is configured with the legacy overlay driver; switch (images must be pulled again)".into(),
            format!("engines[{}].driver = overlay", e.file),
        ));
    }
    done(choice, reasons, evidence)
}

fn fmt_value(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(features: &[(&str, bool)]) -> KernelReport {
        KernelReport {
            release: "6.18.44".into(),
            overlay_available: true,
            overlay_source: "built-in".into(),
            max_lower_layers: Some(500),
            page_bytes: 4096,
            features: features
                .iter()
                .map(|(n, s)| FeatureProbe {
                    name: (*n).into(),
                    supported: *s,
                    detail: format!("{n} probed"),
                    version: None,
                    mount_us: None,
                })
                .collect(),
            ..Default::default()
        }
    }

    fn path() -> PathReport {
        PathReport {
            path: "/var/lib".into(),
            fstype: "ext4".into(),
            d_type: Some(true),
            ..Default::default()
        }
    }

    fn all_ok() -> KernelReport {
        kernel(&[
            ("overlay mount", true),
            ("multiple lowers", true),
            ("data-only lower layers", true),
            (stacks::ROOTLESS, true),
            (stacks::FUSE_OVERLAYFS, true),
            (stacks::BTRFS, true),
            (stacks::EROFS, true),
        ])
    }

    #[test]
    fn every_reason_cites_a_figure() {
        let rec = recommend(&all_ok(), &path(), &[], &[], &[], None);
        assert_eq!(rec.choice, "containerd");
        assert_eq!(rec.rootless_choice.as_deref(), Some("rootless"));
        for s in &rec.stacks {
            assert_eq!(s.runnable, Some(true), "{s:?}");
        }
        for reason in rec
            .reasons
            .iter()
            .chain(rec.stacks.iter().flat_map(|s| &s.reasons))
        {
            assert!(
                reason.figure.contains(" = ")
                    || reason.figure.contains("not probed")
                    || reason.figure == "always runnable",
                "{reason:?}"
            );
        }
        // containerd's relative form fits the kernel's 500 here; overlay2's l/ names ~135.
        let text: String = rec.reasons.iter().map(|r| r.text.clone()).collect();
        assert!(text.contains("an image of 500 layers fits"), "{text}");
        let o2 = rec
            .stacks
            .iter()
            .find(|s| s.name == "overlay2")
            .expect("overlay2");
        assert!(
            o2.reasons[1].text.contains("fit 134 layers"),
            "{:?}",
            o2.reasons
        );
    }

    #[test]
    fn rootless_falls_back_to_fuse_overlayfs_and_no_overlay_to_btrfs() {
        let k = kernel(&[
            ("overlay mount", true),
            ("multiple lowers", true),
            (stacks::ROOTLESS, false),
            (stacks::FUSE_OVERLAYFS, true),
        ]);
        assert_eq!(
            recommend(&k, &path(), &[], &[], &[], None)
                .rootless_choice
                .as_deref(),
            Some("fuse-overlayfs")
        );
        let mut k = kernel(&[(stacks::BTRFS, true)]);
        k.overlay_available = false;
        assert_eq!(recommend(&k, &path(), &[], &[], &[], None).choice, "btrfs");
        let mut p = path();
        p.xfs_ftype = Some(false);
        assert_eq!(
            recommend(&all_ok(), &p, &[], &[], &[], None).choice,
            "fix-host-first"
        );
        let k = kernel(&[("overlay mount", true), ("multiple lowers", false)]);
        assert_eq!(
            recommend(&k, &path(), &[], &[], &[], None).choice,
            "overlay"
        );
    }

    #[test]
    fn an_existing_store_is_kept() {
        let store = StoreInventory {
            path: "/var/lib/docker/overlay2".into(),
            format: "overlay2".into(),
            engine: "docker".into(),
            layers: 7,
            ..Default::default()
        };
        let rec = recommend(&all_ok(), &path(), &[store], &[], &[], None);
        assert_eq!(rec.choice, "overlay2");
        assert_eq!(rec.reasons[0].figure, "stores[0].layers = 7");
    }

    fn ev(same_kernel: bool) -> ReportEvidence {
        let fig = |a: f64, b: f64| ReportFigure {
            workload: "lookup".into(),
            kind: "slope".into(),
            params: "cache=cold".into(),
            unit: "ns/layer".into(),
            higher_is_better: false,
            values: BTreeMap::from([
                ("containerd".into(), a),
                ("btrfs".into(), b),
                ("plain".into(), 1.0),
            ]),
            best: String::new(),
        };
        ReportEvidence {
            report: "r.json".into(),
            kernel: "6.18.44".into(),
            same_kernel,
            status: "complete".into(),
            layouts: vec!["btrfs".into(), "containerd".into(), "plain".into()],
            figures: vec![fig(10.0, 5.0), fig(10.0, 4.0), fig(1.0, 2.0)],
        }
    }

    #[test]
    fn a_report_on_this_kernel_can_change_the_choice() {
        let rec = recommend(&all_ok(), &path(), &[], &[], &[], Some(ev(true)));
        assert_eq!(rec.choice, "btrfs", "{:?}", rec.reasons);
        assert!(
            rec.reasons[0]
                .text
                .contains("better than containerd on 2 of 3"),
            "{:?}",
            rec.reasons[0]
        );
        assert!(rec
            .reasons
            .iter()
            .any(|r| r.figure == "evidence.figures[0]"));
        // Measured elsewhere: cited, not used.
        let rec = recommend(&all_ok(), &path(), &[], &[], &[], Some(ev(false)));
        assert_eq!(rec.choice, "containerd");
        assert!(rec
            .reasons
            .iter()
            .any(|r| r.text.contains("not this host's")));
    }
}
