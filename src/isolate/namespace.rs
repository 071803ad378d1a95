//! The private mount namespace every mount of ours lives in.
//!
//! Entered at the very top of `main`, before any thread exists: a thread started
//! earlier would stay in the caller's namespace and its mounts would leak. When the
//! process ends — normally, by panic, by SIGKILL — the kernel tears the namespace
//! and every mount in it down, so the caller's view never shows anything of ours.

use std::fs;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::unistd::{getegid, geteuid};

use super::IsolateError;

/// How we are allowed to mount inside the namespace.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Privilege {
    /// Real root: every backing and `drop_caches` are available.
    Root,
    /// Unprivileged, inside a user namespace: overlay needs `userxattr`, no loop devices.
    Rootless,
}

/// Moves the calling (single-threaded) process into a private mount namespace.
///
/// As root this is `unshare(CLONE_NEWNS)` + `/` made recursively private. Without
/// root it first enters a user namespace mapping the caller to uid 0 there.
pub fn enter_private_namespace() -> Result<Privilege, IsolateError> {
    let threads = thread_count();
    if threads > 1 {
        return Err(IsolateError::NotSingleThreaded { threads });
    }
    let privilege = if geteuid().is_root() {
        unshare(CloneFlags::CLONE_NEWNS).map_err(|source| IsolateError::Unshare {
            what: "a mount namespace",
            source,
        })?;
        Privilege::Root
    } else {
        enter_user_namespace()?;
        Privilege::Rootless
    };
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|source| IsolateError::Unshare {
        what: "a private propagation for /",
        source,
    })?;
    Ok(privilege)
}

fn enter_user_namespace() -> Result<(), IsolateError> {
    let (uid, gid) = (geteuid(), getegid());
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).map_err(|source| {
        IsolateError::Unsupported(format!(
            "not root, and user namespaces are unavailable ({source}); run as root, or allow \
             unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)"
        ))
    })?;
    let write = |path: &str, text: String| {
        fs::write(path, text).map_err(|e| {
            IsolateError::Unsupported(format!("writing {path} in the new user namespace: {e}"))
        })
    };
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("0 {uid} 1"))?;
    write("/proc/self/gid_map", format!("0 {gid} 1"))?;
    Ok(())
}

/// Whether this process runs in a user namespace that is not the host's (its
/// uid 0 is then not real root: no loop devices, no drop_caches).
pub fn in_user_namespace() -> bool {
    let map = fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
    let fields: Vec<&str> = map.split_whitespace().collect();
    fields.as_slice() != ["0", "0", "4294967295"]
}

fn thread_count() -> usize {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(1)
}
