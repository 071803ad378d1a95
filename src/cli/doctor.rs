//! `overlaybench doctor` arguments, lowered into a `DoctorConfig`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use overlaybench::app::doctor::{self, DoctorConfig};
use overlaybench::isolate;

/// `overlaybench doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Machine-readable JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// The backing path to inspect [default: the store's (--store, or the one found), else .].
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// A store to inventory: a Docker data root, its overlay2/ or overlay/ dir, or a
    /// containers-storage root [default: /var/lib/docker or /var/lib/containers/storage if present].
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Root under which etc/docker/daemon.json and etc/containers/storage.conf are read.
    #[arg(long, default_value = "/")]
    pub config_root: PathBuf,
    /// Skip the feature probes (they mount tiny overlays in a private namespace).
    #[arg(long)]
    pub no_probe: bool,
    /// Ignored: doctor writes nothing (its probes use a private in-memory tmpfs).
    #[arg(long, hide = true)]
    pub scratch: Option<PathBuf>,
}

impl DoctorArgs {
    /// The library's config.
    pub fn to_config(&self) -> DoctorConfig {
        DoctorConfig {
            path: self.path.clone(),
            store: self.store.clone(),
            config_root: self.config_root.clone(),
            no_probe: self.no_probe,
        }
    }
}

/// Diagnoses the host; the probes isolate first (no thread exists yet).
pub fn execute(args: DoctorArgs) -> anyhow::Result<i32> {
    let cfg = args.to_config();
    if args.scratch.is_some() {
        super::out::err_line(
            "warning: --scratch is ignored: doctor writes nothing (its probes use a private in-memory tmpfs)",
        );
    }
    let privilege = (!cfg.no_probe).then(isolate::enter_private_namespace);
    if matches!(privilege, Some(Ok(_))) {
        // Nothing to finish or mark: the probes' mounts die with the namespace.
        super::signals::install(super::signals::FirstSignal::Exit, || {})
            .context("installing the signal handling")?;
    }
    let report = doctor::doctor(&cfg, privilege)?;
    let text = if args.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&report).context("serialising the doctor report")?
        )
    } else {
        overlaybench::doctor::render_text(&report)
    };
    super::out::stdout(&text)?;
    Ok(0)
}
