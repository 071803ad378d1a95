//! Real images for the tests, built here from what is installed on this host
//! (Debian packages' files, read as `dpkg -L` lists them) by the tools the
//! field uses: layer tars written here, an OCI layout by `umoci`, archives by
//! `skopeo`, a containers-storage store by its CLI, and a Docker overlay2 data
//! root assembled from that store's diff dirs (as Docker lays one out).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd args`, failing with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e} (scripts/setup installs it)"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd} {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One entry of a layer the tests write.
#[derive(Debug, Clone)]
pub enum Item {
    /// A directory with its mode.
    Dir(String, u32),
    /// A regular file: mode and content.
    File(String, u32, Vec<u8>),
    /// A hard link to an earlier file of the layer.
    Link(String, String),
    /// A symlink and its target.
    Sym(String, String),
    /// A whiteout of a lower path (`.wh.NAME`).
    Whiteout(String),
    /// An opaque directory (`.wh..wh..opq` inside it).
    Opaque(String),
}

const MTIME: u64 = 1_700_000_000;

/// Writes `items` as a layer tar.
pub fn layer_tar(items: &[Item]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for it in items {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        let (name, data, kind, mode, link): (String, &[u8], tar::EntryType, u32, Option<&str>) =
            match it {
                Item::Dir(n, m) => (format!("{n}/"), b"", tar::EntryType::Directory, *m, None),
                Item::File(n, m, d) => (n.clone(), d, tar::EntryType::Regular, *m, None),
                Item::Link(n, t) => (n.clone(), b"", tar::EntryType::Link, 0o644, Some(t)),
                Item::Sym(n, t) => (n.clone(), b"", tar::EntryType::Symlink, 0o777, Some(t)),
                Item::Whiteout(p) => {
                    let (dir, base) = match p.rsplit_once('/') {
                        Some((d, b)) => (format!("{d}/"), b.to_string()),
                        None => (String::new(), p.clone()),
                    };
                    (
                        format!("{dir}.wh.{base}"),
                        b"",
                        tar::EntryType::Regular,
                        0o644,
                        None,
                    )
                }
                Item::Opaque(d) => (
                    format!("{d}/.wh..wh..opq"),
                    b"",
                    tar::EntryType::Regular,
                    0o644,
                    None,
                ),
            };
        h.set_entry_type(kind);
        h.set_mode(mode);
        if let Some(t) = link {
            h.set_link_name(t).expect("link name");
        }
        h.set_path(&name).expect("path");
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }
    b.into_inner().expect("tar")
}

/// The files, directories and symlinks of installed Debian packages, as
/// layer items: paths made canonical (Debian 12 merges /lib into /usr/lib,
/// and a tar must not write through a symlink), files that share an inode
/// on the host as hard links, directories with their modes. Packages that
/// are not installed are skipped; `seen` keeps paths already written.
pub fn package_items(packages: &[&str], seen: &mut BTreeMap<String, ()>) -> Vec<Item> {
    let mut items = Vec::new();
    let mut inodes: HashMap<(u64, u64), String> = HashMap::new();
    for pkg in packages {
        let Ok(list) = run("dpkg", &["-L", pkg]) else {
            continue;
        };
        for line in list.lines() {
            let p = Path::new(line.trim());
            if !p.is_absolute() || p == Path::new("/.") || p == Path::new("/") {
                continue;
            }
            let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
                continue;
            };
            let Ok(real_parent) = parent.canonicalize() else {
                continue;
            };
            let real = real_parent.join(name);
            let Ok(m) = fs::symlink_metadata(&real) else {
                continue;
            };
            let rel = real
                .strip_prefix("/")
                .unwrap_or(&real)
                .display()
                .to_string();
            if rel.is_empty() || seen.contains_key(&rel) {
                continue;
            }
            // Parents first: a layer lists its directories before their files.
            let mut acc = PathBuf::new();
            for c in Path::new(&rel)
                .parent()
                .into_iter()
                .flat_map(|p| p.components())
            {
                acc.push(c);
                let a = acc.display().to_string();
                if !seen.contains_key(&a) {
                    let mode = fs::metadata(Path::new("/").join(&acc))
                        .map(|m| m.mode() & 0o7777)
                        .unwrap_or(0o755);
                    seen.insert(a.clone(), ());
                    items.push(Item::Dir(a, mode));
                }
            }
            let ft = m.file_type();
            if ft.is_dir() {
                items.push(Item::Dir(rel.clone(), m.mode() & 0o7777));
            } else if ft.is_symlink() {
                let Ok(t) = fs::read_link(&real) else {
                    continue;
                };
                items.push(Item::Sym(rel.clone(), t.display().to_string()));
            } else if ft.is_file() {
                match inodes.get(&(m.dev(), m.ino())) {
                    Some(first) => items.push(Item::Link(rel.clone(), first.clone())),
                    None => {
                        let Ok(data) = fs::read(&real) else { continue };
                        inodes.insert((m.dev(), m.ino()), rel.clone());
                        items.push(Item::File(rel.clone(), m.mode() & 0o7777, data));
                    }
                }
            } else {
                continue;
            }
            seen.insert(rel, ());
        }
    }
    items
}

