//! composefs (Podman/containers-storage `use_composefs`, ostree, bootc): per
//! image one EROFS *metadata* image of the flattened tree — names, modes,
//! owners, xattrs, and for each file a `trusted.overlay.redirect` to its content
//! in a content-addressed object store shared by every image. A container mounts
//! the metadata image as overlay's only lower, the object store as a data-only
//! lower (`datadir+`), with `metacopy=on,redirect_dir=on`, under its own
//! upper/work. Identical files in different images are one object: one copy on
//! disk and one in the page cache, even when their layers differ.
//!
//! Store: `<store>/objects/xx/<62 hex>` (named by the plain sha256 of the
//! content: composefs' no-verity form, `ExternalNoVerity`, since fs-verity
//! digests only pay off with `verity=require`) and
//! `<store>/images/<top chain id hex>/{image.cfs, mnt/}` (the 256 object dirs
//! are made with the store). Files up to 64 bytes
//! live inline in the metadata image, as composefs-rs keeps them. The image
//! format comes from the `composefs` crate (composefs-rs, the reference
//! implementation); import flattens the layers with the applier every layout
//! uses, then moves each file's content into the store by rename.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use composefs::fsverity::{FsVerityHashValue, Sha256HashValue};
use composefs::generic_tree::Stat;
use composefs::tree::{Directory, FileSystem, Inode, LeafContent, RegularFile};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use super::host::{self, Cite, Note, StackProbe};
use super::{
    fsops, overlay_caps, overlay_container_dirs, Capabilities, ContainerDirs, Feature, HostProfile,
    Layout, LayoutConfig, LayoutEntry, LayoutError, MountHost, MountSpec, Mounted, OverlaySpec,
    PreparedImage, Style, TableMounts, MAX_LOWER_LAYERS,
};
use crate::image::apply::WhiteoutStyle;
use crate::image::ImageSource;
use crate::isolate::{
    mount_erofs, mount_overlay_with_data, ErofsBacking, OverlayMount, SharedMount, SharedMounts,
};

/// Registry entry.
pub static ENTRY: LayoutEntry = LayoutEntry {
    name: "composefs",
    about:
        "composefs: one EROFS metadata image per image + a shared object store (data-only lower).",
    style: Style {
        rgb: (255, 127, 14),
        dashed: false,
        triangle: true,
    },
    // What images share is stored once (their common files, as objects); a
    // container stacks one lower, however many layers the image had.
    // A metadata image mount, then the overlay on it.
    caps: Capabilities {
        idmap_lowers: false,
        table_mounts: TableMounts::Two,
        ..overlay_caps(true, false)
    },
    create: |config| Box::new(Composefs::new(config.clone())),
    host: HostProfile {
        requires: &[
            Feature::RealRoot {
                why: "metacopy and redirect_dir need trusted.* xattrs, which overlay refuses with userxattr",
            },
            Feature::Erofs,
            Feature::DataOnlyLowers,
        ],
        probe: Some(StackProbe {
            name: "composefs mount",
            root_only: true,
            run: |at| host::probe_as_root(&ENTRY, at),
        }),
        notes: &[
            Note {
                text: "composefs mounts one EROFS image per image over a content-addressed object store as a data-only \
                       lower: identical files share disk and page cache across images",
                cite: Cite::Feature(Feature::DataOnlyLowers),
            },
            Note {
                text: "it needs EROFS",
                cite: Cite::Feature(Feature::Erofs),
            },
        ],
        ..HostProfile::rootful()
    },
};

/// Files up to this size are kept inline in the metadata image.
const INLINE_MAX_BYTES: u64 = composefs::INLINE_CONTENT_MAX_V0 as u64;

type ObjectId = Sha256HashValue;
type Tree = FileSystem<ObjectId>;

/// Per metadata image: each external file's object, by path in the image.
type ObjectIndex = HashMap<PathBuf, PathBuf>;

