//! Where every file and path the user (or a store on the host) hands us enters:
//! one bounded, regular-file-only reader, and one canonicalisation of paths.
//!
//! Invariants: no read of a user-named or store file can block (FIFOs are opened
//! non-blocking and refused), grow without bound (a cap per kind of file, checked
//! by `fstat` first and by the read itself), or follow a device (`/dev/zero`
//! is not a regular file). Every failure names the path and, for size, the cap.

mod path;
mod read;

pub use path::{canonical_existing, canonical_for_creation, PathError};
pub use read::{
    read_bytes, read_text, Follow, ReadError, CONFIG_MAX_BYTES, REPORT_MAX_BYTES,
    STORE_INDEX_MAX_BYTES, STORE_META_MAX_BYTES,
};
