//! The recommendation: which storage stack to run on this host, chosen among the
//! stacks it can run, each reason citing a figure measured here. The stacks are
//! the layout registry's (`layout::LAYOUTS`): each is judged and described by
//! what its entry declares (`LayoutEntry::host`, `judge`), so doctor names no
//! layout; what is left here is the ranking policy — keep a store in use, the
//! default store for a new host, the kernel's overlay before a FUSE daemon,
//! rootful engines' stacks before rootless ones. A `run` report given with
//! `--from` adds its measured figures, by the layout names the report itself
//! carries, ranked by the rules of the workload that measured them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::checks::{Check, CheckStatus};
use super::config::EngineConfig;
use super::probe::FeatureProbe;
use super::stacks;
use super::store::{Mounts, StoreInventory};
use super::{KernelReport, PathReport, Reason, Recommendation};
use crate::layout::host::{Cite, OptionForm, StoreAdvice};
use crate::layout::{CopyUp, Engine, Feature, LayoutEntry, LAYOUTS};
use crate::report::Report;

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
    /// The run's own recommendation, from the findings engine (the same
    /// one `run` writes into its report), recomputed from its cases.
    #[serde(default)]
    pub recommendation: Option<crate::report::findings::Recommendation>,
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
        recommendation: crate::workload::findings_of(report).recommendation,
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

/// The name a feature's probe has in `kernel.features`.
fn probe_of(f: Feature) -> &'static str {
    f.probe_name().unwrap_or_else(|| f.label())
}

/// A probe's detail, with the tool's version when it ran one.
fn detail_of(f: &FeatureProbe) -> String {
    format!(
        "{}{}",
        f.detail,
        f.version
            .as_deref()
            .map(|v| format!(" ({v})"))
            .unwrap_or_default()
    )
}

/// Each layout of the registry as this host can run it: judged by what its
/// entry declares (its own probe, else the features it needs), with the
/// reasons its entry names, each citing the figure it rests on.
pub fn assess(k: &KernelReport, p: &PathReport, stores: &[StoreInventory]) -> Vec<StackAssessment> {
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
    let idmap_path = k
        .features
        .iter()
        .find(|f| f.name.starts_with(stacks::IDMAP_PATH));
    let mut out = Vec::new();
    for e in LAYOUTS {
        let mut reasons = Vec::new();
        let own = e.host.probe.and_then(|pr| feature(k, pr.name));
        match (e.host.probe, own) {
            (_, Some(f)) => reasons.push(r(detail_of(f), cite(k, &f.name))),
            // Nothing else to judge it by: say its own probe did not run.
            (Some(pr), None)
                if e.host.tools.is_none()
                    && e.host.requires.iter().all(|f| f.probe_name().is_none()) =>
            {
                reasons.push(r("not probed".into(), cite(k, pr.name)));
            }
            _ => {}
        }
        if let Some(t) = e.host.tools {
            reasons.push(r(
                feature(k, t.name).map_or("not probed".into(), detail_of),
                cite(k, t.name),
            ));
        }
        for n in e.host.notes {
            match n.cite {
                Cite::Feature(f) => reasons.push(r(n.text.into(), cite(k, probe_of(f)))),
                Cite::FeatureDetail(f) => reasons.push(r(
                    feature(k, probe_of(f))
                        .map_or("not probed".into(), |x| format!("{}; {}", x.detail, n.text)),
                    cite(k, probe_of(f)),
                )),
                Cite::Unprobed(f) => {
                    if own.is_none() {
                        reasons.push(r(n.text.into(), cite(k, probe_of(f))));
                    }
                }
                Cite::IdmapWorks => {
                    if let Some(f) = idmap_path.filter(|f| f.supported) {
                        reasons.push(r(
                            n.text.into(),
                            format!("kernel.features[{}].supported = true", f.name),
                        ));
                    }
                }
                Cite::PathFstype => {
                    if let Some(fs) = e.caps.needs_fstype {
                        let figure = format!("path.fstype = {}", p.fstype);
                        reasons.push(if p.fstype == fs {
                            r(format!("{} is on {fs} already", p.path), figure)
                        } else {
                            r(
                                format!(
                                    "{} is on {}: the {} driver needs a {fs} filesystem of its own; {}",
                                    p.path, p.fstype, e.name, n.text
                                ),
                                figure,
                            )
                        });
                    }
                }
                Cite::Stores => {
                    for (i, s) in stores
                        .iter()
                        .enumerate()
                        .filter(|(_, s)| s.format == e.name)
                    {
                        reasons.push(r(
                            format!(
                                "this host's {} store {} holds {} inodes for {} layers; its most-linked file has {} \
                                 links (ext4 stops at 65,000)",
                                n.text, s.path, s.inodes, s.layers, s.max_links
                            ),
                            format!("stores[{i}].max_links = {}", s.max_links),
                        ));
                    }
                }
                Cite::OptionPage(form) => {
                    let fit = layers_in_a_page(&example_mounts(form), page, max);
                    reasons.push(r(
                        n.text
                            .replace("{fit}", &fit.to_string())
                            .replace("{page}", &page.to_string())
                            .replace("{max}", &max.to_string()),
                        max_fig.clone(),
                    ));
                }
                Cite::Always => reasons.push(r(n.text.into(), "always runnable".into())),
            }
        }
        // A rootless layout served by a daemon is only needed where the
        // kernel's own overlay does not work in a user namespace.
        if e.host.engine == Engine::Rootless && e.caps.copy_up == CopyUp::Daemon {
            let kernel_probe = LAYOUTS
                .iter()
                .filter(|o| {
                    o.host.engine == Engine::Rootless && o.caps.copy_up == CopyUp::OverlayXattr
                })
                .filter_map(|o| o.host.probe)
                .find(|pr| supported(k, pr.name) == Some(true));
            if let Some(pr) = kernel_probe {
                reasons.push(r(
                    format!(
                        "the kernel's own overlay works in a user namespace here, so rootless engines need no FUSE \
                         daemon ({} adds a round trip to the daemon per uncached lookup and a copy per write)",
                        e.name
                    ),
                    cite(k, pr.name),
                ));
            }
        }
        out.push(StackAssessment {
            name: e.name.into(),
            runnable: e.judge(|n| supported(k, n)).runnable(),
            reasons,
            mount_us: own.and_then(|f| f.mount_us),
        });
    }
    out
}

