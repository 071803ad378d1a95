//! A tmpfs that writes nothing on the host: mounted, inside the private mount
//! namespace, over a directory that already exists (`/tmp`, `/run`, …), so no
//! directory or marker is created anywhere. The mount hides that directory's
//! content from this process only (callers read what they need first) and dies
//! with the namespace.

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};

use super::{IsolateError, MountGuard};

/// Existing directories tried in turn; never `/`, `/proc`, `/sys` or `/dev`,
/// which later reads need.
const CANDIDATES: &[&str] = &["/tmp", "/run", "/var/tmp", "/mnt", "/media", "/opt", "/srv"];

/// A private tmpfs; unmounted when dropped.
#[derive(Debug)]
pub struct PrivateTmpfs {
    guard: MountGuard,
}

impl PrivateTmpfs {
    /// Mounts a tmpfs of `size_bytes` over the first existing candidate directory.
    /// The caller must already be in the private mount namespace.
    pub fn mount(size_bytes: u64) -> Result<PrivateTmpfs, IsolateError> {
        let target = CANDIDATES
            .iter()
            .map(PathBuf::from)
            .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()))
            .ok_or_else(|| {
                IsolateError::Unsupported(format!(
                    "no existing directory to mount a private tmpfs on (tried {})",
                    CANDIDATES.join(", ")
                ))
            })?;
        let data = format!("size={size_bytes},mode=0700");
        mount(
            Some("tmpfs"),
            &target,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(data.as_str()),
        )
        .map_err(|e| IsolateError::Mount {
            fstype: "tmpfs".into(),
            target: target.clone(),
            source: e.into(),
        })?;
        Ok(PrivateTmpfs {
            guard: MountGuard::new(target),
        })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.guard.target()
    }
}
