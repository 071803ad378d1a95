//! page-cache: how much memory K containers reading the same image really use.
//!
//! K containers of one image read every file of a cache set fully (one after the
//! other, then all at once on every core); residency is then read from the kernel
//! (`mincore` on every distinct backing file, /proc/meminfo, the memory cgroup).
//! Through overlay the K readers share one cached copy of each lower file; plain
//! copies are cached K times. Then some containers copy_up the set (one byte
//! each) and read again: each of those now caches its own copy. Eviction between
//! phases is targeted: `posix_fadvise` DONTNEED on exactly our backing files.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::{json, Value};

use super::{Footprint, RunContext, Workload, WorkloadError, WorkloadKind};
use crate::image::{Change, ImageSpec, LayerSpec};
use crate::layout::{ContainerDirs, LayoutKind, Mounted, PreparedImage};
use crate::measure::residency::{meminfo_bytes, resident_distinct, MemoryCgroup};
use crate::measure::{cache, Stats};
use crate::report::{Case, Derived};

const NAME: &str = "page-cache";

/// Parameters of the page-cache workload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PageCachePlan {
    /// Total bytes of the cache set.
    pub set_bytes: u64,
    /// Files the set is split into.
    pub files: usize,
    /// Numbers of containers reading it.
    pub containers: Vec<usize>,
}

/// One measured figure: layout, K, phase, metric, value, unit.
type Sample = (
    LayoutKind,
    usize,
    &'static str,
    &'static str,
    f64,
    &'static str,
);

/// The page-cache workload.
pub struct PageCache {
    plan: PageCachePlan,
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> WorkloadError {
    let msg = format!("{what} {}", path.display());
    move |e| WorkloadError::Failed(format!("{msg}: {e}"))
}

fn read_all(path: &Path) -> Result<u64, WorkloadError> {
    let mut f = File::open(path).map_err(io_err("opening", path))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf).map_err(io_err("reading", path))?;
        if r == 0 {
            return Ok(n);
        }
        n += r as u64;
    }
}

/// One container of the set: where it reads and which files back it.
struct Reader {
    view: PathBuf,
    upper: Option<PathBuf>,
    _mount: Option<Mounted>,
}

impl PageCache {
    /// With these parameters.
    pub fn new(plan: PageCachePlan) -> Self {
        PageCache { plan }
    }

    fn file_names(&self) -> Vec<String> {
        (0..self.plan.files)
            .map(|i| format!("set/file-{i}"))
            .collect()
    }

    fn image(&self) -> ImageSpec {
        let per = self.plan.set_bytes / self.plan.files.max(1) as u64;
        let mut bottom = vec![Change::Dir {
            path: "set".into(),
            mode: 0o755,
        }];
        bottom.extend(
            self.file_names()
                .into_iter()
                .enumerate()
                .map(|(i, p)| Change::File {
                    path: p.into(),
                    mode: 0o644,
                    size: per,
                    seed: 1000 + i as u64,
                }),
        );
        let top = vec![Change::File {
            path: "etc-marker".into(),
            mode: 0o644,
            size: 16,
            seed: 1,
        }];
        ImageSpec {
            layers: vec![LayerSpec { changes: bottom }, LayerSpec { changes: top }],
        }
    }
}

/// Bytes in use on the scratch filesystem, after writing back what is dirty.
fn used_bytes(scratch: &crate::isolate::Scratch, root: &Path) -> Result<f64, WorkloadError> {
    let f = File::open(root).map_err(io_err("opening", root))?;
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f))
        .map_err(|e| io_err("syncfs", root)(e.into()))?;
    Ok(scratch.usage()?.used_bytes as f64)
}

/// Every distinct file that can hold the set's pages for these readers.
fn backing_files(lower: &[PathBuf], readers: &[Reader], names: &[String]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = lower.to_vec();
    for r in readers {
        for n in names {
            match &r.upper {
                Some(u) if u.join(n).exists() => out.push(u.join(n)),
                Some(_) => {}
                None => out.push(r.view.join(n)),
            }
        }
    }
    out
}

