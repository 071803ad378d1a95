//! Engine storage configuration: Docker's daemon.json and containers-storage's
//! storage.conf. Read only; a malformed or hostile file is reported, never fatal.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::layout::stores::{LEGACY_OVERLAY, OVERLAY2};
use crate::layout::{FUSE_OVERLAYFS_PROGRAM, OVERLAY_FSTYPE};

/// Files larger than this are not read (a config is a few hundred bytes).
pub const MAX_CONFIG_BYTES: u64 = crate::input::CONFIG_MAX_BYTES;

/// What one engine's config says about storage.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// `docker` or `containers-storage`.
    pub engine: String,
    /// The file read.
    pub file: String,
    /// Whether it exists.
    pub found: bool,
    /// Why it could not be read or parsed (with the line where the parser says).
    pub error: Option<String>,
    /// Storage driver configured.
    pub driver: Option<String>,
    /// Driver options (`storage-opts`, `mountopt`, `mount_program`).
    pub options: Vec<String>,
    /// Things to fix.
    pub warnings: Vec<String>,
}

/// The config's text, `None` when absent; a FIFO, device, oversized or
/// non-UTF-8 file is an error to report, never a hang.
fn read_limited(path: &Path) -> Result<Option<String>, String> {
    match crate::input::read_text(
        path,
        MAX_CONFIG_BYTES,
        "a config file",
        crate::input::Follow::Symlinks,
    ) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

/// Parses Docker's daemon.json text.
pub fn parse_docker(text: &str) -> EngineConfig {
    let mut c = EngineConfig {
        engine: "docker".into(),
        found: true,
        ..Default::default()
    };
    let v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            c.error = Some(format!(
                "invalid JSON at line {} column {}: {e}",
                e.line(),
                e.column()
            ));
            return c;
        }
    };
    let Some(obj) = v.as_object() else {
        c.error = Some("daemon.json must be a JSON object".into());
        return c;
    };
    match obj.get("storage-driver") {
        Some(serde_json::Value::String(d)) => c.driver = Some(d.clone()),
        Some(other) => c
            .warnings
            .push(format!("storage-driver should be a string, found {other}")),
        None => {}
    }
    match obj.get("storage-opts") {
        Some(serde_json::Value::Array(a)) => {
            for o in a {
                match o.as_str() {
                    Some(s) => c.options.push(s.to_string()),
                    None => c
                        .warnings
                        .push(format!("storage-opts entry {o} is not a string")),
                }
            }
        }
        Some(other) => c.warnings.push(format!(
            "storage-opts should be an array of strings, found {other}"
        )),
        None => {}
    }
    for o in &c.options {
        let key = o.split('=').next().unwrap_or("");
        if key == "overlay2.override_kernel_check" {
            c.warnings.push(format!(
                "'{o}': overlay2.override_kernel_check is deprecated and not accepted by current Docker engines; remove it"
            ));
        }
    }
    match c.driver.as_deref() {
        // Docker's driver names are the layouts' (its legacy driver is ours).
        Some(d) if d == LEGACY_OVERLAY.name => c.warnings.push(format!(
            "storage-driver '{d}' is the legacy driver, deprecated in favour of {} (see the recommendation)",
            OVERLAY2.name
        )),
        Some(d @ ("aufs" | "devicemapper")) => {
            c.warnings.push(format!("storage-driver '{d}' is deprecated; overlay2 is the supported default"))
        }
        _ => {}
    }
    c
}

#[derive(Deserialize)]
struct StorageConf {
    storage: Option<StorageSection>,
}

#[derive(Deserialize)]
struct StorageSection {
    driver: Option<String>,
    options: Option<toml::Table>,
}

