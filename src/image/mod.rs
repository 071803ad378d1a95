//! Image specs: ordered layers of changes (add, modify, delete, make opaque), the
//! merged tree they describe, a deterministic generator, and file content.
//!
//! The merged tree (`Tree`) is the ground truth every layout must reproduce: the
//! differential test compares each layout's mounted view against it.

pub mod content;
pub mod entry;
mod generate;
mod spec;
mod synthetic;

pub use entry::{Entry, EntryKind, EntrySink, ImageInfo, ImageSource, LayerInfo, Stop};
pub use generate::{extend, generate, GeneratorParams, ImageShape, SizeRange};
pub use spec::{Change, ImageSpec, LayerSpec, Node, NodeKind, Tree};
pub use synthetic::SyntheticImage;

/// Invalid generator parameters.
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
}
