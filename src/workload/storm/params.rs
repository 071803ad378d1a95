//! storm's options, suite defaults, validation against this host's limits
//! (file descriptors, memory, `fs.mount-max`, `mount_setattr`), and the image a
//! storm starts: every layer adds a few small files and a library, and a
//! container's start-up read set touches the top, the middle and the bottom of
//! the stack plus two names no layer has (what a dynamic loader looks up).

use std::path::PathBuf;

use serde::Serialize;

use super::keys::Idmap;
use crate::image::{Change, ImageSpec, LayerSpec};
use crate::layout::MAX_LOWER_LAYERS;
use crate::workload::{at_least, dedup_keep_order, sorted_unique, Footprint, ParamError, Suite};

/// What the user may set (everything else comes from the suite).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Image depths (layers) of the storm.
    pub depths: Option<Vec<usize>>,
    /// Containers started at once.
    pub concurrency: Option<Vec<usize>>,
    /// Storms per point.
    pub rounds: Option<usize>,
    /// Idmap modes of the lower layers (an explicit choice the host refuses exits 3).
    pub idmap: Option<Vec<Idmap>>,
    /// Mounts held while the mount table is read.
    pub held: Option<Vec<usize>>,
    /// Layers of the image the held mounts stack.
    pub held_depth: Option<usize>,
}

/// Parameters of the storm workload, resolved (written to the report's config).
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Image depths (layers) of the storm.
    pub depths: Vec<usize>,
    /// Containers started at once; always holds 1 (the reference of every ratio).
    pub concurrency: Vec<usize>,
    /// Storms per (layout, depth, idmap, concurrency) point, interleaved.
    pub rounds: usize,
    /// Idmap modes measured (`none` is always first).
    pub idmap: Vec<Idmap>,
    /// The idmap modes were asked for explicitly: a host that refuses them fails
    /// the run (exit 3) instead of skipping them with a note.
    pub idmap_asked: bool,
    /// Mounts held while the mount table is measured (ascending, 0 first).
    pub held: Vec<usize>,
    /// Layers of the image every held mount stacks.
    pub held_depth: usize,
    /// Timed reads of /proc/self/mountinfo per point.
    pub table_reads: usize,
    /// Timed extra mount + unmount per point.
    pub table_mounts: usize,
    /// Small files each layer adds (besides its library).
    pub files_per_layer: usize,
}

/// A storm smaller than this repeats within a round until about this many
/// containers have started: the p99 of one container alone is that container's
/// time, so C = 1 (every ratio's reference) needs many storms to be stable.
pub const CONTAINERS_PER_ROUND: usize = 8;

/// Most containers one storm starts.
pub const MAX_CONCURRENCY: usize = 1024;
/// File descriptors one starting container holds at most at once besides its
/// idmapped clones: the overlay context, the detached mount, a read-set file,
/// and the dir fds `remove_dir_all` walks with.
pub const FDS_PER_CONTAINER: u64 = 8;
/// Descriptors the rest of the process keeps (stdio, the loop device, logs, slack).
pub const FDS_BASE: u64 = 64;
/// Stack of each storm thread (it only makes system calls).
pub const STACK_BYTES: usize = 256 << 10;
/// Kernel memory a starting container costs beyond its thread, generously: its
/// overlay superblock, layer array, dentries and the mount.
pub const KERNEL_BYTES_PER_CONTAINER: u64 = 256 << 10;
/// Kernel memory one held overlay mount costs, generously.
pub const KERNEL_BYTES_PER_HELD_MOUNT: u64 = 64 << 10;
/// Mounts kept free under `fs.mount-max` for the extra mount, probes and the rest.
pub const MOUNT_SLACK: u64 = 64;

/// What this host allows, read once before anything is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// Soft `RLIMIT_NOFILE`.
    pub nofile: u64,
    /// `MemAvailable`, bytes.
    pub mem_available: Option<u64>,
    /// `fs.mount-max` (per mount namespace).
    pub mount_max: Option<u64>,
    /// Lines of the mount table now (our namespace starts as a copy of it).
    pub mounts_now: u64,
    /// The kernel has `mount_setattr(2)` (idmapped mounts).
    pub mount_setattr: bool,
}

impl HostLimits {
    /// This host's limits now.
    pub fn read() -> HostLimits {
        // getrlimit(RLIMIT_NOFILE) cannot fail for our own process; 1024 is
        // the kernel's default soft limit should it ever.
        let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        HostLimits {
            nofile,
            mem_available: crate::probe::memory::Memory::current().and_then(|m| m.available_bytes),
            mount_max: std::fs::read_to_string("/proc/sys/fs/mount-max")
                .ok()
                .and_then(|s| s.trim().parse().ok()),
            mounts_now: std::fs::read_to_string("/proc/self/mountinfo")
                .map(|s| s.lines().count() as u64)
                .unwrap_or(0),
            mount_setattr: crate::isolate::mount_setattr_available(),
        }
    }
}

