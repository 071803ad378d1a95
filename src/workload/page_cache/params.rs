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
    /// The most bytes of each `--image` read (its files in path order up to it).
    pub read_budget: Option<u64>,
    /// Glob patterns choosing which files of each `--image` are read.
    pub read_set: Option<Vec<String>>,
    /// Numbers of different images (sharing files, not layers) read at once.
    pub images: Option<Vec<usize>>,
}

/// The files of one of the user's images the containers read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageReadSet {
    /// Paths in the image, in path order.
    pub names: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
    /// Their bytes rounded up to 4 KiB pages each: what the set takes in the
    /// page cache when read once (the sharing factor's unit).
    pub page_bytes: u64,
    /// Matching files left out because the budget was reached.
    pub left_out: usize,
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
    /// The most bytes of each of the user's images read.
    pub read_budget: u64,
    /// Glob patterns choosing the files of the user's images read (all regular files when empty).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub read_set: Vec<String>,
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
                "--page-cache-containers",
                0,
                "at least 1 container (e.g. --page-cache-containers 1,2,4,8)",
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
        let patterns = o.read_set.clone().unwrap_or_default();
        for g in &patterns {
            glob::Pattern::new(g.trim_start_matches('/')).map_err(|e| {
                ParamError::Invalid(format!(
                    "--read-set {g:?} is not a glob pattern: {e} (e.g. 'usr/lib/**/*.so*')"
                ))
            })?;
        }
        let p = Params {
            set_bytes: o.set_bytes.unwrap_or(set_default),
            files,
            containers: ks,
            read_budget: o.read_budget.unwrap_or(set_default),
            read_set: patterns,
            images: ms,
        };
        if !b.selected.contains(&name) {
            return Ok(p);
        }
        if p.set_bytes < 1 << 20 {
            return Err(ParamError::range("--cache-set", p.set_bytes, "at least 1M"));
        }
        if p.read_budget < 1 << 20 {
            return Err(ParamError::range(
                "--read-budget",
                p.read_budget,
                "at least 1M",
            ));
        }
        let kmax = p.containers.iter().copied().max().unwrap_or(1) as u64;
        let mmax = p.images.iter().copied().max().unwrap_or(1) as u64;
        // Plain caches the set once per container (and a layout that caches a
        // file twice, EROFS, twice per image): all of it must fit in memory with
        // room to spare, or eviction by the kernel would fake the result. The
        // synthetic set also runs the M-images sweep; an --image's read set the
        // K containers only.
        let mut checks = Vec::new();
        if b.synthetic {
            checks.push(("--cache-set", p.set_bytes, (kmax + 1).max(2 * mmax + 1)));
        }
        if b.images > 0 {
            checks.push(("--read-budget", p.read_budget, kmax + 1));
        }
        for (flag, bytes, copies) in checks {
            let need = bytes.saturating_mul(copies);
            if let Some(avail) = mem_available {
                if need > avail / 2 {
                    return Err(ParamError::range(
                        flag,
                        bytes,
                        format!(
                            "set × max(largest --page-cache-containers + 1, 2 × largest --cache-images + 1) = {need} bytes \
                             must stay under half of MemAvailable ({avail} bytes); use a smaller {flag} or \
                             fewer containers or images"
                        ),
                    ));
                }
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
    /// layout at a time, M images and M plain copies (the synthetic sets).
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

    /// The files of one of the user's images the containers read: its
    /// regular files (one path per inode) that match `read_set` (all when
    /// empty), in path order, each taken while the total stays within
    /// `read_budget`.
    pub fn read_set(&self, index: &crate::image::ImageIndex) -> ImageReadSet {
        let opts = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        let patterns: Vec<glob::Pattern> = self
            .read_set
            .iter()
            .filter_map(|g| glob::Pattern::new(g.trim_start_matches('/')).ok())
            .collect();
        let mut set = ImageReadSet::default();
        for (path, size) in index.regular_files() {
            if !crate::image::index::nameable(path) {
                continue;
            }
            if !patterns.is_empty() && !patterns.iter().any(|g| g.matches_path_with(path, opts)) {
                continue;
            }
            if set.bytes + size > self.read_budget {
                set.left_out += 1;
                continue;
            }
            set.bytes += size;
            set.page_bytes += size.div_ceil(4096) * 4096;
            set.names.push(path.display().to_string());
        }
        set
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
            images: 0,
            synthetic: true,
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
