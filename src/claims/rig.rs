//! What the claims' experiments share: picking a layout by what it can do,
//! small images, a mounted container that unmounts on drop, timed writes and
//! reads (nothing but the syscalls inside the clock), and medians.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{ClaimContext, ClaimError, Finding};
use crate::image::{Change, ImageSpec, LayerSpec};
use crate::layout::{ContainerDirs, CopyUp, Layout, Mounted, PreparedImage};

/// Bytes in a MiB.
pub const MIB: u64 = 1 << 20;

/// The layout Docker's overlay notes describe: an overlay with one lower per
/// image layer and a copy-up into the container's upper dir (overlay2 today).
pub fn overlay_layout<'a>(ctx: &ClaimContext<'a>) -> Result<&'a dyn Layout, Finding> {
    ctx.layouts
        .iter()
        .map(|l| l.as_ref())
        .find(|l| {
            let c = l.capabilities();
            c.copy_up == CopyUp::OverlayXattr && c.lower_per_layer && c.overlay_options
        })
        .ok_or_else(|| {
            Finding::not_testable("no overlay layout with one lower per layer in this build")
        })
}

/// The layout without a union filesystem (a full copy per container).
pub fn baseline_layout<'a>(ctx: &ClaimContext<'a>) -> Result<&'a dyn Layout, Finding> {
    ctx.layouts
        .iter()
        .map(|l| l.as_ref())
        .find(|l| l.capabilities().baseline)
        .ok_or_else(|| Finding::not_testable("no baseline (copying) layout in this build"))
}

/// The layout registered as `name`, for a claim about that named driver.
pub fn named<'a>(ctx: &ClaimContext<'a>, name: &str) -> Result<&'a dyn Layout, Finding> {
    ctx.layouts
        .iter()
        .map(|l| l.as_ref())
        .find(|l| l.name() == name)
        .ok_or_else(|| Finding::not_testable(format!("no {name} layout in this build")))
}

/// A directory change.
pub fn dir(path: &str) -> Change {
    Change::Dir {
        path: path.into(),
        mode: 0o755,
    }
}

/// A file change of `size` bytes of generated content.
pub fn file(path: &str, size: u64, seed: u64) -> Change {
    Change::File {
        path: path.into(),
        mode: 0o644,
        size,
        seed,
    }
}

/// An image from its layers' changes, bottom first.
pub fn image(layers: Vec<Vec<Change>>) -> ImageSpec {
    ImageSpec {
        layers: layers
            .into_iter()
            .map(|changes| LayerSpec { changes })
            .collect(),
    }
}

/// A container of a prepared image, mounted; unmounts when dropped.
pub struct Container {
    /// Its directories (upper and work for overlay layouts).
    pub dirs: ContainerDirs,
    /// Its mounted view.
    pub mounted: Mounted,
}

impl Container {
    /// Makes and mounts a fresh container of `img` in `dir`.
    pub fn new(
        layout: &dyn Layout,
        img: &PreparedImage,
        dir: &Path,
    ) -> Result<Container, ClaimError> {
        let dirs = layout.create_container(img, dir)?;
        let mounted = layout.mount(img, &dirs)?;
        Ok(Container { dirs, mounted })
    }

    /// `rel` as the container sees it.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mounted.merged.join(rel)
    }

    /// The container's upper dir, for a layout with one.
    pub fn upper(&self) -> Result<&Path, ClaimError> {
        self.dirs
            .upper_work
            .as_ref()
            .map(|(u, _)| u.as_path())
            .ok_or_else(|| {
                ClaimError::Unexpected(
                    "the overlay layout made a container without an upper dir".into(),
                )
            })
    }

    /// Unmounts now, reporting failure.
    pub fn unmount(self) -> Result<(), ClaimError> {
        Ok(self.mounted.unmount()?)
    }
}

/// Times the first-write pattern of the copy-up workload: open for write and
/// write one byte at offset 0. Nanoseconds.
pub fn one_byte_write_ns(path: &Path) -> Result<f64, ClaimError> {
    let start = Instant::now();
    let r = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.write_at(b"x", 0).map(drop));
    let ns = start.elapsed().as_nanos() as f64;
    r.map_err(ClaimError::io("writing one byte to", path))?;
    Ok(ns)
}

/// Drops `path`'s pages from the page cache (after writing it back).
pub fn evict(path: &Path) -> Result<(), ClaimError> {
    crate::probe::cache::evict_file(path).map_err(ClaimError::io("evicting", path))
}

/// Writes back everything dirty on the filesystem holding `dir`.
pub fn settle(dir: &Path) -> Result<(), ClaimError> {
    Ok(crate::workload::harness::settle(dir)?)
}

