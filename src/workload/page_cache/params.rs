//! page-cache's options, suite defaults and validation, and the image it builds.

use serde::Serialize;

use crate::image::{Change, ImageSpec, LayerSpec};
use crate::workload::{at_least, sorted_unique, BuildContext, Footprint, ParamError, Suite};

/// What the user may set.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Total size of the cache set, bytes.
    pub set_bytes: Option<u64>,
    /// Files the set is split into.
    pub files: Option<usize>,
    /// Numbers of containers reading it.
    pub containers: Option<Vec<usize>>,
    /// Numbers of different images (sharing files, not layers) read at once.
    pub images: Option<Vec<usize>>,
}

/// Parameters of the page-cache workload, resolved (written to the report's config).
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// Total bytes of the cache set.
    pub set_bytes: u64,
    /// Files the set is split into.
    pub files: usize,
    /// Numbers of containers reading it.
    pub containers: Vec<usize>,
    /// Numbers of different images read at once, one container each: every
    /// image holds the same files, in other layers (no layer is shared).
    pub images: Vec<usize>,
}

/// Most files the set may be split into.
pub const MAX_FILES: usize = 100_000;

impl Params {
    /// The suite's defaults with the user's overrides, validated against this
    /// host's memory (`mem_available`, bytes, when known).
    pub fn resolve(
        b: &BuildContext<'_>,
        o: &Options,
        mem_available: Option<u64>,
        name: &str,
    ) -> Result<Params, ParamError> {
        let (set_default, k_default, m_default) = match b.suite {
            Suite::Quick => (256u64 << 20, vec![1, 2, 4], vec![1, 3]),
            Suite::Standard => (512 << 20, vec![1, 2, 4, 8], vec![1, 2, 4]),
            Suite::Full => (1 << 30, vec![1, 2, 4, 8, 16], vec![1, 2, 4, 8]),
        };
        let ks = sorted_unique(o.containers.as_deref().unwrap_or(&k_default));
        if ks.first() == Some(&0) || ks.is_empty() {
            return Err(ParamError::range(
                "--containers",
                0,
                "at least 1 container (e.g. --containers 1,2,4,8)",
            ));
        }
        let ms = sorted_unique(o.images.as_deref().unwrap_or(&m_default));
        if ms.first() == Some(&0) || ms.is_empty() {
            return Err(ParamError::range(
                "--cache-images",
                0,
                "at least 1 image (e.g. --cache-images 1,2,4)",
            ));
        }
        let files = at_least("--cache-files", o.files.unwrap_or(4), 1)?;
        if files > MAX_FILES {
            return Err(ParamError::range(
                "--cache-files",
                files,
                format!("use --cache-files from 1 to {MAX_FILES}"),
            ));
        }
        let p = Params {
            set_bytes: o.set_bytes.unwrap_or(set_default),
            files,
            containers: ks,
            images: ms,
        };
        if !b.selected.contains(&name) {
            return Ok(p);
        }
        if p.set_bytes < 1 << 20 {
            return Err(ParamError::range("--cache-set", p.set_bytes, "at least 1M"));
        }
        let kmax = p.containers.iter().copied().max().unwrap_or(1) as u64;
        let mmax = p.images.iter().copied().max().unwrap_or(1) as u64;
        // Plain caches the set once per container (and a layout that caches a
        // file twice, EROFS, twice per image): all of it must fit in memory with
        // room to spare, or eviction by the kernel would fake the result.
        let need = p.set_bytes.saturating_mul((kmax + 1).max(2 * mmax + 1));
        if let Some(avail) = mem_available {
            if need > avail / 2 {
                return Err(ParamError::range(
                    "--cache-set",
                    p.set_bytes,
                    format!(
                        "set × max(largest --containers + 1, 2 × largest --cache-images + 1) = {need} bytes \
                         must stay under half of MemAvailable ({avail} bytes); use a smaller --cache-set or \
                         fewer containers or images"
                    ),
                ));
            }
        }
        if !b.backings.is_empty() && b.backings.iter().all(|x| x == "tmpfs") && b.selected == [name]
        {
            return Err(ParamError::Invalid(
                "page-cache cannot be measured on tmpfs: its data *is* the page cache; use --backing ext4 or xfs".into(),
            ));
        }
        Ok(p)
    }

    /// An image per layout, K plain copies, K/2 upper copies; then, one
    /// layout at a time, M images and M plain copies.
    pub fn footprint(&self, layouts: usize) -> Footprint {
        let k = self.containers.iter().copied().max().unwrap_or(1) as u64;
        let m = self.images.iter().copied().max().unwrap_or(1) as u64;
        let sets = layouts as u64 + k + k / 2 + 1 + 2 * m;
        // Every file carries a block of metadata at least: tiny files cost more than their size.
        let per_file = 8192u64;
        let files = self.files as u64 * sets;
        Footprint {
            bytes: self.set_bytes * sets + files * per_file + (64 << 20),
            inodes: 10_000 + files * 2,
        }
    }

