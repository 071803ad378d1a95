//! Image specs: ordered layers of changes (add, modify, delete, make opaque), the
//! merged tree they describe, a deterministic generator, and file content.
//!
//! The merged tree (`Tree`) is the ground truth every layout must reproduce: the
//! differential test compares each layout's mounted view against it.

pub mod apply;
pub mod content;
pub mod derived;
pub mod entry;
mod generate;
pub mod index;
pub mod runconfig;
pub mod source;
mod spec;
mod synthetic;

pub use derived::{Prefix, Replica};
pub use entry::{Entry, EntryKind, EntrySink, ImageInfo, ImageSource, LayerInfo, SizeHint, Stop};
pub use generate::{extend, generate, GeneratorParams, ImageShape, SizeRange};
pub use index::{ImageIndex, ImageProfile, IndexedImage, LayerProfile, StartupReads};
pub use runconfig::{RunConfig, RunConfigError};
pub use spec::{Change, ImageSpec, LayerSpec, Node, NodeKind, Tree};
pub use synthetic::SyntheticImage;

/// Why an image could not be generated or one of its layers streamed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{name} = {value} is out of range; accepted: {range}")]
    OutOfRange {
        name: &'static str,
        value: String,
        range: &'static str,
    },
    /// The sink stopped the stream; it holds the reason.
    #[error("stopped by the consumer of the layer")]
    Stopped,
    /// A layer index past the image's last layer.
    #[error("layer {index} does not exist (the image has {count})")]
    NoLayer { index: usize, count: usize },
    /// A real image's source failed (bad, hostile or unreadable input).
    #[error(transparent)]
    Source(#[from] source::SourceError),
    /// A layer declares a file larger than the whole scratch filesystem:
    /// refused from its header, before its content is read.
    #[error(
        "layer {layer}: refusing entry {entry:?}: a file of {size} bytes ({} MiB) cannot fit the \
         {limit}-byte ({} MiB) scratch filesystem of --fs-size; give a larger --fs-size",
        size >> 20,
        limit >> 20
    )]
    FileTooLarge {
        layer: String,
        entry: String,
        size: u64,
        limit: u64,
    },
}

impl ImageError {
    /// Exit-code class (see `crate::error`).
    pub fn class(&self) -> crate::error::ErrorClass {
        match self {
            ImageError::OutOfRange { .. } | ImageError::FileTooLarge { .. } => {
                crate::error::ErrorClass::Usage
            }
            ImageError::Stopped | ImageError::NoLayer { .. } => crate::error::ErrorClass::Runtime,
            ImageError::Source(e) => e.class(),
        }
    }
}
