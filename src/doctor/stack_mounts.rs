//! Every layout's own probes, as its registry entry declares them
//! (`LayoutEntry::host`): most build a tiny image and mount a container the
//! way that engine does, on doctor's private tmpfs, and use the mount — this
//! build's layout code, the same `run` measures, so doctor never claims a stack
//! `run` cannot build here. Doctor knows no layout by name: a layout added to
//! the registry is probed by what it declares.
//!
//! Nothing here touches the host's files: every dir, image and mount point is
//! under the tmpfs, the mounts live in the private namespace, and a loop device
//! a probe attaches detaches itself when its filesystem is unmounted. Each
//! probe reports the wall time of its container mount, the figure the
//! recommendation cites.

use std::path::Path;

use super::probe::FeatureProbe;
use crate::isolate::Privilege;
use crate::layout::host::{ProbeHost, ProbeOutcome, StackProbe};
use crate::layout::LAYOUTS;

/// A probe's outcome as doctor reports it.
pub fn result(name: &str, o: ProbeOutcome) -> FeatureProbe {
    FeatureProbe {
        name: name.into(),
        supported: o.supported,
        detail: o.detail,
        version: o.version,
        mount_us: o
            .took
            .filter(|_| o.supported)
            .map(|t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX)),
    }
}

/// Every layout's probes that need real root (`root_only`) or that do not,
/// in registry order (a layout's tools before its own mount), each in a dir
/// of its own under `dir` (doctor's private tmpfs). A root probe is run only
/// as root.
pub fn probe_layouts(
    dir: &Path,
    privilege: Privilege,
    filesystems: &str,
    root_only: bool,
) -> Vec<FeatureProbe> {
    if root_only && privilege != Privilege::Root {
        return Vec::new();
    }
    let mut out = Vec::new();
    for e in LAYOUTS {
        let probes: [Option<StackProbe>; 2] = [e.host.tools, e.host.probe];
        for p in probes.into_iter().flatten() {
            if p.root_only != root_only {
                continue;
            }
            let at = ProbeHost {
                dir: &dir.join(e.name),
                privilege,
                filesystems,
            };
            out.push(result(p.name, (p.run)(&at)));
        }
    }
    out
}