/// A store of `form` at an engine's default place, to measure option lengths by.
fn example_mounts(form: OptionForm) -> Mounts {
    match form {
        OptionForm::ShortLinks => Mounts::Overlay2 {
            home: "/var/lib/docker/overlay2".into(),
            links: Default::default(),
            init_layer: true,
        },
        OptionForm::RelativeToSnapshots => Mounts::Containerd {
            snapshots: format!(
                "/var/lib/containerd/{}/snapshots",
                super::store::CONTAINERD_SNAPSHOTTER
            ),
            container_id_len: 4,
        },
    }
}

/// What doctor says of a store it advises to leave (empty for none).
fn text_of(advice: StoreAdvice) -> String {
    match advice {
        StoreAdvice::Keep(t) | StoreAdvice::Replace(t) => t.to_string(),
        StoreAdvice::None => String::new(),
    }
}

/// Rootful layouts doctor may choose (not the baseline), in registry order.
fn rootful() -> impl Iterator<Item = &'static LayoutEntry> {
    LAYOUTS
        .iter()
        .copied()
        .filter(|e| e.host.engine == Engine::Rootful && !e.caps.baseline)
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
    // Rootless engines: the kernel's own overlay before a FUSE daemon.
    let mut rootless: Vec<&LayoutEntry> = LAYOUTS
        .iter()
        .copied()
        .filter(|e| e.host.engine == Engine::Rootless)
        .collect();
    rootless.sort_by_key(|e| e.caps.copy_up == CopyUp::Daemon);
    let rootless_choice = rootless
        .iter()
        .find(|e| runnable(e.name))
        .map(|e| e.name.to_string());
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
        // The layouts that need no kernel overlay, rootful engines' first.
        let mut alternatives: Vec<&LayoutEntry> = LAYOUTS
            .iter()
            .copied()
            .filter(|e| !e.caps.baseline && e.caps.copy_up != CopyUp::OverlayXattr)
            .collect();
        alternatives.sort_by_key(|e| e.host.engine != Engine::Rootful);
        if let Some(alt) = alternatives.into_iter().find(|e| runnable(e.name)) {
            reasons.extend(reasons_of(alt.name));
            return done(alt.name, reasons, evidence);
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
        // An overlay layout that stacks one lower and needs nothing more.
        let single = rootful().find(|e| {
            e.caps.copy_up == CopyUp::OverlayXattr
                && !e.caps.lower_per_layer
                && !e
                    .host
                    .requires
                    .iter()
                    .any(|f| matches!(f, Feature::MultipleLowers | Feature::DataOnlyLowers))
        });
        return done(
            single.map_or("no-overlay", |e| e.name),
            vec![r(
                "this kernel refuses multiple lower layers: only the legacy single-lower layout works".into(),
                "kernel.features[multiple lowers].supported = false".into(),
            )],
            evidence,
        );
    }
    // The engine already in use stays unless something says otherwise (a
    // retired one moves to the default); a new host gets the default store.
    let default = LAYOUTS
        .iter()
        .copied()
        .find(|e| e.host.default_for_new_hosts.is_some());
    let default_name = default
        .or_else(|| rootful().next())
        .map_or("no-overlay", |e| e.name);
    let with_layers = |f: &str| {
        stores
            .iter()
            .position(|s| s.format == f && s.layers > 0 && s.rootless_user.is_none())
    };
    let mut kept: Vec<&LayoutEntry> = LAYOUTS
        .iter()
        .copied()
        .filter(|e| e.host.stores != StoreAdvice::None)
        .collect();
    kept.sort_by_key(|e| e.host.default_for_new_hosts.is_none());
    let found = kept
        .into_iter()
        .find_map(|e| with_layers(e.name).map(|i| (e, i)));
    let (mut choice, mut reasons) = match found {
        Some((e, i)) => match e.host.stores {
            StoreAdvice::Keep(text) => (
                e.name,
                vec![r(
                    text.replace("{layers}", &stores[i].layers.to_string())
                        .replace("{engine}", &stores[i].engine),
                    format!("stores[{i}].layers = {}", stores[i].layers),
                )],
            ),
            other => (
                default_name,
                vec![r(
                    text_of(other),
                    format!("stores[{i}].format = {}", stores[i].format),
                )],
            ),
        },
        None => (
            default_name,
            vec![r(
                default
                    .and_then(|e| e.host.default_for_new_hosts)
                    .unwrap_or("no image store with layers here")
                    .into(),
                format!("stores = {}", stores.len()),
            )],
        ),
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
        // The run's recommendation, as both reasons below phrase it.
        let says = |rec: &crate::report::findings::Recommendation| {
            format!("{} recommends {} over {}", ev.report, rec.layout, rec.over)
        };
        let first_reason = |rec: &crate::report::findings::Recommendation| {
            rec.reasons
                .first()
                .cloned()
                .unwrap_or_else(|| rec.text.clone())
        };
        let stack_of = |layout: &str| crate::layout::entry(layout);
        if !ev.same_kernel {
            reasons.push(r(
                format!(
                    "{} was measured on kernel {}, not this host's {}: its figures are shown, not used",
                    ev.report, ev.kernel, k.release
                ),
                format!("evidence.kernel = {}", ev.kernel),
            ));
        } else {
            // The run's findings decide between the layouts they compared,
            // so `doctor --from` and the run never disagree.
            if let Some(rec) = ev
                .recommendation
                .as_ref()
                .filter(|rec| (rec.over == choice || rec.layout == choice) && runnable(&rec.layout))
            {
                // The registry's name: `choice` outlives the evidence.
                let recommended = crate::layout::entry(&rec.layout).map_or(choice, |e| e.name);
                reasons.insert(
                    0,
                    r(
                        format!("{}: {}", says(rec), first_reason(rec)),
                        "evidence.recommendation".into(),
                    ),
                );
                choice = recommended;
            } else if let Some(rec) = &ev.recommendation {
                // A choice outside the pair the run compared (containerd's
                // snapshotter on a host with no store yet) stands, and says
                // what the run found between the two.
                reasons.push(r(
                    format!(
                        "{} ({}); {choice} was not one of the two it compared",
                        says(rec),
                        first_reason(rec)
                    ),
                    "evidence.recommendation".into(),
                ));
            }
            let rivals: Vec<&str> = if ev.recommendation.is_some() {
                Vec::new()
            } else {
                rootful()
                    .map(|e| e.name)
                    .filter(|s| *s != choice && runnable(s) && ev.layouts.iter().any(|l| l == s))
                    .collect()
            };
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
                choice = rival;
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
    // A layout whose containers share blocks copies no file up at all.
    if p.reflink == Some(true) && crate::layout::caps_of(choice).copy_up != CopyUp::BlockCow {
        reasons.push(r(
            "this filesystem clones files: copy_up costs about the same whatever the file size"
                .into(),
            "path.reflink = true".into(),
        ));
    }
    // Docker names its storage drivers as the layouts are named: one whose
    // stores doctor advises to replace is a driver to switch from.
    let retired = |d: &str| {
        crate::layout::entry(d).is_some_and(|l| matches!(l.host.stores, StoreAdvice::Replace(_)))
    };
    for (e, d) in engines
        .iter()
        .filter(|e| e.engine == "docker")
        .filter_map(|e| e.driver.as_deref().filter(|d| retired(d)).map(|d| (e, d)))
    {
        reasons.push(r(
            format!("Docker is configured with the legacy {d} driver; switch (images must be pulled again)"),
            format!("engines[{}].driver = {d}", e.file),
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
            ("rootless overlay (user namespace)", true),
            ("fuse-overlayfs", true),
            ("btrfs", true),
            ("EROFS images", true),
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
            ("rootless overlay (user namespace)", false),
            ("fuse-overlayfs", true),
        ]);
        assert_eq!(
            recommend(&k, &path(), &[], &[], &[], None)
                .rootless_choice
                .as_deref(),
            Some("fuse-overlayfs")
        );
        let mut k = kernel(&[("btrfs", true)]);
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
            recommendation: None,
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
