//! File-system work shared by the layouts: applying an image's layers (through
//! `image::apply`, the one place entries become files) and cloning trees the
//! way the drivers do — the legacy driver's hard-linked layer roots and the
//! plain driver's full copies. Directories go first (parents before children),
//! then file work in parallel on every core.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{mknod, Mode, SFlag};
use rayon::prelude::*;

use super::{LayoutConfig, LayoutError};
use crate::image::apply::{apply_layer, ApplyOptions, ApplyStats, DevicePolicy, WhiteoutStyle};
use crate::image::ImageSource;
use crate::isolate::Privilege;

/// How entries become files for this layout's privilege: as root owners and
/// device nodes are kept; rootless, devices are skipped (and counted).
pub fn apply_options(config: &LayoutConfig, style: WhiteoutStyle) -> ApplyOptions {
    let root = config.privilege == Privilege::Root;
    ApplyOptions {
        style,
        devices: if root {
            DevicePolicy::Create
        } else {
            DevicePolicy::SkipAndCount
        },
        owners: root,
    }
}

/// Applies layer `index` of `image` onto `dest` (made if missing).
pub fn apply(
    image: &dyn ImageSource,
    index: usize,
    dest: &Path,
    opts: &ApplyOptions,
) -> Result<ApplyStats, LayoutError> {
    fs::create_dir_all(dest).map_err(LayoutError::io("creating", dest))?;
    Ok(apply_layer(image, index, dest, opts)?)
}

/// The hex part of a digest (`sha256:ab…` → `ab…`), used for directory names.
pub fn digest_hex(digest: &str) -> &str {
    digest.rsplit(':').next().unwrap_or(digest)
}

/// How a clone makes a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileClone {
    /// A hard link to the source (the legacy driver's shared layer roots).
    HardLink,
    /// A full copy of the data (a plain container's private tree); hard links
    /// inside the tree stay hard links.
    Copy,
}

/// One non-directory to make once its directory exists.
struct Job {
    src: PathBuf,
    dst: PathBuf,
    kind: JobKind,
}

enum JobKind {
    File,
    /// A later path of a file already copied: link to that copy.
    LinkTo(PathBuf),
}

/// Sets what `src`'s metadata says on `dst` (owner, mode, xattrs), not following links.
fn copy_meta(src: &Path, dst: &Path, m: &fs::Metadata, owners: bool) -> Result<(), LayoutError> {
    if owners {
        std::os::unix::fs::lchown(dst, Some(m.uid()), Some(m.gid()))
            .map_err(LayoutError::io("chown", dst))?;
    }
    if !m.file_type().is_symlink() {
        fs::set_permissions(dst, fs::Permissions::from_mode(m.mode() & 0o7777))
            .map_err(LayoutError::io("chmod", dst))?;
    }
    let names: Vec<OsString> = xattr::list(src)
        .map_err(LayoutError::io("listing xattrs of", src))?
        .collect();
    for name in names {
        if let Some(v) =
            xattr::get(src, &name).map_err(LayoutError::io("reading xattrs of", src))?
        {
            xattr::set(dst, &name, &v).map_err(LayoutError::io("setting xattrs on", dst))?;
        }
    }
    Ok(())
}

