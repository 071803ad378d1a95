//! `overlaybench doctor`: host diagnostics and a recommendation. Reads only; its
//! probes mount tiny overlays on a private tmpfs inside the caller's namespace.

use std::path::{Path, PathBuf};

use super::AppError;
use crate::doctor::{self, DoctorReport};
use crate::isolate::{IsolateError, Privilege};

/// What the user asked `doctor` for.
#[derive(Debug, Clone)]
pub struct DoctorConfig {
    /// The backing path to inspect (default: /var/lib/docker if present, else `.`).
    pub path: Option<PathBuf>,
    /// A store to inventory (default: /var/lib/docker or /var/lib/containers/storage if present).
    pub store: Option<PathBuf>,
    /// Root under which engine configs are read.
    pub config_root: PathBuf,
    /// Skip the mount probes.
    pub no_probe: bool,
    /// Where the probes' scratch tmpfs is made.
    pub scratch: PathBuf,
    /// Images to profile layer by layer (`--image`), as given.
    pub images: Vec<String>,
    /// How to open them.
    pub image_options: crate::image::source::OpenOptions,
    /// Profile the images of the inventoried store too.
    pub store_images: bool,
}

/// Diagnoses the host. `privilege` is the outcome of entering the private
/// namespace (the caller does it before any thread starts); probes are skipped
/// with the reason when it failed.
pub fn doctor(
    cfg: &DoctorConfig,
    privilege: Option<Result<Privilege, IsolateError>>,
) -> Result<DoctorReport, AppError> {
    let exists = |p: &str| Path::new(p).exists().then(|| PathBuf::from(p));
    let path = cfg
        .path
        .clone()
        .or_else(|| exists("/var/lib/docker"))
        .unwrap_or_else(|| ".".into());
    if !path.exists() {
        return Err(AppError::Usage(format!(
            "--path {} does not exist; name the directory your container store lives on",
            path.display()
        )));
    }
    if let Some(s) = &cfg.store {
        if !s.is_dir() {
            return Err(AppError::Usage(format!(
                "--store {} is not a directory",
                s.display()
            )));
        }
    }
    let store_dir = cfg
        .store
        .clone()
        .or_else(|| exists("/var/lib/docker"))
        .or_else(|| exists("/var/lib/containers/storage"));
    let path_report = doctor::path_facts(&path).map_err(AppError::io("inspecting", &path))?;
    let engines = doctor::config::read_all(&cfg.config_root);
    let store = match &store_dir {
        Some(s) => doctor::store::inventory(s).map_err(AppError::io("inventorying", s))?,
        None => None,
    };
    let mut kernel = doctor::kernel_facts(Path::new("/"));
    if cfg.no_probe {
        kernel.probe_error = Some("skipped (--no-probe)".into());
    } else if kernel.overlay_available {
        match privilege {
            Some(Ok(p)) => doctor::probe_kernel(&mut kernel, &cfg.scratch, p),
            Some(Err(e)) => kernel.probe_error = Some(format!("cannot isolate the probes: {e}")),
            None => kernel.probe_error = Some("the private namespace was not entered".into()),
        }
    }
    let recommendation = doctor::recommend(&kernel, &path_report, store.as_ref(), &engines);
    let mut images: Vec<doctor::images::DoctorImage> = cfg
        .images
        .iter()
        .map(|r| doctor::images::profile(r, "--image", &cfg.image_options))
        .collect();
    let mut store_images_left_out = 0;
    if let (true, Some(dir), Some(_)) = (cfg.store_images, &store_dir, &store) {
        let (found, left_out) = doctor::images::store_images(dir);
        images.extend(found);
        store_images_left_out = left_out;
    }
    Ok(DoctorReport {
        schema_version: 1,
        kind: "doctor".into(),
        kernel,
        path: path_report,
        engines,
        store,
        recommendation,
        images,
        store_images_left_out,
    })
}