/// One lookup of a container's start-up read set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOp {
    /// Path in the image.
    pub path: PathBuf,
    /// Whether some layer has it.
    pub exists: bool,
    /// Opened and read (else only stat'ed).
    pub open: bool,
}

impl Params {
    /// The suite's defaults with the user's overrides, validated against `host`.
    pub fn resolve(suite: Suite, o: &Options, host: &HostLimits) -> Result<Params, ParamError> {
        let (depths, concurrency, rounds, held, reads, mounts): (
            &[usize],
            &[usize],
            usize,
            &[usize],
            usize,
            usize,
        ) = match suite {
            Suite::Quick => (&[1, 16], &[1, 4, 16], 5, &[0, 100, 1000], 9, 5),
            Suite::Standard => (
                &[1, 16, 64],
                &[1, 2, 4, 8, 16, 32, 64],
                10,
                &[0, 100, 1000, 5000],
                15,
                9,
            ),
            Suite::Full => (
                &[1, 16, 64, 128],
                &[1, 2, 4, 8, 16, 32, 64, 128],
                15,
                &[0, 100, 1000, 5000, 10000],
                21,
                15,
            ),
        };
        let depths = sorted_unique(o.depths.as_deref().unwrap_or(depths));
        if depths.is_empty() {
            return Err(ParamError::Invalid(
                "--storm-depths is empty; give depths from 1 to 500, e.g. 1,16,64".into(),
            ));
        }
        let held_depth = o.held_depth.unwrap_or(16);
        for (name, &d) in depths
            .iter()
            .map(|d| ("depth", d))
            .chain([("--held-depth", &held_depth)])
        {
            if d == 0 || d > MAX_LOWER_LAYERS {
                return Err(ParamError::range(
                    name,
                    d,
                    format!(
                        "the kernel stacks 1 to {MAX_LOWER_LAYERS} lower layers; use depths between 1 and {MAX_LOWER_LAYERS}"
                    ),
                ));
            }
        }
        let mut concurrency = o
            .concurrency
            .clone()
            .unwrap_or_else(|| concurrency.to_vec());
        if concurrency.is_empty() {
            return Err(ParamError::Invalid(
                "--concurrency is empty; give containers started at once, e.g. 1,8,32".into(),
            ));
        }
        // C = 1 is what every ratio is taken against.
        concurrency.push(1);
        let concurrency = sorted_unique(&concurrency);
        for &c in &concurrency {
            if c == 0 || c > MAX_CONCURRENCY {
                return Err(ParamError::range(
                    "--concurrency",
                    c,
                    format!("use 1 to {MAX_CONCURRENCY} containers started at once"),
                ));
            }
        }
        let mut held = o.held.clone().unwrap_or_else(|| held.to_vec());
        held.push(0);
        let held = sorted_unique(&held);
        let idmap_asked = o.idmap.is_some();
        let mut idmap = vec![Idmap::None];
        idmap.extend(o.idmap.as_deref().unwrap_or(&Idmap::ALL_MODES).iter());
        let idmap = dedup_keep_order(&idmap);
        let p = Params {
            depths,
            concurrency,
            rounds: at_least("--storm-rounds", o.rounds.unwrap_or(rounds), 1)?,
            idmap,
            idmap_asked,
            held,
            held_depth,
            table_reads: reads,
            table_mounts: mounts,
            files_per_layer: 4,
        };
        p.check_host(host)?;
        Ok(p)
    }