/// An OCI layout at `dir/oci` (tag `t`) built by umoci from layer tars; returns `oci:DIR:t`.
pub fn oci_layout(dir: &Path, layers: &[Vec<u8>]) -> Result<String, String> {
    let oci = dir.join("oci");
    let s = |p: &Path| p.display().to_string();
    run("umoci", &["init", "--layout", &s(&oci)])?;
    run("umoci", &["new", "--image", &format!("{}:t", s(&oci))])?;
    for (i, l) in layers.iter().enumerate() {
        let p = dir.join(format!("l{i}.tar"));
        fs::write(&p, l).map_err(|e| e.to_string())?;
        run(
            "umoci",
            &[
                "raw",
                "add-layer",
                "--no-history",
                "--image",
                &format!("{}:t", s(&oci)),
                &s(&p),
            ],
        )?;
    }
    Ok(format!("oci:{}:t", s(&oci)))
}

/// The same image through every other local transport: an oci-archive and a
/// docker-archive (skopeo), a containers-storage store (its CLI, from the
/// layer tars `dir/l<i>.tar` that `oci_layout` wrote) and a Docker overlay2
/// data root made from that store's diff dirs.
pub struct Transports {
    /// `oci-archive:FILE:t`.
    pub oci_archive: String,
    /// `docker-archive:FILE:img:t`.
    pub docker_archive: String,
    /// `containers-storage:[ROOT]img:t`.
    pub storage: String,
    /// `docker:ROOT:img:t`.
    pub docker: String,
}

fn json(p: &Path) -> Result<serde_json::Value, String> {
    serde_json::from_slice(&fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?)
        .map_err(|e| e.to_string())
}

