//! copy-up: the cost of the first write to a large lower file.
//!
//! The file sits in the bottom layer of a `depth`-layer image. Every sample gets
//! a fresh container (fresh upper/work, fresh mount), so every timed first touch
//! is a real copy_up; afterwards the upper dir is checked to hold what the
//! operation must have produced (a full copy, or a metacopy file with its xattr).
//! `plain` has no copy_up: the same operation on a plain file is the baseline, and
//! a reference copy (`copy_file_range` + `fsync`, the kernel's fastest path) of the
//! same file on the same filesystem is measured in the same run.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use super::{Footprint, RunContext, Workload, WorkloadError, WorkloadKind};
use crate::image::{Change, ImageSpec, LayerSpec};
use crate::isolate::IsolateError;
use crate::layout::{self, ContainerDirs, Layout, LayoutKind, PreparedImage};
use crate::measure::{cache, fit_line, Stats};
use crate::report::{case_key, Case, Derived};

const NAME: &str = "copy-up";
const MIB: f64 = (1u64 << 20) as f64;

/// A sequence of timed operations run in one fresh container.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Procedure {
    /// `first-write` (open for write + 1-byte write + close), then `second-write`.
    Write,
    /// `chmod`, then `write-after-chmod` (the deferred data copy with metacopy).
    Chmod,
    /// `append` of one byte as the first touch.
    Append,
    /// `truncate` to half the size as the first touch.
    Truncate,
}

/// Overlay mount option sets compared.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// The kernel's defaults (full copy + fsync).
    Default,
    /// `metacopy=on`: metadata-only copy_up on chmod/chown.
    Metacopy,
    /// `volatile`: no fsync of the copy.
    Volatile,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Default => "default",
            Variant::Metacopy => "metacopy",
            Variant::Volatile => "volatile",
        }
    }
    fn options(self) -> Vec<(String, Option<String>)> {
        match self {
            Variant::Default => vec![],
            Variant::Metacopy => vec![("metacopy".into(), Some("on".into()))],
            Variant::Volatile => vec![("volatile".into(), None)],
        }
    }
}

/// Lower file page cache state before the timed operation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum CacheState {
    /// The lower file evicted (`posix_fadvise` DONTNEED).
    Cold,
    /// The lower file read fully beforehand.
    Warm,
}

impl CacheState {
    fn name(self) -> &'static str {
        match self {
            CacheState::Cold => "cold",
            CacheState::Warm => "warm",
        }
    }
}

/// Parameters of the copy-up workload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CopyUpPlan {
    /// File sizes, bytes.
    pub sizes: Vec<u64>,
    /// Layers in the image (the file is in the bottom one).
    pub depth: usize,
    /// Samples per case (each a fresh container).
    pub samples: usize,
    /// Procedures run.
    pub procedures: Vec<Procedure>,
    /// Overlay option sets.
    pub variants: Vec<Variant>,
    /// Lower cache states.
    pub caches: Vec<CacheState>,
}

/// Key of one accumulated case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    layout: String,
    variant: &'static str,
    op: &'static str,
    cache: &'static str,
    size: u64,
}

/// The copy-up workload.
pub struct CopyUp {
    plan: CopyUpPlan,
}

fn file_name(size: u64) -> String {
    format!("data/size-{size}")
}

fn io_err(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> WorkloadError {
    let msg = format!("{what} {}", path.display());
    move |e| WorkloadError::Failed(format!("{msg}: {e}"))
}

/// Times one operation (`first-write`, `chmod`, `append`, `truncate`, …) on `path`;
/// nothing but the syscalls is inside the clock. Returns nanoseconds.
pub fn timed(op: &'static str, path: &Path, size: u64) -> Result<f64, WorkloadError> {
    let err = io_err(op, path);
    let start = Instant::now();
    let result = match op {
        "first-write" | "second-write" | "write-after-chmod" => OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.write_at(b"x", 0).map(drop)),
        "chmod" => fs::set_permissions(path, fs::Permissions::from_mode(0o600)),
        "append" => OpenOptions::new()
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(b"x")),
        "truncate" => nix::unistd::truncate(path, (size / 2) as i64).map_err(std::io::Error::from),
        _ => Ok(()),
    };
    let ns = start.elapsed().as_nanos() as f64;
    result.map_err(err)?;
    Ok(ns)
}

/// The operations a procedure times, in order.
fn ops(p: Procedure) -> &'static [&'static str] {
    match p {
        Procedure::Write => &["first-write", "second-write"],
        Procedure::Chmod => &["chmod", "write-after-chmod"],
        Procedure::Append => &["append"],
        Procedure::Truncate => &["truncate"],
    }
}

