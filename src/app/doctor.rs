//! `overlaybench doctor`: host diagnostics and a recommendation. Writes nothing,
//! anywhere: its probes mount tiny overlays on a private in-memory tmpfs inside
//! the caller's private namespace, after every host file has been read.

use std::path::{Path, PathBuf};

use super::AppError;
use crate::doctor::{self, DoctorReport};
use crate::input::canonical_existing;
use crate::isolate::{IsolateError, Privilege};

/// What the user asked `doctor` for.
#[derive(Debug, Clone)]
pub struct DoctorConfig {
    /// The backing path to inspect (default: the store's, named or found, else `.`).
    pub path: Option<PathBuf>,
    /// A store to inventory (default: /var/lib/docker or /var/lib/containers/storage if present).
    pub store: Option<PathBuf>,
    /// Root under which engine configs are read.
    pub config_root: PathBuf,
    /// Skip the mount probes.
    pub no_probe: bool,
}

/// Diagnoses the host. `privilege` is the outcome of entering the private
/// namespace (the caller does it before any thread starts); probes are skipped
/// with the reason when it failed.
pub fn doctor(
    cfg: &DoctorConfig,
    privilege: Option<Result<Privilege, IsolateError>>,
) -> Result<DoctorReport, AppError> {
    let exists = |p: &str| Path::new(p).exists().then(|| PathBuf::from(p));
    let store_dir = match &cfg.store {
        Some(s) => {
            let s = canonical_existing("--store", s)?;
            if !s.is_dir() {
                return Err(AppError::Usage(format!(
                    "--store {} is not a directory; name {}",
                    s.display(),
                    doctor::store::EXPECTED
                )));
            }
            Some(s)
        }
        None => exists("/var/lib/docker").or_else(|| exists("/var/lib/containers/storage")),
    };
    // The store's own filesystem (named or found), unless another path is named.
    let path = match (&cfg.path, &store_dir) {
        (Some(p), _) => canonical_existing("--path", p)?,
        (None, Some(s)) => s.clone(),
        (None, None) => canonical_existing("--path", Path::new("."))?,
    };
    let config_root = canonical_existing("--config-root", &cfg.config_root)?;
    let path_report = doctor::path_facts(&path).map_err(AppError::io("inspecting", &path))?;
    let engines = doctor::config::read_all(&config_root);
    let store = match &store_dir {
        Some(s) => {
            let inv = doctor::store::inventory(s).map_err(AppError::io("inventorying", s))?;
            if inv.is_none() && cfg.store.is_some() {
                return Err(AppError::Usage(format!(
                    "--store {} is not a container store this build reads; name {}",
                    s.display(),
                    doctor::store::EXPECTED
                )));
            }
            inv
        }
        None => None,
    };
    let mut kernel = doctor::kernel_facts(Path::new("/"));
    if cfg.no_probe {
        kernel.probe_error = Some("skipped (--no-probe)".into());
    } else if kernel.overlay_available {
        // Last: the probes' tmpfs covers an existing directory for this process.
        match privilege {
            Some(Ok(p)) => doctor::probe_kernel(&mut kernel, p),
            Some(Err(e)) => kernel.probe_error = Some(format!("cannot isolate the probes: {e}")),
            None => kernel.probe_error = Some("the private namespace was not entered".into()),
        }
    }
    let recommendation = doctor::recommend(&kernel, &path_report, store.as_ref(), &engines);
    Ok(DoctorReport {
        schema_version: 1,
        kind: "doctor".into(),
        kernel,
        path: path_report,
        engines,
        store,
        recommendation,
    })
}
