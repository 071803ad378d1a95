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
                    .map(|d| d.copies as f64 * d.containers as f64)
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

/// Smallest non-zero per-unit cost a report may give (inodes or bytes). Costs
/// are whole inodes and bytes averaged over a few images and containers, so a
/// real one is 0 or at least a fraction of one; a smaller one is not a
/// measurement, and would project more images than a 64-bit count holds.
pub const MIN_COST: f64 = 1e-3;

/// Why a plan cannot be projected from the costs it was given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CostError {
    /// A per-unit cost out of range.
    #[error("the per-unit cost {figure} of {layout} is {value}: {why}")]
    Cost {
        layout: String,
        figure: String,
        value: String,
        why: &'static str,
    },
    /// A count past 64 bits.
    #[error("{0} does not fit in a 64-bit count; the costs or the filesystem are not plausible")]
    Overflow(String),
}

/// Checks one per-unit cost read from a report: finite, not negative, 0 or at
/// least `MIN_COST`, and at most what one resource can hold (2^53 inodes,
/// 2^63 bytes: `report::validate`'s bounds).
pub fn check_cost(layout: &str, figure: &str, value: f64) -> Result<(), CostError> {
    let bytes = figure.contains("bytes");
    let max = if bytes {
        crate::report::validate::MAX_BYTES
    } else {
        crate::report::validate::MAX_COUNT
    };
    let why = if !value.is_finite() {
        Some("a cost is a finite number")
    } else if value < 0.0 {
        Some("a cost is never negative (storing more never frees room)")
    } else if value > 0.0 && value < MIN_COST {
        Some("a non-zero cost below 0.001 is not a measurement of whole inodes or bytes")
    } else if value > max {
        Some(if bytes {
            "a cost in bytes is at most 2^63"
        } else {
            "a cost in inodes is at most 2^53"
        })
    } else {
        None
    };
    match why {
        Some(why) => Err(CostError::Cost {
            layout: layout.to_string(),
            figure: figure.to_string(),
            value: crate::report::validate::shown(value),
            why,
        }),
        None => Ok(()),
    }
}

impl UnitCosts {
    /// Checks every cost (`check_cost`), naming the first bad one.
    pub fn check(&self, layout: &str) -> Result<(), CostError> {
        for (figure, v) in [
            ("shared_base_inodes", self.shared_base_inodes),
            ("per_image_inodes", self.per_image_inodes),
            ("per_container_inodes", self.per_container_inodes),
            ("shared_base_bytes", self.shared_base_bytes),
            ("per_image_bytes", self.per_image_bytes),
            ("per_container_bytes", self.per_container_bytes),
        ] {
            check_cost(layout, figure, v)?;
        }
        Ok(())
    }
}

/// Units of `per` that fit in `avail` after `base`: 0 when `base` does not
/// fit, unbounded (`u64::MAX`) when each unit costs nothing; an error when the
/// count does not fit in 64 bits (never a saturated number shown as a count).
pub(crate) fn fit(avail: u64, base: f64, per: f64, what: &str) -> Result<u64, CostError> {
    let room = avail as f64 - base;
    if room <= 0.0 {
        Ok(0)
    } else if per <= 0.0 {
        Ok(u64::MAX)
    } else {
        to_count((room / per).floor(), what)
    }
}

