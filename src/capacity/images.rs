//! Capacity for the user's own images: per-layer costs measured on the real
//! kernel (what storing each layer of each image added to a filesystem, and
//! what a container of it adds), projected onto a fleet of copies of those
//! images. Pure arithmetic, like the synthetic projection.
//!
//! The model is the one stores follow. A layout that shares layers stores each
//! layer once per chain id; a copy of an image (another image built on the same
//! base) shares its bottom `shared_layers` layers with every other copy and
//! stores the rest anew. A layout that flattens (plain) stores one tree per
//! image, shared only when the copies are the same image. Each copy runs
//! `containers` containers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{fit, to_count, CostError, Filesystem, LayoutPlan, UnitCosts};

/// One image of a fleet, and how many images of its shape the fleet holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageDemand {
    /// The image's reference as given (`oci:/x:tag`).
    pub reference: String,
    /// Its layers.
    pub layers: usize,
    /// Images of this shape in the fleet (this one and copies built on the same base).
    pub copies: u64,
    /// Bottom layers every copy shares (stored once); the layers above are each copy's own.
    pub shared_layers: usize,
    /// Containers per copy.
    pub containers: u64,
}

/// What storing one unit of an image adds: a layer (layouts that share layers)
/// or the whole flattened image (layouts that do not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoredUnit {
    /// Chain id of the topmost image layer it holds: what a store shares it by.
    pub chain_id: String,
    /// Index of that topmost layer (0 = bottom); a unit is shared between
    /// copies when this layer is below `shared_layers`.
    pub top_layer: usize,
    /// Image layers it holds (1 for a layer, all of them for a flattened tree).
    pub layers: usize,
    /// Inodes it added.
    pub inodes: f64,
    /// Bytes it added.
    pub bytes: f64,
}

/// One image's measured costs on one layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageCosts {
    /// The image's reference.
    pub reference: String,
    /// What storing it added, unit by unit, bottom first.
    pub units: Vec<StoredUnit>,
    /// Inodes one container of it adds (created, mounted, written).
    pub per_container_inodes: f64,
    /// Bytes one container of it adds.
    pub per_container_bytes: f64,
}

/// Every image's costs on one layout, in the fleet's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LayoutImageCosts {
    /// Layout name.
    pub layout: String,
    /// Per image.
    pub images: Vec<ImageCosts>,
}

/// Why a fleet of images cannot be projected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DemandError {
    /// `shared_layers` exceeds the image's layers.
    #[error("--shared-layers {shared} for {reference}: the image has {layers} layers; use 0 to {layers}")]
    SharedLayers {
        reference: String,
        shared: usize,
        layers: usize,
    },
    /// A copy count of zero.
    #[error("--count 0 for {0}: give at least 1")]
    NoCopies(String),
    /// No costs measured for an image of the fleet.
    #[error("no measured costs for {image} on {layout}")]
    Missing { image: String, layout: String },
    /// A cost out of range, or a count past 64 bits.
    #[error(transparent)]
    Cost(#[from] CostError),
}

impl LayoutImageCosts {
    /// Checks every cost (`super::check_cost`), naming the image and unit.
    pub fn check(&self) -> Result<(), CostError> {
        for i in &self.images {
            for u in &i.units {
                let at = format!("{}'s layer {}", i.reference, u.top_layer);
                super::check_cost(&self.layout, &format!("inodes of {at}"), u.inodes)?;
                super::check_cost(&self.layout, &format!("bytes of {at}"), u.bytes)?;
            }
            let of = |what: &str| format!("{what} of {}", i.reference);
            super::check_cost(
                &self.layout,
                &of("per_container_inodes"),
                i.per_container_inodes,
            )?;
            super::check_cost(
                &self.layout,
                &of("per_container_bytes"),
                i.per_container_bytes,
            )?;
        }
        Ok(())
    }
}

impl ImageDemand {
    /// Checks the numbers against the image.
    pub fn validate(&self) -> Result<(), DemandError> {
        if self.copies == 0 {
            return Err(DemandError::NoCopies(self.reference.clone()));
        }
        if self.shared_layers > self.layers {
            return Err(DemandError::SharedLayers {
                reference: self.reference.clone(),
                shared: self.shared_layers,
                layers: self.layers,
            });
        }
        Ok(())
    }
}

/// The per-copy and the stored-once parts of one layout's costs for a fleet.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FleetCosts {
    /// Stored once, whatever the number of copies (shared layers, by chain id).
    pub once_inodes: f64,
    /// Bytes stored once.
    pub once_bytes: f64,
    /// Inodes of each copy's own units, summed over the fleet's copies.
    pub copies_inodes: f64,
    /// Bytes of each copy's own units, summed over the fleet's copies.
    pub copies_bytes: f64,
    /// Inodes of every container of every copy.
    pub containers_inodes: f64,
    /// Bytes of every container of every copy.
    pub containers_bytes: f64,
}

/// Splits one layout's measured costs into what the fleet stores once and
/// what each copy adds.
pub fn fleet_costs(
    demand: &[ImageDemand],
    costs: &[ImageCosts],
    layout: &str,
) -> Result<FleetCosts, DemandError> {
    let mut once: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut f = FleetCosts::default();
    for d in demand {
        let c = costs
            .iter()
            .find(|c| c.reference == d.reference)
            .ok_or_else(|| DemandError::Missing {
                image: d.reference.clone(),
                layout: layout.to_string(),
            })?;
        let copies = d.copies as f64;
        for u in &c.units {
            if u.top_layer < d.shared_layers {
                once.insert(&u.chain_id, (u.inodes, u.bytes));
            } else {
                f.copies_inodes += copies * u.inodes;
                f.copies_bytes += copies * u.bytes;
            }
        }
        let containers = copies * d.containers as f64;
        f.containers_inodes += containers * c.per_container_inodes;
        f.containers_bytes += containers * c.per_container_bytes;
    }
    f.once_inodes = once.values().map(|v| v.0).sum();
    f.once_bytes = once.values().map(|v| v.1).sum();
    Ok(f)
}

