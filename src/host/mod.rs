//! Facts about the host a report was measured on. Readers take a root path so
//! tests can feed captured trees.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::isolate::{BackingInfo, MountApi, Privilege};

pub mod conditions;
pub mod machine;

/// `/proc/filesystems`' text, read once per process: every judgement of what
/// this kernel can mount (run, claims, doctor's facts and probes) sees the same
/// list. Unreadable, it is empty: then no filesystem is taken as present.
pub fn kernel_filesystems() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| fs::read_to_string("/proc/filesystems").unwrap_or_default())
}

/// The host and how the run used it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostInfo {
    /// `uname -r`.
    pub kernel_release: String,
    /// `uname -v`.
    pub kernel_version: String,
    /// `uname -m`.
    pub arch: String,
    /// The first CPU's brand (its `model name`).
    pub cpu_model: String,
    /// Online CPUs.
    pub cores: usize,
    /// MemTotal, bytes.
    pub memory_bytes: u64,
    /// The distribution and its version (`os-release`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Page size, bytes.
    pub page_size: u64,
    /// /sys/module/overlay/parameters/* (empty if overlay is not loaded).
    pub overlay_params: BTreeMap<String, String>,
    /// Root or rootless (user namespace).
    pub privilege: Option<Privilege>,
    /// Mount API used for overlays.
    pub mount_api: Option<MountApi>,
    /// Each backing filesystem made for the run.
    pub backings: Vec<BackingInfo>,
    /// Per layout: overlay superblock options in force, read back from mountinfo
    /// (one example mount).
    pub overlay_options_in_force: BTreeMap<String, String>,
    /// Bare metal, virtualised or emulated (QEMU TCG), and the signs read:
    /// timings from an emulated CPU compare with nothing else (absent in
    /// reports written before it was recorded).
    #[serde(default)]
    pub machine: Option<machine::Machine>,
}

impl HostInfo {
    /// Reads kernel, CPU, memory and OS of this host (uname, `sysinfo`) and the
    /// overlay parameters under `root` (normally `/`).
    pub fn collect(root: &Path) -> HostInfo {
        use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing())
                .with_memory(MemoryRefreshKind::nothing().with_ram()),
        )
        .ok();
        let uname = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uname
                .as_ref()
                .map(|u| f(u).to_string_lossy().into_owned())
                .unwrap_or_default()
        };
        HostInfo {
            kernel_release: field(|u| u.release()),
            kernel_version: field(|u| u.version()),
            arch: field(|u| u.machine()),
            cpu_model: sys
                .as_ref()
                .and_then(|s| s.cpus().first().map(|c| c.brand().to_string()))
                .unwrap_or_default(),
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_bytes: sys.as_ref().map_or(0, System::total_memory),
            os: System::long_os_version().ok(),
            page_size: nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
                .ok()
                .flatten()
                .unwrap_or(4096) as u64,
            overlay_params: read_params(&root.join("sys/module/overlay/parameters")),
            machine: Some(machine::classify(&machine::Signs::read(root))),
            ..HostInfo::default()
        }
    }
}

fn read_params(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let v = fs::read_to_string(e.path()).ok()?;
            Some((
                e.file_name().to_string_lossy().into_owned(),
                v.trim().to_string(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The live host's facts, against /proc as the kernel shows it.
    #[test]
    fn cpu_and_memory_match_proc() {
        let info = HostInfo::collect(Path::new("/"));
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").expect("cpuinfo");
        let model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map(str::trim)
            .unwrap_or_default();
        assert_eq!(info.cpu_model, model);
        let total = crate::probe::memory::Memory::current()
            .expect("meminfo")
            .total_bytes;
        assert_eq!(info.memory_bytes, total);
        assert!(info.cores >= 1);
    }

    #[test]
    fn reads_overlay_params_from_a_tree() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("sys/module/overlay/parameters");
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("metacopy"), "N\n").expect("write");
        let info = HostInfo::collect(root.path());
        assert_eq!(
            info.overlay_params.get("metacopy").map(String::as_str),
            Some("N")
        );
    }
}
