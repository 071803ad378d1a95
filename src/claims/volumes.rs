//! Claim 11: write-heavy workloads should use volumes rather than the
//! container's writable layer. Measured inside one mounted container: new files
//! written into its writable layer (they land in the upper dir) and into a
//! "volume" — a directory on the same backing bind-mounted into the container,
//! as `docker run -v` does. Sequential throughput, 4 KiB random writes and
//! write+fsync latency, the two targets interleaved round by round.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::rig::{self, Container, MIB};
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::isolate::{IsolateError, MountGuard};
use crate::report::{fmt_ns, ClaimVerdict};
use crate::stats::ChangeInterval;

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 11,
    slug: "volumes",
    statement:
        "Write-heavy workloads should use volumes rather than the container's writable layer.",
    check,
    compares: None,
};

/// How much worse the writable layer is than the volume, per figure: the
/// change of the volume's throughput over the layer's, or of the layer's latency
/// over the volume's (+0.5 = the layer is 50 % worse), with its interval.
#[derive(Debug, Clone, Copy)]
pub struct Penalties {
    /// Sequential write + fsync throughput.
    pub sequential: ChangeInterval,
    /// 4 KiB random writes per second.
    pub random: ChangeInterval,
    /// Latency of one 4 KiB write + fsync.
    pub fsync: ChangeInterval,
}

/// Confirmed when the writable layer is worse by more than 25 % on some figure
/// with confidence (its whole 95 % interval beyond 25 %, the gate's rule);
/// refuted otherwise — a noisy difference is not evidence for the advice.
pub fn verdict_for(p: &Penalties) -> ClaimVerdict {
    if [&p.sequential, &p.random, &p.fsync]
        .iter()
        .any(|c| c.low > 0.25)
    {
        ClaimVerdict::Confirmed
    } else {
        ClaimVerdict::Refuted
    }
}

fn measure(
    dir: &Path,
    round: usize,
    ctx: &ClaimContext<'_>,
    buf: &[u8],
    out: &mut [Vec<f64>; 3],
) -> Result<(), ClaimError> {
    let s = ctx.settings;
    let bytes = s.io_mib * MIB;
    let seq = dir.join(format!("seq-{round}"));
    out[0].push(rig::mib_per_s(
        bytes,
        rig::sequential_write_ns(&seq, bytes, buf)?,
    ));
    fs::remove_file(&seq).map_err(ClaimError::io("removing", &seq))?;
    let rand = dir.join(format!("rand-{round}"));
    rig::sequential_write_ns(&rand, bytes, buf)?;
    rig::settle(dir)?;
    let ns = rig::random_writes_ns(&rand, bytes, s.random_writes, round as u64, buf)?;
    out[1].push(s.random_writes as f64 / (ns / 1e9));
    fs::remove_file(&rand).map_err(ClaimError::io("removing", &rand))?;
    let sync = dir.join(format!("fsync-{round}"));
    // One sample per round: the round, not the fsync, is the unit that repeats
    // independently (a neighbour's I/O burst slows a whole round at once).
    out[2].push(rig::median(&rig::fsync_latencies_ns(&sync, s.fsyncs, buf)?));
    fs::remove_file(&sync).map_err(ClaimError::io("removing", &sync))?;
    rig::settle(dir)
}

fn bind(source: &Path, target: &Path) -> Result<MountGuard, ClaimError> {
    fs::create_dir_all(target).map_err(ClaimError::io("creating", target))?;
    nix::mount::mount(
        Some(source),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| IsolateError::Mount {
        fstype: "bind".into(),
        target: target.to_path_buf(),
        source: e.into(),
    })?;
    Ok(MountGuard::new(target.to_path_buf()))
}

