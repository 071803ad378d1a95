//! doctor's store inventory against real stores: ones this project's layouts
//! write, and a containers-storage root made by the real containers-storage tool.

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

fn own_overlay2_store() -> Result<(), Failed> {
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

fn own_legacy_store() -> Result<(), Failed> {
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

fn containers_storage_root() -> Result<(), Failed> {
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
        Trial::test("doctor::inventories_own_overlay2_store", own_overlay2_store),
        Trial::test("doctor::inventories_own_legacy_store", own_legacy_store),
        Trial::test(
            "doctor::inventories_a_containers_storage_root",
            containers_storage_root,
        ),
    ]
}