/// The composefs layout.
#[derive(Debug, Clone)]
pub struct Composefs {
    config: LayoutConfig,
    /// Metadata-image mounts in use, shared by the containers of an image.
    mounts: SharedMounts,
    /// Where each image's files live in the object store (by metadata image);
    /// filled at import, or read back from the image.
    index: Arc<Mutex<HashMap<PathBuf, Arc<ObjectIndex>>>>,
}

/// The paths of one image in the store.
struct ImagePaths {
    dir: PathBuf,
    cfs: PathBuf,
    mnt: PathBuf,
    flat: PathBuf,
}

impl ImagePaths {
    fn at(store: &Path, key: &str) -> ImagePaths {
        let dir = store.join("images").join(key);
        ImagePaths {
            cfs: dir.join("image.cfs"),
            mnt: dir.join("mnt"),
            flat: dir.join("flat.tmp"),
            dir,
        }
    }
}

/// The metadata image of a prepared image (mounted at `layer_dirs[0]`).
fn cfs_of(image: &PreparedImage) -> Option<PathBuf> {
    let mnt = image.layer_dirs.first()?;
    Some(mnt.parent()?.join("image.cfs"))
}

fn objects_of(image: &PreparedImage) -> PathBuf {
    image.root.join("objects")
}

fn stat_of(path: &Path, m: &fs::Metadata) -> Result<Stat, LayoutError> {
    let mut xattrs = std::collections::BTreeMap::new();
    for name in xattr::list(path).map_err(LayoutError::io("listing xattrs of", path))? {
        if let Some(v) =
            xattr::get(path, &name).map_err(LayoutError::io("reading xattrs of", path))?
        {
            xattrs.insert(Box::from(name.as_os_str()), v.into_boxed_slice());
        }
    }
    Ok(Stat {
        st_mode: m.mode() & 0o7777,
        st_uid: m.uid(),
        st_gid: m.gid(),
        st_mtim_sec: m.mtime(),
        st_mtim_nsec: u32::try_from(m.mtime_nsec()).unwrap_or(0),
        xattrs,
    })
}

/// A regular file whose content moves to the object store.
struct External {
    leaf: composefs::generic_tree::LeafId,
    src: PathBuf,
    rel: PathBuf,
    size: u64,
}

/// Builds the composefs tree of the flattened image at `flat`.
struct Builder {
    fs: Tree,
    /// Hard links: a later path of an inode is the same leaf.
    leaves_by_inode: HashMap<(u64, u64), composefs::generic_tree::LeafId>,
    external: Vec<External>,
}

impl Builder {
    /// The directory at `rel` under `root` and everything below it, built
    /// iteratively in the order a recursion would take (sorted names, depth
    /// first, so leaves are numbered as before): an image may nest
    /// directories as deep as a path allows. Per level the walk keeps the
    /// directory being filled and its names; the path is one buffer.
    fn dir(&mut self, root: &Path, rel: &Path) -> Result<Directory<ObjectId>, LayoutError> {
        struct Level {
            dir: Directory<ObjectId>,
            name: std::ffi::OsString,
            names: Vec<std::ffi::OsString>,
            next: usize,
        }
        let open =
            |rel: &Path| -> Result<(Directory<ObjectId>, Vec<std::ffi::OsString>), LayoutError> {
                let path = root.join(rel);
                let m = fs::symlink_metadata(&path).map_err(LayoutError::io("reading", &path))?;
                let dir = Directory::new(stat_of(&path, &m)?);
                let mut names: Vec<_> = fs::read_dir(&path)
                    .map_err(LayoutError::io("reading dir", &path))?
                    .map(|e| e.map(|e| e.file_name()))
                    .collect::<Result<_, _>>()
                    .map_err(LayoutError::io("reading dir", &path))?;
                names.sort();
                Ok((dir, names))
            };
        let mut rel = rel.to_path_buf();
        let (dir, names) = open(&rel)?;
        let mut stack = vec![Level {
            dir,
            name: std::ffi::OsString::new(),
            names,
            next: 0,
        }];
        loop {
            let Some(top) = stack.last_mut() else {
                // The root level returns below; never empty here.
                return Err(LayoutError::io("reading dir", root)(std::io::Error::from(
                    std::io::ErrorKind::NotFound,
                )));
            };
            if let Some(name) = top.names.get(top.next).cloned() {
                top.next += 1;
                let child_rel = rel.join(&name);
                let child = root.join(&child_rel);
                let m = fs::symlink_metadata(&child).map_err(LayoutError::io("reading", &child))?;
                if m.is_dir() {
                    let (dir, names) = open(&child_rel)?;
                    rel.push(&name);
                    stack.push(Level {
                        dir,
                        name,
                        names,
                        next: 0,
                    });
                } else {
                    let leaf = self.leaf(&child, &child_rel, &m)?;
                    top.dir.insert(&name, Inode::leaf(leaf));
                }
                continue;
            }
            let Some(done) = stack.pop() else { continue };
            match stack.last_mut() {
                None => return Ok(done.dir),
                Some(parent) => {
                    rel.pop();
                    parent
                        .dir
                        .insert(&done.name, Inode::Directory(Box::new(done.dir)));
                }
            }
        }
    }

