//! Pure: per-unit costs for a capacity plan — read back from a report's inodes
//! figures (`plan --from`), or taken from one layout's measurement of the
//! user's images.

use std::collections::BTreeMap;

use super::keys::{ImageMeasure, ImageView, Quantity, Resource, View};
use crate::capacity::images::{ImageCosts, LayoutImageCosts, StoredUnit};
use crate::capacity::{Fleet, UnitCosts};
use crate::report::{Derived, Report};
use crate::workload::{CaseView, CostsError};

/// Reads per-unit costs for `fleet` from a report's inodes results (same layers,
/// files and dirs per layer and backing, or a refusal naming the difference).
pub fn costs_from_report(
    report: &Report,
    fleet: &Fleet,
    backing: &str,
) -> Result<BTreeMap<String, UnitCosts>, CostsError> {
    let per_unit: Vec<(&Derived, View)> = report
        .derived
        .iter()
        .filter(|d| d.kind == "per-unit")
        .filter_map(|d| View::of_derived(d).map(|v| (d, v)))
        .collect();
    if per_unit.is_empty() {
        return Err(CostsError(
            "the report has no inodes results; run `overlaybench run --workloads inodes` first, or plan without --from".into(),
        ));
    }
    let matching: Vec<&(&Derived, View)> = per_unit
        .iter()
        .filter(|(_, v)| {
            v.layers == Some(fleet.layers)
                && v.files_per_layer == fleet.files_per_layer
                && v.dirs_per_layer == fleet.dirs_per_layer
                && v.backing == backing
        })
        .collect();
    if matching.is_empty() {
        let mut have: Vec<String> = per_unit
            .iter()
            .map(|(_, v)| {
                format!(
                    "{} layers × {} files × {} dirs on {}",
                    v.layers.unwrap_or(0),
                    v.files_per_layer,
                    v.dirs_per_layer,
                    v.backing
                )
            })
            .collect();
        have.sort();
        have.dedup();
        return Err(CostsError(format!(
            "the report measured {}; the fleet is {} layers × {} files × {} dirs on {backing} — plan without --from \
             to measure this fleet's costs, or run the inodes workload with matching --layers/--files-per-layer/--dirs-per-layer",
            have.join(", "),
            fleet.layers,
            fleet.files_per_layer,
            fleet.dirs_per_layer
        )));
    }
    let mut out: BTreeMap<String, UnitCosts> = BTreeMap::new();
    for (d, v) in matching {
        let c = out.entry(d.layout.clone()).or_default();
        match (v.quantity, v.resource) {
            (Some(Quantity::SharedBase), Some(Resource::Inodes)) => c.shared_base_inodes = d.value,
            (Some(Quantity::Image), Some(Resource::Inodes)) => c.per_image_inodes = d.value,
            (Some(Quantity::Container), Some(Resource::Inodes)) => c.per_container_inodes = d.value,
            (Some(Quantity::SharedBase), Some(Resource::Bytes)) => c.shared_base_bytes = d.value,
            (Some(Quantity::Image), Some(Resource::Bytes)) => c.per_image_bytes = d.value,
            (Some(Quantity::Container), Some(Resource::Bytes)) => c.per_container_bytes = d.value,
            _ => {}
        }
    }
    Ok(out)
}

/// One layout's measurement as the costs a plan projects from: every unit
/// with its cost (a unit an earlier image stored gets that image's figure).
pub fn image_costs(layout: &str, measured: &[ImageMeasure]) -> LayoutImageCosts {
    let mut first: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for m in measured {
        for u in m.stored.iter().filter(|u| !u.stored_before) {
            first
                .entry(u.chain_id.clone())
                .or_insert((u.inodes as f64, u.bytes as f64));
        }
    }
    LayoutImageCosts {
        layout: layout.into(),
        images: measured
            .iter()
            .map(|m| {
                let n = m.containers.max(1) as f64;
                ImageCosts {
                    reference: m.reference.clone(),
                    units: m
                        .stored
                        .iter()
                        .map(|u| {
                            let (inodes, bytes) = first
                                .get(&u.chain_id)
                                .copied()
                                .unwrap_or((u.inodes as f64, u.bytes as f64));
                            StoredUnit {
                                chain_id: u.chain_id.clone(),
                                top_layer: u.layer,
                                layers: u.layers,
                                inodes,
                                bytes,
                            }
                        })
                        .collect(),
                    per_container_inodes: m.containers_inodes as f64 / n,
                    per_container_bytes: m.containers_bytes as f64 / n,
                }
            })
            .collect(),
    }
}

