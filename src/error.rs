//! How a failure maps to the CLI's exit codes (see DESIGN.md "CLI contract").
//!
//! Library modules keep their own typed errors; each says which class it is,
//! and the binary walks the error chain to pick the exit code.

/// What kind of failure ended the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input or usage: exit 2.
    Usage,
    /// The host cannot do what was asked (no overlay, not permitted, tool missing): exit 3.
    Unsupported,
    /// Anything else that went wrong while working: exit 1.
    Runtime,
}

impl ErrorClass {
    /// The process exit code for this class.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorClass::Usage => 2,
            ErrorClass::Unsupported => 3,
            ErrorClass::Runtime => 1,
        }
    }
}

/// Finds the most specific class in an error chain (the first typed error wins).
pub fn classify(err: &anyhow::Error) -> ErrorClass {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<crate::plan::PlanError>() {
            return e.class();
        }
        if let Some(e) = cause.downcast_ref::<crate::isolate::IsolateError>() {
            return e.class();
        }
        if let Some(e) = cause.downcast_ref::<crate::layout::LayoutError>() {
            return e.class();
        }
        if cause
            .downcast_ref::<crate::capacity::CapacityError>()
            .is_some()
        {
            return ErrorClass::Usage;
        }
        if let Some(e) = cause.downcast_ref::<crate::compare::CompareError>() {
            return e.class();
        }
        if let Some(e) = cause.downcast_ref::<crate::workload::WorkloadError>() {
            return e.class();
        }
        if let Some(e) = cause.downcast_ref::<crate::report::ReportError>() {
            return e.class();
        }
        if let Some(e) = cause.downcast_ref::<crate::image::apply::ApplyError>() {
            return e.class();
        }
        if let Some(e) = cause.downcast_ref::<crate::image::ImageError>() {
            return e.class();
        }
        if let Some(e) = cause.downcast_ref::<crate::image::source::SourceError>() {
            return e.class();
        }
    }
    ErrorClass::Runtime
}
