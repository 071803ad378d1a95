//! A synthetic spec as an image source: its layers streamed as entries with
//! generated content, and chain ids that hash the specs below and including
//! each layer — so two specs that share their first layers share those layers
//! in every layout's store, exactly as two real images sharing a base do.

use sha2::{Digest, Sha256};

use super::content::ContentReader;
use super::entry::{Entry, EntryKind, EntrySink, ImageInfo, ImageSource, LayerInfo};
use super::spec::{Change, ImageSpec};
use super::ImageError;

/// A spec with its identity, ready to be imported by any layout.
#[derive(Debug, Clone)]
pub struct SyntheticImage {
    spec: ImageSpec,
    info: ImageInfo,
}

fn hex(d: impl AsRef<[u8]>) -> String {
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl SyntheticImage {
    /// The spec under the reference `synthetic:<name>`.
    pub fn new(name: &str, spec: ImageSpec) -> SyntheticImage {
        let mut parent = String::new();
        let layers = spec
            .layers
            .iter()
            .map(|layer| {
                // Debug output of a spec is deterministic: a stable digest of its changes.
                let diff = format!("sha256:{}", hex(Sha256::digest(format!("{layer:?}"))));
                let chain = if parent.is_empty() {
                    diff.clone()
                } else {
                    format!("sha256:{}", hex(Sha256::digest(format!("{parent} {diff}"))))
                };
                parent = chain.clone();
                let bytes: u64 = layer
                    .changes
                    .iter()
                    .map(|c| match c {
                        Change::File { size, .. } => *size,
                        _ => 0,
                    })
                    .sum();
                LayerInfo {
                    digest: diff.clone(),
                    diff_id: Some(diff),
                    chain_id: chain,
                    media_type: "application/vnd.overlaybench.synthetic".into(),
                    stored_bytes: bytes,
                    ..Default::default()
                }
            })
            .collect();
        SyntheticImage {
            info: ImageInfo {
                reference: format!("synthetic:{name}"),
                layers,
                ..Default::default()
            },
            spec,
        }
    }

    /// The spec.
    pub fn spec(&self) -> &ImageSpec {
        &self.spec
    }
}

impl ImageSource for SyntheticImage {
    fn info(&self) -> &ImageInfo {
        &self.info
    }

    fn visit_layer(&self, index: usize, sink: &mut dyn EntrySink) -> Result<(), ImageError> {
        let Some(layer) = self.spec.layers.get(index) else {
            return Err(ImageError::OutOfRange {
                name: "layer",
                value: index.to_string(),
                range: "an index below the image's depth",
            });
        };
        // The model's meaning of a deletion or an opaque dir is "nothing below
        // this path from before", this layer's earlier changes included. An OCI
        // layer says that by not listing those entries at all (a whiteout only
        // hides lower layers), so they are dropped from the stream here.
        let superseded = |i: usize, c: &Change| {
            let path = change_path(c);
            layer.changes[i + 1..].iter().any(|later| match later {
                Change::Delete { path: p } => path.starts_with(p),
                Change::Opaque { path: p } => path.starts_with(p) && path != p.as_path(),
                _ => false,
            })
        };
        let entry = |path: &std::path::Path, kind, mode| Entry {
            path: path.to_path_buf(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: Vec::new(),
        };
        for (i, change) in layer.changes.iter().enumerate() {
            if superseded(i, change) {
                continue;
            }
            let (e, mut content) = match change {
                Change::Dir { path, mode } => (entry(path, EntryKind::Dir, *mode), None),
                Change::File {
                    path,
                    mode,
                    size,
                    seed,
                } => (
                    entry(path, EntryKind::File { size: *size }, *mode),
                    Some(ContentReader::new(*seed, *size)),
                ),
                Change::Symlink { path, target } => (
                    entry(
                        path,
                        EntryKind::Symlink {
                            target: target.clone(),
                        },
                        0o777,
                    ),
                    None,
                ),
                Change::Delete { path } => (entry(path, EntryKind::Whiteout, 0), None),
                Change::Opaque { path } => (entry(path, EntryKind::Opaque, 0o755), None),
            };
            let result = match content.as_mut() {
                Some(r) => sink.entry(&e, r),
                None => sink.entry(&e, &mut std::io::empty()),
            };
            if result.is_err() {
                return Err(ImageError::Stopped);
            }
        }
        Ok(())
    }
}

fn change_path(c: &Change) -> &std::path::Path {
    match c {
        Change::Dir { path, .. }
        | Change::File { path, .. }
        | Change::Symlink { path, .. }
        | Change::Delete { path }
        | Change::Opaque { path } => path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::spec::LayerSpec;

    fn spec(n: usize) -> ImageSpec {
        ImageSpec {
            layers: (0..n)
                .map(|i| LayerSpec {
                    changes: vec![Change::File {
                        path: format!("f{i}").into(),
                        mode: 0o644,
                        size: 10,
                        seed: i as u64,
                    }],
                })
                .collect(),
        }
    }

    #[test]
    fn shared_first_layers_share_chain_ids() {
        let a = SyntheticImage::new("a", spec(3));
        let b = SyntheticImage::new("b", spec(2));
        assert_eq!(a.info().layers[1].chain_id, b.info().layers[1].chain_id);
        assert_ne!(a.info().layers[0].chain_id, a.info().layers[1].chain_id);
        let mut seen = Vec::new();
        a.visit_layer(2, &mut |e: &Entry, r: &mut dyn std::io::Read| {
            let mut v = Vec::new();
            r.read_to_end(&mut v).map_err(|_| crate::image::Stop)?;
            seen.push((e.path.clone(), v.len()));
            Ok(())
        })
        .expect("visits");
        assert_eq!(seen, vec![("f2".into(), 10)]);
        assert!(a
            .visit_layer(3, &mut |_: &Entry, _: &mut dyn std::io::Read| Ok(()))
            .is_err());
    }
}
