//! A run's plan: the user's request (`RunRequest`, plain data the command line
//! fills) validated once into a `RunConfig` (ripgrep's low/high args split),
//! which is serialised into the report so a run can be repeated.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::choice::Choice;
use crate::error::ErrorClass;
use crate::image::source::{ImageRef, OpenOptions, SourceError};
use crate::input::canonical_for_creation;
use crate::isolate::{self, BackingKind, MountApi};
use crate::layout;
use crate::report::OutDir;
use crate::workload::{
    self, BuildContext, Footprint, ImageFootprint, ParamError, Workload, WorkloadOptions,
};

pub use crate::workload::Suite;

/// Which mount syscalls make overlay mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MountApiChoice {
    /// The new API (`lowerdir+`) where the kernel has it, else classic mount(2).
    Auto,
    /// fsopen/fsconfig/fsmount (kernel >= 6.8).
    New,
    /// mount(2): one option string, at most 4095 bytes (refused beyond, never cut).
    Classic,
}

impl Choice for MountApiChoice {
    const ALL: &'static [Self] = &[
        MountApiChoice::Auto,
        MountApiChoice::New,
        MountApiChoice::Classic,
    ];
    fn name(self) -> &'static str {
        match self {
            MountApiChoice::Auto => "auto",
            MountApiChoice::New => "new",
            MountApiChoice::Classic => "classic",
        }
    }
    fn about(self) -> &'static str {
        match self {
            MountApiChoice::Auto => {
                "The new API (lowerdir+) where the kernel has it, else classic mount(2)"
            }
            MountApiChoice::New => "fsopen/fsconfig/fsmount (kernel >= 6.8)",
            MountApiChoice::Classic => {
                "mount(2): one option string, at most 4095 bytes (refused beyond, never cut)"
            }
        }
    }
}

impl MountApiChoice {
    /// The API this host will use for the choice.
    pub fn resolve(self) -> MountApi {
        match self {
            MountApiChoice::New => MountApi::New,
            MountApiChoice::Classic => MountApi::Classic,
            MountApiChoice::Auto if isolate::new_api_available() => MountApi::New,
            MountApiChoice::Auto => MountApi::Classic,
        }
    }
}

impl Choice for Suite {
    const ALL: &'static [Self] = &Suite::ALL;
    fn name(self) -> &'static str {
        Suite::name(self)
    }
    fn about(self) -> &'static str {
        Suite::about(self)
    }
}

/// What the user asked for, before validation (the command line fills it).
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Preset sizes for every workload.
    pub suite: Suite,
    /// Workload names, in run order.
    pub workloads: Vec<String>,
    /// Layout names, in interleaving order; empty: `layout::DEFAULT_LAYOUTS`
    /// (Docker's two drivers and the baseline), each skipped with a note where
    /// this host cannot run it.
    pub layouts: Vec<String>,
    /// Backings as spelled (`ext4`, `dir:/x`).
    pub backings: Vec<String>,
    /// Parent of scratch run dirs.
    pub scratch: PathBuf,
    /// Fixed scratch fs size.
    pub fs_size: Option<u64>,
    /// Report folder.
    pub out: Option<PathBuf>,
    /// Replace an existing report in `out`.
    pub force: bool,
    /// Mount API.
    pub mount_api: MountApiChoice,
    /// Host-wide drop_caches allowed.
    pub drop_caches: bool,
    /// Image seed.
    pub seed: u64,
    /// Show a progress bar.
    pub progress: bool,
    /// Also check Docker's storage-driver claims on each backing.
    pub claims: bool,
    /// Every workload's options.
    pub options: WorkloadOptions,
    /// The user's images (`oci:DIR`, `registry:HOST/REPO:TAG`, …), as given.
    pub images: Vec<String>,
    /// How to open them (platform, insecure loopback registry).
    pub image_options: OpenOptions,
    /// Measure the images only: skip the synthetic cases.
    pub image_only: bool,
}

