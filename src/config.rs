//! A run's plan: the user's request (`RunRequest`, plain data the command line
//! fills) validated once into a `RunConfig` (ripgrep's low/high args split),
//! which is serialised into the report so a run can be repeated.

use std::path::PathBuf;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::choice::Choice;
use crate::error::ErrorClass;
use crate::image::source::{ImageRef, OpenOptions, SourceError};
use crate::isolate::{self, BackingKind, MountApi};
use crate::layout;
use crate::workload::{self, BuildContext, ParamError, Workload, WorkloadOptions};

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
    /// Layout names, in interleaving order; empty: every registered layout
    /// this host can run (the others are skipped with a note).
    pub layouts: Vec<String>,
    /// Backings as spelled (`ext4`, `dir:/x`).
    pub backings: Vec<String>,
    /// Parent of scratch run dirs.
    pub scratch: PathBuf,
    /// Fixed scratch fs size.
    pub fs_size: Option<u64>,
    /// Report folder.
    pub out: Option<PathBuf>,
    /// Mount API.
    pub mount_api: MountApiChoice,
    /// Host-wide drop_caches allowed.
    pub drop_caches: bool,
    /// Image seed.
    pub seed: u64,
    /// Show a progress bar.
    pub progress: bool,
    /// Every workload's options.
    pub options: WorkloadOptions,
    /// The user's images (`oci:DIR`, `registry:HOST/REPO:TAG`, …), as given.
    pub images: Vec<String>,
    /// How to open them (platform, insecure loopback registry).
    pub image_options: OpenOptions,
}

/// Bad input for a run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error(transparent)]
    Image(#[from] SourceError),
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// Bad input, or what a bad image reference says.
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
    /// Report folder.
    pub out_dir: PathBuf,
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
            .collect::<Result<Vec<_>, _>>()?;
        // No layouts named: all of them, each skipped (visibly) where the host
        // cannot run it; a layout the user named is never skipped (exit 3).
        let layouts_given = !r.layouts.is_empty();
        let named = if layouts_given {
            r.layouts.clone()
        } else {
            layout::names().iter().map(|s| s.to_string()).collect()
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
        let entries = dedup(&r.workloads)
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
        if entries.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "--workloads is empty; choose from {}",
                workload::names().join(", ")
            )));
        }
        if let Some(out) = &r.out {
            if out.is_file() {
                return Err(ConfigError::Invalid(format!(
                    "--out {} is a file; name a directory for the report",
                    out.display()
                )));
            }
        }
        if let Some(size) = r.fs_size {
            if size < 64 << 20 {
                return Err(ParamError::range("--fs-size", size, "at least 64M").into());
            }
        }
        let images = dedup(&r.images)
            .iter()
            .map(|s| ImageRef::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        let selected: Vec<&'static str> = entries.iter().map(|e| e.name).collect();
        let backing_names: Vec<String> = backings.iter().map(ToString::to_string).collect();
        let ctx = BuildContext {
            suite: r.suite,
            options: &r.options,
            backings: &backing_names,
            selected: &selected,
            seed: r.seed,
        };
        let workloads = entries
            .iter()
            .map(|e| (e.build)(&ctx))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RunConfig {
            suite: r.suite,
            workloads,
            layouts,
            layouts_given,
            backings,
            scratch_root: r.scratch,
            fs_size_bytes: r.fs_size,
            out_dir: r.out.unwrap_or_else(|| {
                PathBuf::from("reports").join(utc_stamp(std::time::SystemTime::now()))
            }),
            mount_api: r.mount_api,
            drop_caches: r.drop_caches,
            seed: r.seed,
            progress: r.progress,
            images,
            image_options: r.image_options,
        })
    }
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
        m.insert("out_dir".into(), json!(self.out_dir));
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
        }
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
            workloads: workload::names().iter().map(|s| s.to_string()).collect(),
            layouts: layout::names().iter().map(|s| s.to_string()).collect(),
            backings: vec!["ext4".into()],
            scratch: "/var/tmp/overlaybench".into(),
            fs_size: None,
            out: None,
            mount_api: MountApiChoice::Auto,
            drop_caches: false,
            seed: 1,
            progress: false,
            options: WorkloadOptions::default(),
            images: Vec::new(),
            image_options: OpenOptions::default(),
        }
    }

    #[test]
    fn quick_defaults_resolve_every_workload() {
        let c = RunConfig::try_from(request()).expect("valid");
        assert_eq!(c.layouts, layout::names());
        assert_eq!(c.backings, vec![BackingKind::Ext4]);
        assert!(c.out_dir.starts_with("reports"));
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
        r.options.lookup.depths = Some(vec![600]);
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
    fn stamp_is_compact_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let s = utc_stamp(t);
        assert!(s.ends_with('Z') && !s.contains(':') && s.len() == 16, "{s}");
    }
}