impl Workload for PageCache {
    fn kind(&self) -> WorkloadKind {
        WorkloadKind::PageCache
    }

    fn footprint(&self, layouts: usize) -> Footprint {
        let k = self.plan.containers.iter().copied().max().unwrap_or(1) as u64;
        // An image per layout, K plain copies, K/2 upper copies.
        Footprint {
            bytes: self.plan.set_bytes * (layouts as u64 + k + k / 2 + 1) + (64 << 20),
            inodes: 10_000,
        }
    }

    fn steps(&self, layouts: &[LayoutKind]) -> u64 {
        (layouts.len() * self.plan.containers.len()) as u64
    }

    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        if ctx.backing == "tmpfs" {
            ctx.out.notes.push(
                "tmpfs: page-cache skipped — on tmpfs the data *is* the page cache (shmem), so sharing cannot be \
                 measured there; use a disk filesystem (ext4, xfs)"
                    .into(),
            );
            return Ok(());
        }
        let p = &self.plan;
        let root = ctx.scratch.path().join(NAME);
        let names = self.file_names();
        let cgroup = fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|t| MemoryCgroup::find(&t, Path::new("/sys/fs/cgroup")));
        match &cgroup {
            Some(c) => ctx.out.notes.push(format!(
                "{}: page-cache charges go to memory cgroup {} (read from {}, key {})",
                ctx.backing,
                c.path,
                c.stat.display(),
                c.key
            )),
            None => ctx.out.notes.push(format!(
                "{}: no memory cgroup found; cgroup figures omitted",
                ctx.backing
            )),
        }
        ctx.progress.set_message("page-cache: building images");
        let mut samples: Vec<Sample> = Vec::new();
        for layout in ctx.layouts {
            let kind = layout.kind();
            let img: PreparedImage =
                layout.prepare(&self.image(), &root.join(kind.name()).join("img"))?;
            // The lower files the overlays read (plain has none: each copy is its own).
            let lower: Vec<PathBuf> = if kind == LayoutKind::Plain {
                Vec::new()
            } else {
                names
                    .iter()
                    .map(|n| {
                        img.layer_dirs
                            .iter()
                            .rev()
                            .map(|d| d.join(n))
                            .find(|p| p.exists())
                            .unwrap_or_default()
                    })
                    .collect()
            };
            for &k in &p.containers {
                ctx.check_interrupted()?;
                ctx.progress
                    .set_message(format!("page-cache: {kind}, {k} containers"));
                // Disk blocks the containers add (statvfs): plain copies cost the set
                // K times on ext4 but share blocks on xfs (reflink), unlike their pages.
                let used_before = used_bytes(ctx.scratch, &root)?;
                let mut readers = Vec::new();
                for i in 0..k {
                    let c: ContainerDirs = layout.create_container(
                        &img,
                        &root.join(kind.name()).join(format!("k{k}-c{i}")),
                    )?;
                    let m = layout.mount(&img, &c)?;
                    readers.push(Reader {
                        view: m.merged.clone(),
                        upper: c.upper_work.as_ref().map(|(u, _)| u.clone()),
                        _mount: Some(m),
                    });
                }
                let evict = |readers: &[Reader]| -> Result<(), WorkloadError> {
                    let sync_root = File::open(&root).map_err(io_err("opening", &root))?;
                    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&sync_root))
                        .map_err(|e| io_err("syncfs", &root)(e.into()))?;
                    for f in backing_files(&lower, readers, &names) {
                        cache::evict_file(&f).map_err(io_err("evicting", &f))?;
                    }
                    Ok(())
                };
                let measure = |phase: &'static str,
                               readers: &[Reader],
                               samples: &mut Vec<_>|
                 -> Result<(), WorkloadError> {
                    let files = backing_files(&lower, readers, &names);
                    let before_cached = meminfo_bytes("Cached");
                    let before_cg = cgroup.as_ref().and_then(|c| c.file_bytes());
                    let read_one = |r: &Reader| {
                        names
                            .iter()
                            .try_for_each(|n| read_all(&r.view.join(n)).map(drop))
                    };
                    if phase == "read-concurrent" {
                        readers.par_iter().try_for_each(read_one)?;
                    } else {
                        readers.iter().try_for_each(read_one)?;
                    }
                    let (resident, inodes) = resident_distinct(&files)
                        .map_err(|e| WorkloadError::Failed(format!("mincore: {e}")))?;
                    samples.push((kind, k, phase, "resident_bytes", resident as f64, "bytes"));
                    samples.push((kind, k, phase, "backing_files", inodes as f64, "files"));
                    if let (Some(b), Some(a)) = (before_cached, meminfo_bytes("Cached")) {
                        samples.push((
                            kind,
                            k,
                            phase,
                            "meminfo_cached_delta_bytes",
                            a as f64 - b as f64,
                            "bytes",
                        ));
                    }
                    if let (Some(b), Some(a)) =
                        (before_cg, cgroup.as_ref().and_then(|c| c.file_bytes()))
                    {
                        samples.push((
                            kind,
                            k,
                            phase,
                            "cgroup_file_delta_bytes",
                            a as f64 - b as f64,
                            "bytes",
                        ));
                    }
                    Ok(())
                };
                evict(&readers)?;
                measure("read", &readers, &mut samples)?;
                evict(&readers)?;
                measure("read-concurrent", &readers, &mut samples)?;
                // Break sharing: half the containers (at least one) copy_up the set.
                let broken = k.div_ceil(2);
                for r in readers.iter().take(broken) {
                    for n in &names {
                        let path = r.view.join(n);
                        OpenOptions::new()
                            .write(true)
                            .open(&path)
                            .and_then(|f| f.write_at(b"w", 0).map(drop))
                            .map_err(io_err("writing", &path))?;
                    }
                }
                evict(&readers)?;
                measure("after-copy-up", &readers, &mut samples)?;
                let used_after = used_bytes(ctx.scratch, &root)?;
                samples.push((
                    kind,
                    k,
                    "after-copy-up",
                    "disk_bytes_added",
                    used_after - used_before,
                    "bytes",
                ));
                for r in readers {
                    if let Some(m) = r._mount {
                        m.unmount()?;
                    }
                }
                let dir = root.join(kind.name());
                for i in 0..k {
                    let c = dir.join(format!("k{k}-c{i}"));
                    fs::remove_dir_all(&c).map_err(io_err("removing", &c))?;
                }
                ctx.progress.inc(1);
            }
        }
        record(ctx, p, samples);
        Ok(())
    }
}

