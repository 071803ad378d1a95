//! Claim 12: use fast disks — overlay is as fast as what it sits on. The
//! backing's own sequential write (+ fsync) and cold read throughput are
//! measured beside the same operations through a mounted overlay container
//! (a new file in its writable layer; an image file read through the mount),
//! interleaved round by round, so a reader sees what is overlay and what is disk.

use std::fs;

use super::rig::{self, Container, MIB};
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::image::content;
use crate::report::ClaimVerdict;
use crate::stats::ChangeInterval;

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 12,
    slug: "fast-disks",
    statement: "Use fast disks: overlay performance is bounded by the backing storage.",
    check,
    compares: None,
};

/// Refuted when overlay is slower than the backing by more than 20 % in some
/// direction with confidence (the whole 95 % interval of `overlay / backing - 1`
/// below -20 %): then overlay, not the disk, is what limits. Confirmed otherwise.
pub fn verdict_for(write: &ChangeInterval, read: &ChangeInterval) -> ClaimVerdict {
    if write.high < -0.2 || read.high < -0.2 {
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
    let bytes = ctx.settings.io_mib * MIB;
    let img = layout.prepare_spec(
        &rig::image(vec![vec![rig::file("big", bytes, 1)]]),
        &ctx.dir.join("img"),
    )?;
    let lower = layout
        .lower_file(&img, "big".as_ref())
        .ok_or_else(|| ClaimError::Unexpected("the image lost its file 'big'".into()))?;
    let raw_read = ctx.dir.join("raw-read");
    content::write_file(&raw_read, bytes, 1, 0o644)
        .map_err(ClaimError::io("writing", &raw_read))?;
    let c = Container::new(layout, &img, &ctx.dir.join("c"))?;
    let buf = rig::buffer();
    // [backing write, overlay write, backing read, overlay read], MiB/s.
    let mut v: [Vec<f64>; 4] = Default::default();
    for r in 0..ctx.settings.io_rounds {
        // Interleaved, and alternating who goes first, so drift cancels.
        let order: [usize; 2] = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let path = if i == 0 {
                ctx.dir.join(format!("raw-w{r}"))
            } else {
                c.path(&format!("w{r}"))
            };
            v[i].push(rig::mib_per_s(
                bytes,
                rig::sequential_write_ns(&path, bytes, &buf)?,
            ));
            fs::remove_file(&path).map_err(ClaimError::io("removing", &path))?;
            rig::settle(&ctx.dir)?;
        }
        for i in order {
            let (evict, path) = if i == 0 {
                (&raw_read, raw_read.clone())
            } else {
                (&lower, c.path("big"))
            };
            rig::evict(evict)?;
            let (ns, n) = rig::sequential_read_ns(&path)?;
            if n != bytes {
                return Err(ClaimError::Unexpected(format!(
                    "read {n} of {bytes} bytes of {}",
                    path.display()
                )));
            }
            v[2 + i].push(rig::mib_per_s(bytes, ns));
        }
    }
    c.unmount()?;
    let m: Vec<f64> = v.iter().map(|s| rig::median(s)).collect();
    let (w, r) = (rig::change(&v[0], &v[1]), rig::change(&v[2], &v[3]));
    let info = ctx.scratch.info();
    let backing = match &info.device {
        Some(d) => format!(
            "{} on {d}{}",
            info.fstype,
            if info.loop_direct_io == Some(true) {
                " (loop, direct I/O: the host disk's speed)"
            } else {
                ""
            }
        ),
        None => info.fstype.clone(),
    };
    let obs = vec![
        format!("backing {backing}: {:.0} MiB/s sequential write + fsync, {:.0} MiB/s cold sequential read", m[0], m[2]),
        format!(
            "through overlay: {:.0} MiB/s writing a new file in the container, {:.0} MiB/s reading an image file cold",
            m[1], m[3]
        ),
        format!(
            "overlay vs backing (95 % interval): write {}, read {}",
            rig::fmt_change(&w),
            rig::fmt_change(&r)
        ),
        format!(
            "{} MiB per operation, medians of {} interleaved rounds; refuted only when overlay is slower by more than \
             20 % with its whole interval",
            ctx.settings.io_mib, ctx.settings.io_rounds
        ),
    ];
    Ok(Finding::new(
        verdict_for(&w, &r),
        format!(
            "backing {:.0} MiB/s write, {:.0} MiB/s read; through overlay {:.0} and {:.0} MiB/s ({:.0} % and {:.0} %)",
            m[0],
            m[2],
            m[1],
            m[3],
            100.0 * (1.0 + w.change),
            100.0 * (1.0 + r.change)
        ),
    )
    .with_value((1.0 + w.change).min(1.0 + r.change), "x of the backing")
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
    fn overlay_at_disk_speed_confirms() {
        let same = c(-0.1, 0.0, 0.1);
        assert_eq!(verdict_for(&same, &same), ClaimVerdict::Confirmed);
        assert_eq!(
            verdict_for(&c(-0.6, -0.5, -0.4), &same),
            ClaimVerdict::Refuted
        );
        // Slower, but not with confidence: the disk may still be the limit.
        assert_eq!(
            verdict_for(&c(-0.6, -0.3, 0.05), &same),
            ClaimVerdict::Confirmed
        );
    }
}
