//! doctor's store inventory against real stores: ones this project's layouts
//! write, containers-storage roots made by the real containers-storage tool
//! (overlay, and btrfs on a btrfs filesystem made here), and a containerd store
//! made by a containerd daemon the test starts on its own root.

use std::path::Path;
use std::process::Command;

use libtest_mimic::{Failed, Trial};

use overlaybench::doctor::store::inventory;
use overlaybench::image::SyntheticImage;
use overlaybench::image::{generate, Change, GeneratorParams, ImageShape};
use overlaybench::isolate::{BackingKind, MountApi};
use overlaybench::layout::{self};

fn image() -> overlaybench::image::ImageSpec {
    generate(
        &ImageShape::try_from(GeneratorParams {
            seed: 4,
            layers: 5,
            files_per_layer: 30,
            dirs_per_layer: 6,
            ..Default::default()
        })
        .expect("shape"),
    )
}

fn inventories_own_overlay2_store() -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let img = image();
    let l = layout::make("overlay2", &crate::config(MountApi::New));
    let prepared = l.prepare(
        &SyntheticImage::new("test", img.clone()),
        &scratch.path().join("store"),
    )?;
    let inv = inventory(&prepared.root)?.ok_or("no store recognised")?;
    // Whiteouts that are not swallowed by a later deletion/opaque of an ancestor.
    let whiteouts: u64 = prepared
        .layer_dirs
        .iter()
        .map(|d| overlaybench::probe::census::census(d).map(|c| c.whiteouts))
        .sum::<Result<u64, _>>()?;
    let deletes = img
        .layers
        .iter()
        .flat_map(|l| &l.changes)
        .filter(|c| matches!(c, Change::Delete { .. }))
        .count() as u64;
    if inv.format != "overlay2"
        || inv.layers != 5
        || inv.deepest_chain != 5
        || inv.whiteouts != whiteouts
        || whiteouts == 0
        || whiteouts > deletes
    {
        return Err(format!("inventory {inv:?}; expected 5 layers, chain 5, {whiteouts} whiteouts (≤ {deletes} deletions)").into());
    }
    if !inv.broken_links.is_empty() || inv.inodes == 0 {
        return Err(format!("{inv:?}").into());
    }
    Ok(())
}