/// Projects the fleet onto `fs` for each layout: what it needs, and how many
/// images (in the fleet's mix, each with its containers) fit before inodes or
/// bytes run out.
pub fn project_images(
    demand: &[ImageDemand],
    fs: &Filesystem,
    costs: &[LayoutImageCosts],
) -> Result<Vec<LayoutPlan>, DemandError> {
    let copies: f64 = demand.iter().map(|d| d.copies as f64).sum::<f64>().max(1.0);
    let containers: f64 = demand
        .iter()
        .map(|d| d.copies as f64 * d.containers as f64)
        .sum();
    costs
        .iter()
        .map(|l| {
            let f = fleet_costs(demand, &l.images, &l.layout)?;
            let per_copy_inodes = (f.copies_inodes + f.containers_inodes) / copies;
            let per_copy_bytes = (f.copies_bytes + f.containers_bytes) / copies;
            let needed_inodes = f.once_inodes + f.copies_inodes + f.containers_inodes;
            let needed_bytes = f.once_bytes + f.copies_bytes + f.containers_bytes;
            let by_inodes = fit(
                fs.available_inodes,
                f.once_inodes,
                per_copy_inodes,
                &format!("the images of {} that fit by inodes", l.layout),
            )?;
            let by_bytes = fit(
                fs.available_bytes,
                f.once_bytes,
                per_copy_bytes,
                &format!("the images of {} that fit by bytes", l.layout),
            )?;
            let (max_images, limited_by) = if by_inodes <= by_bytes {
                (by_inodes, super::INODES)
            } else {
                (by_bytes, super::BYTES)
            };
            let per = |x: f64, n: f64| if n > 0.0 { x / n } else { 0.0 };
            Ok(LayoutPlan {
                layout: l.layout.clone(),
                costs: UnitCosts {
                    shared_base_inodes: f.once_inodes,
                    per_image_inodes: f.copies_inodes / copies,
                    per_container_inodes: per(f.containers_inodes, containers),
                    shared_base_bytes: f.once_bytes,
                    per_image_bytes: f.copies_bytes / copies,
                    per_container_bytes: per(f.containers_bytes, containers),
                },
                needed_inodes,
                needed_bytes,
                pct_inodes: super::pct(needed_inodes, fs.available_inodes),
                pct_bytes: super::pct(needed_bytes, fs.available_bytes),
                max_images,
                limited_by: limited_by.into(),
                max_containers: if max_images == u64::MAX {
                    u64::MAX
                } else {
                    to_count(
                        (max_images as f64 * containers / copies).floor(),
                        &format!("the containers of {} that fit", l.layout),
                    )?
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(chain: &str, top: usize, inodes: f64, bytes: f64) -> StoredUnit {
        StoredUnit {
            chain_id: chain.into(),
            top_layer: top,
            layers: 1,
            inodes,
            bytes,
        }
    }

    fn costs() -> Vec<LayoutImageCosts> {
        vec![LayoutImageCosts {
            layout: "overlay2".into(),
            images: vec![
                ImageCosts {
                    reference: "a".into(),
                    units: vec![unit("base", 0, 7000.0, 200e6), unit("a1", 1, 300.0, 10e6)],
                    per_container_inodes: 20.0,
                    per_container_bytes: 1e6,
                },
                ImageCosts {
                    reference: "b".into(),
                    units: vec![unit("base", 0, 7000.0, 200e6), unit("b1", 1, 100.0, 5e6)],
                    per_container_inodes: 10.0,
                    per_container_bytes: 0.0,
                },
            ],
        }]
    }

    fn demand(reference: &str, copies: u64, shared: usize) -> ImageDemand {
        ImageDemand {
            reference: reference.into(),
            layers: 2,
            copies,
            shared_layers: shared,
            containers: 1,
        }
    }

    #[test]
    fn shared_base_is_stored_once_and_copies_pay_their_own_layers() {
        let fs = Filesystem {
            available_bytes: 1_000_000_000,
            available_inodes: 1_000_000,
            source: "t".into(),
        };
        let d = [demand("a", 10, 1), demand("b", 10, 1)];
        let p = &project_images(&d, &fs, &costs()).expect("projects")[0];
        // Base once; each copy its top layer and one container.
        assert_eq!(p.needed_bytes, 200e6 + 10.0 * 11e6 + 10.0 * 5e6);
        assert_eq!(p.costs.shared_base_inodes, 7000.0);
        // (1e9 - 200e6) / ((110e6 + 50e6) / 20) = 100 images, bytes first.
        assert_eq!((p.max_images, p.limited_by.as_str()), (100, "bytes"));
        // Nothing shared: every copy pays the base too.
        let d = [demand("a", 10, 0)];
        let p = &project_images(&d, &fs, &costs()).expect("projects")[0];
        assert_eq!(p.needed_bytes, 10.0 * 211e6);
        assert_eq!(p.max_images, 4);
        assert!(demand("a", 1, 3).validate().is_err());
        assert!(demand("a", 0, 0).validate().is_err());
    }
}