    /// Refuses what this host cannot hold, naming the limit.
    fn check_host(&self, host: &HostLimits) -> Result<(), ParamError> {
        let c = self.max_concurrency() as u64;
        let per = self.fds_per_container();
        let fds = c * per + FDS_BASE;
        if fds > host.nofile {
            return Err(ParamError::range(
                "--concurrency",
                c,
                format!(
                    "{c} containers starting at once hold up to {fds} file descriptors ({per} each{}) and \
                     RLIMIT_NOFILE is {}; raise it (ulimit -n {fds}) or use --concurrency up to {}",
                    if self.idmap.contains(&Idmap::PerLayer) {
                        ", one idmapped clone per layer among them"
                    } else {
                        ""
                    },
                    host.nofile,
                    host.nofile.saturating_sub(FDS_BASE) / per
                ),
            ));
        }
        let n = self.max_held() as u64;
        if let Some(max) = host.mount_max {
            let need = self.mounts_needed(1, host.mounts_now);
            if need > max {
                return Err(ParamError::Invalid(format!(
                    "--mounts-held {n} with --concurrency {c} needs {need} mounts in one namespace (the {} \
                     it starts with included) and fs.mount-max is {max}; use --mounts-held up to {}",
                    host.mounts_now,
                    max.saturating_sub(need - n)
                )));
            }
        }
        let mem =
            c * (STACK_BYTES as u64 + KERNEL_BYTES_PER_CONTAINER) + n * KERNEL_BYTES_PER_HELD_MOUNT;
        if let Some(avail) = host.mem_available {
            if mem > avail / 2 {
                return Err(ParamError::Invalid(format!(
                    "--concurrency {c} with --mounts-held {n} needs about {} MiB (thread stacks and kernel \
                     memory per container and per held mount), more than half of MemAvailable ({} MiB); \
                     lower --concurrency or --mounts-held",
                    mem >> 20,
                    avail >> 20
                )));
            }
        }
        if self.idmap_asked && self.idmap.len() > 1 && !host.mount_setattr {
            return Err(ParamError::Invalid(
                "--idmap asks for idmapped lower layers, but this kernel has no mount_setattr(2) (Linux >= 5.12); \
                 use --idmap none"
                    .into(),
            ));
        }
        Ok(())
    }

    /// File descriptors a starting container holds at most: per-layer idmapping
    /// keeps one clone per layer open until overlay is created.
    pub fn fds_per_container(&self) -> u64 {
        let clones = if self.idmap.contains(&Idmap::PerLayer) {
            self.depths.last().copied().unwrap_or(1)
        } else {
            1
        };
        FDS_PER_CONTAINER + clones as u64
    }

    /// Mounts one namespace holds at the peak: the held ones and a storm, with
    /// `per_container` mount-table lines per container, plus `now`.
    pub fn mounts_needed(&self, per_container: usize, now: u64) -> u64 {
        let storm = (self.max_concurrency() * per_container) as u64;
        let held = (self.max_held() * per_container) as u64;
        now + held.max(storm) + MOUNT_SLACK
    }

    /// Storms of `c` containers in one round.
    pub fn storms_per_round(c: usize) -> usize {
        (CONTAINERS_PER_ROUND / c.max(1)).max(1)
    }

    /// The largest concurrency.
    pub fn max_concurrency(&self) -> usize {
        self.concurrency.last().copied().unwrap_or(1)
    }

    /// The most mounts held.
    pub fn max_held(&self) -> usize {
        self.held.last().copied().unwrap_or(0)
    }

