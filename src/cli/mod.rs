//! The command line (clap derive), in the binary only: the library cannot see
//! these types. Each subcommand's args lower into the library's request/config
//! types, where all validation lives.

pub mod claims;
pub mod compare;
pub mod doctor;
pub mod fleet;
pub mod out;
pub mod plan;
pub mod report;
pub mod run;
pub mod signals;
pub mod workloads;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};

use overlaybench::choice::Choice;

/// Storage benchmarks for Linux container storage as container engines lay it out.
#[derive(Debug, Parser)]
#[command(name = "overlaybench", version, about, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build the layouts on a scratch filesystem, run workloads, write a report folder.
    Run(Box<run::RunArgs>),
    /// Re-render the SVG charts and summary.md of a report from its report.json.
    Report(report::ReportArgs),
    /// Capacity projection: how many images and containers fit before inodes or
    /// bytes run out, per layout, from costs measured on the real kernel.
    Plan(Box<plan::PlanArgs>),
    /// Diagnose this host's container storage (kernel features, backing filesystem,
    /// engine config, store inventory) and recommend a layout. Reads only.
    Doctor(doctor::DoctorArgs),
    /// Compare two reports: a CI gate. Exit 0 when nothing regressed, 1 when
    /// something did, 2 on bad input.
    Compare(compare::CompareArgs),
    /// Check each statement of Docker's overlay storage notes on this host, with a
    /// verdict and the figure behind it. Exit 0 when they ran (a refuted claim is a
    /// finding), 3 when the host cannot run them.
    Claims(claims::ClaimsArgs),
    /// Fleets on Kubernetes: manifests, a node's run in a pod, the merge of node
    /// reports into a fleet report, and the fleet-wide gate.
    Fleet(fleet::FleetArgs),
}

/// The user's images, as every subcommand that takes them spells them.
#[derive(Debug, Clone, clap::Args)]
pub struct ImageArgs {
    /// An image to measure (repeatable), in skopeo's transport spelling:
    /// oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:REF],
    /// containers-storage:[ROOT]NAME, docker:ROOT:NAME, registry:HOST/REPO:TAG.
    #[arg(long = "image", id = "image", value_name = "SRC")]
    pub images: Vec<String>,
    /// Platform to pick from a multi-platform image, os/arch[/variant] [default: this host's].
    #[arg(long)]
    pub platform: Option<String>,
    /// Talk plain HTTP to a registry on a loopback address (a local test registry).
    #[arg(long)]
    pub registry_insecure: bool,
    /// Most time one registry request (a manifest, a token, a layer blob) may
    /// spend waiting on the network, e.g. 90s or 10m [default: 120 s plus 1 s
    /// per MiB the request is expected to carry].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub registry_timeout: Option<std::time::Duration>,
    /// A registry transfer slower than this, averaged over WINDOW of waiting,
    /// fails naming the URL and its rate; 0 turns the check off
    /// [default: 16K/30s].
    #[arg(long, value_name = "BYTES[/WINDOW]", value_parser = parse_rate)]
    pub registry_min_rate: Option<(u64, Option<std::time::Duration>)>,
}

impl ImageArgs {
    /// How the library opens them.
    pub fn open_options(&self) -> overlaybench::image::source::OpenOptions {
        overlaybench::image::source::OpenOptions {
            platform: self.platform.clone(),
            registry_insecure: self.registry_insecure,
            registry_limits: {
                let mut l = overlaybench::image::source::RegistryLimits {
                    timeout: self.registry_timeout,
                    ..Default::default()
                };
                if let Some((rate, window)) = self.registry_min_rate {
                    l.min_rate = rate;
                    l.rate_window = window.unwrap_or(l.rate_window);
                }
                l
            },
        }
    }
}

/// A value parser for a library `Choice`: its names, with their help.
pub fn choice<T: Choice + Clone>() -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(
        T::ALL
            .iter()
            .map(|c| PossibleValue::new(c.name()).help(c.about())),
    )
    .try_map(|s| T::parse(&s))
}

/// A value parser for one of a registry's names (layouts, workloads).
pub fn one_of(names: Vec<&'static str>) -> impl TypedValueParser<Value = String> {
    PossibleValuesParser::new(names)
}

/// Parses a positive duration: `90s`, `10m`, `1h 30m`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("invalid duration '{s}': must be more than 0")),
        Err(e) => Err(format!("invalid duration '{s}': {e} (examples: 90s, 10m)")),
    }
}

/// Parses a rate in bytes per second with an optional averaging window:
/// `16K`, `1M/10s`, `0`.
pub fn parse_rate(s: &str) -> Result<(u64, Option<std::time::Duration>), String> {
    let (bytes, window) = match s.split_once('/') {
        Some((b, w)) => (b, Some(parse_duration(w)?)),
        None => (s, None),
    };
    Ok((parse_size(bytes)?, window))
}

/// Parses `64M`, `1G`, `4096` (binary multiples: 1K = 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(s)
        .map_err(|e| format!("invalid size '{s}': {e} (examples: 4096, 64M, 2G)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert!(parse_size("lots").unwrap_err().contains("lots"));
    }
}