/// The costs a report's real-image results recorded for `images` on
/// `backing`: every layer (by chain id) and a container of each image, per
/// layout — or a refusal naming the first thing missing.
pub fn image_costs_from_report(
    report: &Report,
    images: &[(String, Vec<(String, usize)>)],
    backing: &str,
) -> Result<Vec<LayoutImageCosts>, CostsError> {
    let figures: Vec<(&Derived, ImageView)> = report
        .derived
        .iter()
        .filter(|d| d.kind == "per-unit")
        .filter_map(|d| ImageView::of_derived(d).map(|v| (d, v)))
        .filter(|(_, v)| v.backing.as_deref() == Some(backing))
        .collect();
    if figures.is_empty() {
        return Err(CostsError(format!(
            "the report has no real-image inodes results on {backing}; run `overlaybench run --workloads inodes --image SRC` first, or plan without --from"
        )));
    }
    let mut layouts: Vec<String> = Vec::new();
    for (d, _) in &figures {
        if !layouts.contains(&d.layout) {
            layouts.push(d.layout.clone());
        }
    }
    let find = |layout: &str, chain: &str, flattened: bool, resource: Resource| {
        figures.iter().find(|(d, v)| {
            d.layout == layout
                && v.chain_id.as_deref() == Some(chain)
                && v.flattened.unwrap_or(false) == flattened
                && v.resource == Some(resource)
        })
    };
    layouts
        .iter()
        .map(|layout| {
            let flat = figures
                .iter()
                .any(|(d, v)| d.layout == *layout && v.flattened == Some(true));
            let images = images
                .iter()
                .map(|(reference, chains)| {
                    let picked: Vec<&(String, usize)> = if flat {
                        chains.last().into_iter().collect()
                    } else {
                        chains.iter().collect()
                    };
                    let units = picked
                        .iter()
                        .map(|(chain, layer)| {
                            let get = |r| {
                                find(layout, chain, flat, r).map(|(d, _)| d.value).ok_or_else(|| {
                                    CostsError(format!(
                                        "the report has no {layout} figure for layer {layer} of {reference} ({chain}); run the inodes workload with this --image"
                                    ))
                                })
                            };
                            Ok(StoredUnit {
                                chain_id: chain.clone(),
                                top_layer: *layer,
                                layers: if flat { chains.len() } else { 1 },
                                inodes: get(Resource::Inodes)?,
                                bytes: get(Resource::Bytes)?,
                            })
                        })
                        .collect::<Result<Vec<_>, CostsError>>()?;
                    // A container of this image (by its top layer), else of any image.
                    let top = chains.last().map(|c| c.0.as_str()).unwrap_or("");
                    let container = |r| {
                        let of_image = figures.iter().find(|(d, v)| {
                            d.layout == *layout
                                && v.quantity == Quantity::Container
                                && v.resource == Some(r)
                                && figures.iter().any(|(d2, v2)| {
                                    d2.layout == *layout
                                        && v2.image == v.image
                                        && v2.chain_id.as_deref() == Some(top)
                                })
                        });
                        of_image.map(|(d, _)| d.value).unwrap_or(0.0)
                    };
                    Ok(ImageCosts {
                        reference: reference.clone(),
                        units,
                        per_container_inodes: container(Resource::Inodes),
                        per_container_bytes: container(Resource::Bytes),
                    })
                })
                .collect::<Result<Vec<_>, CostsError>>()?;
            Ok(LayoutImageCosts {
                layout: layout.clone(),
                images,
            })
        })
        .collect()
}
