//! Capacity planning: how many images (with their containers) fit on a filesystem
//! per layout, from per-unit costs measured on the real kernel (by the inodes
//! workload, or by `plan` itself). Projection is pure arithmetic; the honesty test
//! checks it against real ENOSPC. `images` projects a fleet of the user's own
//! images from their measured per-layer costs; `render` draws either plan.

pub mod images;
pub mod render;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a plan says runs out first when inodes do (`LayoutPlan::limited_by`).
pub const INODES: &str = "inodes";
/// What a plan says runs out first when bytes do.
pub const BYTES: &str = "bytes";

/// A fleet to plan for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    /// Images to place.
    pub images: u64,
    /// Layers per image.
    pub layers: usize,
    /// Percent of each image's layers shared by all images.
    pub shared_pct: u32,
    /// Files added or modified per layer.
    pub files_per_layer: usize,
    /// Directories added per layer.
    pub dirs_per_layer: usize,
    /// Containers per image.
    pub containers: u64,
    /// Files each container modifies (it also creates as many, deletes half).
    pub writes: usize,
}

/// The filesystem to fill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Filesystem {
    /// Bytes available.
    pub available_bytes: u64,
    /// Inodes available.
    pub available_inodes: u64,
    /// Where these figures come from.
    pub source: String,
}

/// Measured per-unit costs of one layout.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UnitCosts {
    /// Inodes of the shared base layers (stored once).
    pub shared_base_inodes: f64,
    /// Inodes of one image's own layers.
    pub per_image_inodes: f64,
    /// Inodes of one container (created, mounted, written).
    pub per_container_inodes: f64,
    /// Bytes of the shared base.
    pub shared_base_bytes: f64,
    /// Bytes of one image's own layers.
    pub per_image_bytes: f64,
    /// Bytes of one container.
    pub per_container_bytes: f64,
}

/// What the plan says for one layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutPlan {
    /// Layout name.
    pub layout: String,
    /// The costs used.
    pub costs: UnitCosts,
    /// Inodes the whole fleet needs.
    pub needed_inodes: f64,
    /// Bytes the whole fleet needs.
    pub needed_bytes: f64,
    /// needed / available inodes, percent.
    pub pct_inodes: f64,
    /// needed / available bytes, percent.
    pub pct_bytes: f64,
    /// Images (each with its containers) that fit.
    pub max_images: u64,
    /// `inodes` or `bytes`: which runs out first.
    pub limited_by: String,
    /// Containers that fit (max_images × containers per image).
    pub max_containers: u64,
}

/// plan.json.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanReport {
    /// Version of this format.
    pub schema_version: u32,
    /// Always `plan`.
    pub kind: String,
    /// The synthetic fleet planned for (absent for a plan of real images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<Fleet>,
    /// The real images planned for (`plan --image`), with their copies.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<images::ImageDemand>,
    /// The filesystem.
    pub filesystem: Filesystem,
    /// Where the per-unit costs come from (a report, or a measurement on a backing).
    pub costs_source: String,
    /// Backing filesystem kind the costs were measured on.
    pub costs_backing: String,
    /// Per layout.
    pub layouts: Vec<LayoutPlan>,
    /// Real images: the measured per-layer costs the projection used, per layout.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_costs: Vec<images::LayoutImageCosts>,
    /// What the report's other results add (e.g. how long the fleet's
    /// containers take to start at once); absent when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl PlanReport {
    /// Images the plan asked for (synthetic images, or copies of real ones).
    pub fn images_asked(&self) -> u64 {
        match &self.fleet {
            Some(f) => f.images,
            None => self.images.iter().map(|d| d.copies).sum(),
        }
    }

    /// Containers per image (the fleet's average for real images).
    pub fn containers_per_image(&self) -> f64 {
        match &self.fleet {
            Some(f) => f.containers as f64,
            None => {
                let copies = self.images_asked().max(1) as f64;
                self.images
                    .iter()
                    .map(|d| (d.copies * d.containers) as f64)
                    .sum::<f64>()
                    / copies
            }
        }
    }

    /// What was planned for, in a few words (chart titles, the text header).
    pub fn describe(&self) -> String {
        match &self.fleet {
            Some(f) => format!(
                "images of {} layers, {} containers each",
                f.layers, f.containers
            ),
            None => {
                let names: Vec<String> = self
                    .images
                    .iter()
                    .map(|d| format!("{} × {}", d.copies, d.reference))
                    .collect();
                let c = self.containers_per_image();
                let c = if c.fract() == 0.0 {
                    format!("{c:.0}")
                } else {
                    format!("{c:.2}")
                };
                format!("{}, {c} containers each", names.join(" + "))
            }
        }
    }
}

