//! Claim 5: copy_up of large files adds noticeable write latency. The first
//! one-byte write is timed cold at several sizes (a fresh container each
//! sample, sizes interleaved), a line is fitted through the medians: the
//! per-MiB cost and the size at which the first write passes 100 ms.

use super::rig::{self, Container, MIB};
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::report::{fmt_bytes, fmt_ns, ClaimVerdict};
use crate::stats::{fit_line, LineFit};

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 5,
    slug: "copy-up-latency",
    statement: "copy_up of large files adds noticeable write latency to the first write.",
    check,
    compares: None,
};

/// The latency a user notices, ns.
const NOTICEABLE_NS: f64 = 100e6;

/// Where a fit of latency (ns) against size (MiB) passes `NOTICEABLE_NS`, MiB;
/// `None` when it never does (flat or falling).
pub fn noticeable_at_mib(fit: &LineFit) -> Option<f64> {
    (fit.slope > 0.0).then(|| ((NOTICEABLE_NS - fit.intercept) / fit.slope).max(0.0))
}

/// Confirmed when latency grows with size (a copy); refuted when it is flat over
/// the sizes measured (a clone or a metadata-only copy), i.e. when the growth
/// across the range is under half the cost at the smallest size, or the line
/// explains little of it.
pub fn verdict_for(fit: &LineFit, span_mib: f64, smallest_ns: f64) -> ClaimVerdict {
    if fit.slope * span_mib < 0.5 * smallest_ns.max(1.0) || fit.r2 < 0.8 {
        ClaimVerdict::Refuted
    } else {
        ClaimVerdict::Confirmed
    }
}

fn check(ctx: &ClaimContext<'_>) -> Result<Finding, ClaimError> {
    let layout = match rig::overlay_layout(ctx) {
        Ok(l) => l,
        Err(f) => return Ok(f),
    };
    let sizes = &ctx.settings.copy_sizes_mib;
    let name = |mib: u64| format!("f{mib}m");
    let spec = rig::image(vec![sizes
        .iter()
        .map(|&m| rig::file(&name(m), m * MIB, m))
        .collect()]);
    let img = layout.prepare_spec(&spec, &ctx.dir.join("img"))?;
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); sizes.len()];
    for s in 0..ctx.settings.copy_samples {
        for (i, &mib) in sizes.iter().enumerate() {
            let rel = name(mib);
            let lower = layout
                .lower_file(&img, rel.as_ref())
                .ok_or_else(|| ClaimError::Unexpected(format!("the image lost its file {rel}")))?;
            let dir = ctx.dir.join(format!("c{s}-{mib}"));
            let c = Container::new(layout, &img, &dir)?;
            rig::settle(&ctx.dir)?;
            rig::evict(&lower)?;
            samples[i].push(rig::one_byte_write_ns(&c.path(&rel))?);
            c.unmount()?;
            rig::remove(&dir)?;
        }
    }
    let medians: Vec<(f64, f64)> = sizes
        .iter()
        .zip(&samples)
        .map(|(&m, v)| (m as f64, rig::median(v)))
        .collect();
    let fit = fit_line(&medians).ok_or_else(|| {
        ClaimError::Unexpected("copy-up latency needs at least two sizes to fit".into())
    })?;
    let span = medians.last().map_or(0.0, |p| p.0) - medians.first().map_or(0.0, |p| p.0);
    let smallest = medians.first().map_or(0.0, |p| p.1);
    let verdict = verdict_for(&fit, span, smallest);
    let mut obs: Vec<String> = medians
        .iter()
        .map(|(m, ns)| {
            format!(
                "{}: first write {} (median of {}, cold, fresh container each)",
                fmt_bytes(m * MIB as f64),
                fmt_ns(*ns),
                ctx.settings.copy_samples
            )
        })
        .collect();
    obs.push(format!(
        "fit: {} fixed + {} per MiB (r² {:.3})",
        fmt_ns(fit.intercept.max(0.0)),
        fmt_ns(fit.slope),
        fit.r2
    ));
    let at = noticeable_at_mib(&fit);
    let figure = match (verdict, at) {
        (ClaimVerdict::Confirmed, Some(mib)) => format!(
            "{} per MiB copied{}: the first write passes 100 ms at about {}",
            fmt_ns(fit.slope),
            // A fit through the origin (or below it) has no fixed cost to speak of.
            if fit.intercept > 0.0 {
                format!(" (+{} fixed)", fmt_ns(fit.intercept))
            } else {
                String::new()
            },
            fmt_bytes(mib * MIB as f64)
        ),
        _ => format!(
            "flat in size: {} at {} vs {} at {} (no copy of the data)",
            fmt_ns(smallest),
            fmt_bytes(medians.first().map_or(0.0, |p| p.0) * MIB as f64),
            fmt_ns(medians.last().map_or(0.0, |p| p.1)),
            fmt_bytes(medians.last().map_or(0.0, |p| p.0) * MIB as f64)
        ),
    };
    Ok(Finding::new(verdict, figure)
        .with_value(fit.slope, "ns/MiB")
        .with_observations(obs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(slope: f64, intercept: f64, r2: f64) -> LineFit {
        LineFit {
            slope,
            intercept,
            r2,
            n: 3,
        }
    }

    #[test]
    fn a_linear_copy_confirms_and_says_where_it_hurts() {
        let f = fit(1.25e6, 0.0, 0.99);
        assert_eq!(verdict_for(&f, 60.0, 5e6), ClaimVerdict::Confirmed);
        let at = noticeable_at_mib(&f).expect("rises");
        assert!((at - 80.0).abs() < 1e-9, "{at}");
    }

    #[test]
    fn a_flat_clone_refutes() {
        // xfs reflink: ~200 µs whatever the size.
        let f = fit(50.0, 200e3, 0.2);
        assert_eq!(verdict_for(&f, 60.0, 200e3), ClaimVerdict::Refuted);
        assert!(noticeable_at_mib(&fit(-1.0, 0.0, 0.0)).is_none());
    }
}
