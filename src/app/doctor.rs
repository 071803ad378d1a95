//! `overlaybench doctor`: host diagnostics and a recommendation. Writes nothing,
//! anywhere: its probes mount on a private in-memory tmpfs inside the caller's
//! private namespace, after every host file (stores, configs, a `--from` report)
//! has been read.

use std::path::{Path, PathBuf};

use super::AppError;
use crate::doctor::{self, checks, recommend, store, DoctorReport};
use crate::input::canonical_existing;
use crate::isolate::{IsolateError, Privilege};

/// What the user asked `doctor` for.
#[derive(Debug, Clone)]
pub struct DoctorConfig {
    /// The backing path to inspect (default: the store's, named or found, else `.`).
    pub path: Option<PathBuf>,
    /// A store to inventory (default: every store at the engines' default places).
    pub store: Option<PathBuf>,
    /// Root under which engine configs are read and default stores looked for.
    pub config_root: PathBuf,
    /// Skip the mount probes.
    pub no_probe: bool,
    /// Images to profile layer by layer (`--image`), as given.
    pub images: Vec<String>,
    /// How to open them.
    pub image_options: crate::image::source::OpenOptions,
    /// Profile the images of the inventoried store too.
    pub store_images: bool,
    /// A `run` report whose figures the recommendation may use.
    pub from: Option<PathBuf>,
}

/// Diagnoses the host. `privilege` is the outcome of entering the private
/// namespace (the caller does it before any thread starts); probes are skipped
/// with the reason when it failed.
pub fn doctor(
    cfg: &DoctorConfig,
    privilege: Option<Result<Privilege, IsolateError>>,
) -> Result<DoctorReport, AppError> {
    let config_root = canonical_existing("--config-root", &cfg.config_root)?;
    let mut notes = Vec::new();
    // (store root, its inventories)
    let (store_root, stores) = match &cfg.store {
        Some(s) => {
            let s = canonical_existing("--store", s)?;
            if !s.is_dir() {
                return Err(AppError::Usage(format!(
                    "--store {} is not a directory; name {}",
                    s.display(),
                    store::EXPECTED
                )));
            }
            let found = store::inventories(&s, None).map_err(AppError::io("inventorying", &s))?;
            if found.is_empty() {
                return Err(AppError::Usage(format!(
                    "--store {} is not a container store this build reads; name {}",
                    s.display(),
                    store::EXPECTED
                )));
            }
            (Some(s), found)
        }
        None => {
            let mut root = None;
            let mut all = Vec::new();
            for c in store::discover(&config_root) {
                match store::inventories(&c.path, c.rootless_user.as_deref()) {
                    Ok(found) => {
                        if root.is_none() && !found.is_empty() {
                            root = Some(c.path.clone());
                        }
                        all.extend(found);
                    }
                    // A store found by looking, not named: say why it is missing.
                    Err(e) => notes.push(format!("{}: not inventoried: {e}", c.path.display())),
                }
            }
            (root, all)
        }
    };
    // The store's own filesystem (named or found), unless another path is named.
    let path = match (&cfg.path, &store_root) {
        (Some(p), _) => canonical_existing("--path", p)?,
        (None, Some(s)) => s.clone(),
        (None, None) => canonical_existing("--path", Path::new("."))?,
    };
    let path_report = doctor::path_facts(&path).map_err(AppError::io("inspecting", &path))?;
    let engines = doctor::config::read_all(&config_root);
    // Read now: the probes' tmpfs may cover the directory the report is in.
    let report = match &cfg.from {
        Some(f) => {
            let canon = canonical_existing("--from", f)?;
            Some((crate::report::read_report(&canon)?, f.display().to_string()))
        }
        None => None,
    };
    // Images are read before the probes: those cover a directory with their
    // tmpfs, and every host file must be read first.
    // An image the user named must be read: one that cannot be is refused,
    // named, with its error's class (bad input: exit 2).
    let mut images: Vec<doctor::images::DoctorImage> = cfg
        .images
        .iter()
        .map(|r| {
            doctor::images::try_profile(r, "--image", &cfg.image_options).map_err(|source| {
                AppError::NamedImage {
                    reference: r.clone(),
                    source,
                }
            })
        })
        .collect::<Result<_, _>>()?;
    let mut store_images_left_out = 0;
    if let (true, Some(dir), false) = (cfg.store_images, &store_root, stores.is_empty()) {
        let (found, left_out) = doctor::images::store_images(dir);
        images.extend(found);
        store_images_left_out = left_out;
    }
    let mut kernel = doctor::kernel_facts(Path::new("/"));
    if cfg.no_probe {
        kernel.probe_error = Some("skipped (--no-probe)".into());
    } else if kernel.overlay_available {
        // Last: the probes' tmpfs covers an existing directory for this process.
        match privilege {
            Some(Ok(p)) => doctor::probe_kernel(&mut kernel, p, &path),
            Some(Err(e)) => kernel.probe_error = Some(format!("cannot isolate the probes: {e}")),
            None => kernel.probe_error = Some("the private namespace was not entered".into()),
        }
    }
    let checks = checks::all(&stores, &path_report, kernel.max_lower_layers);
    let evidence = report
        .as_ref()
        .map(|(r, shown)| recommend::evidence(r, shown, &kernel.release));
    let recommendation =
        recommend::recommend(&kernel, &path_report, &stores, &engines, &checks, evidence);
    Ok(DoctorReport {
        schema_version: doctor::SCHEMA_VERSION,
        kind: "doctor".into(),
        kernel,
        path: path_report,
        engines,
        store: stores.first().cloned(),
        stores,
        checks,
        recommendation,
        images,
        store_images_left_out,
        notes,
    })
}
