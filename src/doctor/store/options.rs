//! The overlay mount options a container on an image needs, spelled the way each
//! engine spells them, so doctor can say how close a store's deepest image is to
//! classic `mount(2)`'s one-page limit:
//! - Docker's and containers-storage's overlay2 first pass absolute `l/<short>`
//!   links and, when the data would pass `page - 1` bytes, the same links relative
//!   to the driver dir (`mountFrom`: a chdir there), upper and work relative too;
//!   beyond that the mount fails ("mount label too large").
//! - containerd passes absolute `snapshots/<N>/fs` lowers and, once the summed
//!   option lengths reach `page - 512`, lowers relative to the snapshots dir
//!   (upper and work stay absolute); beyond a page it fails ("mount options is
//!   too long").
//! - The legacy driver has one lower: it always fits.
//!
//! Both engines add `index=off` on kernels whose overlay module has the `index`
//! parameter (every kernel since 4.13); extra `mountopt`s add their own length.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Docker's and containers-storage's layer ids (and container ids): 64 hex digits.
const LAYER_ID_LEN: usize = 64;
/// Their `l/` link names: 26 characters.
const LINK_LEN: usize = 26;

/// Option-string lengths of one image's container mount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MountOptionBytes {
    /// Lowers as absolute layer directories (`…/<id>/diff`, `…/snapshots/<N>/fs`).
    pub absolute_bytes: usize,
    /// Lowers as Docker's `l/` short names relative to the driver dir (overlay2 stores).
    pub short_links_bytes: Option<usize>,
    /// Lowers relative to containerd's snapshots dir (containerd stores).
    pub relative_bytes: Option<usize>,
    /// The form this store's engine passes for this image.
    pub engine_form: String,
    /// Bytes of that form.
    pub engine_bytes: usize,
    /// The page classic `mount(2)` copies (the option data must fit in `page_bytes - 1`).
    pub page_bytes: usize,
}

/// How a store's engine mounts a container: what the option strings are made of.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mounts {
    /// An overlay2 driver dir; `links` maps layer ids to their `l/` names;
    /// `init_layer`: Docker puts a `<container>-init` layer under each container.
    Overlay2 {
        home: String,
        links: HashMap<String, String>,
        init_layer: bool,
    },
    /// Docker's legacy overlay driver dir.
    Legacy { home: String },
    /// containerd's snapshots dir; a new snapshot's id has `container_id_len` digits.
    Containerd {
        snapshots: String,
        container_id_len: usize,
    },
    /// Nothing is mounted (btrfs: a container is a snapshot).
    Nothing,
}

fn lowerdir<'a>(items: impl Iterator<Item = &'a str>, f: impl Fn(&str) -> String) -> String {
    format!("lowerdir={}", items.map(f).collect::<Vec<_>>().join(":"))
}

