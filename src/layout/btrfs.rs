//! Docker's btrfs driver (Docker 20.10 `btrfs`, containers/storage `btrfs`):
//! the base layer is a subvolume, each further layer a writable snapshot of its
//! parent with the layer applied for real (whiteouts delete, opaque dirs are
//! emptied: no marker files anywhere), each container an `<id>-init` snapshot of
//! the image's top layer and a snapshot of that. Nothing is mounted: a
//! container's root is its snapshot dir. Sharing is block-level: a snapshot
//! shares every extent with its origin until a write copies the blocks it
//! touches — no copy-up, and no page-cache sharing (each snapshot's files are
//! inodes of their own).
//!
//! Needs a btrfs backing (`--backing btrfs`). Layers are named by chain id
//! (Docker names them by a random cache id and maps chain ids to it).

use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::host::{self, Cite, Note, ProbeHost, ProbeOutcome, StackProbe, StoreAdvice};
use super::{
    fsops, Capabilities, ContainerDirs, CopyUp, CopyUpCheck, HostProfile, Layout, LayoutConfig,
    LayoutEntry, LayoutError, MountHost, MountSpec, Mounted, PreparedImage, Style, TableMounts,
    Touch,
};
use crate::image::apply::WhiteoutStyle;
use crate::image::ImageSource;
use crate::isolate::Privilege;
use crate::probe::extents::{extents, Extent};
use crate::sys;

/// `_IOW(0x94, 14, struct btrfs_ioctl_vol_args)`.
const BTRFS_IOC_SUBVOL_CREATE: std::ffi::c_ulong = 0x5000_940e;
/// `_IOW(0x94, 15, struct btrfs_ioctl_vol_args)` (v1, as Docker's driver uses).
const BTRFS_IOC_SNAP_DESTROY: std::ffi::c_ulong = 0x5000_940f;
/// `_IOW(0x94, 23, struct btrfs_ioctl_vol_args_v2)`.
const BTRFS_IOC_SNAP_CREATE_V2: std::ffi::c_ulong = 0x5000_9417;
/// `_IO(0x94, 8)`: commits and wakes the transaction thread, which pokes the
/// cleaner that frees deleted subvolumes.
const BTRFS_IOC_SYNC: std::ffi::c_ulong = 0x9408;
/// `_IOW(0x94, 65, struct btrfs_ioctl_subvol_wait)` (kernel >= 6.8).
const BTRFS_IOC_SUBVOL_SYNC_WAIT: std::ffi::c_ulong = 0x4010_9441;
/// Its mode that counts the deletions still queued.
const SUBVOL_SYNC_COUNT: u32 = 2;
/// The first inode number of every subvolume (`BTRFS_FIRST_FREE_OBJECTID`).
const SUBVOL_ROOT_INO: u64 = 256;
/// Files this small may be stored inline in metadata, where FIEMAP never says
/// SHARED: sharing is only verified above it.
const MAX_INLINE_BYTES: u64 = 2048;

#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; 4088],
}

#[repr(C)]
struct SubvolWait {
    subvolid: u64,
    mode: u32,
    count: u32,
}

#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; 4040],
}

/// Registry entry.
pub static ENTRY: LayoutEntry = LayoutEntry {
    name: "btrfs",
    about: "Docker's btrfs driver: a subvolume per base layer, a snapshot per layer and container (needs --backing btrfs).",
    style: Style {
        rgb: (23, 190, 207),
        dashed: false,
        triangle: false,
    },
    caps: Capabilities {
        shares_layers: true,
        copy_up: CopyUp::BlockCow,
        baseline: false,
        overlay_options: false,
        lower_per_layer: false,
        hidden_inode_per_mount: false,
        metacopy: false,
        same_tree_as: None,
        table_mounts: TableMounts::None,
        idmap_lowers: false,
        needs_fstype: Some("btrfs"),
    },
    create: |config| Box::new(Btrfs::new(config.clone())),
    host: HostProfile {
        probe: Some(StackProbe {
            name: "btrfs driver mount (own filesystem)",
            root_only: true,
            run: probe_mount,
        }),
        tools: Some(StackProbe {
            name: "btrfs",
            root_only: false,
            run: probe_tools,
        }),
        notes: &[Note {
            text: "snapshots share blocks but not page cache, and there is no inode limit to watch",
            cite: Cite::PathFstype,
        }],
        stores: StoreAdvice::Keep(
            "this host's images are in a btrfs driver store ({layers} layers): keep it unless the figures below say \
             otherwise",
        ),
        ..HostProfile::rootful()
    },
};

