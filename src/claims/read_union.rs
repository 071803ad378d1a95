//! Claim 3: a name only in the lower is read from the lower, only in the upper
//! from the upper, and where both have it the upper hides the lower. Checked by
//! content: files of known content are put in the image and, before the mount,
//! straight into the container's upper dir; then read through the mount.

use std::fs;

use super::rig::{self, Container};
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::image::content;
use crate::report::ClaimVerdict;

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 3,
    slug: "read-union",
    statement:
        "Reads: a file only in the lower is read from the lower, only in the upper from the upper; \
                a file in both is read from the upper, which hides the lower.",
    check,
    compares: None,
};

const SIZE: u64 = 4096;

fn check(ctx: &ClaimContext<'_>) -> Result<Finding, ClaimError> {
    let layout = match rig::overlay_layout(ctx) {
        Ok(l) => l,
        Err(f) => return Ok(f),
    };
    // Two image layers both holding `layered`: the higher lower hides the lower one too.
    let spec = rig::image(vec![
        vec![
            rig::file("lower-only", SIZE, 1),
            rig::file("both", SIZE, 2),
            rig::file("layered", SIZE, 3),
        ],
        vec![rig::file("layered", SIZE, 4)],
    ]);
    let img = layout.prepare_spec(&spec, &ctx.dir.join("img"))?;
    let dirs = layout.create_container(&img, &ctx.dir.join("c"))?;
    for (rel, seed) in [("upper-only", 5u64), ("both", 6)] {
        let path = layout.upper_file(&dirs, rel.as_ref()).ok_or_else(|| {
            ClaimError::Unexpected(format!("layout {} has no upper dir", layout.name()))
        })?;
        content::write_file(&path, SIZE, seed, 0o644).map_err(ClaimError::io("writing", &path))?;
    }
    let mounted = layout.mount(&img, &dirs)?;
    let c = Container { dirs, mounted };
    let read = |rel: &str| fs::read(c.path(rel)).map_err(ClaimError::io("reading", c.path(rel)));
    let cases = [
        ("lower-only", 1u64, "only in the lower: read from the lower"),
        ("upper-only", 5, "only in the upper: read from the upper"),
        (
            "both",
            6,
            "in the lower and the upper: the upper's content, the lower's hidden",
        ),
        (
            "layered",
            4,
            "in two image layers: the higher layer's content",
        ),
    ];
    let mut obs = Vec::new();
    let mut held = 0;
    for (rel, seed, what) in cases {
        let ok = read(rel)? == content::bytes(seed, SIZE);
        held += usize::from(ok);
        obs.push(format!(
            "{what}: {}",
            if ok { "as stated" } else { "NOT as stated" }
        ));
    }
    // The lower copy of `both` is still there, unchanged, under the upper one.
    let lower = layout
        .lower_file(&img, "both".as_ref())
        .ok_or_else(|| ClaimError::Unexpected("the image lost its file 'both'".into()))?;
    let intact =
        fs::read(&lower).map_err(ClaimError::io("reading", &lower))? == content::bytes(2, SIZE);
    obs.push(format!(
        "the hidden lower file is {} on disk",
        if intact { "intact" } else { "CHANGED" }
    ));
    c.unmount()?;
    let verdict = if held == cases.len() && intact {
        ClaimVerdict::Confirmed
    } else {
        ClaimVerdict::Refuted
    };
    Ok(Finding::new(
        verdict,
        format!(
            "{held} of {} read cases as stated (compared byte for byte)",
            cases.len()
        ),
    )
    .with_value(held as f64, "cases")
    .with_observations(obs))
}