/// `x` (a whole number ≥ 0) as a count, when it is below `u64::MAX` (which
/// means "unbounded").
pub(crate) fn to_count(x: f64, what: &str) -> Result<u64, CostError> {
    if x.is_finite() && x >= 0.0 && x < u64::MAX as f64 {
        Ok(x as u64)
    } else {
        Err(CostError::Overflow(format!(
            "{what} ({})",
            crate::report::validate::shown(x)
        )))
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

/// Projects the fleet onto the filesystem for each layout (refused when a
/// count it computes does not fit in 64 bits).
pub fn project(
    fleet: &Fleet,
    fs: &Filesystem,
    costs: &BTreeMap<String, UnitCosts>,
) -> Result<Vec<LayoutPlan>, CostError> {
    costs
        .iter()
        .map(|(layout, c)| {
            let per_image_inodes =
                c.per_image_inodes + fleet.containers as f64 * c.per_container_inodes;
            let per_image_bytes =
                c.per_image_bytes + fleet.containers as f64 * c.per_container_bytes;
            let needed_inodes = c.shared_base_inodes + fleet.images as f64 * per_image_inodes;
            let needed_bytes = c.shared_base_bytes + fleet.images as f64 * per_image_bytes;
            let by_inodes = fit(
                fs.available_inodes,
                c.shared_base_inodes,
                per_image_inodes,
                &format!("the images of {layout} that fit by inodes"),
            )?;
            let by_bytes = fit(
                fs.available_bytes,
                c.shared_base_bytes,
                per_image_bytes,
                &format!("the images of {layout} that fit by bytes"),
            )?;
            let (max_images, limited_by) = if by_inodes <= by_bytes {
                (by_inodes, INODES)
            } else {
                (by_bytes, BYTES)
            };
            let max_containers = if max_images == u64::MAX {
                u64::MAX
            } else {
                max_images.checked_mul(fleet.containers).ok_or_else(|| {
                    CostError::Overflow(format!(
                        "the containers of {layout} that fit ({max_images} images × {} containers)",
                        fleet.containers
                    ))
                })?
            };
            Ok(LayoutPlan {
                layout: layout.clone(),
                costs: *c,
                needed_inodes,
                needed_bytes,
                pct_inodes: pct(needed_inodes, fs.available_inodes),
                pct_bytes: pct(needed_bytes, fs.available_bytes),
                max_images,
                limited_by: limited_by.into(),
                max_containers,
            })
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
        let p = &project(&fleet, &fs, &costs).expect("projects")[0];
        // (1000 - 100) / (50 + 2 × 10) = 12.86 → 12 images, inodes first.
        assert_eq!(
            (p.max_images, p.limited_by.as_str(), p.max_containers),
            (12, "inodes", 24)
        );
        assert_eq!(p.needed_inodes, 100.0 + 10.0 * 70.0);
        assert!((p.pct_inodes - 80.0).abs() < 1e-9);
    }

    #[test]
    fn costs_are_checked_and_counts_never_saturate() {
        let ok = UnitCosts {
            per_image_inodes: 50.0,
            per_image_bytes: 1.0,
            ..Default::default()
        };
        ok.check("overlay2").expect("valid");
        let neg = UnitCosts {
            per_container_inodes: -10.0,
            ..ok
        };
        let e = neg.check("overlay2").unwrap_err().to_string();
        assert!(e.contains("per_container_inodes of overlay2 is -10"), "{e}");
        let huge = UnitCosts {
            per_image_bytes: 1e300,
            ..ok
        };
        assert!(huge
            .check("plain")
            .unwrap_err()
            .to_string()
            .contains("1e300"));
        assert!(fit(u64::MAX, 0.0, 1e-3, "x").is_err());
        assert_eq!(fit(100, 0.0, 0.0, "x"), Ok(u64::MAX));
        let fleet = Fleet {
            images: 1,
            layers: 1,
            shared_pct: 0,
            files_per_layer: 1,
            dirs_per_layer: 0,
            containers: u64::MAX,
            writes: 0,
        };
        let fs = Filesystem {
            available_bytes: u64::MAX,
            available_inodes: u64::MAX,
            source: "t".into(),
        };
        let costs = [(
            "overlay2".to_string(),
            UnitCosts {
                per_image_inodes: 1.0,
                per_image_bytes: 1.0,
                ..Default::default()
            },
        )]
        .into_iter()
        .collect();
        let e = project(&fleet, &fs, &costs).unwrap_err().to_string();
        assert!(e.contains("does not fit in a 64-bit count"), "{e}");
    }
}