/// A 1 MiB buffer of generated (not compressible, not zero) bytes.
pub fn buffer() -> Vec<u8> {
    crate::image::content::bytes(7, MIB)
}

/// Writes `bytes` sequentially to a new file in 1 MiB writes, then fsyncs it.
/// Nanoseconds for create + writes + fsync.
pub fn sequential_write_ns(path: &Path, bytes: u64, buf: &[u8]) -> Result<f64, ClaimError> {
    let start = Instant::now();
    let r = (|| {
        let mut f = File::create(path)?;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        f.sync_all()
    })();
    let ns = start.elapsed().as_nanos() as f64;
    r.map_err(ClaimError::io("writing", path))?;
    Ok(ns)
}

/// Reads `path` to its end in 1 MiB reads; nanoseconds and bytes read.
pub fn sequential_read_ns(path: &Path) -> Result<(f64, u64), ClaimError> {
    let mut buf = vec![0u8; MIB as usize];
    let start = Instant::now();
    let r = (|| {
        let mut f = File::open(path)?;
        let mut total = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    })();
    let ns = start.elapsed().as_nanos() as f64;
    let total = r.map_err(ClaimError::io("reading", path))?;
    Ok((ns, total))
}

/// `n` 4 KiB writes at random 4 KiB-aligned offsets of an existing file of
/// `file_bytes`, then one fsync. Nanoseconds for all of it.
pub fn random_writes_ns(
    path: &Path,
    file_bytes: u64,
    n: usize,
    seed: u64,
    buf: &[u8],
) -> Result<f64, ClaimError> {
    let blocks = (file_bytes / 4096).max(1);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let offsets: Vec<u64> = (0..n).map(|_| rng.gen_range(0..blocks) * 4096).collect();
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(ClaimError::io("opening", path))?;
    let start = Instant::now();
    let r = offsets
        .iter()
        .try_for_each(|&off| f.write_all_at(&buf[..4096], off))
        .and_then(|()| f.sync_all());
    let ns = start.elapsed().as_nanos() as f64;
    r.map_err(ClaimError::io("writing randomly to", path))?;
    Ok(ns)
}

/// `n` times: write 4 KiB (appending) and fsync; the latency of each pair, ns.
pub fn fsync_latencies_ns(path: &Path, n: usize, buf: &[u8]) -> Result<Vec<f64>, ClaimError> {
    let f = File::create(path).map_err(ClaimError::io("creating", path))?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let r = f
            .write_all_at(&buf[..4096], i as u64 * 4096)
            .and_then(|()| f.sync_all());
        out.push(start.elapsed().as_nanos() as f64);
        r.map_err(ClaimError::io("write + fsync of", path))?;
    }
    Ok(out)
}

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    crate::stats::Stats::compute(v).map_or(f64::NAN, |s| s.median)
}

/// The relative change of the median of `current` against that of `baseline`
/// (`current / baseline - 1`), with its 95 % bootstrap interval (deterministic).
pub fn change(baseline: &[f64], current: &[f64]) -> crate::stats::ChangeInterval {
    let b = |p: &mut dyn FnMut(&[f64]) -> f64| p(baseline);
    let c = |p: &mut dyn FnMut(&[f64]) -> f64| p(current);
    crate::stats::bootstrap_change(&b, &c, 1000, 1)
}

/// A change as `+12 % [+3 %, +20 %]`.
pub fn fmt_change(c: &crate::stats::ChangeInterval) -> String {
    format!(
        "{:+.0} % [{:+.0} %, {:+.0} %]",
        100.0 * c.change,
        100.0 * c.low,
        100.0 * c.high
    )
}

/// MiB per second for `bytes` in `ns`.
pub fn mib_per_s(bytes: u64, ns: f64) -> f64 {
    (bytes as f64 / MIB as f64) / (ns / 1e9)
}

/// Removes a tree, naming it on failure.
pub fn remove(path: &Path) -> Result<(), ClaimError> {
    fs::remove_dir_all(path).map_err(ClaimError::io("removing", path))
}

/// The error of `r` as the kernel names it (`EXDEV`, `EINVAL`), or `ok`.
pub fn errno_word<T>(r: &std::io::Result<T>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e
            .raw_os_error()
            .map(|n| format!("{:?}", nix::errno::Errno::from_raw(n)))
            .unwrap_or_else(|| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_words_name_the_kernel_error() {
        let exdev: std::io::Result<()> = Err(std::io::Error::from(nix::errno::Errno::EXDEV));
        assert_eq!(errno_word(&exdev), "EXDEV");
        assert_eq!(errno_word(&Ok(())), "ok");
        assert_eq!(mib_per_s(MIB * 100, 1e9), 100.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }
}