fn inventories_own_legacy_store() -> Result<(), Failed> {
    let (_tmp, scratch) = crate::scratch(BackingKind::Ext4);
    let l = layout::make("overlay", &crate::config(MountApi::New));
    let prepared = l.prepare(
        &SyntheticImage::new("test", image().clone()),
        &scratch.path().join("store"),
    )?;
    let inv = inventory(&prepared.root)?.ok_or("no store recognised")?;
    let whole = overlaybench::probe::census::census(&prepared.root)?;
    if inv.format != "overlay"
        || inv.layers != 5
        || inv.hardlink_paths == 0
        || inv.inodes != whole.distinct_inodes
    {
        return Err(format!(
            "inventory {inv:?}; expected legacy, 5 layers, shared hard links, {} inodes",
            whole.distinct_inodes
        )
        .into());
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<String, Failed> {
    let out = cmd
        .output()
        .map_err(|e| format!("{cmd:?}: {e} (install containers-storage: scripts/setup)"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_string())
}

fn tar(dir: &Path, out: &Path) -> Result<(), Failed> {
    run(Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg("."))?;
    Ok(())
}

fn inventories_a_containers_storage_root() -> Result<(), Failed> {
    let tmp = tempfile::Builder::new()
        .prefix("obk-cs-")
        .tempdir_in("/var/tmp")?;
    let t = tmp.path();
    for (p, body) in [
        ("l1/etc/a", "a"),
        ("l1/etc/b", "b"),
        ("l1/usr/bin/x", "x"),
        ("l2/etc/a", "a2"),
        ("l2/etc/.wh.b", ""),
    ] {
        let f = t.join(p);
        std::fs::create_dir_all(f.parent().ok_or("parent")?)?;
        std::fs::write(f, body)?;
    }
    // Two names for one inode, twice: `find -links +1` sees 4 paths on 2 inodes.
    std::fs::hard_link(t.join("l1/etc/a"), t.join("l1/etc/a-link"))?;
    std::fs::hard_link(t.join("l1/usr/bin/x"), t.join("l1/usr/bin/x-link"))?;
    tar(&t.join("l1"), &t.join("l1.tar"))?;
    tar(&t.join("l2"), &t.join("l2.tar"))?;
    let root = t.join("root");
    // The tool mounts in this process's private namespace (inherited), never the host's.
    let cs = || {
        let mut c = Command::new("containers-storage");
        c.args(["--storage-driver", "overlay", "--graph"])
            .arg(&root)
            .arg("--run")
            .arg(t.join("run"));
        c
    };
    let l1 = run(cs()
        .arg("import-layer")
        .stdin(std::fs::File::open(t.join("l1.tar"))?))?;
    let l2 = run(cs()
        .args(["import-layer", &l1])
        .stdin(std::fs::File::open(t.join("l2.tar"))?))?;
    let image = run(cs().args(["create-image", &l2]))?;
    let container = run(cs().args(["create-container", &image]))?;
    run(cs().args(["mount", &container]))?;
    run(cs().args(["unmount", &container]))?;
    let inv = inventory(&root)?.ok_or("no store recognised in the containers-storage root")?;
    check_against_the_engine_and_find(&root, &inv)?;
    if inv.format != "overlay2"
        || inv.layers != 3
        || inv.image_layers != 2
        || inv.containers != 1
        || inv.deepest_chain != 3
        || inv.whiteouts != 1
        || (inv.hardlink_paths, inv.hardlink_inodes) != (4, 2)
    {
        return Err(format!(
            "inventory {inv:?}; expected 3 layers (2 image, 1 container), chain 3, 1 whiteout, 4 linked paths on 2 inodes"
        )
        .into());
    }
    // Layer 1 holds etc, etc/a (+link), etc/b, usr, usr/bin, usr/bin/x (+link) and its root dir.
    let l1_usage = inv
        .top_layers
        .iter()
        .find(|l| l.id == l1)
        .ok_or("layer 1 missing")?;
    if l1_usage.inodes != 7 {
        return Err(format!("layer 1 has {} inodes, expected 7", l1_usage.inodes).into());
    }
    // The tool bind-mounts its driver dir onto itself; `shutdown` releases it.
    run(cs().args(["shutdown"]))?;
    crate::common::assert_nothing_left(t, 5);
    Ok(())
}

/// doctor's figures against the standard tools and the engine's own index:
/// per layer `find -xdev` distinct inodes, `du -sxB1` bytes, whiteouts by
/// `find -type c`; store-wide `find -type f -links +1`; layer count, container
/// count and the deepest parent chain from containers-storage's JSON.
fn check_against_the_engine_and_find(
    root: &Path,
    inv: &overlaybench::doctor::store::StoreInventory,
) -> Result<(), Failed> {
    let sh = |script: String| run(Command::new("sh").arg("-c").arg(script));
    let driver = root.join("overlay");
    for l in &inv.top_layers {
        let diff = driver.join(&l.id).join("diff");
        let d = diff.display();
        let inodes: u64 =
            sh(format!("find {d} -xdev -printf '%i\\n' | sort -u | wc -l"))?.parse()?;
        let bytes: u64 = sh(format!("du -sxB1 {d} | cut -f1"))?.parse()?;
        let whiteouts: u64 = sh(format!("find {d} -xdev -type c | wc -l"))?.parse()?;
        if (l.inodes, l.bytes, l.whiteouts) != (inodes, bytes, whiteouts) {
            return Err(format!(
                "layer {}: doctor says {} inodes, {} bytes, {} whiteouts; find/du say {inodes}, {bytes}, {whiteouts}",
                l.id, l.inodes, l.bytes, l.whiteouts
            )
            .into());
        }
    }
    let linked = sh(format!(
        "cd {} && find */diff -xdev -type f -links +1 -printf '%i\\n' | sort | uniq -c | awk '{{p+=$1; i+=1}} END {{print p+0, i+0}}'",
        driver.display()
    ))?;
    if linked != format!("{} {}", inv.hardlink_paths, inv.hardlink_inodes) {
        return Err(format!("find says {linked} linked paths/inodes; doctor {inv:?}").into());
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("overlay-layers/layers.json"))?)?;
    let layers = index
        .as_array()
        .ok_or_else(|| Failed::from("layers.json is not an array"))?;
    let id_of = |l: &serde_json::Value| l.get("id").and_then(|v| v.as_str()).map(str::to_string);
    let parent_of: std::collections::HashMap<String, String> = layers
        .iter()
        .filter_map(|l| {
            let parent = l.get("parent").and_then(|p| p.as_str())?.to_string();
            Some((id_of(l)?, parent))
        })
        .collect();
    let chain = |start: String| {
        let (mut id, mut n) = (start, 1);
        while let Some(p) = parent_of.get(&id) {
            n += 1;
            id = p.clone();
        }
        n
    };
    let deepest = layers
        .iter()
        .filter_map(id_of)
        .map(chain)
        .max()
        .unwrap_or(0);
    let containers: serde_json::Value = serde_json::from_slice(&std::fs::read(
        root.join("overlay-containers/containers.json"),
    )?)?;
    let containers = containers.as_array().map_or(0, Vec::len);
    if (inv.layers, inv.containers, inv.deepest_chain) != (layers.len(), containers, deepest) {
        return Err(format!(
            "engine JSON: {} layers, {containers} containers, chain {deepest}; doctor {inv:?}",
            layers.len()
        )
        .into());
    }
    Ok(())
}

pub fn tests() -> Vec<Trial> {
    vec![
        trial!(inventories_own_overlay2_store),
        trial!(inventories_own_legacy_store),
        trial!(inventories_a_containers_storage_root),
        trial!(inventories_a_real_containerd_store),
        trial!(inventories_a_real_btrfs_store),
        trial!(finds_a_rootless_users_store),
    ]
}

/// `sha256:<hex>` of `b`.
fn sha(b: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{:x}", sha2::Sha256::digest(b))
}

/// Two layer trees under `t`: l1 with a hard link, l2 rewriting one file and
/// deleting another (an OCI whiteout). Returns the two tar files.
fn two_layers(t: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf), Failed> {
    for (p, body) in [
        ("l1/etc/a", "a"),
        ("l1/etc/b", "b"),
        ("l1/usr/bin/x", "x"),
        ("l2/etc/a", "a2"),
        ("l2/etc/.wh.b", ""),
    ] {
        let f = t.join(p);
        std::fs::create_dir_all(f.parent().ok_or("parent")?)?;
        std::fs::write(f, body)?;
    }
    std::fs::hard_link(t.join("l1/etc/a"), t.join("l1/etc/a-link"))?;
    tar(&t.join("l1"), &t.join("l1.tar"))?;
    tar(&t.join("l2"), &t.join("l2.tar"))?;
    Ok((t.join("l1.tar"), t.join("l2.tar")))
}

/// An OCI archive (`oci-layout`, `index.json`, blobs) of the two layers, named
/// `name` for containerd's importer; built by hand, no network.
fn oci_archive(t: &Path, layers: &[&Path], name: &str) -> Result<std::path::PathBuf, Failed> {
    let dir = t.join("oci");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    let put = |b: &[u8]| -> Result<String, Failed> {
        let d = sha(b);
        std::fs::write(blobs.join(d.trim_start_matches("sha256:")), b)?;
        Ok(d)
    };
    let mut descs = Vec::new();
    let mut diff_ids = Vec::new();
    for l in layers {
        let b = std::fs::read(l)?;
        diff_ids.push(sha(&b));
        descs.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": put(&b)?, "size": b.len(),
        }));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": std::env::consts::ARCH.replace("x86_64", "amd64").replace("aarch64", "arm64"),
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config)?, "size": config.len()},
        "layers": descs,
    }))?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": put(&manifest)?, "size": manifest.len(),
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": "1"}}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index)?)?;
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let archive = t.join("image.tar");
    tar(&dir, &archive)?;
    Ok(archive)
}

