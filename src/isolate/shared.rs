//! Mounts that several containers stand on at once — an EROFS layer every
//! container of an image stacks, a composefs metadata image — made by the first
//! container that needs one, kept while any holds it, unmounted by the last.
//!
//! One lock covers the count and the mount syscalls, so a mount is never made at
//! a target another thread is still unmounting. A holder that is dropped (panic,
//! early return) lets go lazily (`MNT_DETACH`); `SharedMount::release` reports
//! an unmount that fails. Either way nothing outlives the private namespace.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{IsolateError, MountGuard};

struct Entry {
    holders: usize,
    guard: MountGuard,
}

type Table = Arc<Mutex<HashMap<PathBuf, Entry>>>;

fn lock(t: &Table) -> MutexGuard<'_, HashMap<PathBuf, Entry>> {
    // A holder that panicked left the table consistent (counts change last).
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// A registry of shared mounts, one per target path.
#[derive(Clone, Default)]
pub struct SharedMounts {
    table: Table,
}

impl std::fmt::Debug for SharedMounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMounts")
            .field("mounted", &lock(&self.table).len())
            .finish()
    }
}

impl SharedMounts {
    /// An empty registry.
    pub fn new() -> SharedMounts {
        SharedMounts::default()
    }

    /// A hold on the mount at `target`; `mount` makes it when nobody holds it now
    /// (and its `MountGuard` is kept until the last holder lets go). Returns
    /// whether this call made it.
    pub fn acquire(
        &self,
        target: &Path,
        mount: impl FnOnce() -> Result<MountGuard, IsolateError>,
    ) -> Result<(SharedMount, bool), IsolateError> {
        let mut t = lock(&self.table);
        let made = match t.get_mut(target) {
            Some(e) => {
                e.holders += 1;
                false
            }
            None => {
                let guard = mount()?;
                t.insert(target.to_path_buf(), Entry { holders: 1, guard });
                true
            }
        };
        Ok((
            SharedMount {
                table: self.table.clone(),
                target: target.to_path_buf(),
                held: true,
            },
            made,
        ))
    }
}

/// One holder's claim on a shared mount.
#[derive(Debug)]
pub struct SharedMount {
    table: Table,
    target: PathBuf,
    held: bool,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} holders of {}",
            self.holders,
            self.guard.target().display()
        )
    }
}

impl SharedMount {
    /// Where the shared mount is.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Lets go now; the last holder unmounts and reports a failure.
    pub fn release(mut self) -> Result<(), IsolateError> {
        self.held = false;
        self.let_go(true)
    }

    /// Drops this hold; the last holder unmounts while the lock is held, so no
    /// new mount can be made at the target meanwhile (`report`: a plain unmount
    /// whose failure is returned; else a lazy one, for the drop path).
    fn let_go(&self, report: bool) -> Result<(), IsolateError> {
        let mut t = lock(&self.table);
        let last = match t.get_mut(&self.target) {
            Some(e) => {
                e.holders = e.holders.saturating_sub(1);
                e.holders == 0
            }
            None => false,
        };
        if !last {
            return Ok(());
        }
        match t.remove(&self.target) {
            Some(e) if report => e.guard.unmount(),
            // Dropping the guard detaches it lazily.
            _ => Ok(()),
        }
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        if self.held {
            self.held = false;
            let _ = self.let_go(false);
        }
    }
}

/// A hold is undone like any mount of a view: after the overlay stacked on it
/// (a `Mounted`'s guards are undone in order), the last holder unmounts.
impl super::Unmount for SharedMount {
    fn target(&self) -> &Path {
        &self.target
    }

    fn unmount(self: Box<Self>) -> Result<(), IsolateError> {
        self.release()
    }
}
