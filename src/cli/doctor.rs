//! `overlaybench doctor` arguments, lowered into a `DoctorConfig`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use overlaybench::app::doctor::{self, DoctorConfig};
use overlaybench::isolate;

use super::ImageArgs;

/// `overlaybench doctor`.
#[derive(Debug, Clone, Args)]
pub struct DoctorArgs {
    /// Machine-readable JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Exit as a node-problem-detector custom plugin: 0 when no check fails, 1 when
    /// one does (warnings are not problems), anything else (2, 3) when doctor
    /// itself could not run. Without --json it prints one line (NPD's message).
    #[arg(long)]
    pub exit_code: bool,
    /// The backing path to inspect [default: the store's (--store, or the one found), else .].
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// A store to inventory: a Docker data root or its overlay2/, overlay/ or btrfs/
    /// dir, a containers-storage root (rootful or rootless), a containerd root or its
    /// io.containerd.snapshotter.v1.overlayfs dir [default: every store at the
    /// engines' default places: /var/lib/docker, /var/lib/containers/storage,
    /// /var/lib/containerd, ~/.local/share/containers/storage of root and /home/*].
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Root under which etc/docker/daemon.json and etc/containers/storage.conf are
    /// read and the default stores are looked for.
    #[arg(long, default_value = "/")]
    pub config_root: PathBuf,
    /// A `run` report (report.json or its folder): the recommendation cites its
    /// figures per layout and, when it was measured on this kernel, may rank the
    /// stacks by them.
    #[arg(long, value_name = "REPORT")]
    pub from: Option<PathBuf>,
    /// Skip the feature probes (they mount tiny overlays in a private namespace).
    #[arg(long)]
    pub no_probe: bool,
    /// Images to profile layer by layer, from their layer streams (nothing is
    /// mounted or written): entries, hard links, whiteouts, file sizes,
    /// estimated inodes and disk per layer.
    #[command(flatten)]
    pub image: ImageArgs,
    /// Do not profile the store's images (each of their layers is walked).
    #[arg(long)]
    pub no_store_images: bool,
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
            images: self.image.images.clone(),
            image_options: self.image.open_options(),
            store_images: !self.no_store_images,
            from: self.from.clone(),
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
    let problem = overlaybench::doctor::failing_checks(&report);
    let text = if args.json {
        format!(
            "{}\n",
            serde_json::to_string_pretty(&report).context("serialising the doctor report")?
        )
    } else if args.exit_code {
        // NPD keeps the first line as the condition's message.
        if problem.is_empty() {
            "ok: no doctor check fails\n".to_string()
        } else {
            format!("problem: {}\n", problem.join("; "))
        }
    } else {
        overlaybench::doctor::render_text(&report)
    };
    super::out::stdout(&text)?;
    Ok(if args.exit_code && !problem.is_empty() {
        1
    } else {
        0
    })
}