/// The btrfs probe's image: sparse, so it takes only what mkfs writes (~5 MiB)
/// of doctor's tmpfs; `--mixed` makes a filesystem this small valid.
const PROBE_IMAGE_BYTES: u64 = 64 << 20;

/// doctor's check that needs no root: btrfs in the kernel and `mkfs.btrfs`.
fn probe_tools(at: &ProbeHost<'_>) -> ProbeOutcome {
    let kernel = host::kernel_has(at.filesystems, "btrfs");
    let mkfs = host::tool_output("mkfs.btrfs", &["--version"]);
    let version = mkfs.as_ref().ok().and_then(|o| {
        o.split_whitespace()
            .find(|w| w.starts_with('v') && w[1..].starts_with(|c: char| c.is_ascii_digit()))
            .map(|v| format!("btrfs-progs {v}"))
    });
    let detail = match (&mkfs, kernel) {
        (Ok(_), true) => "the kernel lists btrfs and mkfs.btrfs is installed: a btrfs filesystem can hold a btrfs driver store".to_string(),
        (Ok(_), false) => "mkfs.btrfs is installed but the kernel has no btrfs (not in /proc/filesystems)".to_string(),
        (Err(e), true) => format!("the kernel lists btrfs, but {e}"),
        (Err(e), false) => format!("no btrfs in the kernel, and {e}"),
    };
    ProbeOutcome {
        supported: kernel && mkfs.is_ok(),
        detail,
        version,
        took: None,
    }
}

/// doctor's probe: a btrfs filesystem of its own (a loop device over a sparse
/// image file in doctor's tmpfs, detached when unmounted), then a container
/// of a tiny image made by this layout on it.
fn probe_mount(at: &ProbeHost<'_>) -> ProbeOutcome {
    ProbeOutcome::of(host::on_own_filesystem(
        &at.dir.join("btrfs"),
        ENTRY.name,
        PROBE_IMAGE_BYTES,
        Command::new("mkfs.btrfs").args(["-q", "-f", "--mixed"]),
        "scripts/setup installs btrfs-progs",
        |m| host::probe_stack(&ENTRY, m, Privilege::Root),
    ))
}

/// The btrfs layout.
#[derive(Debug, Clone)]
pub struct Btrfs {
    config: LayoutConfig,
}

impl Btrfs {
    /// With these settings (privilege decides owners and device nodes).
    pub fn new(config: LayoutConfig) -> Self {
        Btrfs { config }
    }
}

fn name_bytes<const N: usize>(name: &OsStr, path: &Path) -> Result<[u8; N], LayoutError> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= N || b.contains(&0) || b.contains(&b'/') {
        return Err(LayoutError::io("naming a subvolume", path)(
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    }
    let mut out = [0u8; N];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

fn split(path: &Path) -> Result<(File, &OsStr), LayoutError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(LayoutError::io("naming a subvolume", path)(
            std::io::Error::from(std::io::ErrorKind::InvalidInput),
        ));
    };
    let dir = File::open(parent).map_err(LayoutError::io("opening", parent))?;
    Ok((dir, name))
}

fn ioctl_result(
    rc: std::io::Result<std::ffi::c_int>,
    what: &'static str,
    path: &Path,
) -> Result<(), LayoutError> {
    if let Err(e) = rc {
        let e = if e.raw_os_error() == Some(rustix::io::Errno::NOTTY.raw_os_error()) {
            std::io::Error::new(e.kind(), format!("{e} (not on btrfs: use --backing btrfs)"))
        } else {
            e
        };
        return Err(LayoutError::io(what, path)(e));
    }
    Ok(())
}