    /// The idmap modes besides `none`.
    pub fn idmapped(&self) -> impl Iterator<Item = Idmap> + '_ {
        self.idmap.iter().copied().filter(|m| *m != Idmap::None)
    }

    /// Scratch space for every image, the largest storm of plain copies and the held mounts' dirs.
    pub fn footprint(&self, layouts: usize) -> Footprint {
        let per_layer = (self.files_per_layer + 3) as u64;
        let deepest = self.depths.last().copied().unwrap_or(1) as u64;
        let images: u64 = self
            .depths
            .iter()
            .chain([&self.held_depth])
            .map(|&d| d as u64 * per_layer + 16)
            .sum::<u64>()
            * layouts.max(1) as u64;
        // A copying layout copies the whole image into each container.
        let storm = self.max_concurrency() as u64 * (deepest * per_layer + 16);
        let held = self.max_held() as u64 * 5;
        let inodes = images * 2 + storm + held;
        Footprint {
            bytes: inodes * 8192 + (64 << 20),
            inodes,
        }
    }

    /// The image a storm at `depth` starts.
    pub fn image(&self, depth: usize) -> ImageSpec {
        let dir = |p: &str| Change::Dir {
            path: p.into(),
            mode: 0o755,
        };
        let file = |p: String, size: u64, seed: u64| Change::File {
            path: p.into(),
            mode: 0o644,
            size,
            seed,
        };
        let layers = (0..depth)
            .map(|l| {
                let mut changes = Vec::new();
                if l == 0 {
                    changes.extend(["etc", "bin", "usr", "usr/lib"].map(dir));
                    changes.push(file("etc/passwd".into(), 512, 1));
                    changes.push(file("bin/sh".into(), 4096, 2));
                }
                changes.push(dir(&format!("l{l}")));
                changes.extend(
                    (0..self.files_per_layer)
                        .map(|i| file(format!("l{l}/f{i}"), 1024, (l * 100 + i) as u64)),
                );
                changes.push(file(format!("usr/lib/lib{l}.so"), 4096, 10_000 + l as u64));
                if l == depth - 1 {
                    changes.push(file("etc/hostname".into(), 16, 3));
                }
                LayerSpec { changes }
            })
            .collect();
        ImageSpec { layers }
    }

    /// What a starting container looks up, in order (8 lookups at every depth).
    pub fn read_set(depth: usize) -> Vec<ReadOp> {
        let op = |p: String, exists, open| ReadOp {
            path: p.into(),
            exists,
            open,
        };
        vec![
            op("etc/ld.so.preload".into(), false, false),
            op("etc/hostname".into(), true, true),
            op("etc/passwd".into(), true, true),
            op("bin/sh".into(), true, false),
            op("usr/lib/lib0.so".into(), true, true),
            op(format!("usr/lib/lib{}.so", depth / 2), true, true),
            op(format!("usr/lib/lib{}.so", depth - 1), true, true),
            op("usr/lib/libmissing.so".into(), false, false),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roomy() -> HostLimits {
        HostLimits {
            nofile: 1 << 20,
            mem_available: Some(64 << 30),
            mount_max: Some(100_000),
            mounts_now: 30,
            mount_setattr: true,
        }
    }

    #[test]
    fn suites_always_measure_one_and_none() {
        let p = Params::resolve(Suite::Quick, &Options::default(), &roomy()).expect("valid");
        assert_eq!(p.concurrency, vec![1, 4, 16]);
        assert_eq!(
            p.idmap,
            vec![Idmap::None, Idmap::PerLayer, Idmap::CommonParent]
        );
        assert!(!p.idmap_asked);
        let s = Params::resolve(Suite::Standard, &Options::default(), &roomy()).expect("valid");
        assert_eq!(s.max_concurrency(), 64);
        assert_eq!(s.max_held(), 5000);
        assert!(s.depths.contains(&64));
        let o = Options {
            concurrency: Some(vec![32, 8]),
            held: Some(vec![50]),
            idmap: Some(vec![Idmap::PerLayer]),
            ..Default::default()
        };
        let p = Params::resolve(Suite::Quick, &o, &roomy()).expect("valid");
        assert_eq!(p.concurrency, vec![1, 8, 32]);
        assert_eq!(p.held, vec![0, 50]);
        assert_eq!(p.idmap, vec![Idmap::None, Idmap::PerLayer]);
        assert!(p.idmap_asked);
    }

    fn err(o: Options, host: HostLimits) -> String {
        Params::resolve(Suite::Quick, &o, &host)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn limits_are_named() {
        let deep = Options {
            depths: Some(vec![501]),
            ..Default::default()
        };
        assert!(err(deep, roomy()).contains("depth 501"));
        let many = Options {
            concurrency: Some(vec![2000]),
            ..Default::default()
        };
        assert!(err(many, roomy()).contains("1 to 1024"));
        let fds = HostLimits {
            nofile: 256,
            ..roomy()
        };
        let e = err(
            Options {
                concurrency: Some(vec![64]),
                ..Default::default()
            },
            fds,
        );
        // Per-layer idmap at depth 16: 8 + 16 descriptors per container.
        assert!(
            e.contains("RLIMIT_NOFILE is 256") && e.contains("up to 8") && e.contains("(24 each"),
            "{e}"
        );
        let tight = HostLimits {
            mount_max: Some(1000),
            ..roomy()
        };
        let e = err(
            Options {
                held: Some(vec![5000]),
                ..Default::default()
            },
            tight,
        );
        assert!(e.contains("fs.mount-max is 1000"), "{e}");
        let small = HostLimits {
            mem_available: Some(64 << 20),
            ..roomy()
        };
        let e = err(
            Options {
                concurrency: Some(vec![512]),
                ..Default::default()
            },
            small,
        );
        assert!(e.contains("MemAvailable"), "{e}");
        let old = HostLimits {
            mount_setattr: false,
            ..roomy()
        };
        let e = err(
            Options {
                idmap: Some(vec![Idmap::PerLayer]),
                ..Default::default()
            },
            old,
        );
        assert!(e.contains("mount_setattr"), "{e}");
        // Not asked for: the run skips idmap with a note instead.
        assert!(Params::resolve(Suite::Quick, &Options::default(), &old).is_ok());
    }

    #[test]
    fn the_read_set_spans_the_stack() {
        let p = Params::resolve(Suite::Quick, &Options::default(), &roomy()).expect("valid");
        let tree = p.image(16).flatten();
        for op in Params::read_set(16) {
            assert_eq!(
                tree.nodes.contains_key(&op.path),
                op.exists,
                "{}",
                op.path.display()
            );
        }
        assert_eq!(
            tree.nodes
                .get(std::path::Path::new("usr/lib/lib0.so"))
                .map(|n| n.layer),
            Some(0)
        );
        assert_eq!(Params::read_set(1).len(), 8);
    }
}