fn check(ctx: &ClaimContext<'_>) -> Result<Finding, ClaimError> {
    let layout = match rig::overlay_layout(ctx) {
        Ok(l) => l,
        Err(f) => return Ok(f),
    };
    let img = layout.prepare_spec(
        &rig::image(vec![vec![rig::dir("app"), rig::file("app/bin", 4096, 1)]]),
        &ctx.dir.join("img"),
    )?;
    let c = Container::new(layout, &img, &ctx.dir.join("c"))?;
    let volume = ctx.dir.join("volume");
    fs::create_dir_all(&volume).map_err(ClaimError::io("creating", &volume))?;
    let guard = bind(&volume, &c.path("vol"))?;
    let layer_dir: PathBuf = c.path("data");
    fs::create_dir_all(&layer_dir).map_err(ClaimError::io("creating", &layer_dir))?;
    let buf = rig::buffer();
    let mut layer: [Vec<f64>; 3] = Default::default();
    let mut vol: [Vec<f64>; 3] = Default::default();
    for round in 0..ctx.settings.io_rounds {
        // Interleaved, and alternating who goes first, so drift cancels.
        if round % 2 == 0 {
            measure(&layer_dir, round, ctx, &buf, &mut layer)?;
            measure(&c.path("vol"), round, ctx, &buf, &mut vol)?;
        } else {
            measure(&c.path("vol"), round, ctx, &buf, &mut vol)?;
            measure(&layer_dir, round, ctx, &buf, &mut layer)?;
        }
    }
    guard.unmount()?;
    c.unmount()?;
    let p = Penalties {
        sequential: rig::change(&layer[0], &vol[0]),
        random: rig::change(&layer[1], &vol[1]),
        fsync: rig::change(&vol[2], &layer[2]),
    };
    let m = |v: &Vec<f64>| rig::median(v);
    let s = ctx.settings;
    let obs = vec![
        format!(
            "writable layer: {:.0} MiB/s sequential ({} MiB + fsync), {:.0} random 4 KiB writes/s, write+fsync {}",
            m(&layer[0]),
            s.io_mib,
            m(&layer[1]),
            fmt_ns(m(&layer[2]))
        ),
        format!(
            "volume (bind mount, same backing): {:.0} MiB/s, {:.0} writes/s, write+fsync {}",
            m(&vol[0]),
            m(&vol[1]),
            fmt_ns(m(&vol[2]))
        ),
        format!(
            "how much worse the writable layer is (95 % interval): sequential {}, random {}, fsync {}",
            rig::fmt_change(&p.sequential),
            rig::fmt_change(&p.random),
            rig::fmt_change(&p.fsync)
        ),
        format!(
            "medians of {} interleaved rounds (the median of {} write+fsync pairs per round); confirmed only when a \
             figure is worse by more than 25 % with its whole interval",
            s.io_rounds, s.fsyncs
        ),
        "new files in a container go straight to its upper dir; what the writable layer costs extra is the copy_up \
         of files that came with the image (claims 4 and 5) — a volume never copies"
            .into(),
    ];
    let worst = [p.sequential.change, p.random.change, p.fsync.change]
        .into_iter()
        .fold(f64::MIN, f64::max);
    Ok(Finding::new(
        verdict_for(&p),
        format!(
            "writable layer vs volume: {:.0} vs {:.0} MiB/s sequential, {:.0} vs {:.0} random writes/s, write+fsync {} vs {}",
            m(&layer[0]),
            m(&vol[0]),
            m(&layer[1]),
            m(&vol[1]),
            fmt_ns(m(&layer[2])),
            fmt_ns(m(&vol[2]))
        ),
    )
    .with_value(1.0 + worst, "x (worst figure, layer vs volume)")
    .with_observations(obs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(low: f64, change: f64, high: f64) -> ChangeInterval {
        ChangeInterval {
            baseline: 1.0,
            current: 1.0 + change,
            change,
            low,
            high,
        }
    }

    #[test]
    fn only_a_confident_penalty_confirms() {
        let same = Penalties {
            sequential: c(-0.1, 0.0, 0.1),
            random: c(-0.1, 0.0, 0.1),
            fsync: c(-0.1, 0.0, 0.1),
        };
        assert_eq!(verdict_for(&same), ClaimVerdict::Refuted);
        // A big but noisy difference is not evidence.
        let noisy = Penalties {
            fsync: c(-0.2, 1.5, 4.0),
            ..same
        };
        assert_eq!(verdict_for(&noisy), ClaimVerdict::Refuted);
        let slow = Penalties {
            fsync: c(0.6, 1.0, 1.4),
            ..noisy
        };
        assert_eq!(verdict_for(&slow), ClaimVerdict::Confirmed);
    }
}