/// `BTRFS_IOC_SUBVOL_CREATE`: a new empty subvolume at `path`.
pub fn subvolume_create(path: &Path) -> Result<(), LayoutError> {
    let (dir, name) = split(path)?;
    let args = VolArgs {
        fd: 0,
        name: name_bytes(name, path)?,
    };
    // SAFETY: SUBVOL_CREATE reads a btrfs_ioctl_vol_args, which VolArgs mirrors.
    let rc = unsafe {
        sys::ioctl_ptr(
            dir.as_fd(),
            BTRFS_IOC_SUBVOL_CREATE,
            std::ptr::from_ref(&args).cast_mut(),
        )
    };
    ioctl_result(rc, "creating subvolume", path)
}

/// `BTRFS_IOC_SNAP_CREATE_V2`: a writable snapshot of subvolume `src` at `path`.
pub fn snapshot(src: &Path, path: &Path) -> Result<(), LayoutError> {
    let (dir, name) = split(path)?;
    let source = File::open(src).map_err(LayoutError::io("opening", src))?;
    let args = VolArgsV2 {
        fd: i64::from(source.as_raw_fd()),
        transid: 0,
        flags: 0,
        unused: [0; 4],
        name: name_bytes(name, path)?,
    };
    // SAFETY: SNAP_CREATE_V2 reads a btrfs_ioctl_vol_args_v2, which VolArgsV2 mirrors.
    let rc = unsafe {
        sys::ioctl_ptr(
            dir.as_fd(),
            BTRFS_IOC_SNAP_CREATE_V2,
            std::ptr::from_ref(&args).cast_mut(),
        )
    };
    ioctl_result(rc, "snapshotting into", path)
}

/// `BTRFS_IOC_SNAP_DESTROY`: deletes subvolume `path` (its space is freed in
/// the background; `settle_removals` waits for it).
pub fn subvolume_delete(path: &Path) -> Result<(), LayoutError> {
    let (dir, name) = split(path)?;
    let args = VolArgs {
        fd: 0,
        name: name_bytes(name, path)?,
    };
    // SAFETY: SNAP_DESTROY reads a btrfs_ioctl_vol_args, which VolArgs mirrors.
    let rc = unsafe {
        sys::ioctl_ptr(
            dir.as_fd(),
            BTRFS_IOC_SNAP_DESTROY,
            std::ptr::from_ref(&args).cast_mut(),
        )
    };
    ioctl_result(rc, "deleting subvolume", path)
}

/// Whether `path` is the root of a subvolume (inode 256), not following links.
fn is_subvolume(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir() && m.ino() == SUBVOL_ROOT_INO)
}

