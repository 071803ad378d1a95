//! Every layout must show the same merged view of the same image, equal to the
//! image model: same paths, types, modes, sizes, content, link targets — each
//! on a backing it runs on (btrfs on a btrfs scratch, the rest on ext4) — and,
//! for a real image, equal to what `umoci` unpacks.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use libtest_mimic::{Failed, Trial};
use sha2::{Digest, Sha256};

use overlaybench::image::SyntheticImage;
use overlaybench::image::{
    content, generate, Change, GeneratorParams, ImageShape, ImageSpec, NodeKind, SizeRange, Tree,
};
use overlaybench::isolate::{BackingKind, MountApi, Scratch};
use overlaybench::layout::{self, Layout};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        size: u64,
        sha256: String,
    },
    Symlink {
        target: PathBuf,
    },
    Other(String),
}

fn sha(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn expected(tree: &Tree) -> BTreeMap<PathBuf, Entry> {
    tree.nodes
        .iter()
        .map(|(p, n)| {
            let e = match &n.kind {
                NodeKind::Dir => Entry::Dir { mode: n.mode },
                NodeKind::File { size, seed } => Entry::File {
                    mode: n.mode,
                    size: *size,
                    sha256: sha(&content::bytes(*seed, *size)),
                },
                NodeKind::Symlink { target } => Entry::Symlink {
                    target: target.clone(),
                },
            };
            (p.clone(), e)
        })
        .collect()
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Entry>) -> std::io::Result<()> {
    for e in fs::read_dir(root.join(rel))
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", root.join(rel).display())))?
    {
        let e = e?;
        let r = rel.join(e.file_name());
        let p = root.join(&r);
        let m = fs::symlink_metadata(&p)?;
        let mode = m.permissions().mode() & 0o7777;
        let ft = m.file_type();
        let entry = if ft.is_dir() {
            walk(root, &r, out)?;
            Entry::Dir { mode }
        } else if ft.is_symlink() {
            Entry::Symlink {
                target: fs::read_link(&p)?,
            }
        } else if ft.is_file() {
            Entry::File {
                mode,
                size: m.len(),
                sha256: sha(&fs::read(&p)?),
            }
        } else {
            Entry::Other(format!("{ft:?} rdev {}", m.rdev()))
        };
        out.insert(r, entry);
    }
    Ok(())
}

fn image(seed: u64) -> ImageSpec {
    generate(
        &ImageShape::try_from(GeneratorParams {
            seed,
            layers: 6,
            files_per_layer: 80,
            dirs_per_layer: 12,
            sizes: SizeRange {
                min_bytes: 0,
                max_bytes: 200_000,
            },
            modify_pct: 15,
            delete_pct: 10,
            opaque_pct: 25,
            symlink_pct: 5,
        })
        .expect("valid shape"),
    )
}

fn same_view_in_all_layouts(seed: u64) -> Result<(), Failed> {
    let img = image(seed);
    let changes = || img.layers.iter().flat_map(|l| &l.changes);
    if !changes().any(|c| matches!(c, Change::Delete { .. }))
        || !changes().any(|c| matches!(c, Change::Opaque { .. }))
    {
        return Err(format!("seed {seed}: the image should have deletions and opaque dirs").into());
    }
    let want = expected(&img.flatten());
    let scratches = Scratches::new();
    for kind in layout::names() {
        // Only the layouts this kernel runs (`run` refuses the others, exit 3).
        if layout::entry(kind).is_some_and(|e| {
            e.host_support(crate::config(MountApi::New).privilege)
                .is_err()
        }) {
            continue;
        }
        for api in [MountApi::New, MountApi::Classic] {
            let l = layout::make(kind, &crate::config(api));
            let scratch = scratches.for_layout(l.as_ref())?;
            let dir = scratch.path().join(format!("{kind}-{api:?}"));
            let prepared =
                l.prepare(&SyntheticImage::new("test", img.clone()), &dir.join("img"))?;
            let c = l.create_container(&prepared, &dir.join("c"))?;
            let m = l.mount(&prepared, &c)?;
            let mut got = BTreeMap::new();
            walk(&m.merged, Path::new(""), &mut got)
                .map_err(|e| format!("{kind}: walking: {e}"))?;
            m.unmount()?;
            l.remove_container(&c)?;
            if got != want {
                let missing: Vec<_> = want
                    .keys()
                    .filter(|k| !got.contains_key(*k))
                    .take(5)
                    .collect();
                let extra: Vec<_> = got
                    .keys()
                    .filter(|k| !want.contains_key(*k))
                    .take(5)
                    .collect();
                let differ: Vec<_> = want
                    .iter()
                    .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
                    .take(5)
                    .map(|(k, v)| format!("{k:?}: want {v:?} got {:?}", got[k]))
                    .collect();
                return Err(format!(
                "seed {seed}, {kind} ({api:?} mount API): merged view differs from the image: missing {missing:?}, \
                 extra {extra:?}, differ {differ:?}"
            )
            .into());
            }
        }
    }
    Ok(())
}

/// An ext4 and a btrfs scratch filesystem, made when first needed: each layout
/// runs on the first one it can.
pub struct Scratches {
    made: std::cell::RefCell<Vec<(tempfile::TempDir, std::rc::Rc<Scratch>)>>,
}

impl Scratches {
    pub fn new() -> Scratches {
        Scratches {
            made: std::cell::RefCell::new(Vec::new()),
        }
    }

    /// A scratch `l` runs on, or an error with the reason none does.
    pub fn for_layout(&self, l: &dyn Layout) -> Result<std::rc::Rc<Scratch>, Failed> {
        let mut reasons = Vec::new();
        for kind in [BackingKind::Ext4, BackingKind::Btrfs] {
            let existing = self
                .made
                .borrow()
                .iter()
                .find(|(_, s)| *s.kind() == kind)
                .map(|(_, s)| s.clone());
            let s = match existing {
                Some(s) => s,
                None => {
                    let (tmp, s) = crate::scratch(kind.clone());
                    let s = std::rc::Rc::new(s);
                    self.made.borrow_mut().push((tmp, s.clone()));
                    s
                }
            };
            match l.unavailable(s.info()) {
                None => return Ok(s),
                Some(why) => reasons.push(why),
            }
        }
        Err(format!(
            "{} runs on no backing here: {}",
            l.name(),
            reasons.join("; ")
        )
        .into())
    }
}

impl Drop for Scratches {
    fn drop(&mut self) {
        // Scratch filesystems first, then their temp dirs.
        for (tmp, s) in self.made.borrow_mut().drain(..) {
            drop(s);
            drop(tmp);
        }
    }
}

/// Deleted paths stay invisible and overlay2 stores them as char 0/0 whiteouts;
/// opaque dirs carry the xattr.
fn overlay2_diff_markers() -> Result<(), Failed> {
    let img = image(11);
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let l = layout::make("overlay2", &crate::config(MountApi::New));
    let prepared = l.prepare(
        &SyntheticImage::new("test", img.clone()),
        &scratch.path().join("o2"),
    )?;
    let (mut whiteouts, mut opaques) = (0, 0);
    for (i, layer) in img.layers.iter().enumerate() {
        for c in &layer.changes {
            match c {
                // A marker superseded by deleting or making opaque an ancestor in the
                // same layer leaves nothing of its own.
                Change::Delete { path } | Change::Opaque { path } if superseded(layer, path) => {}
                Change::Delete { path } => {
                    let full = prepared.layer_dirs[i].join(path);
                    let m = fs::symlink_metadata(&full)
                        .map_err(|e| format!("{}: {e}", full.display()))?;
                    if !(m.file_type().is_char_device() && m.rdev() == 0) {
                        return Err(format!("{path:?} in layer {i} is not a 0/0 whiteout").into());
                    }
                    whiteouts += 1;
                }
                Change::Opaque { path } => {
                    let v =
                        xattr::get(prepared.layer_dirs[i].join(path), "trusted.overlay.opaque")?;
                    if v.as_deref() != Some(b"y".as_slice()) {
                        return Err(format!(
                            "{path:?} in layer {i} lacks trusted.overlay.opaque=y"
                        )
                        .into());
                    }
                    opaques += 1;
                }
                _ => {}
            }
        }
    }
    if whiteouts == 0 || opaques == 0 {
        return Err("no whiteouts or opaque dirs were checked".into());
    }
    Ok(())
}

fn superseded(layer: &overlaybench::image::LayerSpec, path: &Path) -> bool {
    layer.changes.iter().any(|o| {
        matches!(o, Change::Delete { path: a } | Change::Opaque { path: a } if a != path && path.starts_with(a))
    })
}

/// Legacy overlay: an unchanged file is one inode shared by every layer root.
fn legacy_shares_unchanged_files() -> Result<(), Failed> {
    let img = image(5);
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let l = layout::make("overlay", &crate::config(MountApi::New));
    let prepared = l.prepare(
        &SyntheticImage::new("test", img.clone()),
        &scratch.path().join("legacy"),
    )?;
    let top = img.depth() - 1;
    let mut checked = 0;
    for (path, node) in &img.flatten().nodes {
        if let NodeKind::File { .. } = node.kind {
            let inode =
                |k: usize| fs::symlink_metadata(prepared.layer_dirs[k].join(path)).map(|m| m.ino());
            let first = inode(node.layer)?;
            for k in node.layer..=top {
                if inode(k)? != first {
                    return Err(format!(
                        "{path:?} (written by layer {}) has another inode in root {k}",
                        node.layer
                    )
                    .into());
                }
            }
            checked += usize::from(node.layer < top);
        }
    }
    // And directories are re-created: a new inode per root.
    let d0 = fs::metadata(&prepared.layer_dirs[0])?.ino();
    let d1 = fs::metadata(&prepared.layer_dirs[1])?.ino();
    if checked == 0 || d0 == d1 {
        return Err(format!("checked {checked} shared files; root dir inodes {d0} {d1}").into());
    }
    Ok(())
}

pub fn tests() -> Vec<Trial> {
    let mut t: Vec<Trial> = [1u64, 2, 3]
        .into_iter()
        .map(|seed| {
            Trial::test(
                format!("differential::same_view_in_all_layouts_seed_{seed}"),
                move || same_view_in_all_layouts(seed),
            )
        })
        .collect();
    t.push(trial!(overlay2_diff_markers));
    t.push(trial!(legacy_shares_unchanged_files));
    t
}