/// Checks that the upper dir holds what `op` must have produced (outside the clock):
/// a full copy of the right size, or a metacopy file (xattr, no data) after a chmod
/// with metacopy on. An error means what was timed was not a copy_up.
pub fn verify_upper(
    upper: &Path,
    op: &str,
    size: u64,
    variant: Variant,
    metacopy_xattr: &str,
) -> Result<(), WorkloadError> {
    let m = fs::symlink_metadata(upper).map_err(|e| {
        WorkloadError::Failed(format!(
            "after {op}, the upper dir has no copy at {}: {e} — no copy_up happened",
            upper.display()
        ))
    })?;
    let metacopy = xattr::get(upper, metacopy_xattr).ok().flatten().is_some();
    let want_size = match op {
        "append" => size + 1,
        "truncate" => size / 2,
        _ => size,
    };
    let want_metacopy = variant == Variant::Metacopy && op == "chmod";
    let allocated = m.blocks() * 512;
    let ok = m.is_file()
        && m.len() == want_size
        && metacopy == want_metacopy
        // A metacopy file holds no data; a full copy holds (nearly) all of it.
        && if want_metacopy { allocated < 64 * 1024 } else { allocated + 64 * 1024 >= want_size.min(size) };
    if !ok {
        return Err(WorkloadError::Failed(format!(
            "after {op} ({}), upper file {} is {} bytes with {allocated} allocated, metacopy xattr {metacopy}; \
             expected {want_size} bytes, metacopy {want_metacopy}",
            variant.name(),
            upper.display(),
            m.len()
        )));
    }
    Ok(())
}

/// Writes back everything earlier samples left dirty (a `volatile` copy is never
/// fsynced; a removed container frees blocks) so that no sample pays for another:
/// on ext4 an fsync commits the journal and waits for all ordered data in it.
fn settle(dir: &Path) -> Result<(), WorkloadError> {
    let f = File::open(dir).map_err(io_err("opening", dir))?;
    nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f))
        .map_err(|e| io_err("syncfs", dir)(e.into()))
}

fn set_cache(path: &Path, state: CacheState) -> Result<(), WorkloadError> {
    match state {
        CacheState::Cold => cache::evict_file(path).map_err(io_err("evicting", path)),
        CacheState::Warm => {
            let mut f = File::open(path).map_err(io_err("opening", path))?;
            let mut buf = vec![0u8; 1 << 20];
            while f.read(&mut buf).map_err(io_err("reading", path))? > 0 {}
            Ok(())
        }
    }
}

impl CopyUp {
    /// With these parameters.
    pub fn new(plan: CopyUpPlan) -> Self {
        CopyUp { plan }
    }

    /// The image: every size as a file in the bottom layer, a small file per layer above.
    pub fn image(&self) -> ImageSpec {
        let layers = (0..self.plan.depth)
            .map(|l| {
                let mut changes = vec![
                    Change::Dir {
                        path: "data".into(),
                        mode: 0o755,
                    },
                    Change::File {
                        path: format!("layer-{l}").into(),
                        mode: 0o644,
                        size: 4096,
                        seed: l as u64,
                    },
                ];
                if l == 0 {
                    changes.extend(self.plan.sizes.iter().map(|&s| Change::File {
                        path: file_name(s).into(),
                        mode: 0o644,
                        size: s,
                        seed: s,
                    }));
                }
                LayerSpec { changes }
            })
            .collect();
        ImageSpec { layers }
    }

    /// Fails with exit 3 when the kernel refuses an option set (e.g. metacopy).
    fn probe_variants(&self, ctx: &RunContext<'_>, root: &Path) -> Result<(), WorkloadError> {
        let tiny = ImageSpec {
            layers: vec![LayerSpec {
                changes: vec![Change::Dir {
                    path: "d".into(),
                    mode: 0o755,
                }],
            }],
        };
        for &v in &self.plan.variants {
            let l = layout::create(
                LayoutKind::Overlay2,
                &ctx.layout_config.with_options(v.options()),
            );
            let dir = root.join(format!("probe-{}", v.name()));
            let img = l.prepare(&tiny, &dir.join("img"))?;
            let c = l.create_container(&img, &dir.join("c"))?;
            match l.mount(&img, &c) {
                Ok(m) => m.unmount()?,
                Err(e) => {
                    return Err(WorkloadError::Isolate(IsolateError::Unsupported(format!(
                        "the kernel refuses the overlay option set '{}': {e}; leave it out of --variants (dmesg may say why)",
                        v.name()
                    ))))
                }
            }
            fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))?;
        }
        Ok(())
    }
}

/// One layout (with a variant) and its prepared image.
struct Subject<'a> {
    layout: Box<dyn Layout>,
    variant: Variant,
    image: &'a PreparedImage,
}