/// A containerd daemon of the test's own: root, state, sockets, opt dir and
/// temp mounts all under one temp dir; stopped (SIGTERM, then SIGKILL) on drop.
struct Containerd {
    child: std::process::Child,
    address: std::path::PathBuf,
}

impl Containerd {
    fn start(t: &Path) -> Result<Containerd, Failed> {
        let address = t.join("c.sock");
        let d = t.display();
        // The CRI plugin and the other snapshotters are not what is tested, and
        // CRI would set up networking on the host.
        let config = format!(
            r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "{d}/c.sock"
[ttrpc]
  address = "{d}/c.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
"#
        );
        std::fs::write(t.join("config.toml"), config)?;
        std::fs::create_dir_all(t.join("tmp"))?;
        let log = std::fs::File::create(t.join("containerd.log"))?;
        // Its temp mounts (layer unpacking) go under TMPDIR: keep them here. It
        // mounts in this process's private namespace, which it inherits.
        let child = Command::new("containerd")
            .arg("--config")
            .arg(t.join("config.toml"))
            .env("TMPDIR", t.join("tmp"))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("containerd: {e} (install containerd: scripts/setup)"))?;
        let mut c = Containerd { child, address };
        // Generous: a loaded CI host may take seconds to bring the plugins up.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !c.address.exists() {
            if let Some(st) = c.child.try_wait()? {
                let log = std::fs::read_to_string(t.join("containerd.log")).unwrap_or_default();
                return Err(format!("containerd exited ({st}): {log}").into());
            }
            if std::time::Instant::now() > deadline {
                return Err("containerd did not open its socket within 60 s".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // The socket file exists before it accepts: wait for an answer.
        while run(c.ctr().arg("version")).is_err() {
            if std::time::Instant::now() > deadline {
                return Err("containerd did not answer within 60 s".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = &mut c;
        Ok(c)
    }

    fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address").arg(&self.address);
        c
    }

    /// `ctr`'s whole output (not only its last line).
    fn ctr_out(&self, args: &[&str]) -> Result<String, Failed> {
        let out = self.ctr().args(args).output()?;
        if !out.status.success() {
            return Err(format!("ctr {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn stop(&mut self) -> Result<(), Failed> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                return Err("containerd did not stop within 30 s of SIGTERM".into());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// ctr's size spelling (`progress.Bytes`: one decimal, binary units).
fn ctr_size(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let (mut v, mut i) = (b as f64, 0);
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", units[i])
}

/// A real containerd store: Debian's containerd, started here on its own
/// root, imports an archive built here (`ctr images import`) and creates a
/// container; doctor inventories it while containerd runs and holds its
/// database lock. Oracles: `ctr snapshots ls` (kinds, parents), `ctr snapshots
/// usage` (sizes, inodes), `ctr images ls`, and find/du on each snapshot.
fn inventories_a_real_containerd_store() -> Result<(), Failed> {
    let tmp = tempfile::Builder::new()
        .prefix("obk-ctd-")
        .tempdir_in("/var/tmp")?;
    let t = tmp.path();
    let (l1, l2) = two_layers(t)?;
    let archive = oci_archive(t, &[&l1, &l2], "example.test/doctor:1")?;
    let mut ctd = Containerd::start(t)?;
    run(ctd.ctr().args(["images", "import"]).arg(&archive))?;
    run(ctd
        .ctr()
        .args(["containers", "create", "example.test/doctor:1", "c1"]))?;
    let snapshotter = t.join("root/io.containerd.snapshotter.v1.overlayfs");
    // containerd holds an exclusive lock on metadata.db: doctor must not need it.
    let db = std::fs::File::open(snapshotter.join("metadata.db"))?;
    if nix::fcntl::Flock::lock(db, nix::fcntl::FlockArg::LockSharedNonblock).is_ok() {
        return Err("metadata.db is not locked: is containerd using this store?".into());
    }
    let all = overlaybench::doctor::store::inventories(&t.join("root"), None)?;
    let inv = all
        .iter()
        .find(|i| i.format == "containerd")
        .ok_or_else(|| format!("no containerd store among {all:?}"))?;
    // The same through the command line, read-only, while containerd runs.
    let cli = Command::new(env!("CARGO_BIN_EXE_overlaybench"))
        .args(["doctor", "--json", "--no-probe", "--store"])
        .arg(t.join("root"))
        .output()?;
    if !cli.status.success() {
        return Err(format!("doctor --store: {}", String::from_utf8_lossy(&cli.stderr)).into());
    }
    let report: overlaybench::doctor::DoctorReport = serde_json::from_slice(&cli.stdout)?;
    let shown = report
        .stores
        .iter()
        .find(|s| s.format == "containerd")
        .ok_or("doctor --store shows no containerd store")?;
    if shown.images.first().map(|i| i.name.as_str()) != Some("example.test/doctor:1")
        || report.recommendation.choice != "containerd"
    {
        return Err(format!(
            "doctor --store: images {:?}, choice {}",
            shown.images, report.recommendation.choice
        )
        .into());
    }
    let snaps = ctd.ctr_out(&["snapshots", "ls"])?;
    let usage = ctd.ctr_out(&["snapshots", "usage"])?;
    let images = ctd.ctr_out(&["images", "ls", "-q"])?;
    ctd.stop()?;
    // key → (parent key, kind) and key → (size, inodes), as ctr prints them.
    let mut ctr_snaps = std::collections::HashMap::new();
    for line in snaps.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            [key, kind] => ctr_snaps.insert(key.to_string(), (None, kind.to_lowercase())),
            [key, parent, kind] => ctr_snaps.insert(
                key.to_string(),
                (Some(parent.to_string()), kind.to_lowercase()),
            ),
            _ => return Err(format!("ctr snapshots ls: {line:?}").into()),
        };
    }
    let mut ctr_usage = std::collections::HashMap::new();
    for line in usage.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [key, n, unit, inodes] = f.as_slice() {
            ctr_usage.insert(
                key.to_string(),
                (format!("{n} {unit}"), inodes.parse::<u64>()?),
            );
        } else {
            return Err(format!("ctr snapshots usage: {line:?}").into());
        }
    }
    if inv.layers != ctr_snaps.len() || inv.all_layers.len() != ctr_snaps.len() {
        return Err(format!("ctr lists {} snapshots; doctor {inv:?}", ctr_snaps.len()).into());
    }
    // doctor's keys are `<namespace>/<n>/<name>`; ctr shows `<name>` in its namespace.
    let short = |key: &str| key.splitn(3, '/').nth(2).unwrap_or(key).to_string();
    let key_of_id: std::collections::HashMap<&str, String> = inv
        .all_layers
        .iter()
        .filter_map(|l| Some((l.id.as_str(), short(l.name.as_deref()?))))
        .collect();
    for l in &inv.all_layers {
        let key = key_of_id
            .get(l.id.as_str())
            .ok_or_else(|| format!("snapshot {} has no record: {inv:?}", l.id))?;
        let (parent, kind) = ctr_snaps
            .get(key)
            .ok_or_else(|| format!("ctr does not list {key}"))?;
        let parent_key = l.parent.as_deref().and_then(|p| key_of_id.get(p)).cloned();
        if l.kind.as_deref() != Some(kind.as_str()) || &parent_key != parent {
            return Err(format!(
                "snapshot {key}: doctor says {:?} on {parent_key:?}; ctr says {kind} on {parent:?}",
                l.kind
            )
            .into());
        }
        let (size, inodes) = ctr_usage
            .get(key)
            .ok_or_else(|| format!("ctr usage lacks {key}"))?;
        if (ctr_size(l.bytes), l.inodes) != (size.clone(), *inodes) {
            return Err(format!(
                "snapshot {key}: doctor {} B ({}), {} inodes; ctr {size}, {inodes}",
                l.bytes,
                ctr_size(l.bytes),
                l.inodes
            )
            .into());
        }
        // Committed snapshots carry containerd's own record of the same figures.
        if kind == "committed"
            && (l.recorded_inodes, l.recorded_bytes) != (Some(l.inodes), Some(l.bytes))
        {
            return Err(format!(
                "snapshot {key}: recorded {:?}/{:?}, walked {}/{}",
                l.recorded_inodes, l.recorded_bytes, l.inodes, l.bytes
            )
            .into());
        }
        let fs_dir = snapshotter.join("snapshots").join(&l.id).join("fs");
        let d = fs_dir.display();
        let sh = |script: String| run(Command::new("sh").arg("-c").arg(script));
        let found: u64 =
            sh(format!("find {d} -xdev -printf '%i\\n' | sort -u | wc -l"))?.parse()?;
        let du: u64 = sh(format!("du -sxB1 {d} | cut -f1"))?.parse()?;
        let wh: u64 = sh(format!("find {d} -xdev -type c | wc -l"))?.parse()?;
        if (l.inodes, l.bytes, l.whiteouts) != (found, du, wh) {
            return Err(format!(
                "snapshot {key}: doctor {}/{}/{} inodes/bytes/whiteouts; find/du {found}/{du}/{wh}",
                l.inodes, l.bytes, l.whiteouts
            )
            .into());
        }
    }
    let names: Vec<&str> = images
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let doctor_names: Vec<&str> = inv.images.iter().map(|i| i.name.as_str()).collect();
    if doctor_names != names
        || inv.images.first().map(|i| i.layers) != Some(2)
        || (inv.image_layers, inv.containers, inv.deepest_chain) != (2, 1, 3)
        || inv.whiteouts != 1
        || (inv.hardlink_paths, inv.hardlink_inodes) != (2, 1)
        || !inv.chains_known
        || !inv.metadata.contains("without its lock")
    {
        return Err(format!(
            "ctr lists images {names:?}; expected 2 image layers, 1 container, chain 3, 1 whiteout, 2 linked paths on 1 inode; doctor {inv:?}"
        )
        .into());
    }
    crate::common::assert_nothing_left(t, 5);
    Ok(())
}

/// A real btrfs store: a btrfs filesystem made here (mkfs.btrfs on a loop
/// device), and the real containers-storage tool's btrfs driver importing two
/// layers and creating a container on it (each layer a snapshot of its
/// parent). Oracles: the engine's layers.json and containers.json, `btrfs
/// subvolume list` (parent uuids), find/du on each subvolume, and find's view
/// of which paths changed against the parent snapshot.
fn inventories_a_real_btrfs_store() -> Result<(), Failed> {
    let tmp = tempfile::Builder::new()
        .prefix("obk-btrfs-")
        .tempdir_in("/var/tmp")?;
    let t = tmp.path();
    let (l1_tar, l2_tar) = two_layers(t)?;
    let img = t.join("btrfs.img");
    std::fs::File::create(&img)?.set_len(256 << 20)?;
    run(Command::new("mkfs.btrfs").args(["-q", "-f"]).arg(&img))
        .map_err(|e| format!("{e:?} (install btrfs-progs: scripts/setup)"))?;
    let mnt = t.join("mnt");
    std::fs::create_dir(&mnt)?;
    // mount(8) attaches the loop device with autoclear: it goes with the unmount
    // (or with this process's private namespace).
    run(Command::new("mount")
        .args(["-t", "btrfs", "-o", "loop"])
        .arg(&img)
        .arg(&mnt))?;
    let result = btrfs_store_on(t, &mnt, &l1_tar, &l2_tar);
    run(Command::new("umount").arg(&mnt))?;
    result?;
    crate::common::assert_nothing_left(t, 5);
    Ok(())
}

fn btrfs_store_on(t: &Path, mnt: &Path, l1_tar: &Path, l2_tar: &Path) -> Result<(), Failed> {
    let root = mnt.join("storage");
    let cs = || {
        let mut c = Command::new("containers-storage");
        c.args(["--storage-driver", "btrfs", "--graph"])
            .arg(&root)
            .arg("--run")
            .arg(t.join("run"));
        c
    };
    let l1 = run(cs().arg("import-layer").stdin(std::fs::File::open(l1_tar)?))?;
    let l2 = run(cs()
        .args(["import-layer", &l1])
        .stdin(std::fs::File::open(l2_tar)?))?;
    let image = run(cs().args(["create-image", &l2]))?;
    let container = run(cs().args(["create-container", &image]))?;
    let inv =
        inventory(&root)?.ok_or("no store recognised in the btrfs containers-storage root")?;
    run(cs().args(["shutdown"]))?;
    // The container's own layer, as the engine records it.
    let containers: serde_json::Value = serde_json::from_slice(&std::fs::read(
        root.join("btrfs-containers/containers.json"),
    )?)?;
    let container = containers
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|c| c.get("id").and_then(|v| v.as_str()) == Some(&container))
        })
        .and_then(|c| c.get("layer")?.as_str())
        .ok_or_else(|| format!("containers.json lacks {container}'s layer: {containers}"))?
        .to_string();
    if inv.format != "btrfs"
        || inv.layers != 3
        || inv.image_layers != 2
        || inv.containers != 1
        || inv.deepest_chain != 3
        || !inv.chains_known
        || inv.whiteouts != 0
        || inv.images.first().map(|i| i.layers) != Some(2)
    {
        return Err(format!(
            "inventory {inv:?}; expected btrfs, 3 layers (2 image, 1 container), chain 3 from parent uuids, no whiteouts"
        )
        .into());
    }
    let subvolumes = root.join("btrfs/subvolumes");
    // Parents as btrfs itself lists them: path → (uuid, parent uuid).
    let listed = {
        let out = Command::new("btrfs")
            .args(["subvolume", "list", "-u", "-q"])
            .arg(mnt)
            .output()?;
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut uuid_of = std::collections::HashMap::new();
    let mut parent_uuid_of = std::collections::HashMap::new();
    for line in listed.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let at = |k: &str| {
            f.iter()
                .position(|x| *x == k)
                .and_then(|i| f.get(i + 1))
                .copied()
        };
        if let (Some(path), Some(u), Some(pu)) = (at("path"), at("uuid"), at("parent_uuid")) {
            let id = path.rsplit('/').next().unwrap_or(path).to_string();
            uuid_of.insert(u.to_string(), id.clone());
            parent_uuid_of.insert(id, pu.to_string());
        }
    }
    let expected_parent = |id: &str| {
        parent_uuid_of
            .get(id)
            .and_then(|pu| uuid_of.get(pu))
            .cloned()
    };
    let sh = |script: String| run(Command::new("sh").arg("-c").arg(script));
    for (id, parent) in [(&l1, None), (&l2, Some(&l1)), (&container, Some(&l2))] {
        let l = inv
            .all_layers
            .iter()
            .find(|l| &l.id == id)
            .ok_or_else(|| format!("layer {id} missing: {inv:?}"))?;
        if l.parent.as_ref() != parent || expected_parent(id).as_ref() != parent {
            return Err(format!(
                "layer {id}: doctor's parent {:?}, btrfs's {:?}, the engine's {parent:?}",
                l.parent,
                expected_parent(id)
            )
            .into());
        }
        let d = subvolumes.join(id);
        let d = d.display();
        let found: u64 =
            sh(format!("find {d} -xdev -printf '%i\\n' | sort -u | wc -l"))?.parse()?;
        let du: u64 = sh(format!("du -sxB1 {d} | cut -f1"))?.parse()?;
        if (l.referenced_inodes, l.referenced_bytes) != (Some(found), Some(du)) {
            return Err(format!(
                "layer {id}: doctor references {:?} inodes, {:?} bytes; find/du {found}, {du}",
                l.referenced_inodes, l.referenced_bytes
            )
            .into());
        }
        // Own inodes: the root, plus every distinct inode whose (path, inode,
        // ctime) find does not also list in the parent snapshot.
        let own: u64 = match parent {
            None => found,
            Some(p) => {
                let p = subvolumes.join(p);
                sh(format!(
                    "cd {d} && find . -mindepth 1 -xdev -printf '%p %i %C@\\n' | sort > {t}/child.txt && \
                     cd {p} && find . -mindepth 1 -xdev -printf '%p %i %C@\\n' | sort > {t}/parent.txt && \
                     comm -23 {t}/child.txt {t}/parent.txt | awk '{{print $2}}' | grep -vx 256 | sort -u | wc -l",
                    p = p.display(),
                    t = t.display()
                ))?
                .parse::<u64>()?
                    + 1
            }
        };
        if l.inodes != own {
            return Err(format!(
                "layer {id}: doctor says {} own inodes; find {own}",
                l.inodes
            )
            .into());
        }
    }
    let l2_usage = inv.all_layers.iter().find(|l| l.id == l2).ok_or("l2")?;
    if l2_usage.deletions != Some(1) {
        return Err(format!(
            "layer 2 deleted etc/b; doctor says {:?}",
            l2_usage.deletions
        )
        .into());
    }
    Ok(())
}

/// A rootless Podman user's store, found where Podman keeps it
/// (`~/.local/share/containers/storage` under `home/<user>`), made by the real
/// containers-storage tool: doctor (the command, `--config-root` at the fake
/// root) finds it by looking, names its user, counts it, and does not take it
/// for the host's rootful store.
fn finds_a_rootless_users_store() -> Result<(), Failed> {
    let tmp = tempfile::Builder::new()
        .prefix("obk-home-")
        .tempdir_in("/var/tmp")?;
    let t = tmp.path();
    let (l1_tar, l2_tar) = two_layers(t)?;
    let root = t.join("fakeroot/home/alice/.local/share/containers/storage");
    let cs = || {
        let mut c = Command::new("containers-storage");
        c.args(["--storage-driver", "overlay", "--graph"])
            .arg(&root)
            .arg("--run")
            .arg(t.join("run"));
        c
    };
    let l1 = run(cs()
        .arg("import-layer")
        .stdin(std::fs::File::open(&l1_tar)?))?;
    let l2 = run(cs()
        .args(["import-layer", &l1])
        .stdin(std::fs::File::open(&l2_tar)?))?;
    run(cs().args(["create-image", &l2]))?;
    run(cs().args(["shutdown"]))?;
    let out = Command::new(env!("CARGO_BIN_EXE_overlaybench"))
        .args(["doctor", "--json", "--no-probe", "--config-root"])
        .arg(t.join("fakeroot"))
        .arg("--path")
        .arg(t)
        .output()?;
    if !out.status.success() {
        return Err(format!("doctor: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let report: overlaybench::doctor::DoctorReport = serde_json::from_slice(&out.stdout)?;
    let found: Vec<_> = report
        .stores
        .iter()
        .filter(|s| s.rootless_user.as_deref() == Some("alice"))
        .collect();
    match found.as_slice() {
        [s] if s.format == "overlay2"
            && s.image_layers == 2
            && s.engine == "containers-storage"
            && s.images.len() == 1 => {}
        _ => {
            return Err(format!("alice's store not found as expected: {:?}", report.stores).into())
        }
    }
    // A user's store is not the host's: a new host still gets the default.
    if report.recommendation.choice != "containerd" {
        return Err(format!(
            "choice {} from a user's store",
            report.recommendation.choice
        )
        .into());
    }
    crate::common::assert_nothing_left(t, 5);
    Ok(())
}