/// Deletes every subvolume at or below `dir`, deepest first (Docker's
/// `subvolDelete` does the same), then removes what is left. The walk is
/// iterative and fd-relative: the trees below hold image content, nested as
/// deep as a path allows.
fn remove_subvolumes_under(dir: &Path) -> Result<(), LayoutError> {
    use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
    if !dir.exists() {
        return Ok(());
    }
    let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let err = |what: &'static str, rel: &Path| {
        let path = dir.join(rel);
        move |e: rustix::io::Errno| LayoutError::io(what, &path)(e.into())
    };
    let root = rfs::open(dir, flags, Mode::empty()).map_err(err("opening", Path::new("")))?;
    // Directories seen: (parent, name), so memory per directory is its name.
    let mut nodes: Vec<(usize, OsString)> = vec![(0, OsString::new())];
    let rel_of = |nodes: &[(usize, OsString)], mut i: usize| -> PathBuf {
        let mut names = Vec::new();
        while i != 0 {
            names.push(nodes[i].1.clone());
            i = nodes[i].0;
        }
        names.iter().rev().collect()
    };
    // Subvolumes found, each after every subvolume below it.
    let mut subvols: Vec<usize> = Vec::new();
    // Levels being walked: the directory, whether it is a subvolume, and its
    // subdirectories still to visit. One fd is open, whatever the depth: the
    // walk climbs back through `..`.
    let mut cur =
        rfs::openat(&root, ".", flags, Mode::empty()).map_err(err("opening", Path::new("")))?;
    let list = |fd: &OwnedFd, rel: &Path| -> Result<Vec<(OsString, bool)>, LayoutError> {
        let mut out = Vec::new();
        let mut d = rfs::Dir::read_from(fd).map_err(err("reading dir", rel))?;
        while let Some(e) = d.read() {
            let e = e.map_err(err("reading dir", rel))?;
            let n = e.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            let name = OsStr::from_bytes(n);
            let st =
                rfs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW).map_err(err("reading", rel))?;
            if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                out.push((name.to_os_string(), st.st_ino == SUBVOL_ROOT_INO));
            }
        }
        Ok(out)
    };
    // Per level: its node, whether it is a subvolume, its subdirectories
    // still to visit (each with whether it is one).
    type Level = (usize, bool, Vec<(OsString, bool)>);
    let mut stack: Vec<Level> = vec![(0, is_subvolume(dir), list(&cur, Path::new(""))?)];
    while let Some((node, _, pending)) = stack.last_mut() {
        let node = *node;
        match pending.pop() {
            Some((name, subvol)) => {
                let sub = rfs::openat(&cur, name.as_os_str(), flags, Mode::empty())
                    .map_err(|e| err("opening", &rel_of(&nodes, node).join(&name))(e))?;
                nodes.push((node, name));
                let i = nodes.len() - 1;
                let children = list(&sub, &rel_of(&nodes, i))?;
                stack.push((i, subvol, children));
                cur = sub;
            }
            None => {
                let (i, subvol, _) = stack.pop().unwrap_or((node, false, Vec::new()));
                if subvol {
                    subvols.push(i);
                }
                if !stack.is_empty() {
                    cur = rfs::openat(&cur, "..", flags, Mode::empty())
                        .map_err(|e| err("opening", &rel_of(&nodes, i))(e))?;
                }
            }
        }
    }
    drop(cur);
    for i in subvols {
        let path = dir.join(rel_of(&nodes, i));
        subvolume_delete(&path)?;
    }
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(LayoutError::io("removing", dir))?;
    }
    Ok(())
}

fn cow_error(path: &Path, detail: String) -> LayoutError {
    LayoutError::CopyUp {
        layout: ENTRY.name,
        path: path.to_path_buf(),
        detail,
    }
}

