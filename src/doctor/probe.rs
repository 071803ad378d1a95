//! Feature probes: each mounts a tiny overlay in the private namespace on a
//! throw-away scratch filesystem and reports what the kernel accepted — support
//! is observed, never guessed from the version.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

use crate::layout::{Feature, OVERLAY_FSTYPE};

use crate::isolate::{
    erofs_available, mount_overlay, new_api_available, probe_erofs_backing, MountApi, MountGuard,
    OverlayMount, Privilege,
};

/// One probed feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FeatureProbe {
    /// Feature name.
    pub name: String,
    /// Whether a mount using it succeeded.
    pub supported: bool,
    /// What was mounted, or the error.
    pub detail: String,
    /// The tool's version, where the probe ran one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Wall time of the stack probe's container mount, microseconds (for a
    /// stack that mounts nothing, btrfs, of making the container): the figure
    /// measured here that a recommendation's reason can cite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_us: Option<u64>,
}

/// The name of a feature's probe, as the layouts that need it look it up.
fn name(f: Feature) -> &'static str {
    f.probe_name().unwrap_or_else(|| f.label())
}

struct Dirs {
    root: PathBuf,
    n: usize,
}

impl Dirs {
    fn fresh(
        &mut self,
        lowers: usize,
    ) -> std::io::Result<(Vec<PathBuf>, PathBuf, PathBuf, PathBuf)> {
        self.n += 1;
        let d = self.root.join(format!("p{}", self.n));
        let ls: Vec<PathBuf> = (0..lowers).map(|i| d.join(format!("l{i}"))).collect();
        for l in &ls {
            fs::create_dir_all(l)?;
            fs::write(l.join(format!("f{}", l.display().to_string().len())), "x")?;
        }
        let (u, w, m) = (d.join("u"), d.join("w"), d.join("m"));
        for x in [&u, &w, &m] {
            fs::create_dir_all(x)?;
        }
        Ok((ls, u, w, m))
    }
}

fn opt(k: &str, v: Option<&str>) -> (String, Option<String>) {
    (k.to_string(), v.map(str::to_string))
}

/// Whether option `key` shows in the options in force: by its own name, or by
/// the spelling the kernel shows it under (`volatile` is `fsync=volatile` since 6.x).
fn in_force(opts: &[&str], key: &str) -> bool {
    opts.iter()
        .any(|o| o.split('=').next() == Some(key) || (key == "volatile" && *o == "fsync=volatile"))
}

