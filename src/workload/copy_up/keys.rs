//! copy-up's keys: the name, the enums and series keys measure and analyze
//! share, and the typed views of its cases that write and read the report's params.

use serde::{Deserialize, Serialize};

use crate::workload::{CaseView, Subject};

/// Name in reports.
pub const NAME: &str = "copy-up";

/// The pseudo-layout of the reference copy's cases.
pub const REFERENCE: &str = "reference";

/// The reference copy's `options`.
pub const REFERENCE_METHOD: &str = "copy_file_range+fsync";

/// A timed operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Op {
    /// `append` of one byte as the first touch.
    Append,
    /// `chmod` as the first touch (metadata-only with metacopy).
    Chmod,
    /// The reference: `copy_file_range` + `fsync` of the same file.
    Copy,
    /// Open for write + 1-byte write + close, as the first touch.
    FirstWrite,
    /// The same again: no copy left to make.
    SecondWrite,
    /// `truncate` to half the size as the first touch.
    Truncate,
    /// A write after a chmod (the deferred data copy with metacopy).
    WriteAfterChmod,
}

impl Op {
    /// Every op a container times, in reading order.
    pub const READING_ORDER: [Op; 6] = [
        Op::FirstWrite,
        Op::SecondWrite,
        Op::Chmod,
        Op::WriteAfterChmod,
        Op::Append,
        Op::Truncate,
    ];

    /// Spelling in reports.
    pub fn name(self) -> &'static str {
        match self {
            Op::Append => "append",
            Op::Chmod => "chmod",
            Op::Copy => "copy",
            Op::FirstWrite => "first-write",
            Op::SecondWrite => "second-write",
            Op::Truncate => "truncate",
            Op::WriteAfterChmod => "write-after-chmod",
        }
    }
}

/// Cache state in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cache {
    /// Lower file evicted.
    Cold,
    /// Lower file read beforehand.
    Warm,
}

/// One accumulated series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Layout name (or `reference`).
    pub layout: String,
    /// Option set name (or the reference's method).
    pub options: &'static str,
    /// What was timed.
    pub op: Op,
    /// Lower cache state.
    pub cache: Cache,
    /// File size, bytes (0 on a fit over sizes).
    pub size: u64,
}

/// The report's params of a copy-up case or derived figure, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Backing filesystem.
    pub backing: String,
    /// What was timed.
    pub op: Op,
    /// Overlay option set (`default`, `metacopy`, `volatile`) or the reference's method.
    pub options: String,
    /// Lower cache state.
    pub cache: Cache,
    /// File size, bytes (absent on fits).
    #[serde(default)]
    pub size_bytes: Option<u64>,
    /// What a ratio is taken against (`reference`).
    #[serde(default)]
    pub baseline: Option<String>,
}

impl CaseView for View {
    const WORKLOAD: &'static str = NAME;
    const SUBJECT: Subject = Subject::Synthetic;
}

/// The report's params of a copy-up case or derived figure about one of the
/// user's images, typed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageView {
    /// Backing filesystem.
    pub backing: String,
    /// The image's reference.
    pub image: String,
    /// The file's path in the image (absent on fits over the files).
    #[serde(default)]
    pub file: Option<String>,
    /// Its size, bytes (absent on fits).
    #[serde(default)]
    pub size_bytes: Option<u64>,
    /// What was timed.
    pub op: Op,
    /// Overlay option set, or the reference's method.
    pub options: String,
    /// Lower cache state.
    pub cache: Cache,
    /// What a ratio is taken against (`reference`).
    #[serde(default)]
    pub baseline: Option<String>,
}

impl CaseView for ImageView {
    const WORKLOAD: &'static str = NAME;
    const SUBJECT: Subject = Subject::Images;
}

/// Key of one series of image samples.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageKey {
    /// Layout name (or `reference`).
    pub layout: String,
    /// Option set name (or the reference's method).
    pub options: &'static str,
    /// What was timed.
    pub op: Op,
    /// Lower cache state.
    pub cache: Cache,
    /// Index of the image in the run.
    pub image: usize,
    /// Index of the file among the image's largest.
    pub file: usize,
}