fn describe(ex: &[Extent]) -> String {
    ex.iter()
        .take(6)
        .map(|e| {
            format!(
                "{}+{}{}{}",
                e.logical,
                e.length,
                if e.shared { " shared" } else { " private" },
                if e.inline { " inline" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl Layout for Btrfs {
    fn entry(&self) -> &'static LayoutEntry {
        &ENTRY
    }

    fn with_options(&self, options: &[(String, Option<String>)]) -> Option<Box<dyn Layout>> {
        options
            .is_empty()
            .then(|| Box::new(self.clone()) as Box<dyn Layout>)
    }

    fn import(&self, store: &Path, image: &dyn ImageSource) -> Result<PreparedImage, LayoutError> {
        let subvols = store.join("subvolumes");
        fs::create_dir_all(&subvols).map_err(LayoutError::io("creating", &subvols))?;
        let info = image.info();
        let opts = fsops::apply_options(&self.config, WhiteoutStyle::InPlace);
        let mut dirs: Vec<PathBuf> = Vec::new();
        let mut written = Vec::new();
        for (k, layer) in info.layers.iter().enumerate() {
            let id = fsops::digest_hex(&layer.chain_id);
            let done = subvols.join(id);
            if is_subvolume(&done) {
                dirs.push(done);
                written.push(None);
                continue;
            }
            // A layer is applied in `<id>.tmp` and renamed when whole: an import
            // that died half way leaves only a .tmp, never a trusted layer.
            let tmp = subvols.join(format!("{id}.tmp"));
            if tmp.exists() {
                remove_subvolumes_under(&tmp)?;
            }
            match dirs.last() {
                Some(parent) => snapshot(parent, &tmp)?,
                None => subvolume_create(&tmp)?,
            }
            // Whiteouts and opaque dirs are applied for real in the snapshot.
            written.push(Some(fsops::apply(image, k, &tmp, &opts)?));
            fs::rename(&tmp, &done).map_err(LayoutError::io("renaming", &done))?;
            dirs.push(done);
        }
        Ok(PreparedImage {
            layout: ENTRY.name,
            root: store.to_path_buf(),
            layer_dirs: dirs,
            depth: info.layers.len(),
            chain_ids: info.layers.iter().map(|l| l.chain_id.clone()).collect(),
            written,
        })
    }

    /// Docker's `docker create`: an `-init` snapshot of the image's top layer
    /// (Docker adds its init files there; our overlay rows have no init layer
    /// either, so it stays as the image left it), then the container's own
    /// snapshot of it.
    fn create_container(
        &self,
        image: &PreparedImage,
        root: &Path,
    ) -> Result<ContainerDirs, LayoutError> {
        fs::create_dir_all(root).map_err(LayoutError::io("creating", root))?;
        let init = root.join("init");
        let rw = root.join("rw");
        match image.layer_dirs.last() {
            Some(top) => {
                snapshot(top, &init)?;
                snapshot(&init, &rw)?;
            }
            None => {
                subvolume_create(&init)?;
                snapshot(&init, &rw)?;
            }
        }
        Ok(ContainerDirs {
            root: root.to_path_buf(),
            upper_work: None,
            merged: rw,
        })
    }

    fn mount_spec(
        &self,
        _image: &PreparedImage,
        _c: &ContainerDirs,
        _host: &MountHost,
    ) -> Result<MountSpec, LayoutError> {
        Ok(MountSpec::Nothing)
    }

    fn mount(&self, _image: &PreparedImage, c: &ContainerDirs) -> Result<Mounted, LayoutError> {
        // `Get` only returns the snapshot's dir: nothing to mount.
        Ok(Mounted::unmounted(c.merged.clone()))
    }

    /// Only the top snapshot shows the image (a lower snapshot still holds
    /// what later layers deleted).
    fn lower_file(&self, image: &PreparedImage, rel: &Path) -> Option<PathBuf> {
        image
            .layer_dirs
            .last()
            .map(|d| d.join(rel))
            .filter(|p| p.symlink_metadata().is_ok())
    }

    /// A container's file is its own inode (sharing blocks, not pages).
    fn upper_file(&self, c: &ContainerDirs, rel: &Path) -> Option<PathBuf> {
        Some(c.merged.join(rel))
    }

    fn data_file(&self, _image: &PreparedImage, c: &ContainerDirs, rel: &Path) -> Option<PathBuf> {
        Some(c.merged.join(rel))
    }

    fn verify_not_copied(
        &self,
        _image: &PreparedImage,
        c: &ContainerDirs,
        rel: &Path,
    ) -> Result<(), LayoutError> {
        let path = c.merged.join(rel);
        let size = fs::metadata(&path)
            .map_err(LayoutError::io("reading", &path))?
            .len();
        if size <= MAX_INLINE_BYTES {
            return Err(cow_error(
                &path,
                format!("{size} bytes may be stored inline, where btrfs never reports sharing; verify with files above {MAX_INLINE_BYTES} bytes"),
            ));
        }
        let ex = extents(&path).map_err(LayoutError::io("FIEMAP of", &path))?;
        if ex.is_empty() || ex.iter().any(|e| !e.shared) {
            return Err(cow_error(
                &path,
                format!(
                    "before the first write every extent must be shared with the image; found {}",
                    describe(&ex)
                ),
            ));
        }
        Ok(())
    }

    /// FIEMAP after the touch: a write leaves a private extent where it wrote
    /// and every other extent still shared (block-level copy-on-write, flat in
    /// the file's size); a chmod or a truncate copies nothing.
    fn verify_copy_up(
        &self,
        _image: &PreparedImage,
        c: &ContainerDirs,
        rel: &Path,
        check: &CopyUpCheck,
    ) -> Result<(), LayoutError> {
        let path = c.merged.join(rel);
        let size = fs::metadata(&path)
            .map_err(LayoutError::io("reading", &path))?
            .len();
        if size != check.size_after() {
            return Err(cow_error(
                &path,
                format!(
                    "after {:?} the file is {size} bytes, expected {}",
                    check.touch,
                    check.size_after()
                ),
            ));
        }
        let ex = extents(&path).map_err(LayoutError::io("FIEMAP of", &path))?;
        let private: u64 = ex.iter().filter(|e| !e.shared).map(|e| e.length).sum();
        let written_at = match check.touch {
            Touch::Write => Some(0),
            Touch::Append => Some(check.size_bytes),
            Touch::Truncate | Touch::Chmod => None,
        };
        let ok = match written_at {
            // Only the touched blocks are copied: private bytes stay far below the size.
            Some(at) => {
                ex.iter().any(|e| e.covers(at) && !e.shared)
                    && private <= (1 << 20).max(check.size_bytes / 8)
                    && ex.iter().any(|e| e.shared)
            }
            None => ex.iter().all(|e| e.shared),
        };
        if !ok {
            return Err(cow_error(
                &path,
                format!(
                    "after {:?} expected {}; FIEMAP shows {private} private bytes in {}",
                    check.touch,
                    match written_at {
                        Some(at) => format!("a private extent at {at} and the rest shared"),
                        None => "every extent still shared".into(),
                    },
                    describe(&ex)
                ),
            ));
        }
        Ok(())
    }

    fn remove_container(&self, c: &ContainerDirs) -> Result<(), LayoutError> {
        remove_subvolumes_under(&c.root)
    }

    fn remove_store(&self, store: &Path) -> Result<(), LayoutError> {
        remove_subvolumes_under(store)
    }

    /// Deleted subvolumes are cleaned in the background and their space is not
    /// free until then (up to a 30 s commit later). A commit that wakes the
    /// cleaner, then polling the count of queued deletions (kernel >= 6.8),
    /// takes milliseconds; older kernels get `btrfs subvolume sync`, which
    /// polls once a second.
    fn settle_removals(&self, dir: &Path) -> Result<(), LayoutError> {
        let f = File::open(dir).map_err(LayoutError::io("opening", dir))?;
        // SAFETY: BTRFS_IOC_SYNC takes no argument.
        let rc = unsafe { sys::ioctl_none(f.as_fd(), BTRFS_IOC_SYNC) };
        ioctl_result(rc, "syncing", dir)?;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        loop {
            let mut w = SubvolWait {
                subvolid: 0,
                mode: SUBVOL_SYNC_COUNT,
                count: 0,
            };
            // SAFETY: SUBVOL_SYNC_WAIT reads and writes a btrfs_ioctl_subvol_wait.
            let rc = unsafe { sys::ioctl_ptr(f.as_fd(), BTRFS_IOC_SUBVOL_SYNC_WAIT, &mut w) };
            if rc.is_err() {
                break;
            }
            if w.count == 0 {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(
                    LayoutError::io("waiting for deleted subvolumes under", dir)(
                        std::io::Error::other(format!("{} still queued after 120 s", w.count)),
                    ),
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let out = Command::new("btrfs")
            .args(["subvolume", "sync"])
            .arg(dir)
            .output()
            .map_err(LayoutError::io("running btrfs subvolume sync on", dir))?;
        if !out.status.success() {
            return Err(LayoutError::io("btrfs subvolume sync on", dir)(
                std::io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            ));
        }
        Ok(())
    }

    fn notes(&self) -> Vec<String> {
        vec![
            "btrfs: Docker's driver — base layer a subvolume, each layer a snapshot with deletions applied, each \
             container an -init snapshot and its own snapshot (no init files added); nothing is mounted, so there is \
             no mount time; the container's start-up cost is its two snapshots (each commits a transaction); a \
             first write copies only the blocks it touches (checked with FIEMAP: shared before, private after) and \
             allocates them at writeback, outside the timed write"
                .into(),
        ]
    }
}