/// Bad input for a run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error(transparent)]
    Path(#[from] crate::input::PathError),
    #[error(transparent)]
    Image(#[from] SourceError),
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// Always bad input.
    pub fn class(&self) -> ErrorClass {
        match self {
            ConfigError::Image(e) => e.class(),
            _ => ErrorClass::Usage,
        }
    }
}

/// Everything a run does, validated.
pub struct RunConfig {
    /// Preset the defaults came from.
    pub suite: Suite,
    /// Workloads, resolved, in order.
    pub workloads: Vec<Box<dyn Workload>>,
    /// Layout names, in interleaving order.
    pub layouts: Vec<&'static str>,
    /// Whether the user named the layouts: then one the host cannot run is an
    /// error (exit 3); by default it is skipped with a note.
    pub layouts_given: bool,
    /// Backing filesystems; each gets a fresh scratch fs.
    pub backings: Vec<BackingKind>,
    /// Parent of scratch run dirs.
    pub scratch_root: PathBuf,
    /// Fixed scratch fs size, if given.
    pub fs_size_bytes: Option<u64>,
    /// Report folder (claimed when the run starts).
    pub out: OutDir,
    /// Overlay mount API choice.
    pub mount_api: MountApiChoice,
    /// Whether host-wide drop_caches may be used.
    pub drop_caches: bool,
    /// Image seed.
    pub seed: u64,
    /// Show a progress bar.
    pub progress: bool,
    /// The user's images, parsed (opened when the run starts).
    pub images: Vec<ImageRef>,
    /// How to open them.
    pub image_options: OpenOptions,
    /// The synthetic cases are skipped (`--image-only`).
    pub image_only: bool,
    /// Also check Docker's storage-driver claims on each backing (after the workloads).
    pub claims: bool,
}

/// UTC timestamp for default output folders: `20261126T185506Z`.
pub fn utc_stamp(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "")
}

fn dedup(v: &[String]) -> Vec<String> {
    workload::dedup_keep_order(v)
}

impl TryFrom<RunRequest> for RunConfig {
    type Error = ConfigError;