impl Mounts {
    /// The lengths for a container on the image whose layers are `chain`, top first.
    pub(crate) fn option_bytes(&self, chain: &[&str], page: usize) -> Option<MountOptionBytes> {
        let fits = |n: usize| n < page;
        match self {
            Mounts::Nothing => None,
            Mounts::Legacy { home } => {
                let cid = "0".repeat(LAYER_ID_LEN);
                let top = chain.first()?;
                let data = format!(
                    "lowerdir={home}/{top}/root,upperdir={home}/{cid}/upper,workdir={home}/{cid}/work"
                );
                Some(MountOptionBytes {
                    absolute_bytes: data.len(),
                    short_links_bytes: None,
                    relative_bytes: None,
                    engine_form: "absolute (one lower)".into(),
                    engine_bytes: data.len(),
                    page_bytes: page,
                })
            }
            Mounts::Overlay2 {
                home,
                links,
                init_layer,
            } => {
                let cid = "0".repeat(LAYER_ID_LEN);
                let init = format!("{cid}-init");
                let mut ids: Vec<&str> = Vec::with_capacity(chain.len() + 1);
                if *init_layer {
                    ids.push(&init);
                }
                ids.extend_from_slice(chain);
                let placeholder = "L".repeat(LINK_LEN);
                let link = |id: &str| {
                    links
                        .get(id)
                        .cloned()
                        .unwrap_or_else(|| placeholder.clone())
                };
                let absolute = format!(
                    "{},upperdir={home}/{cid}/diff,workdir={home}/{cid}/work",
                    lowerdir(ids.iter().copied(), |id| format!("{home}/{id}/diff"))
                );
                let abs_links = format!(
                    "index=off,{},upperdir={home}/{cid}/diff,workdir={home}/{cid}/work",
                    lowerdir(ids.iter().copied(), |id| format!("{home}/l/{}", link(id)))
                );
                let short = format!(
                    "index=off,{},upperdir={cid}/diff,workdir={cid}/work",
                    lowerdir(ids.iter().copied(), |id| format!("l/{}", link(id)))
                );
                let (form, bytes) = if fits(abs_links.len()) {
                    ("absolute l/ links", abs_links.len())
                } else {
                    ("l/ links relative to the driver dir (chdir)", short.len())
                };
                Some(MountOptionBytes {
                    absolute_bytes: absolute.len(),
                    short_links_bytes: Some(short.len()),
                    relative_bytes: None,
                    engine_form: form.into(),
                    engine_bytes: bytes,
                    page_bytes: page,
                })
            }
            Mounts::Containerd {
                snapshots,
                container_id_len,
            } => {
                let cid = "9".repeat((*container_id_len).max(1));
                let fixed = [
                    "index=off".to_string(),
                    format!("workdir={snapshots}/{cid}/work"),
                    format!("upperdir={snapshots}/{cid}/fs"),
                ];
                let abs_lower =
                    lowerdir(chain.iter().copied(), |id| format!("{snapshots}/{id}/fs"));
                let rel_lower = lowerdir(chain.iter().copied(), |id| format!("{id}/fs"));
                let joined = |lower: &str| {
                    let mut all: Vec<&str> = fixed.iter().map(String::as_str).collect();
                    all.push(lower);
                    all.join(",")
                };
                // containerd sums the option strings without their commas.
                let summed: usize = fixed.iter().map(String::len).sum::<usize>() + abs_lower.len();
                let (absolute, relative) = (joined(&abs_lower), joined(&rel_lower));
                let (form, bytes) = if summed < page.saturating_sub(512) {
                    ("absolute", absolute.len())
                } else {
                    (
                        "lowers relative to the snapshots dir (chdir)",
                        relative.len(),
                    )
                };
                Some(MountOptionBytes {
                    absolute_bytes: absolute.len(),
                    short_links_bytes: None,
                    relative_bytes: Some(relative.len()),
                    engine_form: form.into(),
                    engine_bytes: bytes,
                    page_bytes: page,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTAINERD: &str = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots";

    fn ids(n: usize, start: usize) -> Vec<String> {
        (start..start + n).rev().map(|i| i.to_string()).collect()
    }

    /// containerd at its default root with 3-digit ids switches to relative
    /// lowers from 45 layers, and its absolute form passes a page at 52.
    #[test]
    fn containerd_compacts_from_45_layers() {
        let m = Mounts::Containerd {
            snapshots: CONTAINERD.into(),
            container_id_len: 3,
        };
        let at = |n: usize| {
            let chain = ids(n, 100);
            let refs: Vec<&str> = chain.iter().map(String::as_str).collect();
            m.option_bytes(&refs, 4096).expect("overlay")
        };
        assert_eq!(at(44).engine_form, "absolute");
        assert!(
            at(45).engine_form.starts_with("lowers relative"),
            "{:?}",
            at(45)
        );
        assert!(at(51).absolute_bytes < 4096 && at(52).absolute_bytes >= 4096);
        // Relative: "NNN/fs" is 7 bytes a layer with its colon: 500 layers fit.
        assert!(at(500).engine_bytes < 4096, "{:?}", at(500));
    }

    /// Docker's overlay2 at /var/lib/docker: absolute links fit ~70 layers, the
    /// relative l/ form fits its 128-layer limit (with the init layer).
    #[test]
    fn docker_overlay2_falls_back_to_relative_links() {
        let m = Mounts::Overlay2 {
            home: "/var/lib/docker/overlay2".into(),
            links: HashMap::new(),
            init_layer: true,
        };
        let at = |n: usize| {
            let chain: Vec<String> = (0..n).map(|i| format!("{i:064x}")).collect();
            let refs: Vec<&str> = chain.iter().map(String::as_str).collect();
            m.option_bytes(&refs, 4096).expect("overlay")
        };
        assert_eq!(at(60).engine_form, "absolute l/ links");
        assert!(at(80).engine_form.contains("relative"));
        assert!(at(128).engine_bytes < 4096, "{:?}", at(128));
        // "l/" + 26 + ":" per lower, init layer included.
        assert_eq!(
            at(11).short_links_bytes.unwrap() - at(10).short_links_bytes.unwrap(),
            29
        );
        // Absolute diff dirs: "/var/lib/docker/overlay2/<64>/diff:" is 95 bytes.
        assert_eq!(at(11).absolute_bytes - at(10).absolute_bytes, 95);
        assert!(
            at(140).engine_bytes >= 4096,
            "past 4095 Docker refuses the mount"
        );
    }

    #[test]
    fn legacy_has_one_lower_and_btrfs_mounts_nothing() {
        let m = Mounts::Legacy {
            home: "/var/lib/docker/overlay".into(),
        };
        let b = m.option_bytes(&["a", "b", "c"], 4096).expect("overlay");
        assert_eq!(b.absolute_bytes, b.engine_bytes);
        assert!(b.engine_bytes < 300);
        assert_eq!(Mounts::Nothing.option_bytes(&["a"], 4096), None);
    }
}