impl Workload for CopyUp {
    fn kind(&self) -> WorkloadKind {
        WorkloadKind::CopyUp
    }

    fn footprint(&self, layouts: usize) -> Footprint {
        let total: u64 = self.plan.sizes.iter().sum();
        let max = self.plan.sizes.iter().copied().max().unwrap_or(0);
        // One image per layout (+ the plain container's copy), one upper copy and
        // one reference copy at a time.
        Footprint {
            bytes: total * (layouts as u64 + 1) + 3 * max + (64 << 20),
            inodes: 10_000,
        }
    }

    fn steps(&self, layouts: &[LayoutKind]) -> u64 {
        let subjects: usize = layouts
            .iter()
            .map(|k| {
                if *k == LayoutKind::Plain {
                    1
                } else {
                    self.plan.variants.len()
                }
            })
            .sum();
        (self.plan.samples * self.plan.sizes.len() * self.plan.caches.len() * subjects) as u64
    }

    fn run(&self, ctx: &mut RunContext<'_>) -> Result<(), WorkloadError> {
        let p = self.plan.clone();
        let root = ctx.scratch.path().join(NAME);
        fs::create_dir_all(&root).map_err(io_err("creating", &root))?;
        self.probe_variants(ctx, &root)?;
        ctx.progress.set_message("copy-up: building images");
        let image = self.image();
        let mut prepared = Vec::new();
        for l in ctx.layouts {
            prepared.push(l.prepare(&image, &root.join(l.kind().name()).join("img"))?);
        }
        let mut subjects = Vec::new();
        for (l, img) in ctx.layouts.iter().zip(&prepared) {
            if l.kind() == LayoutKind::Plain {
                subjects.push(Subject {
                    layout: layout::create(LayoutKind::Plain, ctx.layout_config),
                    variant: Variant::Default,
                    image: img,
                });
                continue;
            }
            for &v in &p.variants {
                subjects.push(Subject {
                    layout: layout::create(l.kind(), &ctx.layout_config.with_options(v.options())),
                    variant: v,
                    image: img,
                });
            }
        }
        // The reference copies the overlay2 (or first) image's bottom-layer file.
        let lower_of = |img: &PreparedImage, size: u64| img.layer_dirs[0].join(file_name(size));
        let reference_src = prepared.first().cloned();
        let plain_container = match prepared.iter().find(|i| i.kind == LayoutKind::Plain) {
            Some(img) => Some(layout::Plain.create_container(img, &root.join("plain-c"))?),
            None => None,
        };
        let metacopy_xattr = ctx.layout_config.overlay_xattr("metacopy");
        let mut samples: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
        ctx.progress.set_message("copy-up: measuring");
        let mut n = 0usize;
        for _ in 0..p.samples {
            for &size in &p.sizes {
                for &cache_state in &p.caches {
                    for s in &subjects {
                        for &proc_ in &p.procedures {
                            if ctx.check_interrupted().is_err() {
                                // What was measured is real: an interrupted report keeps it.
                                record(ctx, samples);
                                return Err(WorkloadError::Interrupted);
                            }
                            n += 1;
                            let rel = file_name(size);
                            let key = |op| Key {
                                layout: s.layout.kind().name().into(),
                                variant: s.variant.name(),
                                op,
                                cache: cache_state.name(),
                                size,
                            };
                            if s.layout.kind() == LayoutKind::Plain {
                                let Some(c) = &plain_container else { continue };
                                let file = c.merged.join(&rel);
                                // A fresh plain file each sample (the last op changed it).
                                fs::remove_file(&file).map_err(io_err("removing", &file))?;
                                fs::copy(lower_of(s.image, size), &file)
                                    .map_err(io_err("copying to", &file))?;
                                File::open(&file)
                                    .and_then(|f| f.sync_all())
                                    .map_err(io_err("syncing", &file))?;
                                settle(&root)?;
                                set_cache(&file, cache_state)?;
                                for &op in ops(proc_) {
                                    samples
                                        .entry(key(op))
                                        .or_default()
                                        .push(timed(op, &file, size)?);
                                }
                                continue;
                            }
                            let dir = root.join(format!("c{n}"));
                            let c: ContainerDirs = s.layout.create_container(s.image, &dir)?;
                            let mounted = s.layout.mount(s.image, &c)?;
                            // The lower file the overlay reads: overlay2's bottom diff, the
                            // legacy top root's hard link.
                            let lower = s
                                .image
                                .layer_dirs
                                .iter()
                                .rev()
                                .map(|d| d.join(&rel))
                                .find(|p| p.exists())
                                .unwrap_or_default();
                            settle(&root)?;
                            set_cache(&lower, cache_state)?;
                            let file = mounted.merged.join(&rel);
                            let upper = c
                                .upper_work
                                .as_ref()
                                .map(|(u, _)| u.join(&rel))
                                .unwrap_or_default();
                            for &op in ops(proc_) {
                                let ns = timed(op, &file, size)?;
                                verify_upper(&upper, op, size, s.variant, &metacopy_xattr)?;
                                samples.entry(key(op)).or_default().push(ns);
                            }
                            mounted.unmount()?;
                            fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))?;
                        }
                        ctx.progress.inc(1);
                    }
                    // The reference: copy_file_range + fsync of the same file, same fs.
                    if let Some(img) = &reference_src {
                        let src = lower_of(img, size);
                        settle(&root)?;
                        set_cache(&src, cache_state)?;
                        let dst = root.join("reference-copy");
                        let start = Instant::now();
                        fs::copy(&src, &dst)
                            .and_then(|_| File::open(&dst)?.sync_all())
                            .map_err(io_err("reference copy to", &dst))?;
                        let ns = start.elapsed().as_nanos() as f64;
                        fs::remove_file(&dst).map_err(io_err("removing", &dst))?;
                        samples
                            .entry(Key {
                                layout: "reference".into(),
                                variant: "copy_file_range+fsync",
                                op: "copy",
                                cache: cache_state.name(),
                                size,
                            })
                            .or_default()
                            .push(ns);
                    }
                }
            }
        }
        record(ctx, samples);
        Ok(())
    }
}