    /// The files every container reads, as paths in the image.
    pub fn file_names(&self) -> Vec<String> {
        (0..self.files).map(|i| format!("set/file-{i}")).collect()
    }

    /// The image: the set in the bottom layer, a small file on top.
    pub fn image(&self) -> ImageSpec {
        let per = self.set_bytes / self.files.max(1) as u64;
        let mut bottom = vec![Change::Dir {
            path: "set".into(),
            mode: 0o755,
        }];
        bottom.extend(
            self.file_names()
                .into_iter()
                .enumerate()
                .map(|(i, p)| Change::File {
                    path: p.into(),
                    mode: 0o644,
                    size: per,
                    seed: 1000 + i as u64,
                }),
        );
        let top = vec![Change::File {
            path: "etc-marker".into(),
            mode: 0o644,
            size: 16,
            seed: 1,
        }];
        ImageSpec {
            layers: vec![LayerSpec { changes: bottom }, LayerSpec { changes: top }],
        }
    }
}

impl Params {
    /// Image `i` of the multi-image case: the same files as every other image
    /// (same names, same content), one per layer, in an order rotated by `i`,
    /// over a bottom layer of its own (a marker file only it has), so that no
    /// two images share a layer, only files.
    pub fn image_variant(&self, i: usize) -> ImageSpec {
        let per = self.set_bytes / self.files.max(1) as u64;
        let dir = || Change::Dir {
            path: "set".into(),
            mode: 0o755,
        };
        let names = self.file_names();
        let mut layers = vec![LayerSpec {
            changes: vec![
                dir(),
                Change::File {
                    path: format!("image-{i}").into(),
                    mode: 0o644,
                    size: 16,
                    seed: 2000 + i as u64,
                },
            ],
        }];
        for j in 0..names.len() {
            let f = (i + j) % names.len();
            layers.push(LayerSpec {
                changes: vec![
                    dir(),
                    Change::File {
                        path: names[f].clone().into(),
                        mode: 0o644,
                        size: per,
                        seed: 1000 + f as u64,
                    },
                ],
            });
        }
        ImageSpec { layers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::WorkloadOptions;

    fn ctx<'a>(opts: &'a WorkloadOptions, backings: &'a [String]) -> BuildContext<'a> {
        BuildContext {
            suite: Suite::Quick,
            options: opts,
            backings,
            selected: &["page-cache"],
            seed: 1,
        }
    }

    #[test]
    fn memory_and_tmpfs_are_checked_up_front() {
        let opts = WorkloadOptions::default();
        let ext4 = ["ext4".to_string()];
        let o = Options::default();
        assert!(Params::resolve(&ctx(&opts, &ext4), &o, Some(8 << 30), "page-cache").is_ok());
        let err = Params::resolve(&ctx(&opts, &ext4), &o, Some(1 << 30), "page-cache")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MemAvailable") && err.contains("--cache-set"),
            "{err}"
        );
        let tmpfs = ["tmpfs".to_string()];
        let err = Params::resolve(&ctx(&opts, &tmpfs), &o, None, "page-cache")
            .unwrap_err()
            .to_string();
        assert!(err.contains("tmpfs"), "{err}");
        let many = Options {
            files: Some(1_000_000),
            ..Default::default()
        };
        assert!(Params::resolve(&ctx(&opts, &ext4), &many, None, "page-cache").is_err());
    }

    #[test]
    fn image_variants_share_files_but_no_layer() {
        let opts = WorkloadOptions::default();
        let ext4 = ["ext4".to_string()];
        let p = Params::resolve(&ctx(&opts, &ext4), &Options::default(), None, "page-cache")
            .expect("valid");
        let (a, b) = (p.image_variant(0), p.image_variant(1));
        assert_eq!(a.flatten().nodes.len(), b.flatten().nodes.len());
        let files = |t: &crate::image::Tree| -> Vec<_> {
            t.nodes
                .iter()
                .filter(|(path, _)| path.starts_with("set"))
                .map(|(path, n)| (path.clone(), format!("{:?}", n.kind)))
                .collect()
        };
        assert_eq!(files(&a.flatten()), files(&b.flatten()));
        // Their bottom layers differ, so no chain id is shared.
        use crate::image::ImageSource;
        let chains = |spec: crate::image::ImageSpec| -> Vec<String> {
            crate::image::SyntheticImage::new("x", spec)
                .info()
                .layers
                .iter()
                .map(|l| l.chain_id.clone())
                .collect()
        };
        let (ca, cb) = (chains(a), chains(b));
        assert!(ca.iter().all(|c| !cb.contains(c)));
    }
}
