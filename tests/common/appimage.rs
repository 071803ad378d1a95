//! The application fixture images of the `app` workload and the read-set
//! recorder (issue 26): Debian 12 minbase + python3 (a one-shot) and + redis
//! (a server with a ready line), built by `scripts/make-app-images` once per
//! test process and cached under target/ across runs (only the first build
//! needs the Debian mirror, `MIRROR` as for scripts/build-image).
//!
//! Use it from a test crate with
//! `#[path = "../common/appimage.rs"] #[allow(dead_code)] mod appimage;`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One fixture image.
#[derive(Debug, Clone)]
pub struct AppImage {
    /// The image source for `--image`: `oci:DIR:TAG`.
    pub source: String,
    /// The image's rootfs as its one layer holds it, unpacked by umoci (chroot
    /// into it to run the image's command outside any layout).
    pub rootfs: PathBuf,
    /// The image config's Entrypoint followed by its Cmd.
    pub command: Vec<String>,
}

/// Both fixtures.
#[derive(Debug, Clone)]
pub struct AppImages {
    /// Minbase + python3-minimal + libpython3.11-stdlib; its command
    /// `python3 -c 'import json, email.parser, http.client; print("imported")'`
    /// prints `imported` and exits 0.
    pub python: AppImage,
    /// Minbase + redis-server; its command `redis-server --save "" --appendonly no`
    /// prints `Ready to accept connections` and serves until signalled.
    pub redis: AppImage,
}

/// What the python fixture prints when it ran.
pub const PYTHON_OUTPUT: &str = "imported";
/// The redis fixture's ready line.
pub const REDIS_READY: &str = "Ready to accept connections";

fn python_command() -> Vec<String> {
    vec![
        "python3".into(),
        "-c".into(),
        r#"import json, email.parser, http.client; print("imported")"#.into(),
    ]
}

fn redis_command() -> Vec<String> {
    ["redis-server", "--save", "", "--appendonly", "no"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Builds (first call in this process; cached on disk across processes) and
/// returns the fixtures, or why they could not be built (no root, no
/// debootstrap/umoci, no mirror): the caller fails or skips with that text.
pub fn app_images() -> Result<&'static AppImages, String> {
    static IMAGES: OnceLock<Result<AppImages, String>> = OnceLock::new();
    IMAGES.get_or_init(build).as_ref().map_err(|e| e.clone())
}

/// `app_images()`, panicking with the reason: for tests that need them.
pub fn app_images_or_panic() -> &'static AppImages {
    match app_images() {
        Ok(i) => i,
        Err(e) => panic!("fixture images (scripts/make-app-images): {e}"),
    }
}

fn build() -> Result<AppImages, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(root.join("scripts/make-app-images"))
        .output()
        .map_err(|e| format!("scripts/make-app-images: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "scripts/make-app-images: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let find = |name: &str, command: Vec<String>| -> Result<AppImage, String> {
        stdout
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ');
                match (f.next(), f.next(), f.next(), f.next()) {
                    (Some(n), Some(src), Some(rootfs), None) if n == name => Some(AppImage {
                        source: src.to_string(),
                        rootfs: PathBuf::from(rootfs),
                        command: command.clone(),
                    }),
                    _ => None,
                }
            })
            .next()
            .ok_or_else(|| format!("scripts/make-app-images printed no {name} line:\n{stdout}"))
    };
    Ok(AppImages {
        python: find("python", python_command())?,
        redis: find("redis", redis_command())?,
    })
}