fn params(k: &Key, backing: &str) -> BTreeMap<String, Value> {
    let mut m = BTreeMap::new();
    m.insert("backing".into(), json!(backing));
    m.insert("op".into(), json!(k.op));
    m.insert("options".into(), json!(k.variant));
    m.insert("cache".into(), json!(k.cache));
    if k.size > 0 {
        m.insert("size_bytes".into(), json!(k.size));
    }
    m
}

fn record(ctx: &mut RunContext<'_>, samples: BTreeMap<Key, Vec<f64>>) {
    let mut medians: BTreeMap<Key, f64> = BTreeMap::new();
    for (key, s) in samples {
        let Some(stats) = Stats::compute(&s) else {
            continue;
        };
        medians.insert(key.clone(), stats.median);
        ctx.out.cases.push(Case {
            id: String::new(),
            workload: NAME.into(),
            layout: key.layout.clone(),
            params: params(&key, &ctx.backing),
            metric: "latency".into(),
            unit: "ns".into(),
            samples: s,
            stats,
        });
    }
    let id = |k: &Key, backing: &str| case_key(NAME, &k.layout, "latency", &params(k, backing));
    let mut series: BTreeMap<Key, Vec<(f64, f64, String)>> = BTreeMap::new();
    for (k, &m) in &medians {
        series
            .entry(Key {
                size: 0,
                ..k.clone()
            })
            .or_default()
            .push((k.size as f64 / MIB, m, id(k, &ctx.backing)));
    }
    for (k, pts) in &series {
        let xy: Vec<(f64, f64)> = pts.iter().map(|(x, y, _)| (*x, *y)).collect();
        let Some(fit) = fit_line(&xy) else { continue };
        let points = pts.iter().map(|(x, _, id)| (*x, id.clone())).collect();
        ctx.out.derived.push(Derived::slope(
            NAME,
            &k.layout,
            params(k, &ctx.backing),
            &fit,
            "ns/MiB",
            points,
        ));
    }
    for (k, &m) in &medians {
        let mut p = params(k, &ctx.backing);
        if m > 0.0 {
            ctx.out.derived.push(Derived {
                workload: NAME.into(),
                layout: k.layout.clone(),
                kind: "throughput".into(),
                params: p.clone(),
                value: k.size as f64 / MIB / (m / 1e9),
                unit: "MiB/s".into(),
                r2: None,
                intercept: None,
                n: 1,
                inputs: vec![id(k, &ctx.backing)],
                x: vec![k.size as f64 / MIB],
            });
        }
        let reference = Key {
            layout: "reference".into(),
            variant: "copy_file_range+fsync",
            op: "copy",
            ..k.clone()
        };
        if k.layout == "reference" {
            continue;
        }
        if let Some(&r) = medians.get(&reference).filter(|r| **r > 0.0) {
            p.insert("baseline".into(), json!("reference"));
            let (num, den) = (id(k, &ctx.backing), id(&reference, &ctx.backing));
            ctx.out
                .derived
                .push(Derived::ratio(NAME, &k.layout, p, m / r, num, den));
        }
    }
}

/// Where a copy-up container's upper copy of a size lands (for tests).
pub fn upper_path(container: &Path, size: u64) -> PathBuf {
    container.join("u").join(file_name(size))
}