/// Units of `per` that fit in `avail` after `base`: 0 when `base` does not
/// fit, unbounded when each unit costs nothing.
pub(crate) fn fit(avail: u64, base: f64, per: f64) -> u64 {
    let room = avail as f64 - base;
    if room <= 0.0 {
        0
    } else if per <= 0.0 {
        u64::MAX
    } else {
        (room / per).floor() as u64
    }
}

/// `n` as a percent of `d` (infinite when `d` is 0).
pub(crate) fn pct(n: f64, d: u64) -> f64 {
    if d == 0 {
        f64::INFINITY
    } else {
        100.0 * n / d as f64
    }
}

/// Projects the fleet onto the filesystem for each layout.
pub fn project(
    fleet: &Fleet,
    fs: &Filesystem,
    costs: &BTreeMap<String, UnitCosts>,
) -> Vec<LayoutPlan> {
    costs
        .iter()
        .map(|(layout, c)| {
            let per_image_inodes =
                c.per_image_inodes + fleet.containers as f64 * c.per_container_inodes;
            let per_image_bytes =
                c.per_image_bytes + fleet.containers as f64 * c.per_container_bytes;
            let needed_inodes = c.shared_base_inodes + fleet.images as f64 * per_image_inodes;
            let needed_bytes = c.shared_base_bytes + fleet.images as f64 * per_image_bytes;
            let by_inodes = fit(fs.available_inodes, c.shared_base_inodes, per_image_inodes);
            let by_bytes = fit(fs.available_bytes, c.shared_base_bytes, per_image_bytes);
            let (max_images, limited_by) = if by_inodes <= by_bytes {
                (by_inodes, INODES)
            } else {
                (by_bytes, BYTES)
            };
            LayoutPlan {
                layout: layout.clone(),
                costs: *c,
                needed_inodes,
                needed_bytes,
                pct_inodes: pct(needed_inodes, fs.available_inodes),
                pct_bytes: pct(needed_bytes, fs.available_bytes),
                max_images,
                limited_by: limited_by.into(),
                max_containers: max_images.saturating_mul(fleet.containers),
            }
        })
        .collect()
}

/// ext4's defaults for a filesystem of `size_bytes`: one inode per 16 KiB, and
/// about 2 % of the space for metadata (inode tables, journal, bitmaps).
pub fn ext4_defaults(size_bytes: u64) -> Filesystem {
    Filesystem {
        available_bytes: size_bytes / 50 * 49,
        available_inodes: size_bytes / 16384,
        source: format!("ext4 defaults for {size_bytes} bytes (1 inode per 16 KiB)"),
    }
}

/// Free bytes and inodes of an existing filesystem (read only).
pub fn filesystem_at(path: &std::path::Path) -> std::io::Result<Filesystem> {
    let st = nix::sys::statvfs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(Filesystem {
        available_bytes: st.blocks_available() as u64 * st.fragment_size() as u64,
        available_inodes: st.files_available() as u64,
        source: format!("statvfs of {}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_finds_the_first_limit() {
        let fleet = Fleet {
            images: 10,
            layers: 4,
            shared_pct: 50,
            files_per_layer: 10,
            dirs_per_layer: 2,
            containers: 2,
            writes: 1,
        };
        let fs = Filesystem {
            available_bytes: 1_000_000,
            available_inodes: 1_000,
            source: "t".into(),
        };
        let mut costs = BTreeMap::new();
        costs.insert(
            "overlay2".to_string(),
            UnitCosts {
                shared_base_inodes: 100.0,
                per_image_inodes: 50.0,
                per_container_inodes: 10.0,
                shared_base_bytes: 0.0,
                per_image_bytes: 1.0,
                per_container_bytes: 0.0,
            },
        );
        let p = &project(&fleet, &fs, &costs)[0];
        // (1000 - 100) / (50 + 2 × 10) = 12.86 → 12 images, inodes first.
        assert_eq!(
            (p.max_images, p.limited_by.as_str(), p.max_containers),
            (12, "inodes", 24)
        );
        assert_eq!(p.needed_inodes, 100.0 + 10.0 * 70.0);
        assert!((p.pct_inodes - 80.0).abs() < 1e-9);
    }
}
