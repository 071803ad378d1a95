//! The resolved plan of a run: validated once from the CLI arguments (ripgrep's
//! low/high args split), serialised into the report so a run can be repeated.

use std::path::PathBuf;

use serde::Serialize;

use crate::cli::{MountApiChoice, RunArgs, Suite};
use crate::error::ErrorClass;
use crate::isolate::BackingKind;
use crate::layout::{LayoutKind, MAX_LOWER_LAYERS};
use crate::workload::copy_up::{CacheState, CopyUpPlan, Procedure, Variant};
use crate::workload::inodes::InodesPlan;
use crate::workload::page_cache::PageCachePlan;
use crate::workload::WorkloadKind;

/// Bad input, named with what is accepted.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{name} {value} is out of range: {accepted}")]
    OutOfRange {
        name: &'static str,
        value: String,
        accepted: String,
    },
    #[error("{0}")]
    Invalid(String),
}

impl PlanError {
    /// Always bad input.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }
}

/// Parameters of the lookup workload.
#[derive(Debug, Clone, Serialize)]
pub struct LookupPlan {
    /// Lower depths (image layers) measured.
    pub depths: Vec<usize>,
    /// Distinct names per target.
    pub names: usize,
    /// Lookups per timed batch.
    pub batch: usize,
    /// Cold rounds.
    pub rounds: usize,
    /// Warm repetitions per round.
    pub warm_repeats: usize,
    /// Directories read for the readdir case.
    pub readdir_dirs: usize,
    /// Entries each layer adds to each readdir directory.
    pub entries_per_layer: usize,
}

/// Everything a run does, validated.
#[derive(Debug, Clone, Serialize)]
pub struct RunPlan {
    /// Preset the defaults came from.
    pub suite: Suite,
    /// Workloads, in order.
    pub workloads: Vec<WorkloadKind>,
    /// Layouts, in interleaving order.
    pub layouts: Vec<LayoutKind>,
    /// Backing filesystems; each gets a fresh scratch fs.
    #[serde(serialize_with = "display_all")]
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
    /// lookup parameters.
    pub lookup: LookupPlan,
    /// copy-up parameters.
    pub copy_up: CopyUpPlan,
    /// inodes parameters.
    pub inodes: InodesPlan,
    /// page-cache parameters.
    pub page_cache: PageCachePlan,
}

fn display_all<S: serde::Serializer>(v: &[BackingKind], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}