fn record(ctx: &mut RunContext<'_>, p: &PageCachePlan, samples: Vec<Sample>) {
    let params = |k: usize, phase: &str, extra: &[(&str, Value)]| -> BTreeMap<String, Value> {
        let mut m: BTreeMap<String, Value> = [
            ("backing", json!(ctx.backing)),
            ("containers", json!(k)),
            ("phase", json!(phase)),
            ("set_bytes", json!(p.set_bytes)),
            ("files", json!(p.files)),
            ("eviction", json!("posix_fadvise-dontneed")),
        ]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b))
        .collect();
        for (a, b) in extra {
            m.insert(a.to_string(), b.clone());
        }
        m
    };
    for (layout, k, phase, metric, v, unit) in samples {
        let s = vec![v];
        let Some(stats) = Stats::compute(&s) else {
            continue;
        };
        if metric == "resident_bytes" && v > 0.0 {
            let copied = if phase == "after-copy-up" {
                k.div_ceil(2)
            } else {
                0
            };
            ctx.out.derived.push(Derived {
                workload: NAME.into(),
                layout: layout.name().into(),
                kind: "sharing-factor".into(),
                params: params(k, phase, &[("copied_up_containers", json!(copied))]),
                value: (k as f64 * p.set_bytes as f64) / v,
                unit: "x".into(),
                r2: None,
                intercept: None,
                n: 1,
                ..Default::default()
            });
        }
        ctx.out.cases.push(Case {
            id: String::new(),
            workload: NAME.into(),
            layout: layout.name().into(),
            params: params(k, phase, &[]),
            metric: metric.into(),
            unit: unit.into(),
            samples: s,
            stats,
        });
    }
}