/// Probes every feature under `root` (a scratch dir of ours).
pub fn probe_all(
    root: &Path,
    privilege: Privilege,
) -> std::io::Result<(Vec<FeatureProbe>, Option<usize>)> {
    let mut dirs = Dirs {
        root: root.to_path_buf(),
        n: 0,
    };
    let api = if new_api_available() {
        MountApi::New
    } else {
        MountApi::Classic
    };
    let base = if privilege == Privilege::Rootless {
        vec![opt("userxattr", None)]
    } else {
        vec![]
    };
    let mut out = Vec::new();
    let mut try_mount = |name: &str,
                         lowers: usize,
                         upper: bool,
                         extra: Vec<(String, Option<String>)>,
                         api: MountApi|
     -> std::io::Result<bool> {
        let (ls, u, w, m) = dirs.fresh(lowers)?;
        let mut options = base.clone();
        options.extend(extra.iter().cloned());
        let spec = OverlayMount {
            lowers_base: None,
            lowers: ls.into_iter().rev().collect(),
            upper_work: upper.then_some((u, w)),
            options,
            target: m,
        };
        let shown: Vec<String> = extra
            .iter()
            .map(|(k, v)| v.as_ref().map_or(k.clone(), |v| format!("{k}={v}")))
            .collect();
        let r = mount_overlay(&spec, api);
        let (supported, detail) = match r {
            Ok(mounted) => {
                // The options the kernel shows in force, without the (long) paths.
                let opts: Vec<&str> = mounted
                    .options_in_force
                    .split(',')
                    .filter(|o| {
                        !o.starts_with("lowerdir")
                            && !o.starts_with("upperdir")
                            && !o.starts_with("workdir")
                    })
                    .collect();
                let _ = mounted.guard.unmount();
                let asked = if shown.is_empty() {
                    String::new()
                } else {
                    format!(" with {}", shown.join(","))
                };
                let missing: Vec<&(String, Option<String>)> =
                    extra.iter().filter(|(k, _)| !in_force(&opts, k)).collect();
                let note = if missing.is_empty() {
                    String::new()
                } else {
                    " (accepted, but not in force on this probe's filesystem)".to_string()
                };
                (
                    true,
                    format!(
                        "mounted {lowers} lowers{asked}; in force: {}{note}",
                        opts.join(",")
                    ),
                )
            }
            Err(e) => (false, e.to_string()),
        };
        out.push(FeatureProbe {
            name: name.into(),
            supported,
            detail,
            version: None,
            mount_us: None,
        });
        Ok(supported)
    };
    let basic = try_mount(name(Feature::OverlayMount), 1, true, vec![], api)?;
    try_mount(name(Feature::MultipleLowers), 3, true, vec![], api)?;
    try_mount("metacopy", 2, true, vec![opt("metacopy", Some("on"))], api)?;
    try_mount(
        "redirect_dir",
        2,
        true,
        vec![opt("redirect_dir", Some("on"))],
        api,
    )?;
    try_mount("index", 2, true, vec![opt("index", Some("on"))], api)?;
    try_mount("xino", 2, true, vec![opt("xino", Some("on"))], api)?;
    try_mount("volatile", 2, true, vec![opt("volatile", None)], api)?;
    if privilege == Privilege::Root {
        try_mount(
            "userxattr (rootless overlay)",
            2,
            true,
            vec![opt("userxattr", None)],
            api,
        )?;
    }
    out.push(FeatureProbe {
        name: "new mount API (lowerdir+)".into(),
        supported: api == MountApi::New,
        detail: if api == MountApi::New {
            "fsconfig accepts lowerdir+ (kernel >= 6.8): no option-length limit on deep stacks".into()
        } else {
            "fsconfig refuses lowerdir+: deep stacks are limited by mount(2)'s one-page option string".into()
        },
        version: None,
        mount_us: None,
    });
    // Data-only lower layers: `::` in lowerdir (metacopy redirects into them).
    {
        let (ls, u, w, m) = dirs.fresh(2)?;
        let data = format!(
            "lowerdir={}::{},upperdir={},workdir={},metacopy=on,redirect_dir=on{}",
            ls[1].display(),
            ls[0].display(),
            u.display(),
            w.display(),
            if privilege == Privilege::Rootless {
                ",userxattr"
            } else {
                ""
            }
        );
        let r = nix::mount::mount(
            Some(OVERLAY_FSTYPE),
            &m,
            Some(OVERLAY_FSTYPE),
            MsFlags::empty(),
            Some(data.as_str()),
        );
        let (supported, detail) = match r {
            Ok(()) => {
                let _ = MountGuard::new(m.clone()).unmount();
                (true, "mounted lowerdir=A::DATA with metacopy".to_string())
            }
            Err(e) => (false, format!("lowerdir=A::DATA refused: {e}")),
        };
        out.push(FeatureProbe {
            name: name(Feature::DataOnlyLowers).into(),
            supported,
            detail,
            version: None,
            mount_us: None,
        });
    }
    // EROFS (the erofs and composefs layouts): a tiny image built and mounted
    // here says whether, and how (file-backed or through a loop device).
    let (supported, detail) = match (erofs_available(), privilege) {
        (Err(e), _) => (false, e),
        (Ok(()), Privilege::Rootless) => (
            false,
            "EROFS is in the kernel, but cannot be mounted in a user namespace".to_string(),
        ),
        (Ok(()), Privilege::Root) => match probe_erofs_backing(&root.join("erofs-probe")) {
            Ok(crate::isolate::ErofsBacking::File) => (
                true,
                "mounted an image built by mkfs.erofs, file-backed (no loop device)".to_string(),
            ),
            Ok(_) => (
                true,
                "mounted an image built by mkfs.erofs through a read-only loop device (the probe's \
                 filesystem cannot serve a file-backed mount; ext4, xfs and btrfs can)"
                    .to_string(),
            ),
            Err(e) => (false, e.to_string()),
        },
    };
    out.push(FeatureProbe {
        name: name(Feature::Erofs).into(),
        supported,
        detail,
        version: None,
        mount_us: None,
    });
    let max = if basic {
        Some(max_depth(&mut dirs, api, &base)?)
    } else {
        None
    };
    Ok((out, max))
}

/// The deepest stack the kernel mounts: 500 on current kernels, found by trying.
fn max_depth(
    dirs: &mut Dirs,
    api: MountApi,
    base: &[(String, Option<String>)],
) -> std::io::Result<usize> {
    dirs.n += 1;
    let d = dirs.root.join(format!("deep{}", dirs.n));
    let all: Vec<PathBuf> = (0..=1024).map(|i| d.join(format!("{i}"))).collect();
    for p in &all {
        fs::create_dir_all(p)?;
    }
    let m = d.join("m");
    fs::create_dir_all(&m)?;
    let ok = |n: usize| {
        let spec = OverlayMount {
            lowers_base: None,
            lowers: all[..n].to_vec(),
            upper_work: None,
            options: base.to_vec(),
            target: m.clone(),
        };
        match mount_overlay(&spec, api) {
            Ok(mounted) => {
                let _ = mounted.guard.unmount();
                true
            }
            Err(_) => false,
        }
    };
    // Lowest known-good and highest known-bad, then bisect. (A stack without an
    // upper needs at least two lowers.)
    let (mut lo, mut hi) = (2usize, 1025usize);
    if !ok(lo) {
        return Ok(0);
    }
    for guess in [500, 501] {
        if ok(guess) {
            lo = lo.max(guess);
        } else {
            hi = hi.min(guess);
        }
    }
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if ok(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}
