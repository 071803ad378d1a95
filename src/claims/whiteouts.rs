//! Claim 6: deleting a lower file writes a whiteout, deleting a lower directory
//! makes an opaque directory, and the lower is never changed. Checked in the
//! container's upper dir after `unlink`, `rmdir` of a whole tree, and a tree
//! removed then made again; the lower layers are compared before and after.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::rig::{self, Container};
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::report::ClaimVerdict;

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 6,
    slug: "whiteouts",
    statement: "Deleting a lower file writes a whiteout; deleting a lower directory makes an opaque directory; \
                the lower is never changed.",
    check,
    compares: None,
};

/// What a deletion left in the upper dir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// A character device 0/0.
    Whiteout,
    /// A directory carrying the opaque xattr.
    OpaqueDir,
    /// Anything else (or nothing).
    Other,
}

impl Mark {
    fn word(self) -> &'static str {
        match self {
            Mark::Whiteout => "a whiteout (char device 0/0)",
            Mark::OpaqueDir => "an opaque directory (overlay.opaque=y)",
            Mark::Other => "neither a whiteout nor an opaque directory",
        }
    }
}

/// What was found, for the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// After `unlink` of a lower file.
    pub file: Mark,
    /// After removing a lower directory tree.
    pub dir: Mark,
    /// After removing a lower directory tree and making the directory again.
    pub recreated: Mark,
    /// The lower layers are byte for byte and inode for inode as before.
    pub lower_unchanged: bool,
}

/// Confirmed only when all three parts hold as stated.
pub fn verdict_for(o: &Observed) -> ClaimVerdict {
    if o.file == Mark::Whiteout && o.dir == Mark::OpaqueDir && o.lower_unchanged {
        ClaimVerdict::Confirmed
    } else {
        ClaimVerdict::Refuted
    }
}

fn mark(path: &Path, opaque_xattr: &str) -> Result<Mark, ClaimError> {
    let m = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Mark::Other),
        Err(e) => return Err(ClaimError::io("stat", path)(e)),
    };
    if m.file_type().is_char_device() && m.rdev() == 0 {
        return Ok(Mark::Whiteout);
    }
    if m.is_dir() {
        let v =
            xattr::get(path, opaque_xattr).map_err(ClaimError::io("reading xattrs of", path))?;
        if v.as_deref() == Some(b"y") {
            return Ok(Mark::OpaqueDir);
        }
    }
    Ok(Mark::Other)
}

/// Every entry under `root`: inode, size, mtime and (files) content.
type Snapshot = BTreeMap<PathBuf, (u64, u64, i64, i64, Vec<u8>)>;

fn snapshot(root: &Path, out: &mut Snapshot) -> Result<(), ClaimError> {
    for e in fs::read_dir(root).map_err(ClaimError::io("reading dir", root))? {
        let e = e.map_err(ClaimError::io("reading dir", root))?;
        let p = e.path();
        let m = fs::symlink_metadata(&p).map_err(ClaimError::io("stat", &p))?;
        let data = if m.is_file() {
            fs::read(&p).map_err(ClaimError::io("reading", &p))?
        } else {
            Vec::new()
        };
        out.insert(
            p.clone(),
            (m.ino(), m.len(), m.mtime(), m.mtime_nsec(), data),
        );
        if m.is_dir() {
            snapshot(&p, out)?;
        }
    }
    Ok(())
}

fn check(ctx: &ClaimContext<'_>) -> Result<Finding, ClaimError> {
    let layout = match rig::overlay_layout(ctx) {
        Ok(l) => l,
        Err(f) => return Ok(f),
    };
    let Some(opaque) = layout.overlay_xattr("opaque") else {
        return Err(ClaimError::Unexpected(format!(
            "layout {} names no overlay xattrs",
            layout.name()
        )));
    };
    let spec = rig::image(vec![vec![
        rig::file("gone", 4096, 1),
        rig::dir("tree"),
        rig::dir("tree/sub"),
        rig::file("tree/a", 4096, 2),
        rig::file("tree/sub/b", 4096, 3),
        rig::dir("again"),
        rig::file("again/x", 4096, 4),
    ]]);
    let img = layout.prepare_spec(&spec, &ctx.dir.join("img"))?;
    let mut before = Snapshot::new();
    for d in &img.layer_dirs {
        snapshot(d, &mut before)?;
    }
    let c = Container::new(layout, &img, &ctx.dir.join("c"))?;
    let gone = c.path("gone");
    fs::remove_file(&gone).map_err(ClaimError::io("removing", &gone))?;
    for rel in ["tree", "again"] {
        let p = c.path(rel);
        fs::remove_dir_all(&p).map_err(ClaimError::io("removing", &p))?;
    }
    let again = c.path("again");
    fs::create_dir(&again).map_err(ClaimError::io("creating", &again))?;
    let hidden = ["gone", "tree", "tree/a", "again/x"]
        .iter()
        .all(|r| fs::symlink_metadata(c.path(r)).is_err());
    let upper = c.upper()?.to_path_buf();
    let o_file = mark(&upper.join("gone"), &opaque)?;
    let o_dir = mark(&upper.join("tree"), &opaque)?;
    let o_again = mark(&upper.join("again"), &opaque)?;
    c.unmount()?;
    let mut after = Snapshot::new();
    for d in &img.layer_dirs {
        snapshot(d, &mut after)?;
    }
    let o = Observed {
        file: o_file,
        dir: o_dir,
        recreated: o_again,
        lower_unchanged: before == after,
    };
    let obs = vec![
        format!(
            "deleting a lower file left {} in the upper dir",
            o.file.word()
        ),
        format!("deleting a lower directory tree left {}", o.dir.word()),
        format!(
            "deleting a lower directory tree and making the directory again left {}",
            o.recreated.word()
        ),
        format!(
            "the deleted names are {} in the container",
            if hidden { "gone" } else { "STILL VISIBLE" }
        ),
        format!(
            "the lower layers ({} entries: inode, size, mtime, content) are {}",
            before.len(),
            if o.lower_unchanged {
                "unchanged"
            } else {
                "CHANGED"
            }
        ),
    ];
    let figure = if o.file == Mark::Whiteout
        && o.dir == Mark::Whiteout
        && o.recreated == Mark::OpaqueDir
    {
        format!(
            "a deleted file or directory becomes a whiteout; an opaque directory appears only when the directory is \
             made again; the lower is {}",
            if o.lower_unchanged { "unchanged" } else { "CHANGED" }
        )
    } else {
        format!(
            "file → {}; directory → {}; lower {}",
            o.file.word(),
            o.dir.word(),
            if o.lower_unchanged {
                "unchanged"
            } else {
                "CHANGED"
            }
        )
    };
    Ok(Finding::new(verdict_for(&o), figure).with_observations(obs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_whiteout_refutes_the_opaque_statement() {
        let stated = Observed {
            file: Mark::Whiteout,
            dir: Mark::OpaqueDir,
            recreated: Mark::OpaqueDir,
            lower_unchanged: true,
        };
        assert_eq!(verdict_for(&stated), ClaimVerdict::Confirmed);
        let kernel = Observed {
            dir: Mark::Whiteout,
            ..stated
        };
        assert_eq!(verdict_for(&kernel), ClaimVerdict::Refuted);
        assert_eq!(
            verdict_for(&Observed {
                lower_unchanged: false,
                ..stated
            }),
            ClaimVerdict::Refuted
        );
    }
}