    fn leaf(
        &mut self,
        path: &Path,
        rel: &Path,
        m: &fs::Metadata,
    ) -> Result<composefs::generic_tree::LeafId, LayoutError> {
        if m.nlink() > 1 {
            if let Some(id) = self.leaves_by_inode.get(&(m.dev(), m.ino())) {
                return Ok(*id);
            }
        }
        let ft = m.file_type();
        let stat = stat_of(path, m)?;
        let content = if ft.is_file() {
            if m.len() <= INLINE_MAX_BYTES {
                let data = fs::read(path).map_err(LayoutError::io("reading", path))?;
                LeafContent::Regular(RegularFile::Inline(data.into_boxed_slice()))
            } else {
                // A placeholder until the content is hashed (in parallel, later).
                LeafContent::Regular(RegularFile::Sparse(m.len()))
            }
        } else if ft.is_symlink() {
            let target = fs::read_link(path).map_err(LayoutError::io("reading link", path))?;
            LeafContent::Symlink(Box::from(target.as_os_str()))
        } else if ft.is_char_device() {
            LeafContent::CharacterDevice(m.rdev())
        } else if ft.is_block_device() {
            LeafContent::BlockDevice(m.rdev())
        } else if ft.is_fifo() {
            LeafContent::Fifo
        } else {
            LeafContent::Socket
        };
        let id = self.fs.push_leaf(stat, content);
        if ft.is_file() && m.len() > INLINE_MAX_BYTES {
            self.external.push(External {
                leaf: id,
                src: path.to_path_buf(),
                rel: rel.to_path_buf(),
                size: m.len(),
            });
        }
        if m.nlink() > 1 {
            self.leaves_by_inode.insert((m.dev(), m.ino()), id);
        }
        Ok(id)
    }
}