/// Parses containers-storage's storage.conf text.
pub fn parse_containers(text: &str) -> EngineConfig {
    let mut c = EngineConfig {
        engine: "containers-storage".into(),
        found: true,
        ..Default::default()
    };
    let conf: StorageConf = match toml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            c.error = Some(match line {
                Some(l) => format!("invalid TOML at line {l}: {}", e.message()),
                None => format!("invalid TOML: {}", e.message()),
            });
            return c;
        }
    };
    let Some(storage) = conf.storage else {
        c.warnings.push("no [storage] table".into());
        return c;
    };
    c.driver = storage.driver;
    if let Some(opts) = storage.options {
        // containers-storage names its overlay driver's table after the filesystem.
        let overlay = opts.get(OVERLAY_FSTYPE).and_then(|v| v.as_table());
        for (scope, table) in [("", Some(&opts)), ("overlay.", overlay)] {
            let Some(table) = table else { continue };
            for key in ["mount_program", "mountopt"] {
                if let Some(v) = table.get(key) {
                    let shown = v
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string());
                    c.options.push(format!("{scope}{key}={shown}"));
                }
            }
        }
    }
    if c.options
        .iter()
        .any(|o| o.contains("mount_program") && o.contains(FUSE_OVERLAYFS_PROGRAM))
    {
        c.warnings.push(
            "mount_program is fuse-overlayfs: the kernel's overlay (rootless since Linux 5.11) is usually faster".into(),
        );
    }
    c
}

/// Reads both engines' configs below `root` (normally `/`). containers-storage
/// reads `/etc/containers/storage.conf` when it exists, else the packaged
/// default `/usr/share/containers/storage.conf`; so does this.
pub fn read_all(root: &Path) -> Vec<EngineConfig> {
    let mut out = Vec::new();
    for (engine, rels, parse) in [
        (
            "docker",
            &["etc/docker/daemon.json"][..],
            parse_docker as fn(&str) -> EngineConfig,
        ),
        (
            "containers-storage",
            &[
                "etc/containers/storage.conf",
                "usr/share/containers/storage.conf",
            ][..],
            parse_containers,
        ),
    ] {
        let path = rels
            .iter()
            .map(|r| root.join(r))
            .find(|p| std::fs::symlink_metadata(p).is_ok())
            .unwrap_or_else(|| root.join(rels[0]));
        let mut c = match read_limited(&path) {
            Ok(Some(text)) => parse(&text),
            Ok(None) => EngineConfig {
                engine: engine.into(),
                ..Default::default()
            },
            Err(e) => EngineConfig {
                engine: engine.into(),
                found: true,
                error: Some(e),
                ..Default::default()
            },
        };
        c.file = path.display().to_string();
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_flags_removed_options() {
        let c = parse_docker(
            r#"{"storage-driver":"overlay2","storage-opts":["overlay2.override_kernel_check=true"],"x":1}"#,
        );
        assert_eq!(c.driver.as_deref(), Some("overlay2"));
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("override_kernel_check")),
            "{c:?}"
        );
        let bad = parse_docker("{\n  \"storage-driver\": overlay2\n}");
        assert!(
            bad.error.as_deref().is_some_and(|e| e.contains("line 2")),
            "{bad:?}"
        );
        assert!(parse_docker("[1,2]").error.is_some());
        assert!(parse_docker(r#"{"storage-opts": 7}"#).warnings[0].contains("array"));
    }

    #[test]
    fn storage_conf_reads_driver_and_mount_options() {
        let c = parse_containers(
            "[storage]\ndriver = \"overlay\"\n[storage.options.overlay]\nmountopt = \"nodev,metacopy=on\"\nmount_program = \"/usr/bin/fuse-overlayfs\"\n",
        );
        assert_eq!(c.driver.as_deref(), Some("overlay"));
        assert!(
            c.options
                .contains(&"overlay.mountopt=nodev,metacopy=on".to_string()),
            "{c:?}"
        );
        assert!(c.warnings.iter().any(|w| w.contains("fuse-overlayfs")));
        let bad = parse_containers("[storage]\ndriver = \n");
        assert!(
            bad.error.as_deref().is_some_and(|e| e.contains("line 2")),
            "{bad:?}"
        );
    }
}