fn blob(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// Builds `Transports` for the layout `dir/oci` made by `oci_layout` with `layers` layers.
pub fn transports(dir: &Path, layers: usize) -> Result<Transports, String> {
    let s = |p: &Path| p.display().to_string();
    let oci = dir.join("oci");
    let archive = dir.join("img.oci.tar");
    run(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci:{}:t", s(&oci)),
            &format!("oci-archive:{}:t", s(&archive)),
        ],
    )?;
    let darchive = dir.join("img.docker.tar");
    run(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci:{}:t", s(&oci)),
            &format!("docker-archive:{}:img:t", s(&darchive)),
        ],
    )?;
    let graph = dir.join("cs");
    let g = s(&graph);
    let runroot = s(&dir.join("cs-run"));
    let cs = |args: &[&str]| -> Result<String, String> {
        let mut a = vec![
            "--graph",
            &g,
            "--run",
            &runroot,
            "--storage-driver",
            "overlay",
        ];
        a.extend_from_slice(args);
        run("containers-storage", &a).map(|s| s.trim().to_string())
    };
    let mut parent: Option<String> = None;
    let mut ids = Vec::new();
    for i in 0..layers {
        let f = s(&dir.join(format!("l{i}.tar")));
        let mut args = vec!["import-layer", "-f", &f];
        if let Some(p) = &parent {
            args.push(p);
        }
        let id = cs(&args)?.lines().last().unwrap_or_default().to_string();
        ids.push(id.clone());
        parent = Some(id);
    }
    cs(&[
        "create-image",
        "-n",
        "img:t",
        parent.as_deref().unwrap_or_default(),
    ])?;
    // The CLI leaves its driver dir mounted in this (private) namespace.
    let _ = nix::mount::umount2(&graph.join("overlay"), nix::mount::MntFlags::MNT_DETACH);

    let root = dir.join("docker");
    let index = json(&oci.join("index.json"))?;
    let manifest = json(&blob(
        &oci,
        index["manifests"][0]["digest"].as_str().ok_or("digest")?,
    ))?;
    let cdigest = manifest["config"]["digest"]
        .as_str()
        .ok_or("config")?
        .to_string();
    let config = json(&blob(&oci, &cdigest))?;
    let img = root.join("image/overlay2");
    let mk = |p: &Path| fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()));
    mk(&img.join("imagedb/content/sha256"))?;
    fs::copy(
        blob(&oci, &cdigest),
        img.join("imagedb/content/sha256")
            .join(cdigest.trim_start_matches("sha256:")),
    )
    .map_err(|e| e.to_string())?;
    let diff_ids: Vec<overlaybench::image::source::Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or("diff_ids")?
        .iter()
        .map(|v| overlaybench::image::source::Digest::parse(v.as_str().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    for (i, chain) in overlaybench::image::source::chain_ids(&diff_ids)
        .iter()
        .enumerate()
    {
        let ldir = img.join("layerdb/sha256").join(chain.hex());
        mk(&ldir)?;
        let cache = format!("cache{i}");
        fs::write(ldir.join("cache-id"), &cache).map_err(|e| e.to_string())?;
        fs::write(ldir.join("diff"), diff_ids[i].to_string()).map_err(|e| e.to_string())?;
        mk(&root.join("overlay2").join(&cache))?;
        run(
            "cp",
            &[
                "-a",
                &s(&graph.join("overlay").join(&ids[i]).join("diff")),
                &s(&root.join("overlay2").join(&cache)),
            ],
        )?;
    }
    let repos = serde_json::json!({"Repositories": {"img": {"img:t": cdigest}}});
    fs::write(img.join("repositories.json"), repos.to_string()).map_err(|e| e.to_string())?;
    Ok(Transports {
        oci_archive: format!("oci-archive:{}:t", s(&archive)),
        docker_archive: format!("docker-archive:{}:img:t", s(&darchive)),
        storage: format!("containers-storage:[{}]img:t", s(&graph)),
        docker: format!("docker:{}:img:t", s(&root)),
    })
}

/// Deterministic bytes.
pub fn bytes(seed: u8, len: usize) -> Vec<u8> {
    let mut x = seed as u32 * 2_654_435_761 + 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 3) as u8
        })
        .collect()
}

/// A small real image (two layers): two small Debian packages' files, a
/// 2 MiB file and a hard link to it, a symlink; then a layer that whites out
/// a package's docs, makes a directory opaque and adds files.
pub fn small_layers() -> Vec<Vec<u8>> {
    let mut seen = BTreeMap::new();
    let mut l1 = package_items(&["gzip", "sed"], &mut seen);
    l1.extend([
        Item::Dir("data".into(), 0o755),
        Item::File("data/big.bin".into(), 0o644, bytes(7, 2 << 20)),
        Item::Link("data/big.link".into(), "data/big.bin".into()),
        Item::File("data/mid.bin".into(), 0o644, bytes(8, 600 << 10)),
        Item::Sym("data/latest".into(), "big.bin".into()),
        Item::Dir("data/cache".into(), 0o755),
        Item::File("data/cache/a".into(), 0o644, b"a".to_vec()),
        Item::File("data/cache/b".into(), 0o600, b"b".to_vec()),
    ]);
    let l2 = vec![
        Item::Dir("usr/share/doc".into(), 0o755),
        Item::Whiteout("usr/share/doc/sed".into()),
        Item::Dir("data/cache".into(), 0o755),
        Item::Opaque("data/cache".into()),
        Item::File("data/cache/fresh".into(), 0o644, bytes(9, 10_000)),
        Item::File("data/new.bin".into(), 0o644, bytes(10, 300 << 10)),
    ];
    vec![layer_tar(&l1), layer_tar(&l2)]
}
