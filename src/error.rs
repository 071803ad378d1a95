//! How a failure maps to the CLI's exit codes (the README's "CLI" section lists them).
//!
//! Each library error type says which class it is (`class()`); the binary walks
//! the error chain at its edge and picks the exit code. Nothing here knows the
//! other modules but `stop` (which knows none), so every module can depend on it
//! without a cycle.

/// What kind of failure ended the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Bad input or usage: exit 2.
    Usage,
    /// The host cannot do what was asked (no overlay, not permitted, tool missing): exit 3.
    Unsupported,
    /// Anything else that went wrong while working: exit 1.
    Runtime,
    /// Stopped by SIGINT, SIGTERM or SIGHUP: exit 128 + the signal number.
    Interrupted,
}

impl ErrorClass {
    /// The process exit code for this class.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorClass::Usage => 2,
            ErrorClass::Unsupported => 3,
            ErrorClass::Runtime => 1,
            ErrorClass::Interrupted => crate::stop::exit_code(),
        }
    }
}
