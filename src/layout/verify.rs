//! Checks that a first write did what the layout's copy-up must do, by the
//! layout's own markers — run outside the clock, so a timed operation that was
//! not a copy-up (or not the kind the layout claims) fails the run instead of
//! being reported. Each layout answers for itself; workloads only say what the
//! container did.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{ContainerDirs, Layout, LayoutError, PreparedImage};

/// What a container did first to a lower file (writes land at offset 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// Opened for write and wrote at offset 0.
    Write,
    /// Appended one byte.
    Append,
    /// Truncated to half its size.
    Truncate,
    /// Changed its mode only.
    Chmod,
}

/// A first write to check, and what was asked of the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyUpCheck {
    /// What the container did.
    pub touch: Touch,
    /// The file's size before it.
    pub size_bytes: u64,
    /// A metadata-only copy was asked for (`metacopy=on` and a chmod): the
    /// data must not have been copied.
    pub metadata_only: bool,
}

impl CopyUpCheck {
    /// The file's size after the touch.
    pub fn size_after(&self) -> u64 {
        match self.touch {
            Touch::Append => self.size_bytes + 1,
            Touch::Truncate => self.size_bytes / 2,
            _ => self.size_bytes,
        }
    }
}

fn fail(l: &(impl Layout + ?Sized), path: &Path, detail: String) -> LayoutError {
    LayoutError::CopyUp {
        layout: l.name(),
        path: path.to_path_buf(),
        detail,
    }
}

/// Before a first write: the container has no copy of `rel` in its upper dir.
pub fn no_upper(
    l: &(impl Layout + ?Sized),
    _image: &PreparedImage,
    c: &ContainerDirs,
    rel: &Path,
) -> Result<(), LayoutError> {
    match l.upper_file(c, rel) {
        Some(u) if u.symlink_metadata().is_ok() => Err(fail(
            l,
            &u,
            "the upper dir already holds a copy before the first write".into(),
        )),
        _ => Ok(()),
    }
}

/// The upper file of `rel`, or an error saying no copy was made.
fn upper_meta(
    l: &(impl Layout + ?Sized),
    c: &ContainerDirs,
    rel: &Path,
    check: &CopyUpCheck,
) -> Result<(std::path::PathBuf, fs::Metadata), LayoutError> {
    let upper = l.upper_file(c, rel).ok_or_else(|| {
        fail(
            l,
            rel,
            "the layout claims a copy-up but containers have no upper dir".into(),
        )
    })?;
    let m = fs::symlink_metadata(&upper).map_err(|e| {
        fail(
            l,
            &upper,
            format!(
                "after {:?}, no copy in the upper dir: {e} — no copy-up happened",
                check.touch
            ),
        )
    })?;
    Ok((upper, m))
}

/// A full copy holds (nearly) all of its data; a metadata-only one none.
fn allocation_ok(m: &fs::Metadata, check: &CopyUpCheck, metadata_only: bool) -> bool {
    let allocated = m.blocks() * 512;
    if metadata_only {
        allocated < 64 * 1024
    } else {
        allocated + 64 * 1024 >= check.size_after().min(check.size_bytes)
    }
}

/// Kernel overlay: a regular file of the right size in the upper dir; a
/// metacopy file (overlay's `metacopy` xattr, no data) exactly when a
/// metadata-only copy was asked for.
pub fn overlay_upper(
    l: &(impl Layout + ?Sized),
    _image: &PreparedImage,
    c: &ContainerDirs,
    rel: &Path,
    check: &CopyUpCheck,
) -> Result<(), LayoutError> {
    let (upper, m) = upper_meta(l, c, rel, check)?;
    let name = l.overlay_xattr("metacopy").unwrap_or_default();
    // An xattr that cannot be read is an error, never "not metacopy".
    let metacopy = !name.is_empty()
        && xattr::get(&upper, &name)
            .map_err(LayoutError::io("reading xattrs of", &upper))?
            .is_some();
    let ok = m.is_file()
        && m.len() == check.size_after()
        && metacopy == check.metadata_only
        && allocation_ok(&m, check, check.metadata_only);
    if !ok {
        return Err(fail(
            l,
            &upper,
            format!(
                "after {:?}, the upper file is {} bytes with {} allocated, metacopy xattr {metacopy}; \
                 expected {} bytes, metacopy {}",
                check.touch,
                m.len(),
                m.blocks() * 512,
                check.size_after(),
                check.metadata_only
            ),
        ));
    }
    Ok(())
}

/// A daemon's full copy: a regular file of the right size holding its data,
/// carrying `marker` (the daemon's record of where it was copied from).
pub fn daemon_upper(
    l: &(impl Layout + ?Sized),
    c: &ContainerDirs,
    rel: &Path,
    check: &CopyUpCheck,
    marker: &str,
) -> Result<(), LayoutError> {
    let (upper, m) = upper_meta(l, c, rel, check)?;
    let marked = xattr::get(&upper, marker)
        .map_err(LayoutError::io("reading xattrs of", &upper))?
        .is_some();
    let ok =
        m.is_file() && m.len() == check.size_after() && marked && allocation_ok(&m, check, false);
    if !ok {
        return Err(fail(
            l,
            &upper,
            format!(
                "after {:?}, the upper file is {} bytes with {} allocated, {marker} {}; expected a full \
                 copy of {} bytes carrying {marker}",
                check.touch,
                m.len(),
                m.blocks() * 512,
                if marked { "set" } else { "missing" },
                check.size_after()
            ),
        ));
    }
    Ok(())
}
