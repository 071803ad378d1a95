//! Claim 4: the first write to a lower file copies the whole file up (file
//! level, not block level) even for a one-byte change, and only the first write
//! pays. Each sample is a fresh container: one byte is written twice, the upper
//! copy's size and allocated blocks are read back, and the same write is timed
//! on a plain file of the same size on the same filesystem.

use std::os::unix::fs::MetadataExt;

use super::rig::{self, Container, MIB};
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::image::content;
use crate::report::{fmt_bytes, fmt_ns, ClaimVerdict};

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 4,
    slug: "copy-whole-file",
    statement: "The first write to a lower file copies the whole file up (file level, not block level), even \
                for a one-byte change; only the first write pays, later writes cost what a plain file's do.",
    check,
    compares: None,
};

/// What the samples showed.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// Every upper copy held the whole file.
    pub whole: bool,
    /// Median first write, ns.
    pub first_ns: f64,
    /// Median second write, ns.
    pub second_ns: f64,
    /// Median write to a plain file, ns.
    pub plain_ns: f64,
}

/// Confirmed when every copy was whole, the first write costs at least 10× the
/// second, and the second is within 3× (+50 µs of scheduling noise) of a plain
/// file's write.
pub fn verdict_for(o: &Observed) -> ClaimVerdict {
    let later_like_plain = o.second_ns <= 3.0 * o.plain_ns + 50_000.0;
    if o.whole && o.first_ns >= 10.0 * o.second_ns && later_like_plain {
        ClaimVerdict::Confirmed
    } else {
        ClaimVerdict::Refuted
    }
}

fn check(ctx: &ClaimContext<'_>) -> Result<Finding, ClaimError> {
    let layout = match rig::overlay_layout(ctx) {
        Ok(l) => l,
        Err(f) => return Ok(f),
    };
    let size = ctx.settings.whole_file_mib * MIB;
    let img = layout.prepare_spec(
        &rig::image(vec![vec![rig::file("big", size, 1)]]),
        &ctx.dir.join("img"),
    )?;
    let lower = layout
        .lower_file(&img, "big".as_ref())
        .ok_or_else(|| ClaimError::Unexpected("the image lost its file 'big'".into()))?;
    let plain = ctx.dir.join("plain-file");
    content::write_file(&plain, size, 1, 0o644).map_err(ClaimError::io("writing", &plain))?;
    let (mut first, mut second, mut plain_w) = (Vec::new(), Vec::new(), Vec::new());
    let mut whole = true;
    let mut allocated_min = u64::MAX;
    for s in 0..ctx.settings.copy_samples {
        let dir = ctx.dir.join(format!("c{s}"));
        let c = Container::new(layout, &img, &dir)?;
        rig::settle(&ctx.dir)?;
        rig::evict(&lower)?;
        first.push(rig::one_byte_write_ns(&c.path("big"))?);
        let upper = c.upper()?.join("big");
        let m = std::fs::metadata(&upper).map_err(|e| {
            ClaimError::Unexpected(format!(
                "no copy in the upper dir at {} after a write: {e}",
                upper.display()
            ))
        })?;
        let allocated = m.blocks() * 512;
        allocated_min = allocated_min.min(allocated);
        // Whole: the full length, and (nearly) every block of it written.
        whole &= m.len() == size && allocated + 64 * 1024 >= size;
        second.push(rig::one_byte_write_ns(&c.path("big"))?);
        plain_w.push(rig::one_byte_write_ns(&plain)?);
        c.unmount()?;
        rig::remove(&dir)?;
    }
    let o = Observed {
        whole,
        first_ns: rig::median(&first),
        second_ns: rig::median(&second),
        plain_ns: rig::median(&plain_w),
    };
    let obs = vec![
        format!(
            "after writing 1 byte, the upper copy is {} long with at least {} allocated (of {}), in every one of {} fresh containers",
            fmt_bytes(size as f64),
            fmt_bytes(allocated_min as f64),
            fmt_bytes(size as f64),
            first.len()
        ),
        format!(
            "median 1-byte write: first {} (the copy_up), second {}, same write to a plain file {}",
            fmt_ns(o.first_ns),
            fmt_ns(o.second_ns),
            fmt_ns(o.plain_ns)
        ),
        "the lower file was evicted before each first write (posix_fadvise DONTNEED): cold copy".into(),
    ];
    Ok(Finding::new(
        verdict_for(&o),
        format!(
            "1-byte write to a {} lower file copies {}: first write {}, later {} (plain file {})",
            fmt_bytes(size as f64),
            if whole {
                "all of it"
            } else {
                "only part of it"
            },
            fmt_ns(o.first_ns),
            fmt_ns(o.second_ns),
            fmt_ns(o.plain_ns)
        ),
    )
    .with_value(o.first_ns, "ns")
    .with_observations(obs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_whole_copy_paid_once_confirms() {
        let o = Observed {
            whole: true,
            first_ns: 40e6,
            second_ns: 4e3,
            plain_ns: 3e3,
        };
        assert_eq!(verdict_for(&o), ClaimVerdict::Confirmed);
        assert_eq!(
            verdict_for(&Observed {
                whole: false,
                ..o.clone()
            }),
            ClaimVerdict::Refuted
        );
        // Later writes far above a plain file's: the claim's second half fails.
        assert_eq!(
            verdict_for(&Observed {
                second_ns: 5e6,
                ..o
            }),
            ClaimVerdict::Refuted
        );
    }
}
