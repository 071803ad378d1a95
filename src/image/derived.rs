//! Images derived from another without copying a byte: the first `k` layers
//! of an image (`Prefix` — importing prefixes one after the other makes a
//! store write one layer at a time, so each layer's cost can be read off the
//! filesystem), and a copy whose layers above a shared base are its own
//! (`Replica` — what N different images built on one base are to a store:
//! the same content, other chain ids, so every layout stores them anew).

use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::{EntrySink, ImageError, ImageInfo, ImageSource};

/// The bottom `layers` layers of an image.
pub struct Prefix {
    inner: Arc<dyn ImageSource>,
    info: ImageInfo,
}

impl Prefix {
    /// The first `layers` layers of `inner` (all of them if it has fewer).
    pub fn new(inner: Arc<dyn ImageSource>, layers: usize) -> Prefix {
        let mut info = inner.info().clone();
        info.layers.truncate(layers);
        Prefix { inner, info }
    }
}

impl ImageSource for Prefix {
    fn info(&self) -> &ImageInfo {
        &self.info
    }

    fn visit_layer(&self, index: usize, sink: &mut dyn EntrySink) -> Result<(), ImageError> {
        if index >= self.info.layers.len() {
            return Err(ImageError::NoLayer {
                index,
                count: self.info.layers.len(),
            });
        }
        self.inner.visit_layer(index, sink)
    }
}

/// Copy `copy` of an image: its bottom `shared_layers` layers keep their chain
/// ids (a store holds them once for every copy), the layers above get chain
/// ids of their own. Copy 0 is the image itself.
pub struct Replica {
    inner: Arc<dyn ImageSource>,
    info: ImageInfo,
}

/// The chain id a copy's own layer gets: the original's, hashed with the copy number.
pub fn replica_chain_id(chain_id: &str, copy: u64) -> String {
    if copy == 0 {
        return chain_id.to_string();
    }
    let h = Sha256::digest(format!("{chain_id} copy {copy}"));
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl Replica {
    /// Copy `copy` of `inner`, sharing its bottom `shared_layers` layers.
    pub fn new(inner: Arc<dyn ImageSource>, copy: u64, shared_layers: usize) -> Replica {
        let mut info = inner.info().clone();
        if copy > 0 {
            info.reference = format!("{} (copy {copy})", info.reference);
            for l in info.layers.iter_mut().skip(shared_layers) {
                l.chain_id = replica_chain_id(&l.chain_id, copy);
            }
        }
        Replica { inner, info }
    }
}

impl ImageSource for Replica {
    fn info(&self) -> &ImageInfo {
        &self.info
    }

    fn visit_layer(&self, index: usize, sink: &mut dyn EntrySink) -> Result<(), ImageError> {
        self.inner.visit_layer(index, sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{Change, ImageSpec, LayerSpec, SyntheticImage};

    fn image(layers: usize) -> Arc<dyn ImageSource> {
        let spec = ImageSpec {
            layers: (0..layers)
                .map(|l| LayerSpec {
                    changes: vec![Change::File {
                        path: format!("f{l}").into(),
                        mode: 0o644,
                        size: 1,
                        seed: l as u64,
                    }],
                })
                .collect(),
        };
        Arc::new(SyntheticImage::new("d", spec))
    }

    #[test]
    fn prefixes_and_copies_keep_or_change_chain_ids() {
        let img = image(3);
        let chains = |s: &dyn ImageSource| -> Vec<String> {
            s.info().layers.iter().map(|l| l.chain_id.clone()).collect()
        };
        let full = chains(&*img);
        let p = Prefix::new(img.clone(), 2);
        assert_eq!(chains(&p), full[..2].to_vec());
        assert!(p
            .visit_layer(2, &mut |_: &_, _: &mut dyn std::io::Read| Ok(()))
            .is_err());
        assert_eq!(chains(&Replica::new(img.clone(), 0, 0)), full);
        let c1 = chains(&Replica::new(img.clone(), 1, 1));
        let c2 = chains(&Replica::new(img.clone(), 2, 1));
        assert_eq!(c1[0], full[0]);
        assert_ne!(c1[1], full[1]);
        assert_ne!(c1[2], c2[2]);
        assert_eq!(Replica::new(img, 1, 1).info().layers[1].digest.len(), 71);
    }
}
