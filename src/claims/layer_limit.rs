//! Claim 1: "overlay2 supports up to 128 lower layers". Measured by mounting:
//! an overlay2 image of the kernel's maximum depth is built once and mounted at
//! Docker's 125, the documented 128 and the deepest the kernel takes; one layer
//! more is mounted raw (the layout refuses it before the kernel would).

use std::path::PathBuf;

use super::rig::{self, Container};
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::isolate::{
    mount_overlay, new_api_available, IsolateError, MountApi, OverlayMount, CLASSIC_OPTIONS_LIMIT,
};
use crate::layout::{self, PreparedImage, MAX_LOWER_LAYERS};
use crate::report::ClaimVerdict;

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 1,
    slug: "layer-limit",
    statement: "overlay2 supports up to 128 lower layers.",
    check,
    compares: None,
};

/// What Docker's notes document.
const DOCUMENTED: usize = 128;
/// Where Docker itself stops: moby's layer store `maxLayerDepth` (the 127 of some
/// graph drivers minus the 2 layers a container adds).
const DOCKER_MAX: usize = 125;

/// Lower layers a classic `mount(2)` option string holds in Docker's own form:
/// `lowerdir=l/<26 chars>:…` relative to the store, with absolute upper and work
/// dirs of `upper_work_bytes` together — the one-page limit the 128 came from.
pub fn classic_page_capacity(upper_work_bytes: usize) -> usize {
    // "lowerdir=" + n × "l/" + 26 + ":" (one colon fewer) + ",upperdir=" + ",workdir=".
    let fixed = "lowerdir=".len() + ",upperdir=".len() + ",workdir=".len() + upper_work_bytes;
    (CLASSIC_OPTIONS_LIMIT - fixed + 1) / ("l/".len() + 26 + 1)
}

