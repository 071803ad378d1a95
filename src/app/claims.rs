//! `overlaybench claims`: every statement of Docker's overlay storage notes
//! checked on this host, on a fresh scratch filesystem, inside the caller's
//! private namespace. A refuted claim is a finding; only a host that cannot run
//! the claims at all (no overlay, not permitted, no mkfs) is an error.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use super::AppError;
use crate::claims::{self, ClaimEntry, ClaimError, ClaimsReport, Settings};
use crate::config::MountApiChoice;
use crate::host::HostInfo;
use crate::isolate::{BackingKind, Privilege, Scratch, ScratchRequest};
use crate::layout::LayoutConfig;
use crate::report::{ToolInfo, SCHEMA_VERSION};
use crate::workload::Suite;

/// What the user asked `claims` for.
#[derive(Debug, Clone)]
pub struct ClaimsConfig {
    /// Backing filesystem as spelled (`ext4`, `xfs`, `tmpfs`, `dir:PATH`).
    pub backing: String,
    /// Where the scratch filesystem is made.
    pub scratch: PathBuf,
    /// Settings preset.
    pub suite: Suite,
    /// Claims to check, by number or name (all when empty).
    pub only: Vec<String>,
    /// Overlay mount API.
    pub mount_api: MountApiChoice,
    /// Size of the scratch filesystem (default: from the settings).
    pub fs_size: Option<u64>,
}

/// A validated request: what runs where.
#[derive(Debug)]
pub struct ClaimsPlan {
    backing: BackingKind,
    selected: Vec<&'static ClaimEntry>,
    settings: Settings,
    scratch: PathBuf,
    mount_api: MountApiChoice,
    fs_size: Option<u64>,
}

impl TryFrom<&ClaimsConfig> for ClaimsPlan {
    type Error = AppError;

    fn try_from(cfg: &ClaimsConfig) -> Result<Self, AppError> {
        let backing = cfg
            .backing
            .parse::<BackingKind>()
            .map_err(AppError::Usage)?;
        let selected = cfg
            .only
            .iter()
            .map(|k| {
                claims::entry(k).ok_or_else(|| {
                    let known: Vec<String> = claims::CLAIMS
                        .iter()
                        .map(|c| format!("{} ({})", c.id, c.slug))
                        .collect();
                    AppError::Usage(format!(
                        "unknown claim '{k}'; choose numbers or names from: {}",
                        known.join(", ")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ClaimsPlan {
            backing,
            selected,
            settings: Settings::for_suite(cfg.suite),
            scratch: cfg.scratch.clone(),
            mount_api: cfg.mount_api,
            fs_size: cfg.fs_size,
        })
    }
}

/// How the claims ended.
#[derive(Debug)]
pub struct ClaimsOutcome {
    /// The claims with the host they ran on.
    pub report: ClaimsReport,
    /// Stopped by a signal between claims.
    pub interrupted: bool,
}

impl ClaimsOutcome {
    /// Whether an experiment failed (not a verdict: the experiment itself).
    pub fn failed(&self) -> bool {
        self.report.claims.claims.iter().any(|c| c.error.is_some())
    }
}

/// Checks the claims of `plan` on a fresh scratch filesystem. `privilege` is the
/// outcome of entering the private namespace (done by the caller before any
/// thread starts); `progress` is called before each claim.
pub fn claims(
    plan: &ClaimsPlan,
    privilege: Privilege,
    interrupted: &AtomicBool,
    progress: &mut dyn FnMut(&ClaimEntry),
) -> Result<ClaimsOutcome, AppError> {
    if !claims::overlay_available(crate::host::kernel_filesystems()) {
        return Err(ClaimError::Unsupported(
            "this kernel has no overlay filesystem (not in /proc/filesystems, fsopen refuses it); load the overlay \
             module (modprobe overlay) or use a kernel built with CONFIG_OVERLAY_FS"
                .into(),
        )
        .into());
    }
    let footprint = plan.settings.footprint_bytes();
    let scratch = Scratch::create(&ScratchRequest {
        root: plan.scratch.clone(),
        kind: plan.backing.clone(),
        planned_bytes: footprint,
        fs_size_bytes: plan.fs_size.unwrap_or_else(|| (footprint * 2).max(1 << 30)),
        inodes: Some(200_000),
    })?;
    let api = plan.mount_api.resolve();
    let config = LayoutConfig {
        mount_api: api,
        options: Vec::new(),
        privilege,
    };
    let (run, stopped) = claims::run_on(
        &scratch,
        &plan.backing.to_string(),
        &plan.selected,
        &config,
        &plan.settings,
        interrupted,
        progress,
    );
    let mut host = HostInfo::collect(std::path::Path::new("/"));
    host.privilege = Some(privilege);
    host.mount_api = Some(api);
    host.backings.push(scratch.info().clone());
    drop(scratch);
    Ok(ClaimsOutcome {
        report: ClaimsReport {
            schema_version: SCHEMA_VERSION,
            kind: "claims".into(),
            tool: ToolInfo {
                name: env!("CARGO_PKG_NAME").into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            host,
            claims: run,
        },
        interrupted: stopped,
    })
}