/// The sha256 of `path`'s content.
fn sha256_of(path: &Path) -> Result<ObjectId, LayoutError> {
    let mut f = fs::File::open(path).map_err(LayoutError::io("opening", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(LayoutError::io("reading", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    ObjectId::from_hex(format!("{:x}", h.finalize())).map_err(|e| LayoutError::Build {
        what: "the object id of",
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Makes the store's 256 object dirs (`00`…`ff`) once: a fixed cost of the
/// store, so that what an image adds is only its own objects (made lazily, the
/// first images would pay for dirs every later image uses).
fn make_buckets(objects: &Path) -> Result<(), LayoutError> {
    if objects.join("ff").is_dir() {
        return Ok(());
    }
    for b in 0..=255u8 {
        let d = objects.join(format!("{b:02x}"));
        fs::create_dir_all(&d).map_err(LayoutError::io("creating", &d))?;
    }
    Ok(())
}

/// Moves `src` into the object store as `id` (a rename: the store is on the
/// same filesystem), unless the store has that content already.
fn store_object(objects: &Path, id: &ObjectId, src: &Path) -> Result<PathBuf, LayoutError> {
    let dst = objects.join(id.to_object_pathname());
    if dst.symlink_metadata().is_ok() {
        return Ok(dst);
    }
    // Content only: an object's owner and mode are never seen (metacopy).
    fs::set_permissions(src, fs::Permissions::from_mode(0o644))
        .map_err(LayoutError::io("chmod", src))?;
    std::os::unix::fs::lchown(src, Some(0), Some(0)).map_err(LayoutError::io("chown", src))?;
    fs::rename(src, &dst).map_err(LayoutError::io("moving into the object store", src))?;
    Ok(dst)
}

/// Every external file's object in the metadata image `cfs`, read back from it.
fn index_from_image(cfs: &Path, objects: &Path) -> Result<ObjectIndex, LayoutError> {
    let bytes = fs::read(cfs).map_err(LayoutError::io("reading", cfs))?;
    let tree: Tree =
        composefs::erofs::reader::erofs_to_filesystem(&bytes).map_err(|e| LayoutError::Build {
            what: "the file index from",
            path: cfs.to_path_buf(),
            detail: format!("{e:#}"),
        })?;
    let mut out = ObjectIndex::new();
    // Iterative, one path buffer: the tree may be as deep as a path allows.
    let mut rel = PathBuf::new();
    let mut stack = vec![tree.root.entries()];
    while let Some(entries) = stack.last_mut() {
        match entries.next() {
            Some((name, Inode::Directory(d))) => {
                rel.push(name);
                stack.push(d.entries());
            }
            Some((name, Inode::Leaf(id, _))) => {
                if let LeafContent::Regular(
                    RegularFile::External(o, _) | RegularFile::ExternalNoVerity(o, _),
                ) = &tree.leaf(*id).content
                {
                    out.insert(rel.join(name), objects.join(o.to_object_pathname()));
                }
            }
            None => {
                stack.pop();
                rel.pop();
            }
        }
    }
    Ok(out)
}

impl Composefs {
    /// With these mount settings.
    pub fn new(config: LayoutConfig) -> Self {
        Composefs {
            config,
            mounts: SharedMounts::new(),
            index: Arc::default(),
        }
    }

    /// The object index of `image`'s metadata image (read from it if this
    /// process did not import it).
    fn index_of(&self, image: &PreparedImage) -> Option<Arc<ObjectIndex>> {
        let cfs = cfs_of(image)?;
        let mut map = self.index.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = map.get(&cfs) {
            return Some(i.clone());
        }
        let i = Arc::new(index_from_image(&cfs, &objects_of(image)).ok()?);
        map.insert(cfs, i.clone());
        Some(i)
    }

    /// The overlay options composefs always mounts with, then the run's own.
    fn options(&self) -> Vec<(String, Option<String>)> {
        let mut opts = vec![
            ("metacopy".to_string(), Some("on".to_string())),
            ("redirect_dir".to_string(), Some("on".to_string())),
        ];
        for o in self.config.mount_options() {
            if !opts.iter().any(|(k, _)| *k == o.0) {
                opts.push(o);
            }
        }
        opts
    }

    fn hold(
        &self,
        cfs: &Path,
        mnt: &Path,
    ) -> Result<(SharedMount, Duration, Option<ErofsBacking>), LayoutError> {
        let mut made = None;
        let (hold, _) = self.mounts.acquire(mnt, || {
            let m = mount_erofs(cfs, mnt)?;
            made = Some((m.elapsed, m.backing));
            Ok(m.guard)
        })?;
        Ok(match made {
            Some((t, b)) => (hold, t, Some(b)),
            None => (hold, Duration::ZERO, None),
        })
    }
}

impl Layout for Composefs {
    fn entry(&self) -> &'static LayoutEntry {
        &ENTRY
    }

    fn overlay_xattr(&self, name: &str) -> Option<String> {
        Some(self.config.overlay_xattr(name))
    }

    fn with_options(&self, options: &[(String, Option<String>)]) -> Option<Box<dyn Layout>> {
        Some(Box::new(Composefs {
            config: self.config.with_options(options.to_vec()),
            mounts: self.mounts.clone(),
            index: self.index.clone(),
        }))
    }

    fn host_notes(&self, scratch: &Path) -> Vec<String> {
        vec![verity_note(scratch)]
    }

    fn import(&self, store: &Path, image: &dyn ImageSource) -> Result<PreparedImage, LayoutError> {
        let info = image.info();
        let depth = info.layers.len();
        if depth > MAX_LOWER_LAYERS {
            return Err(LayoutError::TooDeep {
                depth,
                limit: MAX_LOWER_LAYERS,
            });
        }
        // One metadata image per image, named by its top layer's chain id (the
        // same image imported twice is found again).
        let key = info
            .layers
            .last()
            .map_or("empty", |l| fsops::digest_hex(&l.chain_id));
        let p = ImagePaths::at(store, key);
        let objects = store.join("objects");
        let mut written = vec![None; depth];
        if !p.cfs.is_file() {
            if p.dir.exists() {
                fs::remove_dir_all(&p.dir).map_err(LayoutError::io("removing", &p.dir))?;
            }
            for d in [&p.flat, &p.mnt] {
                fs::create_dir_all(d).map_err(LayoutError::io("creating", d))?;
            }
            make_buckets(&objects)?;
            // The merged tree, as the plain layout makes it.
            let opts = fsops::apply_options(&self.config, WhiteoutStyle::InPlace);
            for (k, w) in written.iter_mut().enumerate() {
                *w = Some(fsops::apply(image, k, &p.flat, &opts)?);
            }
            let root_meta =
                fs::symlink_metadata(&p.flat).map_err(LayoutError::io("reading", &p.flat))?;
            let mut b = Builder {
                fs: FileSystem::new(stat_of(&p.flat, &root_meta)?),
                leaves_by_inode: HashMap::new(),
                external: Vec::new(),
            };
            let root = b.dir(&p.flat, Path::new(""))?;
            b.fs.root = root;
            // Hash every file on every core, then move it into the store.
            let stored: Vec<(usize, ObjectId, PathBuf)> = b
                .external
                .par_iter()
                .enumerate()
                .map(|(i, e)| {
                    let id = sha256_of(&e.src)?;
                    let path = store_object(&objects, &id, &e.src)?;
                    Ok((i, id, path))
                })
                .collect::<Result<_, LayoutError>>()?;
            let mut index = ObjectIndex::new();
            for (i, id, path) in stored {
                let e = &b.external[i];
                b.fs.leaf_mut(e.leaf).content =
                    LeafContent::Regular(RegularFile::ExternalNoVerity(id, e.size));
                index.insert(e.rel.clone(), path);
            }
            let validated =
                composefs::erofs::writer::ValidatedFileSystem::new(b.fs).map_err(|e| {
                    LayoutError::Build {
                        what: "the composefs image",
                        path: p.cfs.clone(),
                        detail: format!("{e:#}"),
                    }
                })?;
            let bytes = composefs::erofs::writer::mkfs_erofs(&validated);
            let tmp = p.dir.join("image.cfs.tmp");
            fs::write(&tmp, &bytes).map_err(LayoutError::io("writing", &tmp))?;
            fs::rename(&tmp, &p.cfs).map_err(LayoutError::io("renaming", &tmp))?;
            fs::remove_dir_all(&p.flat).map_err(LayoutError::io("removing", &p.flat))?;
            self.index
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(p.cfs.clone(), Arc::new(index));
        }
        Ok(PreparedImage {
            layout: ENTRY.name,
            root: store.to_path_buf(),
            layer_dirs: vec![p.mnt],
            depth,
            chain_ids: info.layers.iter().map(|l| l.chain_id.clone()).collect(),
            written,
        })
    }

    fn create_container(
        &self,
        _image: &PreparedImage,
        root: &Path,
    ) -> Result<ContainerDirs, LayoutError> {
        overlay_container_dirs(root)
    }

    fn mount_spec(
        &self,
        image: &PreparedImage,
        c: &ContainerDirs,
        _host: &MountHost,
    ) -> Result<MountSpec, LayoutError> {
        let (mnt, cfs) = match (image.layer_dirs.first(), cfs_of(image)) {
            (Some(m), Some(c)) => (m.clone(), c),
            _ => {
                return Err(LayoutError::Build {
                    what: "a container of",
                    path: image.root.clone(),
                    detail: "the prepared image has no metadata image".into(),
                })
            }
        };
        Ok(MountSpec::Overlay(OverlaySpec {
            images: vec![(cfs, mnt.clone())],
            mount: OverlayMount {
                lowers: vec![mnt],
                lowers_base: None,
                upper_work: c.upper_work.clone(),
                options: self.options(),
                target: c.merged.clone(),
            },
            data: vec![objects_of(image)],
            api: self.config.mount_api,
            in_user_namespace: false,
        }))
    }

    fn mount(&self, image: &PreparedImage, c: &ContainerDirs) -> Result<Mounted, LayoutError> {
        let spec = self.mount_spec(image, c, &MountHost::read())?;
        let (o, (cfs, mnt)) = match spec.overlay().map(|o| (o, o.images.first())) {
            Some((o, Some(first))) => (o, first),
            _ => return Err(super::spec::not_an_overlay(ENTRY.name)),
        };
        let (hold, meta_time, backing) = self.hold(cfs, mnt)?;
        let m = mount_overlay_with_data(&o.mount, &o.data, o.api)?;
        let note = match backing {
            Some(b) => format!(" (metadata image: {})", b.name()),
            None => String::new(),
        };
        Ok(Mounted {
            merged: c.merged.clone(),
            // The overlay is undone first, then the metadata image under it.
            guards: vec![Box::new(m.guard), Box::new(hold)],
            mount_time: Some(meta_time + m.elapsed),
            options_in_force: Some(format!("{}{note}", m.options_in_force)),
        })
    }

    /// An external file's data is its object in the store; an inline file, a
    /// symlink or a device lives in the metadata image (seen while mounted).
    fn lower_file(&self, image: &PreparedImage, rel: &Path) -> Option<PathBuf> {
        if let Some(obj) = self.index_of(image).and_then(|i| i.get(rel).cloned()) {
            return Some(obj);
        }
        let p = image.layer_dirs.first()?.join(rel);
        p.symlink_metadata().is_ok().then_some(p)
    }
}

/// Whether composefs' fs-verity variant (`verity=require`) can run on this
/// filesystem: fs-verity is enabled on a scratch file (made, then removed).
fn verity_note(scratch: &Path) -> String {
    let probe = scratch.join(".verity-probe");
    let tried = fs::write(&probe, vec![0u8; 8192])
        .and_then(|_| fs::File::open(&probe))
        .map_err(|e| e.to_string())
        .and_then(|f| {
            composefs::fsverity::enable_verity_raw::<ObjectId>(&f).map_err(|e| e.to_string())
        });
    let _ = fs::remove_file(&probe);
    match tried {
        Ok(()) => "fs-verity works on this filesystem, but the verity variant (verity=require, \
                   objects named by their fs-verity digest) is not measured; objects are named by \
                   sha256 and mounted without verity="
            .to_string(),
        Err(e) => {
            let kernel = if Path::new("/sys/fs/ext4/features/verity").exists() {
                "ext4 lists fs-verity support, the scratch filesystem was made without it"
            } else {
                "this kernel lists no fs-verity support (/sys/fs/ext4/features/verity is absent)"
            };
            format!(
                "the fs-verity variant (verity=require) is not available on this kernel: enabling \
                 fs-verity on a scratch file fails ({e}; {kernel}), and overlay would then fail every \
                 read of a metacopy file with EIO; objects are named by plain sha256 (composefs' \
                 no-verity form) and mounted without verity="
            )
        }
    }
}