    fn try_from(r: RunRequest) -> Result<Self, Self::Error> {
        let backings = dedup(&r.backings)
            .iter()
            .map(|s| s.parse::<BackingKind>().map_err(ConfigError::Invalid))
            .map(|b| b.and_then(canonical_backing))
            .collect::<Result<Vec<_>, _>>()?;
        // No layouts named: Docker's two drivers and the baseline, each skipped
        // (visibly) where the host cannot run it; a layout the user named is
        // never skipped (exit 3).
        let layouts_given = !r.layouts.is_empty();
        let named: Vec<String> = if layouts_given {
            r.layouts.clone()
        } else {
            layout::DEFAULT_LAYOUTS
                .iter()
                .map(|s| s.to_string())
                .collect()
        };
        let layouts = dedup(&named)
            .iter()
            .map(|name| {
                layout::entry(name).map(|e| e.name).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "unknown layout '{name}'; choose from {}",
                        layout::names().join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if layouts.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "--layouts is empty; choose from {}",
                layout::names().join(", ")
            )));
        }
        // None named: every workload but those that run the image's own code.
        let named = if r.workloads.is_empty() {
            workload::default_names()
                .into_iter()
                .map(String::from)
                .collect()
        } else {
            r.workloads.clone()
        };
        let mut entries = dedup(&named)
            .iter()
            .map(|name| {
                workload::entry(name).ok_or_else(|| {
                    ConfigError::Invalid(format!(
                        "unknown workload '{name}'; choose from {}",
                        workload::names().join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        // Run in the registry's order: a workload may use what an earlier
        // one learnt of the user's image (storm reads app's read set).
        entries.sort_by_key(|e| workload::WORKLOADS.iter().position(|w| w.name == e.name));
        if entries.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "--workloads is empty; choose from {}",
                workload::names().join(", ")
            )));
        }
        let out = match &r.out {
            Some(p) => OutDir::Given {
                path: canonical_for_creation("--out", p)?,
                force: r.force,
            },
            None => OutDir::Fresh {
                parent: canonical_for_creation("--out", Path::new("reports"))?,
                prefix: "",
            },
        };
        out.check("--out").map_err(ConfigError::Invalid)?;
        let scratch = canonical_for_creation("--scratch", &r.scratch)?;
        if scratch.exists() && !scratch.is_dir() {
            return Err(ConfigError::Invalid(format!(
                "--scratch {} is not a directory; name a directory (it is made if missing)",
                scratch.display()
            )));
        }
        check_layer_safe("--scratch", &scratch)?;
        if let Some(size) = r.fs_size {
            for b in &backings {
                let min = isolate::min_fs_bytes(b);
                if size < min {
                    return Err(ParamError::range(
                        "--fs-size",
                        size,
                        format!("a {b} scratch filesystem needs at least {} MiB", min >> 20),
                    )
                    .into());
                }
            }
        }
        let images = dedup(&r.images)
            .iter()
            .map(|s| ImageRef::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        if r.image_only && images.is_empty() {
            return Err(ConfigError::Invalid(
                "--image-only needs at least one --image SRC to measure".into(),
            ));
        }
        let selected: Vec<&'static str> = entries.iter().map(|e| e.name).collect();
        let backing_names: Vec<String> = backings.iter().map(ToString::to_string).collect();
        let ctx = BuildContext {
            suite: r.suite,
            options: &r.options,
            backings: &backing_names,
            selected: &selected,
            seed: r.seed,
            images: images.len(),
            synthetic: !r.image_only,
        };
        let workloads: Vec<Box<dyn Workload>> = entries
            .iter()
            .map(|e| (e.build)(&ctx))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(size) = r.fs_size {
            // The images' own size is checked when they are opened (their
            // manifests are read then, not here).
            let needed = footprint(&workloads, layouts.len(), &ImageFootprint::default()).bytes;
            if size < needed {
                return Err(ParamError::range(
                    "--fs-size",
                    size,
                    format!(
                        "these workloads write up to {needed} bytes ({} MiB); use --fs-size {}M or more, \
                         or leave it out to size from the plan",
                        needed.div_ceil(1 << 20),
                        needed.div_ceil(1 << 20)
                    ),
                )
                .into());
            }
        }
        Ok(RunConfig {
            suite: r.suite,
            workloads,
            layouts,
            layouts_given,
            backings,
            scratch_root: scratch,
            fs_size_bytes: r.fs_size,
            out,
            mount_api: r.mount_api,
            drop_caches: r.drop_caches,
            seed: r.seed,
            progress: r.progress,
            images,
            image_options: r.image_options,
            image_only: r.image_only,
            claims: r.claims,
        })
    }
}

/// The largest room any of `workloads` needs with `layouts` layouts and the
/// user's images (what their layers hold, stored and flattened).
pub fn footprint(
    workloads: &[Box<dyn Workload>],
    layouts: usize,
    images: &ImageFootprint,
) -> Footprint {
    workloads.iter().fold(Footprint::default(), |acc, w| {
        let f = w.footprint(layouts, images);
        Footprint {
            bytes: acc.bytes.max(f.bytes),
            inodes: acc.inodes.max(f.inodes),
        }
    })
}

/// A `dir:` backing must name an existing directory (canonical from here on):
/// the tool never creates it.
fn canonical_backing(b: BackingKind) -> Result<BackingKind, ConfigError> {
    match b {
        BackingKind::Dir(p) => {
            let c = crate::input::canonical_existing("--backing dir:", &p).map_err(|e| {
                ConfigError::Invalid(format!(
                    "{e}; name an existing directory (it is never created)"
                ))
            })?;
            if !c.is_dir() {
                return Err(ConfigError::Invalid(format!(
                    "--backing dir:{} is not a directory",
                    p.display()
                )));
            }
            check_layer_safe("--backing dir:", &c)?;
            Ok(BackingKind::Dir(c))
        }
        other => Ok(other),
    }
}

/// Overlay's option syntax cannot carry ':' or ',' in a layer path, and a
/// backslash is its escape character (a `\040` would be read as a space, as mountinfo
/// writes one).
fn check_layer_safe(option: &str, p: &Path) -> Result<(), ConfigError> {
    let b = p.as_os_str().as_encoded_bytes();
    if b.contains(&b':') || b.contains(&b',') || b.contains(&b'\\') {
        return Err(ConfigError::Invalid(format!(
            "{option} {}: overlay layer paths cannot contain ':', ',' or '\\' (overlay's separators and \
             escape character); name a directory without them",
            p.display()
        )));
    }
    Ok(())
}

impl RunConfig {
    /// The plan as written to the report's config: run-wide settings, then each
    /// workload's resolved parameters under its config key.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("suite".into(), json!(self.suite));
        m.insert(
            "workloads".into(),
            json!(self
                .workloads
                .iter()
                .map(|w| w.entry().name)
                .collect::<Vec<_>>()),
        );
        m.insert("layouts".into(), json!(self.layouts));
        m.insert("layouts_given".into(), json!(self.layouts_given));
        m.insert(
            "backings".into(),
            json!(self
                .backings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()),
        );
        m.insert("scratch_root".into(), json!(self.scratch_root));
        m.insert("fs_size_bytes".into(), json!(self.fs_size_bytes));
        let out = match &self.out {
            OutDir::Given { path, .. } => path.clone(),
            OutDir::Fresh { parent, .. } => parent.clone(),
        };
        m.insert("out_dir".into(), json!(out));
        m.insert("mount_api".into(), json!(self.mount_api));
        m.insert("drop_caches".into(), json!(self.drop_caches));
        m.insert("seed".into(), json!(self.seed));
        m.insert("progress".into(), json!(self.progress));
        if !self.images.is_empty() {
            m.insert(
                "images".into(),
                json!(self
                    .images
                    .iter()
                    .map(|i| i.given.clone())
                    .collect::<Vec<_>>()),
            );
            m.insert("platform".into(), json!(self.image_options.platform));
            m.insert("image_only".into(), json!(self.image_only));
        }
        m.insert("claims".into(), json!(self.claims));
        for w in &self.workloads {
            m.insert(w.entry().config_key.into(), w.params_json());
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn request() -> RunRequest {
        RunRequest {
            suite: Suite::Quick,
            workloads: Vec::new(),
            layouts: layout::names().iter().map(|s| s.to_string()).collect(),
            backings: vec!["ext4".into()],
            scratch: "/var/tmp/overlaybench".into(),
            fs_size: None,
            out: None,
            force: false,
            mount_api: MountApiChoice::Auto,
            drop_caches: false,
            seed: 1,
            progress: false,
            claims: false,
            options: WorkloadOptions::default(),
            images: Vec::new(),
            image_options: OpenOptions::default(),
            image_only: false,
        }
    }

    #[test]
    fn quick_defaults_resolve_every_workload() {
        let c = RunConfig::try_from(request()).expect("valid");
        assert_eq!(c.layouts, layout::names());
        assert_eq!(c.backings, vec![BackingKind::Ext4]);
        assert!(matches!(&c.out, OutDir::Fresh { parent, .. } if parent.ends_with("reports")));
        let j = c.to_json();
        assert_eq!(
            j.pointer("/lookup/depths"),
            Some(&json!([1, 2, 4, 8, 16, 32, 64, 128]))
        );
        assert_eq!(j.pointer("/copy_up/depth"), Some(&json!(3)));
        assert_eq!(j.pointer("/suite"), Some(&json!("quick")));
    }

    #[test]
    fn bad_names_and_backings_are_refused_naming_the_choices() {
        let mut r = request();
        r.backings = vec!["zfs".into()];
        let err = RunConfig::try_from(r)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("zfs") && err.contains("tmpfs"), "{err}");
        let mut r = request();
        r.layouts = vec!["aufs".into()];
        let err = RunConfig::try_from(r)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("aufs") && err.contains("overlay2"), "{err}");
        let mut r = request();
        r.options.set(workload::lookup::Options {
            depths: Some(vec![600]),
            ..Default::default()
        });
        let err = RunConfig::try_from(r)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("depth 600"), "{err}");
    }

    #[test]
    fn image_references_are_checked_where_they_enter() {
        let mut r = request();
        r.images = vec!["oci:/x:latest".into(), "nonsense".into()];
        let err = RunConfig::try_from(r).err().expect("refused");
        assert_eq!(err.class(), ErrorClass::Usage);
        assert!(err.to_string().contains("nonsense"), "{err}");
    }

    #[test]
    fn image_only_needs_an_image() {
        let mut r = request();
        r.image_only = true;
        let err = RunConfig::try_from(r).err().expect("refused");
        assert!(err.to_string().contains("--image-only"), "{err}");
        let mut r = request();
        r.image_only = true;
        r.images = vec!["oci:/x:t".into()];
        assert!(RunConfig::try_from(r).is_ok());
    }

    #[test]
    fn stamp_is_compact_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let s = utc_stamp(t);
        assert!(s.ends_with('Z') && !s.contains(':') && s.len() == 16, "{s}");
    }
}
