//! One function per subcommand, taking validated library configs (never the
//! command line's types) and returning what the binary prints. Each is usable
//! and testable without the binary.

pub mod claims;
pub mod compare;
pub mod doctor;
pub mod fleet;
pub mod plan;
pub mod report;
pub mod run;

use std::path::PathBuf;

use crate::claims::ClaimError;
use crate::compare::CompareError;
use crate::config::ConfigError;
use crate::error::ErrorClass;
use crate::image::apply::ApplyError;
use crate::image::source::SourceError;
use crate::image::ImageError;
use crate::isolate::IsolateError;
use crate::layout::LayoutError;
use crate::report::ReportError;
use crate::workload::{CostsError, ParamError, WorkloadError};

/// Why a subcommand failed; `class()` gives its exit code.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Param(#[from] ParamError),
    #[error(transparent)]
    Isolate(#[from] IsolateError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error(transparent)]
    Compare(#[from] CompareError),
    #[error(transparent)]
    Costs(#[from] CostsError),
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Source(#[from] SourceError),
    /// An image the user named (`--image`) that cannot be read.
    #[error("--image {reference}: {source}")]
    NamedImage {
        reference: String,
        #[source]
        source: ImageError,
    },
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Fleet(#[from] crate::fleet::FleetError),
    #[error(transparent)]
    Input(#[from] crate::input::ReadError),
    #[error(transparent)]
    Path(#[from] crate::input::PathError),
    /// The host cannot do what was asked (found while preparing, before anything is written).
    #[error("{0}")]
    Unsupported(String),
    /// Stopped by a signal (SIGINT, SIGTERM, SIGHUP) before anything was written.
    #[error("interrupted")]
    Interrupted,
    #[error(transparent)]
    Claims(#[from] ClaimError),
    /// Bad input that names the value and what is accepted.
    #[error("{0}")]
    Usage(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl AppError {
    /// Exit-code class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            AppError::Config(e) => e.class(),
            AppError::Param(e) => e.class(),
            AppError::Isolate(e) => e.class(),
            AppError::Layout(e) => e.class(),
            AppError::Workload(e) => e.class(),
            AppError::Report(e) => e.class(),
            AppError::Compare(e) => e.class(),
            AppError::Image(e) => e.class(),
            AppError::Source(e) => e.class(),
            AppError::NamedImage { source, .. } => source.class(),
            AppError::Apply(e) => e.class(),
            AppError::Claims(e) => e.class(),
            AppError::Fleet(e) => e.class(),
            AppError::Costs(_) | AppError::Usage(_) => ErrorClass::Usage,
            AppError::Input(e) => e.class(),
            AppError::Path(e) => e.class(),
            AppError::Unsupported(_) => ErrorClass::Unsupported,
            AppError::Io { .. } => ErrorClass::Runtime,
            AppError::Interrupted => ErrorClass::Interrupted,
        }
    }

    /// Maps an I/O error on `path` during `what`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| AppError::Io { what, path, source }
    }
}
