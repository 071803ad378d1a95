//! Reads `/proc/self/mountinfo`: which mounts are in force and with which options.
//! Takes text so tests can feed captured files.

use std::path::{Path, PathBuf};

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Per-mount options (`rw,relatime`).
    pub mount_options: String,
    /// Filesystem type (`overlay`, `ext4`).
    pub fstype: String,
    /// Mount source (`/dev/loop0`, `overlay`).
    pub source: String,
    /// Superblock options, e.g. overlay's `lowerdir=…,upperdir=…`.
    pub super_options: String,
}

/// A parsed mountinfo table.
#[derive(Debug, Clone, Default)]
pub struct MountInfo {
    /// The mounts, in the kernel's order (later mounts stack over earlier ones).
    pub entries: Vec<MountEntry>,
}

impl MountInfo {
    /// Parses mountinfo text; malformed lines are skipped.
    pub fn parse(text: &str) -> MountInfo {
        let entries = text.lines().filter_map(parse_line).collect();
        MountInfo { entries }
    }

    /// Reads this process's mountinfo.
    pub fn current() -> std::io::Result<MountInfo> {
        Ok(MountInfo::parse(&std::fs::read_to_string(
            "/proc/self/mountinfo",
        )?))
    }

    /// The mount in force at `path` (the last one stacked there).
    pub fn at(&self, path: &Path) -> Option<&MountEntry> {
        self.entries.iter().rev().find(|e| e.mount_point == path)
    }

    /// Every mount at or below `dir`.
    pub fn under<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a MountEntry> + 'a {
        self.entries
            .iter()
            .filter(move |e| e.mount_point.starts_with(dir))
    }
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let left: Vec<&str> = left.split(' ').collect();
    let mut right = right.split(' ');
    Some(MountEntry {
        mount_point: PathBuf::from(unescape(left.get(4)?)),
        mount_options: left.get(5)?.to_string(),
        fstype: right.next()?.to_string(),
        source: unescape(right.next()?),
        super_options: unescape(right.next().unwrap_or("")),
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The regular lower layers in overlay super options, topmost first (data-only
/// layers — after `::` or given as `datadir+` — are not among them).
pub fn overlay_lowers(super_options: &str) -> Vec<String> {
    let mut lowers = Vec::new();
    for opt in super_options.split(',') {
        if let Some(v) = opt.strip_prefix("lowerdir=") {
            let regular = v.split("::").next().unwrap_or("");
            lowers.extend(
                regular
                    .split(':')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        } else if let Some(v) = opt.strip_prefix("lowerdir+=") {
            lowers.push(v.to_string());
        }
    }
    lowers
}

/// The data-only lower layers in overlay super options (`lowerdir=A::D1::D2`
/// or `datadir+=D`): looked up only through a metacopy file's redirect.
pub fn overlay_data_lowers(super_options: &str) -> Vec<String> {
    let mut data = Vec::new();
    for opt in super_options.split(',') {
        if let Some(v) = opt.strip_prefix("lowerdir=") {
            data.extend(
                v.split("::")
                    .skip(1)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string),
            );
        } else if let Some(v) = opt.strip_prefix("datadir+=") {
            data.push(v.to_string());
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
        90 27 0:50 / /var/tmp/a\\040b rw,relatime - overlay overlay rw,lowerdir=/l/A:/l/B,upperdir=/u,workdir=/w\n\
        garbage line\n";

    #[test]
    fn parses_overlay_entry_and_escapes() {
        let info = MountInfo::parse(SAMPLE);
        assert_eq!(info.entries.len(), 2);
        let e = info.at(Path::new("/var/tmp/a b")).expect("entry");
        assert_eq!(e.fstype, "overlay");
        assert_eq!(overlay_lowers(&e.super_options), vec!["/l/A", "/l/B"]);
        assert_eq!(info.under(Path::new("/var/tmp")).count(), 1);
    }

    #[test]
    fn counts_new_api_lowers() {
        assert_eq!(
            overlay_lowers("rw,lowerdir+=/a,lowerdir+=/b,lowerdir+=/c,upperdir=/u").len(),
            3
        );
    }

    #[test]
    fn data_only_layers_are_told_apart() {
        let classic = "rw,lowerdir=/m::/objects,upperdir=/u,workdir=/w,metacopy=on";
        assert_eq!(overlay_lowers(classic), vec!["/m"]);
        assert_eq!(overlay_data_lowers(classic), vec!["/objects"]);
        let new = "ro,lowerdir+=/m,datadir+=/objects,redirect_dir=on,metacopy=on";
        assert_eq!(overlay_lowers(new), vec!["/m"]);
        assert_eq!(overlay_data_lowers(new), vec!["/objects"]);
        assert!(overlay_data_lowers("rw,lowerdir=/a:/b").is_empty());
    }
}
