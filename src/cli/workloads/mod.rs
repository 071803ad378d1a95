//! Each workload's `run` options: one clap group per workload, in its own file
//! under its own help heading, lowered into that workload's library options
//! type (the library knows no command line). A flag whose meaning differs by
//! workload carries the workload's prefix (`--storm-depths`); the flags every
//! workload shares stay in `RunArgs`.
//!
//! Adding a workload's options: its file here and one line in `GROUPS`.

pub mod app;
pub mod copy_up;
pub mod import;
pub mod inodes;
pub mod lookup;
pub mod page_cache;
pub mod storm;

use clap::{ArgMatches, Command};

use overlaybench::workload::{AnyOptions, WorkloadOptions};

/// The registry of option groups: one line per workload that takes options, in
/// `--help` order.
pub static GROUPS: &[Group] = &[
    group::<lookup::LookupArgs>(),
    group::<copy_up::CopyUpArgs>(),
    group::<inodes::InodesArgs>(),
    group::<page_cache::PageCacheArgs>(),
    group::<import::ImportArgs>(),
    group::<storm::StormArgs>(),
    group::<app::AppArgs>(),
];

/// One workload's group of `run` options.
pub trait OptionGroup: clap::Args {
    /// The heading its flags sit under in `run --help`: `<workload> options`
    /// (the struct's `next_help_heading` spells the same; a unit test holds
    /// them equal and the workload registered).
    const HEADING: &'static str;
    /// The library's options type it lowers into (with `From`).
    type Options: AnyOptions + From<Self>;
}

/// A registered group, type-erased: how it adds its flags to `run` and how it
/// reads them back into the workload's options.
pub struct Group {
    /// Its heading in `run --help`.
    pub heading: &'static str,
    augment: fn(Command) -> Command,
    lower: fn(&ArgMatches, &mut WorkloadOptions) -> Result<(), clap::Error>,
}

/// The registry line for `T`.
pub const fn group<T: OptionGroup>() -> Group {
    Group {
        heading: T::HEADING,
        augment: T::augment_args,
        lower: lower::<T>,
    }
}

fn lower<T: OptionGroup>(m: &ArgMatches, into: &mut WorkloadOptions) -> Result<(), clap::Error> {
    let args = T::from_arg_matches(m)?;
    into.set(T::Options::from(args));
    Ok(())
}

/// Every registered group's flags, flattened into `run` (each under its
/// heading), read back as the library's `WorkloadOptions`.
#[derive(Debug, Clone, Default)]
pub struct WorkloadArgs(pub WorkloadOptions);