fn dedup<T: PartialEq + Clone>(v: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for x in v {
        if !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

fn at_least(name: &'static str, value: usize, min: usize) -> Result<usize, PlanError> {
    if value < min {
        return Err(PlanError::OutOfRange {
            name,
            value: value.to_string(),
            accepted: format!("use {name} >= {min}"),
        });
    }
    Ok(value)
}

/// UTC timestamp for the default report folder: `20261126T185506Z`.
pub fn utc_stamp(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace(['-', ':'], "")
}

impl TryFrom<&RunArgs> for RunPlan {
    type Error = PlanError;

    fn try_from(a: &RunArgs) -> Result<Self, Self::Error> {
        let (depths, names, rounds, warm_repeats) = match a.suite {
            Suite::Quick => (vec![1, 2, 4, 8, 16, 32, 64, 128], 256, 10, 3),
            Suite::Standard => (vec![1, 2, 4, 8, 16, 32, 64, 128, 256], 512, 10, 5),
            Suite::Full => (vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 500], 1024, 20, 5),
        };
        let mut depths = a.depths.clone().unwrap_or(depths);
        depths.sort_unstable();
        depths.dedup();
        if depths.is_empty() {
            return Err(PlanError::Invalid(
                "--depths is empty; give depths from 1 to 500, e.g. 1,8,32".into(),
            ));
        }
        for &d in &depths {
            if d == 0 || d > MAX_LOWER_LAYERS {
                return Err(PlanError::OutOfRange {
                    name: "depth",
                    value: d.to_string(),
                    accepted: format!(
                        "the kernel stacks 1 to {MAX_LOWER_LAYERS} lower layers; use --depths between 1 and {MAX_LOWER_LAYERS}"
                    ),
                });
            }
        }
        let batch = at_least("--batch", a.batch.unwrap_or(32), 1)?;
        let names = at_least("--names", a.names.unwrap_or(names), batch)?;
        let rounds = at_least("--rounds", a.rounds.unwrap_or(rounds), 1)?;
        let backings = a
            .backing
            .iter()
            .map(|s| s.parse::<BackingKind>().map_err(PlanError::Invalid))
            .collect::<Result<Vec<_>, _>>()?;
        let layouts = dedup(&a.layouts);
        if layouts.is_empty() {
            return Err(PlanError::Invalid(
                "--layouts is empty; choose from overlay2, overlay, plain".into(),
            ));
        }
        if let Some(out) = &a.out {
            if out.is_file() {
                return Err(PlanError::Invalid(format!(
                    "--out {} is a file; name a directory for the report",
                    out.display()
                )));
            }
        }
        if let Some(size) = a.fs_size {
            if size < 64 << 20 {
                return Err(PlanError::OutOfRange {
                    name: "--fs-size",
                    value: size.to_string(),
                    accepted: "at least 64M".into(),
                });
            }
        }
        let (sizes, samples) = match a.suite {
            Suite::Quick => (vec![1 << 20, 16 << 20, 64 << 20], 9),
            Suite::Standard => (vec![1 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30], 7),
            Suite::Full => (
                vec![1 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30, 2 << 30],
                10,
            ),
        };
        let mut sizes = a.sizes.clone().unwrap_or(sizes);
        sizes.sort_unstable();
        sizes.dedup();
        if sizes.is_empty() || sizes[0] == 0 {
            return Err(PlanError::OutOfRange {
                name: "size",
                value: "0".into(),
                accepted: "copy-up sizes must be at least 1 byte (e.g. --sizes 1M,64M)".into(),
            });
        }
        let depth = a.depth.unwrap_or(3);
        if depth == 0 || depth > MAX_LOWER_LAYERS {
            return Err(PlanError::OutOfRange {
                name: "--depth",
                value: depth.to_string(),
                accepted: format!(
                    "use a depth between 1 and {MAX_LOWER_LAYERS} (the kernel's lower-layer limit)"
                ),
            });
        }
        // Quick: cold only and the two procedures that matter most, with more
        // samples — copy_up on a VM disk is noisy, and a gate needs tight medians
        // more than breadth. Standard and full measure everything.
        let quick = a.suite == Suite::Quick;
        let procedures = a.procedures.clone().unwrap_or_else(|| {
            if quick {
                vec![Procedure::Write, Procedure::Chmod]
            } else {
                vec![
                    Procedure::Write,
                    Procedure::Chmod,
                    Procedure::Append,
                    Procedure::Truncate,
                ]
            }
        });
        let caches = a.caches.clone().unwrap_or_else(|| {
            if quick {
                vec![CacheState::Cold]
            } else {
                vec![CacheState::Cold, CacheState::Warm]
            }
        });
        let variants = a
            .variants
            .clone()
            .unwrap_or_else(|| vec![Variant::Default, Variant::Metacopy, Variant::Volatile]);
        let copy_up = CopyUpPlan {
            sizes,
            depth,
            samples: at_least("--samples", a.samples.unwrap_or(samples), 1)?,
            procedures: dedup(&procedures),
            variants: dedup(&variants),
            caches: dedup(&caches),
        };
        let layers_default = match a.suite {
            Suite::Quick => vec![5, 20],
            Suite::Standard => vec![5, 20, 50],
            Suite::Full => vec![5, 20, 50, 100],
        };
        let mut layers = a.layers.clone().unwrap_or(layers_default);
        layers.sort_unstable();
        layers.dedup();
        for &l in &layers {
            if l == 0 || l > MAX_LOWER_LAYERS {
                return Err(PlanError::OutOfRange {
                    name: "--layers",
                    value: l.to_string(),
                    accepted: format!("use layers between 1 and {MAX_LOWER_LAYERS} (the kernel's lower-layer limit)"),
                });
            }
        }
        let shared_pct = a.shared_pct.unwrap_or(60);
        if shared_pct > 100 {
            return Err(PlanError::OutOfRange {
                name: "--shared-pct",
                value: shared_pct.to_string(),
                accepted: "a percent from 0 to 100".into(),
            });
        }
        let writes = a.writes.unwrap_or(10);
        let inodes = InodesPlan {
            layers,
            images: at_least("--images", a.images.unwrap_or(3), 1)?,
            shared_pct,
            containers: a
                .containers
                .as_ref()
                .and_then(|c| c.iter().copied().max())
                .unwrap_or(2),
            files_per_layer: a.files_per_layer.unwrap_or(100),
            dirs_per_layer: a.dirs_per_layer.unwrap_or(20),
            max_file_bytes: 16 * 1024,
            writes,
            new_files: writes,
            deletes: writes / 2,
            seed: a.seed,
        };
        let (set_default, k_default) = match a.suite {
            Suite::Quick => (256u64 << 20, vec![1, 2, 4]),
            Suite::Standard => (512 << 20, vec![1, 2, 4, 8]),
            Suite::Full => (1 << 30, vec![1, 2, 4, 8, 16]),
        };
        let mut ks = a.containers.clone().unwrap_or(k_default);
        ks.sort_unstable();
        ks.dedup();
        if ks.first() == Some(&0) || ks.is_empty() {
            return Err(PlanError::OutOfRange {
                name: "--containers",
                value: "0".into(),
                accepted: "at least 1 container (e.g. --containers 1,2,4,8)".into(),
            });
        }
        let page_cache = PageCachePlan {
            set_bytes: a.cache_set.unwrap_or(set_default),
            files: at_least("--cache-files", a.cache_files.unwrap_or(4), 1)?,
            containers: ks,
        };
        if a.workloads.contains(&WorkloadKind::PageCache) {
            if page_cache.set_bytes < 1 << 20 {
                return Err(PlanError::OutOfRange {
                    name: "--cache-set",
                    value: page_cache.set_bytes.to_string(),
                    accepted: "at least 1M".into(),
                });
            }
            let kmax = page_cache.containers.iter().copied().max().unwrap_or(1) as u64;
            // Plain caches the set once per container: all of it must fit in memory
            // with room to spare, or eviction by the kernel would fake the result.
            let need = page_cache.set_bytes.saturating_mul(kmax + 1);
            if let Some(avail) = crate::measure::residency::meminfo_bytes("MemAvailable") {
                if need > avail / 2 {
                    return Err(PlanError::OutOfRange {
                        name: "--cache-set",
                        value: page_cache.set_bytes.to_string(),
                        accepted: format!(
                            "set × (largest --containers + 1) = {need} bytes must stay under half of MemAvailable \
                             ({avail} bytes); use a smaller --cache-set or fewer containers"
                        ),
                    });
                }
            }
            let backings: Vec<&String> = a.backing.iter().collect();
            if !backings.is_empty()
                && backings.iter().all(|b| b.as_str() == "tmpfs")
                && a.workloads == [WorkloadKind::PageCache]
            {
                return Err(PlanError::Invalid(
                    "page-cache cannot be measured on tmpfs: its data *is* the page cache; use --backing ext4 or xfs".into(),
                ));
            }
        }
        Ok(RunPlan {
            page_cache,
            inodes,
            copy_up,
            suite: a.suite,
            workloads: dedup(&a.workloads),
            layouts,
            backings: dedup(&backings),
            scratch_root: a.scratch.clone(),
            fs_size_bytes: a.fs_size,
            out_dir: a.out.clone().unwrap_or_else(|| {
                PathBuf::from("reports").join(utc_stamp(std::time::SystemTime::now()))
            }),
            mount_api: a.mount_api,
            drop_caches: a.drop_caches,
            seed: a.seed,
            progress: !a.no_progress,
            lookup: LookupPlan {
                depths,
                names,
                batch,
                rounds,
                warm_repeats,
                readdir_dirs: 4,
                entries_per_layer: 4,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn plan(args: &[&str]) -> Result<RunPlan, PlanError> {
        let cli = Cli::try_parse_from(["overlaybench", "run"].iter().chain(args)).expect("parses");
        let Command::Run(a) = cli.command else {
            panic!("run")
        };
        RunPlan::try_from(&*a)
    }

    #[test]
    fn quick_defaults() {
        let p = plan(&[]).expect("valid");
        assert_eq!(p.lookup.depths, vec![1, 2, 4, 8, 16, 32, 64, 128]);
        assert_eq!(p.layouts, LayoutKind::ALL.to_vec());
        assert_eq!(p.backings, vec![BackingKind::Ext4]);
        assert!(p.out_dir.starts_with("reports"));
    }

    #[test]
    fn depth_limits_name_the_value_and_range() {
        for bad in ["0", "501"] {
            let err = plan(&["--depths", bad]).unwrap_err().to_string();
            assert!(
                err.contains(&format!("depth {bad}")) && err.contains("between 1 and 500"),
                "{err}"
            );
        }
        assert!(plan(&["--depths", "500,1"]).is_ok());
    }

    #[test]
    fn names_must_cover_a_batch_and_backing_must_be_known() {
        assert!(plan(&["--names", "4", "--batch", "8"])
            .unwrap_err()
            .to_string()
            .contains("--names"));
        let err = plan(&["--backing", "zfs"]).unwrap_err().to_string();
        assert!(err.contains("zfs") && err.contains("tmpfs"), "{err}");
    }

    #[test]
    fn stamp_is_compact_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let s = utc_stamp(t);
        assert!(s.ends_with('Z') && !s.contains(':') && s.len() == 16, "{s}");
    }
}
