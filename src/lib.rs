//! overlaybench: storage diagnostics and benchmarks for Linux container storage
//! as container engines lay it out. The library knows no command line: the
//! `overlaybench` binary parses arguments, lowers them into the configs defined
//! here and calls `app`. See `docs/architecture.md` for the layers and the data
//! flow of a run.
//!
//! Layers, each depending only on those below it:
//! - `app` — one function per subcommand;
//! - `config` (a run's validated plan), `doctor`, `compare`, `capacity`, `claims`
//!   (Docker's storage notes checked on this host), `fleet` (node reports merged,
//!   the Kubernetes manifests);
//! - `workload` — one folder per workload, reached through its registry;
//! - `layout` (one file per storage layout), `report` (schema, sections, charts,
//!   exports), `image` (specs, sources, the entry stream), `host`;
//! - `isolate` (namespace, scratch filesystems, mounts), `probe` (kernel reads),
//!   `input` (the bounded reader and path canonicalisation every input goes through),
//!   `stats` (pure maths), `error` (exit-code classes), `sys` (the raw system
//!   calls neither nix nor rustix wraps, each behind a wrapper that says why it
//!   is sound: the only user of the libc crate).

pub mod app;
pub mod capacity;
pub mod choice;
pub mod claims;
pub mod compare;
pub mod config;
pub mod doctor;
pub mod error;
pub mod fault;
pub mod findings;
pub mod fleet;
pub mod host;
pub mod image;
pub mod input;
pub mod isolate;
pub mod layout;
pub mod probe;
pub mod report;
pub mod runtime;
pub mod stats;
pub mod stop;
pub mod sys;
pub mod workload;