/// Clones the tree at `src` to `dst` (which must not exist): directories,
/// symlinks, FIFOs and device nodes made anew with their metadata; regular
/// files hard-linked or copied. Directory mtimes follow at the end.
pub fn clone_tree(
    src: &Path,
    dst: &Path,
    files: FileClone,
    owners: bool,
) -> Result<(), LayoutError> {
    let mut jobs = Vec::new();
    let mut dirs = Vec::new();
    let mut first_path: HashMap<(u64, u64), PathBuf> = HashMap::new();
    clone_dirs(
        src,
        dst,
        files,
        owners,
        &mut jobs,
        &mut dirs,
        &mut first_path,
    )?;
    // Copies first, then the links to them (a link needs its copy to exist).
    let (links, files_now): (Vec<Job>, Vec<Job>) = jobs
        .into_iter()
        .partition(|j| matches!(j.kind, JobKind::LinkTo(_)));
    let run = |j: Job| match j.kind {
        JobKind::LinkTo(first) => {
            fs::hard_link(&first, &j.dst).map_err(LayoutError::io("hard-linking", &j.dst))
        }
        JobKind::File => match files {
            FileClone::HardLink => {
                fs::hard_link(&j.src, &j.dst).map_err(LayoutError::io("hard-linking", &j.dst))
            }
            FileClone::Copy => {
                fs::copy(&j.src, &j.dst).map_err(LayoutError::io("copying to", &j.dst))?;
                let m = fs::symlink_metadata(&j.src).map_err(LayoutError::io("reading", &j.src))?;
                copy_meta(&j.src, &j.dst, &m, owners)
            }
        },
    };
    files_now.into_par_iter().try_for_each(run)?;
    links.into_par_iter().try_for_each(run)?;
    // Children changed the directories' mtimes: set them last, deepest first.
    for (d, m) in dirs.iter().rev() {
        let t = nix::sys::time::TimeSpec::new(m.mtime(), m.mtime_nsec());
        nix::sys::stat::utimensat(
            None,
            d,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| LayoutError::io("setting times of", d)(e.into()))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn clone_dirs(
    src: &Path,
    dst: &Path,
    files: FileClone,
    owners: bool,
    jobs: &mut Vec<Job>,
    dirs: &mut Vec<(PathBuf, fs::Metadata)>,
    first_path: &mut HashMap<(u64, u64), PathBuf>,
) -> Result<(), LayoutError> {
    let meta = fs::symlink_metadata(src).map_err(LayoutError::io("reading", src))?;
    fs::DirBuilder::new()
        .mode(0o700)
        .create(dst)
        .map_err(LayoutError::io("creating dir", dst))?;
    copy_meta(src, dst, &meta, owners)?;
    dirs.push((dst.to_path_buf(), meta));
    for entry in fs::read_dir(src).map_err(LayoutError::io("reading dir", src))? {
        let entry = entry.map_err(LayoutError::io("reading dir", src))?;
        let (s, d) = (entry.path(), dst.join(entry.file_name()));
        let m = fs::symlink_metadata(&s).map_err(LayoutError::io("reading", &s))?;
        let ft = m.file_type();
        if ft.is_dir() {
            clone_dirs(&s, &d, files, owners, jobs, dirs, first_path)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&s).map_err(LayoutError::io("reading link", &s))?;
            std::os::unix::fs::symlink(target, &d).map_err(LayoutError::io("symlinking", &d))?;
            copy_meta(&s, &d, &m, owners)?;
        } else if ft.is_file() {
            let kind = match (files, m.nlink() > 1) {
                (FileClone::Copy, true) => match first_path.get(&(m.dev(), m.ino())) {
                    Some(first) => JobKind::LinkTo(first.clone()),
                    None => {
                        first_path.insert((m.dev(), m.ino()), d.clone());
                        JobKind::File
                    }
                },
                _ => JobKind::File,
            };
            jobs.push(Job {
                src: s,
                dst: d,
                kind,
            });
        } else {
            // FIFOs, sockets and device nodes (whiteouts included) are made anew.
            let kind = if ft.is_char_device() {
                SFlag::S_IFCHR
            } else if ft.is_block_device() {
                SFlag::S_IFBLK
            } else if ft.is_fifo() {
                SFlag::S_IFIFO
            } else {
                SFlag::S_IFSOCK
            };
            mknod(
                &d,
                kind,
                Mode::from_bits_truncate(m.mode() & 0o7777),
                m.rdev(),
            )
            .map_err(|e| LayoutError::io("making node", &d)(e.into()))?;
            copy_meta(&s, &d, &m, owners)?;
        }
    }
    Ok(())
}
