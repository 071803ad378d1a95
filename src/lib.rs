//! overlaybench: storage diagnostics and benchmarks for Linux OverlayFS as
//! container engines use it. See DESIGN.md for the architecture.
//!
//! Flow: `cli` args → `plan::RunPlan` (validated) → `runner::run`: per backing a
//! `isolate::Scratch` filesystem, per workload (`workload::Workload`) fixtures
//! built by each `layout::Layout`, samples → `measure::Stats` → `report`.

pub mod capacity;
pub mod cli;
pub mod compare;
pub mod doctor;
pub mod error;
pub mod fault;
pub mod host;
pub mod image;
pub mod isolate;
pub mod layout;
pub mod measure;
pub mod plan;
pub mod report;
pub mod runner;
pub mod workload;