fn check(ctx: &ClaimContext<'_>) -> Result<Finding, ClaimError> {
    let found = match rig::overlay_layout(ctx) {
        Ok(l) => l,
        Err(f) => return Ok(f),
    };
    if !new_api_available() {
        return Ok(Finding::not_testable(
            "the kernel lacks the new mount API (lowerdir+), and classic mount(2) options stop at one page \
             long before the layer limit",
        ));
    }
    // One lowerdir+ per layer: only the kernel's own limit applies.
    let config = layout::LayoutConfig {
        mount_api: MountApi::New,
        ..ctx.config.clone()
    };
    let Some(layout) = layout::create(found.name(), &config) else {
        return Err(ClaimError::Unexpected(format!(
            "layout {} vanished from the registry",
            found.name()
        )));
    };
    let layers: Vec<Vec<_>> = (0..MAX_LOWER_LAYERS)
        .map(|i| vec![rig::file(&format!("f{i}"), 16, i as u64)])
        .collect();
    let img = layout.prepare_spec(&rig::image(layers), &ctx.dir.join("img"))?;
    let mut obs = Vec::new();
    // The bottom `depth` layers of the image are themselves a whole image.
    let at = |depth: usize| PreparedImage {
        layer_dirs: img.layer_dirs[..depth].to_vec(),
        depth,
        ..img.clone()
    };
    // Ok(true) when a container of `depth` layers mounts; refusals are observed.
    let mut refused = Vec::new();
    let mut mounts = |depth: usize| -> Result<bool, ClaimError> {
        let c = match Container::new(
            layout.as_ref(),
            &at(depth),
            &ctx.dir.join(format!("c{depth}")),
        ) {
            Ok(c) => c,
            Err(ClaimError::Layout(layout::LayoutError::Isolate(IsolateError::Mount {
                source,
                ..
            }))) => {
                refused.push(format!("{depth} layers: refused ({source})"));
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        // Both ends of the stack must be visible through the mount.
        let ok = c.path("f0").exists() && c.path(&format!("f{}", depth - 1)).exists();
        c.unmount()?;
        if !ok {
            return Err(ClaimError::Unexpected(format!(
                "a {depth}-layer mount does not show its bottom and top layers' files"
            )));
        }
        Ok(true)
    };
    let mut deepest = 0;
    let mut mounted = Vec::new();
    for depth in [DOCKER_MAX, DOCUMENTED, MAX_LOWER_LAYERS] {
        if mounts(depth)? {
            deepest = depth;
            mounted.push(depth.to_string());
        }
    }
    if deepest < MAX_LOWER_LAYERS {
        // Bisect between what mounted and what did not.
        let (mut lo, mut hi) = (
            deepest,
            if deepest < DOCUMENTED {
                DOCUMENTED
            } else {
                MAX_LOWER_LAYERS
            },
        );
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if mounts(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        deepest = lo;
    } else {
        // One more than the layout allows, mounted raw: the kernel must refuse it.
        let extra = ctx.dir.join("one-more");
        std::fs::create_dir_all(&extra).map_err(ClaimError::io("creating", &extra))?;
        let target = ctx.dir.join("m501");
        std::fs::create_dir_all(&target).map_err(ClaimError::io("creating", &target))?;
        let mut lowers: Vec<PathBuf> = vec![extra];
        lowers.extend(img.layer_dirs.iter().rev().cloned());
        let spec = OverlayMount {
            lowers,
            lowers_base: None,
            upper_work: None,
            options: Vec::new(),
            target,
        };
        match mount_overlay(&spec, MountApi::New) {
            Ok(m) => {
                m.guard.unmount()?;
                obs.push(format!(
                    "{} layers: mounted too — the limit is higher than this build knows",
                    MAX_LOWER_LAYERS + 1
                ));
                deepest = MAX_LOWER_LAYERS + 1;
            }
            Err(IsolateError::Mount { source, .. }) => {
                obs.push(format!(
                    "{} layers: refused ({source})",
                    MAX_LOWER_LAYERS + 1
                ));
            }
            Err(e) => return Err(e.into()),
        }
    }
    obs.insert(
        0,
        format!(
            "{} layers: mounted through the {} layout (new mount API, one lowerdir+ per layer; both ends of the \
             stack visible)",
            mounted.join(", "),
            layout.name()
        ),
    );
    obs.splice(1..1, refused);
    obs.push(format!(
        "Docker stops at {DOCKER_MAX} (its layer store's maxLayerDepth); the 128 comes from overlay2's classic mount(2) \
         form: one page of `lowerdir=l/<id>:…` holds about {} short-link lowers beside /var/lib/docker upper and work dirs",
        classic_page_capacity(2 * "/var/lib/docker/overlay2/".len() + 2 * 64 + "/diff".len() + "/work".len())
    ));
    let verdict = verdict_for(deepest);
    Ok(Finding::new(
        verdict,
        format!(
            "the kernel mounts {deepest} lower layers ({} refused); documented {DOCUMENTED}, Docker stops at {DOCKER_MAX}",
            deepest + 1
        ),
    )
    .with_value(deepest as f64, "layers")
    .with_observations(obs))
}

/// The documented 128 holds only if it is the kernel's limit.
fn verdict_for(deepest: usize) -> ClaimVerdict {
    match deepest.cmp(&DOCUMENTED) {
        std::cmp::Ordering::Greater => ClaimVerdict::Changed,
        std::cmp::Ordering::Equal => ClaimVerdict::Confirmed,
        std::cmp::Ordering::Less => ClaimVerdict::Refuted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_holds_about_128_docker_lowers() {
        // Docker's own paths: /var/lib/docker/overlay2/<64 hex>/diff and …/work.
        let n = classic_page_capacity(2 * 25 + 128 + 10);
        assert!((125..=140).contains(&n), "{n}");
        assert!(classic_page_capacity(0) > n);
    }

    #[test]
    fn a_deeper_kernel_limit_means_the_note_changed() {
        assert_eq!(verdict_for(500), ClaimVerdict::Changed);
        assert_eq!(verdict_for(128), ClaimVerdict::Confirmed);
        assert_eq!(verdict_for(64), ClaimVerdict::Refuted);
    }
}