impl clap::FromArgMatches for WorkloadArgs {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let mut options = WorkloadOptions::default();
        for g in GROUPS {
            (g.lower)(m, &mut options)?;
        }
        Ok(WorkloadArgs(options))
    }

    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl clap::Args for WorkloadArgs {
    fn augment_args(cmd: Command) -> Command {
        // Each group sets its own heading; a flag added after them is back
        // under the default one ("Options"), where `RunArgs` keeps the shared
        // flags.
        GROUPS
            .iter()
            .fold(cmd, |c, g| (g.augment)(c.next_help_heading(g.heading)))
            .next_help_heading(None::<&'static str>)
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command as Sub};
    use clap::{CommandFactory, Parser};
    use overlaybench::workload::{self, copy_up, inodes, lookup, page_cache, storm};

    fn options(args: &[&str]) -> WorkloadOptions {
        let cli = Cli::try_parse_from(["overlaybench", "run"].iter().chain(args))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match cli.command {
            Sub::Run(r) => r.workload.0,
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn each_prefixed_flag_sets_only_its_workload() {
        let o = options(&["--storm-depths", "1,4", "--storm-rounds", "3"]);
        assert_eq!(o.get::<storm::Options>().depths, Some(vec![1, 4]));
        assert_eq!(o.get::<storm::Options>().rounds, Some(3));
        assert_eq!(o.get::<lookup::Options>().depths, None);
        assert_eq!(o.get::<lookup::Options>().rounds, None);

        let o = options(&["--depths", "8,16", "--rounds", "2"]);
        assert_eq!(o.get::<lookup::Options>().depths, Some(vec![8, 16]));
        assert_eq!(o.get::<lookup::Options>().rounds, Some(2));
        assert_eq!(o.get::<storm::Options>().depths, None);
        assert_eq!(o.get::<storm::Options>().rounds, None);

        let o = options(&["--page-cache-containers", "1,3"]);
        assert_eq!(o.get::<page_cache::Options>().containers, Some(vec![1, 3]));
        assert_eq!(o.get::<inodes::Options>().containers, None);

        let o = options(&["--containers", "5", "--images", "4"]);
        assert_eq!(o.get::<inodes::Options>().containers, Some(5));
        assert_eq!(o.get::<inodes::Options>().images, Some(4));
        assert_eq!(o.get::<page_cache::Options>().containers, None);
        assert_eq!(o.get::<page_cache::Options>().images, None);

        let o = options(&["--cache-images", "1,2", "--sizes", "1M", "--depth", "7"]);
        assert_eq!(o.get::<page_cache::Options>().images, Some(vec![1, 2]));
        assert_eq!(o.get::<copy_up::Options>().sizes, Some(vec![1 << 20]));
        assert_eq!(o.get::<copy_up::Options>().depth, Some(7));
    }

    #[test]
    fn inodes_containers_is_one_number() {
        // It took the largest of a list while page-cache shared the flag.
        let err = Cli::try_parse_from(["overlaybench", "run", "--containers", "1,2"])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("--containers") && err.contains("1,2"), "{err}");
    }

    /// No group sets anything by default: the suite alone decides, as before
    /// the groups (the quick defaults `config` asserts are what `run` runs).
    #[test]
    fn defaults_leave_every_workload_to_its_suite() {
        let o = options(&[]);
        let same = |a: String, b: String| assert_eq!(a, b);
        same(
            format!("{:?}", o.get::<lookup::Options>()),
            format!("{:?}", lookup::Options::default()),
        );
        same(
            format!("{:?}", o.get::<copy_up::Options>()),
            format!("{:?}", copy_up::Options::default()),
        );
        same(
            format!("{:?}", o.get::<inodes::Options>()),
            format!("{:?}", inodes::Options::default()),
        );
        same(
            format!("{:?}", o.get::<page_cache::Options>()),
            format!("{:?}", page_cache::Options::default()),
        );
        same(
            format!("{:?}", o.get::<storm::Options>()),
            format!("{:?}", storm::Options::default()),
        );
    }

    #[test]
    fn every_group_belongs_to_one_registered_workload_under_its_heading() {
        let names = workload::names();
        let mut seen = Vec::new();
        for g in GROUPS {
            let w = g.heading.strip_suffix(" options").unwrap_or(g.heading);
            assert!(names.contains(&w), "{}: {w} is not registered", g.heading);
            assert!(!seen.contains(&w), "{w} has two groups");
            seen.push(w);
            // The struct's own heading, without the registry's.
            let cmd = (g.augment)(clap::Command::new("t"));
            let args: Vec<_> = cmd.get_arguments().collect();
            assert!(!args.is_empty(), "{w}");
            for a in args {
                assert_eq!(
                    a.get_help_heading(),
                    Some(g.heading),
                    "{w} {:?}",
                    a.get_long()
                );
            }
        }
    }

    #[test]
    fn run_help_lists_each_group_under_its_heading_and_shared_flags_first() {
        let mut cmd = Cli::command();
        let run = cmd.find_subcommand_mut("run").expect("run");
        let help = run.render_help().to_string();
        let at = |s: &str| {
            help.find(s)
                .unwrap_or_else(|| panic!("{s} missing:\n{help}"))
        };
        let mut last = at("--scratch");
        for g in GROUPS {
            let h = at(&format!("{}:", g.heading));
            assert!(h > last, "{} out of order:\n{help}", g.heading);
            last = h;
        }
        assert!(at("--storm-depths") > at("storm options:"));
        assert!(at("--depths") < at("storm options:"));
        assert!(at("--page-cache-containers") > at("page-cache options:"));
        assert!(
            help.contains("Build the layouts"),
            "run's about kept:\n{help}"
        );
    }
}
