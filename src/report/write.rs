//! Writing report folders: every file via temp + rename, so a reader never sees a
//! half-written file and a crash loses nothing already measured.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{exporters_for, Report, ReportError, Section, SCHEMA_VERSION};

/// Writes `bytes` to `path` atomically (temp file in the same dir, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    let io = |what, p: &Path| {
        let path = p.to_path_buf();
        move |source| ReportError::Io { what, path, source }
    };
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut f = fs::File::create(&tmp).map_err(io("creating", &tmp))?;
    f.write_all(bytes).map_err(io("writing", &tmp))?;
    f.sync_all().map_err(io("syncing", &tmp))?;
    fs::rename(&tmp, path).map_err(io("renaming into", path))
}

/// Writes `report.json` plus every file `sections` render into `dir`; returns the paths written.
pub fn write_report_dir(
    dir: &Path,
    report: &Report,
    sections: &[&'static (dyn Section + Sync)],
) -> Result<Vec<PathBuf>, ReportError> {
    fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        what: "creating report dir",
        path: dir.to_path_buf(),
        source,
    })?;
    let json = serde_json::to_vec_pretty(report).map_err(|e| ReportError::Render {
        what: "report.json".into(),
        detail: e.to_string(),
    })?;
    let mut written = vec![dir.join("report.json")];
    write_atomic(&written[0], &json)?;
    for exporter in exporters_for(report, sections) {
        let path = dir.join(exporter.file_name());
        write_atomic(&path, &exporter.render(report)?)?;
        written.push(path);
    }
    Ok(written)
}

/// Reads a report from a `report.json` or a folder holding one; refuses other versions.
pub fn read_report(path: &Path) -> Result<Report, ReportError> {
    let file = if path.is_dir() {
        path.join("report.json")
    } else {
        path.to_path_buf()
    };
    let text = fs::read_to_string(&file).map_err(|source| ReportError::Io {
        what: "reading",
        path: file.clone(),
        source,
    })?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| ReportError::Parse {
            path: file.clone(),
            source,
        })?;
    let found = value
        .get("schema_version")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    if found != SCHEMA_VERSION as u64 {
        return Err(ReportError::SchemaVersion {
            path: file,
            found,
            expected: SCHEMA_VERSION,
        });
    }
    serde_json::from_value(value).map_err(|source| ReportError::Parse { path: file, source })
}
