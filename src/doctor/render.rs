//! doctor's text output: the verdict and the checks first, then the stacks,
//! the stores, the kernel, the path and the engine configs. Pure: it reads a
//! finished `DoctorReport` and writes nothing.

use super::checks::{Check, CheckStatus};
use super::store::{self, LayerUsage};
use super::{images, DoctorReport};

fn store_name(img: &store::ImageUsage) -> String {
    if img.name.is_empty() {
        let id = store::short_ids(&[img.top_layer.as_str()]);
        format!("(top {})", id[0])
    } else {
        img.name.clone()
    }
}

/// Human-readable rendering: the verdict and the checks first, then the stacks,
/// the stores, the kernel, the path and the engine configs.
pub fn render_text(d: &DoctorReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let yn = |b: Option<bool>| match b {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "unknown",
    };
    let rec = &d.recommendation;
    let _ = writeln!(
        s,
        "verdict     {}{}",
        rec.choice,
        rec.rootless_choice
            .as_ref()
            .map(|r| format!(" · rootless engines: {r}"))
            .unwrap_or_default()
    );
    for (i, r) in rec.reasons.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}{} [{}]",
            if i == 0 {
                "  because   "
            } else {
                "            "
            },
            r.text,
            r.figure
        );
    }
    let mut checks: Vec<&Check> = d.checks.iter().collect();
    // Failures first, then warnings; the rest in their own order.
    checks.sort_by_key(|c| match c.status {
        CheckStatus::Fail => 0,
        CheckStatus::Warn => 1,
        _ => 2,
    });
    for (i, c) in checks.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}{:<4}  {:<15} {} · limit: {}{}",
            if i == 0 {
                "\nchecks      "
            } else {
                "            "
            },
            c.status.label(),
            c.name,
            c.figure,
            c.limit,
            if c.advice.is_empty() {
                String::new()
            } else {
                format!(" → {}", c.advice)
            }
        );
    }
    for (i, st) in rec.stacks.iter().enumerate() {
        let _ = writeln!(
            s,
            "{}{:<15} {:<7} {}",
            if i == 0 {
                "\nstacks      "
            } else {
                "            "
            },
            st.name,
            yn(st.runnable),
            match st.mount_us {
                Some(us) => format!("its probe had a container up in {us} µs"),
                None => st
                    .reasons
                    .first()
                    .map(|r| format!("[{}]", r.figure))
                    .unwrap_or_default(),
            }
        );
    }
    if let Some(ev) = &rec.evidence {
        let _ = writeln!(
            s,
            "from        {} ({}, kernel {}{}): layouts {}; {} figures measured for two layouts or more",
            ev.report,
            ev.status,
            ev.kernel,
            if ev.same_kernel { ", this host's" } else { ", NOT this host's" },
            ev.layouts.join(", "),
            ev.figures.len()
        );
    }
    for st in &d.stores {
        let init = if st.init_layers > 0 {
            format!(" + {} init", st.init_layers)
        } else {
            String::new()
        };
        let who = st
            .rootless_user
            .as_ref()
            .map(|u| format!(", rootless: {u}"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "\nstore       {} ({} {}{who}) · {} image layers, {} container layers{init} · deepest chain {} · {} images · \
             {} inodes · {} · {} whiteouts · {} hard-linked paths on {} inodes · {} broken links",
            st.path,
            st.engine,
            st.format,
            st.image_layers,
            st.containers,
            st.deepest_chain,
            st.images.len(),
            st.inodes,
            crate::report::fmt_bytes(st.bytes as f64),
            st.whiteouts,
            st.hardlink_paths,
            st.hardlink_inodes,
            st.broken_links.len()
        );
        let _ = writeln!(s, "  metadata  {}", st.metadata);
        if let Some(b) = st.filesystem_used_bytes {
            let _ = writeln!(
                s,
                "  btrfs     {} in use on the filesystem (data + metadata); layer figures below count what differs from the parent snapshot",
                crate::report::fmt_bytes(b as f64)
            );
        }
        for img in st.images.iter().take(5) {
            let opts = img
                .mount_options
                .as_ref()
                .map(|m| format!(" · mount options {} B ({})", m.engine_bytes, m.engine_form))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "  image     {} · {} layers · {} inodes · {}{opts}",
                store_name(img),
                img.layers,
                img.inodes,
                crate::report::fmt_bytes(img.bytes as f64)
            );
        }
        if st.images.len() > 5 {
            let _ = writeln!(s, "  image     … {} more in --json", st.images.len() - 5);
        }
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
                "  {id:<18} {:>8} inodes {:>10}  {role}{}",
                l.inodes,
                crate::report::fmt_bytes(l.bytes as f64),
                l.kind
                    .as_ref()
                    .map(|k| format!(" ({k})"))
                    .unwrap_or_default()
            );
        }
        for n in st.notes.iter().take(5) {
            let _ = writeln!(s, "  note      {n}");
        }
    }
    for n in &d.notes {
        let _ = writeln!(s, "\nnote        {n}");
    }
    s.push_str(&images::render_text(&d.images, d.store_images_left_out));
    let _ = writeln!(
        s,
        "\nkernel      Linux {} · overlay {} ({})",
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
        let _ = writeln!(s, "probes      mounted on {b}");
    }
    for f in &d.kernel.features {
        let _ = writeln!(
            s,
            "  {:<30} {:<4} {}{}",
            f.name,
            if f.supported { "yes" } else { "NO" },
            f.detail,
            f.version
                .as_ref()
                .map(|v| format!(" [{v}]"))
                .unwrap_or_default()
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
    s
}
