//! Real images in, against a third-party oracle: a 3-layer image the test
//! writes as tars (whiteouts, an opaque dir, hard links, symlinks incl.
//! absolute ones, xattrs, a FIFO, device nodes, setuid, missing parents),
//! built into an OCI layout by `umoci`, copied by `skopeo` into an
//! oci-archive and a docker-archive, imported into a containers-storage store
//! by the `containers-storage` CLI, and laid out as a Docker overlay2 data
//! root. `umoci raw unpack` is the truth: every transport flattened with
//! `apply_layer(InPlace)`, and overlay mounted over `apply_layer(OverlayDiff)`
//! diff dirs, must show exactly its rootfs.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use libtest_mimic::{Failed, Trial};
use sha2::{Digest as _, Sha256};

use overlaybench::image::apply::{
    apply_layer, inherit_implicit_dirs, ApplyOptions, DevicePolicy, WhiteoutStyle,
};
use overlaybench::image::source::{self, ImageRef, OpenOptions};
use overlaybench::image::{Entry, ImageSource};
use overlaybench::isolate::{mount_overlay, MountApi, OverlayMount};
use overlaybench::layout::CopyUp;

pub fn tests() -> Vec<Trial> {
    vec![
        trial!(every_transport_flattens_to_umoci_rootfs),
        trial!(overlay_over_diff_dirs_shows_umoci_rootfs),
        trial!(every_new_layout_shows_umoci_rootfs),
        trial!(tar_transports_give_the_same_entries),
        trial!(info_has_digests_diff_ids_and_chain_ids),
        trial!(overlay_markers_are_dropped_from_image_xattrs),
    ]
}

/// A layer entry as the test writes it.
pub enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Owned(&'a str, u32, u32, u32, &'a [u8]),
    /// A hard link; its header carries the target's mode, as GNU tar writes it.
    Link(&'a str, &'a str, u32),
    Sym(&'a str, &'a str),
    Fifo(&'a str),
    Char(&'a str, u32, u32),
    Block(&'a str, u32, u32),
    Xattr(&'a str, u32, &'a [u8], &'a [(&'a str, &'a [u8])]),
    /// A raw name, written byte for byte (for hostile names).
    Raw(&'a [u8], u8, &'a [u8], &'a [u8]),
}

pub const MTIME: u64 = 1_700_000_000;

fn pax(h: &mut tar::Builder<Vec<u8>>, name: &str, records: &[(&str, &[u8])]) {
    let mut data = Vec::new();
    for (k, v) in records {
        // "<len> <key>=<value>\n", where len counts itself.
        let body = 1 + k.len() + 1 + v.len() + 1;
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut x = tar::Header::new_ustar();
    x.set_entry_type(tar::EntryType::XHeader);
    x.set_path(format!("PaxHeaders/{name}")).unwrap();
    x.set_size(data.len() as u64);
    x.set_mode(0o644);
    x.set_cksum();
    h.append(&x, &data[..]).unwrap();
}

/// Writes a layer tar from entries.
pub fn layer_tar(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(MTIME);
        h.set_uid(0);
        h.set_gid(0);
        let (name, data): (&str, &[u8]) = match e {
            E::Dir(n, m) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*m);
                (n, b"")
            }
            E::File(n, m, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*m);
                (n, d)
            }
            E::Owned(n, m, u, g, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*m);
                h.set_uid(*u as u64);
                h.set_gid(*g as u64);
                (n, d)
            }
            E::Link(n, t, m) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(*m);
                h.set_link_name(t).unwrap();
                (n, b"")
            }
            E::Sym(n, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_link_name(t).unwrap();
                (n, b"")
            }
            E::Fifo(n) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_mode(0o640);
                (n, b"")
            }
            E::Char(n, ma, mi) | E::Block(n, ma, mi) => {
                h.set_entry_type(if matches!(e, E::Char(..)) {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                });
                h.set_mode(0o660);
                h.set_device_major(*ma).unwrap();
                h.set_device_minor(*mi).unwrap();
                (n, b"")
            }
            E::Xattr(n, m, d, xs) => {
                let recs: Vec<(String, &[u8])> = xs
                    .iter()
                    .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
                    .collect();
                let recs: Vec<(&str, &[u8])> = recs.iter().map(|(k, v)| (k.as_str(), *v)).collect();
                pax(&mut b, n, &recs);
                h.set_entry_type(if n.ends_with('/') {
                    tar::EntryType::Directory
                } else {
                    tar::EntryType::Regular
                });
                h.set_mode(*m);
                (n, d)
            }
            E::Raw(name, kind, data, link) => {
                h.set_entry_type(tar::EntryType::new(*kind));
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
                let old = h.as_old_mut();
                old.name[..name.len()].copy_from_slice(name);
                old.linkname[..link.len()].copy_from_slice(link);
                h.set_cksum();
                b.append(&h, *data).unwrap();
                continue;
            }
        };
        h.set_path(name).unwrap();
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// Deterministic content.
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

fn fixture_layers() -> Vec<Vec<u8>> {
    let tool = bytes(1, 200_000);
    let lib = bytes(2, 50_000);
    let srv = bytes(3, 100_000);
    let l1 = layer_tar(&[
        E::Dir("etc/", 0o755),
        E::Xattr(
            "etc/passwd",
            0o644,
            b"root:x:0:0::/root:/bin/sh\n",
            &[("user.note", b"hello")],
        ),
        E::Sym("etc/abs", "/etc/passwd"),
        E::Dir("usr/", 0o755),
        E::Dir("usr/bin/", 0o755),
        E::File("usr/bin/tool", 0o4755, &tool),
        E::Link("usr/bin/tool2", "usr/bin/tool", 0o4755),
        E::Dir("usr/lib/", 0o755),
        E::File("usr/lib/libx.so", 0o644, &lib),
        E::Sym("lib", "usr/lib"),
        E::Dir("opt/", 0o755),
        E::Dir("opt/gone/", 0o755),
        E::File("opt/gone/a", 0o644, b"a"),
        E::File("opt/gone/b", 0o600, b"b"),
        E::Dir("opt/opq/", 0o750),
        E::File("opt/opq/old", 0o644, b"old"),
        E::Xattr("opt/keep/", 0o755, b"", &[("user.dirnote", b"kept")]),
        E::File("opt/keep/x", 0o444, b"x"),
        E::Dir("dev/", 0o755),
        E::Char("dev/zero0", 1, 5),
        E::Block("dev/loop200", 7, 200),
        E::Dir("var/", 0o1777),
        E::Fifo("var/fifo"),
        E::Dir("home/", 0o755),
        E::Owned("home/u.profile", 0o600, 1000, 1000, b"export A=1\n"),
    ]);
    let l2 = layer_tar(&[
        E::Dir("opt/", 0o755),
        E::File("opt/.wh.gone", 0o644, b""),
        E::File("usr/lib/.wh.libx.so", 0o644, b""),
        E::Dir("opt/opq/", 0o755),
        E::File("opt/opq/.wh..wh..opq", 0o644, b""),
        E::File("opt/opq/new", 0o644, b"new"),
        E::File("etc/passwd", 0o644, b"root:x:0:0::/root:/bin/bash\n"),
        // Replaces one name of a hard-linked pair: the other keeps the old data.
        E::File("usr/bin/tool2", 0o755, b"#!/bin/sh\n"),
        E::Dir("srv/", 0o711),
        E::File("srv/data", 0o644, &srv),
        // No entries for new/ and new/deep/: parents are made 0755.
        E::File("new/deep/file", 0o644, b"deep"),
    ]);
    let l3 = layer_tar(&[
        E::File("etc/abs", 0o644, b"no longer a link\n"),
        E::File("var/.wh.fifo", 0o644, b""),
        E::File("usr/lib/libx.so", 0o755, b"back again"),
        E::File("etc/hosts", 0o644, b"127.0.0.1 localhost\n"),
        E::Link("etc/hosts.link", "etc/hosts", 0o644),
        E::Dir("opt/gone/", 0o700),
        E::File("opt/gone/fresh", 0o644, b"fresh"),
    ]);
    vec![l1, l2, l3]
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
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

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub dir: PathBuf,
    /// `oci:` (gzip layers, as umoci writes them).
    pub oci: String,
    /// The same image with layer 2 uncompressed and layer 3 zstd.
    pub oci_mixed: String,
    pub oci_archive: String,
    pub docker_archive: String,
    pub storage: String,
    pub docker: String,
    pub oracle: BTreeMap<PathBuf, Node>,
}

static FIXTURE: OnceLock<Result<Fixture, String>> = OnceLock::new();

pub fn fixture() -> Result<&'static Fixture, Failed> {
    FIXTURE
        .get_or_init(build_fixture)
        .as_ref()
        .map_err(|e| Failed::from(format!("building the fixture image: {e}")))
}

/// Removes the shared fixture's directory (called once all tests ran).
pub fn remove_fixture() {
    if let Some(Ok(f)) = FIXTURE.get() {
        let _ = fs::remove_dir_all(&f.dir);
    }
}

fn build_fixture() -> Result<Fixture, String> {
    let tmp = tempfile::Builder::new()
        .prefix("obk-img-")
        .tempdir_in("/var/tmp")
        .map_err(|e| e.to_string())?;
    let d = tmp.path().to_path_buf();
    let s = |p: &Path| p.display().to_string();
    let oci = d.join("oci");
    run("umoci", &["init", "--layout", &s(&oci)])?;
    run("umoci", &["new", "--image", &format!("{}:t", s(&oci))])?;
    for (i, l) in fixture_layers().iter().enumerate() {
        let p = d.join(format!("l{i}.tar"));
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
    let rootfs = d.join("rootfs");
    run(
        "umoci",
        &[
            "raw",
            "unpack",
            "--image",
            &format!("{}:t", s(&oci)),
            &s(&rootfs),
        ],
    )?;
    let oracle = snapshot(&rootfs).map_err(|e| format!("walking umoci's rootfs: {e}"))?;
    let archive = d.join("img.oci.tar");
    run(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci:{}:t", s(&oci)),
            &format!("oci-archive:{}:t", s(&archive)),
        ],
    )?;
    let darchive = d.join("img.docker.tar");
    run(
        "skopeo",
        &[
            "copy",
            "-q",
            &format!("oci:{}:t", s(&oci)),
            &format!("docker-archive:{}:fixture:t", s(&darchive)),
        ],
    )?;
    let mixed = d.join("oci-mixed");
    recompress(&oci, &mixed)?;
    let (store, docker) = stores(&d, &oci)?;
    Ok(Fixture {
        _dir: tmp,
        dir: d.clone(),
        oci: format!("oci:{}:t", s(&oci)),
        oci_mixed: format!("oci:{}:t", s(&mixed)),
        oci_archive: format!("oci-archive:{}:t", s(&archive)),
        docker_archive: format!("docker-archive:{}:fixture:t", s(&darchive)),
        storage: format!("containers-storage:[{}]fixture:t", s(&store)),
        docker: format!("docker:{}:fixture:t", s(&docker)),
        oracle,
    })
}

fn sha(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
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

/// A copy of the layout whose layer 2 is stored uncompressed and layer 3
/// zstd-compressed (umoci writes gzip only).
fn recompress(src: &Path, dst: &Path) -> Result<(), String> {
    run(
        "cp",
        &["-a", &src.display().to_string(), &dst.display().to_string()],
    )?;
    let index = json(&dst.join("index.json"))?;
    let mdigest = index["manifests"][0]["digest"]
        .as_str()
        .ok_or("no manifest")?
        .to_string();
    let mut manifest = json(&blob(dst, &mdigest))?;
    for (i, kind) in [(1usize, "tar"), (2, "tar+zstd")] {
        let l = &mut manifest["layers"][i];
        let gz = fs::read(blob(dst, l["digest"].as_str().ok_or("digest")?))
            .map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut raw)
            .map_err(|e| e.to_string())?;
        let stored = if kind == "tar" {
            raw
        } else {
            zstd::encode_all(&raw[..], 3).map_err(|e| e.to_string())?
        };
        let digest = format!("sha256:{}", sha(&stored));
        fs::write(blob(dst, &digest), &stored).map_err(|e| e.to_string())?;
        l["digest"] = digest.into();
        l["size"] = stored.len().into();
        l["mediaType"] = format!("application/vnd.oci.image.layer.v1.{kind}").into();
    }
    let mbytes = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    let md = format!("sha256:{}", sha(&mbytes));
    fs::write(blob(dst, &md), &mbytes).map_err(|e| e.to_string())?;
    let mut index = index;
    index["manifests"][0]["digest"] = md.into();
    index["manifests"][0]["size"] = mbytes.len().into();
    fs::write(
        dst.join("index.json"),
        serde_json::to_vec(&index).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())
}

/// A containers-storage store (by its CLI) and a Docker overlay2 data root
/// laid out from its diff dirs (no dockerd here: the root is assembled as
/// Docker 20–28 lays it out).
fn stores(d: &Path, oci: &Path) -> Result<(PathBuf, PathBuf), String> {
    let graph = d.join("cs");
    let g = graph.display().to_string();
    let runroot = d.join("cs-run").display().to_string();
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
    for i in 0..3 {
        let f = d.join(format!("l{i}.tar")).display().to_string();
        let mut args = vec!["import-layer", "-f", &f];
        if let Some(p) = &parent {
            args.push(p);
        }
        let id = cs(&args)?;
        let id = id.lines().last().unwrap_or_default().to_string();
        ids.push(id.clone());
        parent = Some(id);
    }
    cs(&[
        "create-image",
        "-n",
        "fixture:t",
        parent.as_deref().unwrap_or_default(),
    ])?;
    // The CLI leaves its driver dir bind-mounted (in this test's private namespace).
    let _ = nix::mount::umount2(&graph.join("overlay"), nix::mount::MntFlags::MNT_DETACH);

    let root = d.join("docker");
    let index = json(&oci.join("index.json"))?;
    let manifest = json(&blob(
        oci,
        index["manifests"][0]["digest"].as_str().ok_or("digest")?,
    ))?;
    let cdigest = manifest["config"]["digest"]
        .as_str()
        .ok_or("config")?
        .to_string();
    let config = json(&blob(oci, &cdigest))?;
    let img = root.join("image/overlay2");
    let mk = |p: &Path| fs::create_dir_all(p).map_err(|e| format!("{}: {e}", p.display()));
    mk(&img.join("imagedb/content/sha256"))?;
    fs::copy(
        blob(oci, &cdigest),
        img.join("imagedb/content/sha256")
            .join(cdigest.trim_start_matches("sha256:")),
    )
    .map_err(|e| e.to_string())?;
    let diff_ids: Vec<source::Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or("diff_ids")?
        .iter()
        .map(|v| source::Digest::parse(v.as_str().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    for (i, chain) in source::chain_ids(&diff_ids).iter().enumerate() {
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
                &graph
                    .join("overlay")
                    .join(&ids[i])
                    .join("diff")
                    .display()
                    .to_string(),
                &root.join("overlay2").join(&cache).display().to_string(),
            ],
        )?;
    }
    let repos = serde_json::json!({"Repositories": {"fixture": {"fixture:t": cdigest}}});
    fs::write(img.join("repositories.json"), repos.to_string()).map_err(|e| e.to_string())?;
    Ok((graph, root))
}

/// What the comparison looks at for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    kind: String,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    sha256: String,
    target: String,
    rdev: u64,
    nlink: u64,
    mtime: Option<i64>,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// The same tree with every link count cleared: overlay reports a lower file's
/// own link count, which counts links a higher layer replaced.
pub fn no_nlink(t: BTreeMap<PathBuf, Node>) -> BTreeMap<PathBuf, Node> {
    t.into_iter()
        .map(|(k, mut n)| {
            n.nlink = 0;
            (k, n)
        })
        .collect()
}

/// Every path under `root` (not the root itself).
pub fn snapshot(root: &Path) -> std::io::Result<BTreeMap<PathBuf, Node>> {
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out)?;
    Ok(out)
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Node>) -> std::io::Result<()> {
    for e in fs::read_dir(root.join(rel))? {
        let e = e?;
        let r = rel.join(e.file_name());
        let p = root.join(&r);
        let m = fs::symlink_metadata(&p)?;
        let ft = m.file_type();
        let mut xattrs: Vec<(String, Vec<u8>)> = if ft.is_symlink() {
            Vec::new()
        } else {
            xattr::list(&p)?
                .filter(|k| {
                    !k.to_string_lossy().starts_with("trusted.overlay.")
                        && !k.to_string_lossy().starts_with("security.selinux")
                })
                .map(|k| {
                    let v = xattr::get(&p, &k).ok().flatten().unwrap_or_default();
                    (k.to_string_lossy().into_owned(), v)
                })
                .collect()
        };
        xattrs.sort();
        let (kind, size, sha256, target) = if ft.is_dir() {
            ("dir", 0, String::new(), String::new())
        } else if ft.is_symlink() {
            (
                "symlink",
                0,
                String::new(),
                fs::read_link(&p)?.display().to_string(),
            )
        } else if ft.is_file() {
            ("file", m.len(), sha(&fs::read(&p)?), String::new())
        } else if ft.is_fifo() {
            ("fifo", 0, String::new(), String::new())
        } else if ft.is_char_device() {
            ("char", 0, String::new(), String::new())
        } else if ft.is_block_device() {
            ("block", 0, String::new(), String::new())
        } else {
            ("other", 0, String::new(), String::new())
        };
        out.insert(
            r.clone(),
            Node {
                kind: kind.into(),
                mode: if ft.is_symlink() {
                    0
                } else {
                    m.mode() & 0o7777
                },
                uid: m.uid(),
                gid: m.gid(),
                size,
                sha256,
                target,
                rdev: m.rdev(),
                nlink: if ft.is_dir() { 0 } else { m.nlink() },
                // Directory mtimes change as children come and go; files' must match.
                mtime: (!ft.is_dir()).then_some(m.mtime()),
                xattrs,
            },
        );
        if ft.is_dir() {
            walk(root, &r, out)?;
        }
    }
    Ok(())
}

/// The oracle as a store holds the image: containers-storage (like Docker)
/// makes the parents a layer does not list 0755 in that layer's diff dir, so
/// in layer 3 (which whites out var/fifo without listing var/) the store's own
/// diff says var is 0755, not the 1777 of layer 1 — and that is what podman
/// would show too. The store is read as it is.
pub fn store_oracle(f: &Fixture, reference: &str) -> BTreeMap<PathBuf, Node> {
    let mut want = f.oracle.clone();
    if reference == f.storage || reference == f.docker {
        if let Some(var) = want.get_mut(Path::new("var")) {
            var.mode = 0o755;
        }
    }
    want
}

pub fn diff_trees(
    what: &str,
    want: &BTreeMap<PathBuf, Node>,
    got: &BTreeMap<PathBuf, Node>,
) -> Result<(), Failed> {
    if want == got {
        return Ok(());
    }
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    let differ: Vec<_> = want
        .iter()
        .filter(|(k, v)| got.get(*k).is_some_and(|g| g != *v))
        .map(|(k, v)| format!("{k:?}:\n  umoci {v:?}\n  ours  {:?}", got[k]))
        .collect();
    Err(format!(
        "{what}: differs from umoci's rootfs: missing {missing:?}, extra {extra:?}, differ:\n{}",
        differ.join("\n")
    )
    .into())
}

pub fn open(reference: &str) -> Result<Box<dyn ImageSource>, Failed> {
    let r = ImageRef::parse(reference)?;
    Ok(source::open(&r, &OpenOptions::default())?)
}

pub const IN_PLACE: ApplyOptions = ApplyOptions {
    style: WhiteoutStyle::InPlace,
    devices: DevicePolicy::Create,
    owners: true,
};

pub const DIFF: ApplyOptions = ApplyOptions {
    style: WhiteoutStyle::OverlayDiff {
        xattr_prefix: "trusted.overlay.",
    },
    devices: DevicePolicy::Create,
    owners: true,
};

fn every_transport_flattens_to_umoci_rootfs() -> Result<(), Failed> {
    let f = fixture()?;
    for reference in [
        &f.oci,
        &f.oci_mixed,
        &f.oci_archive,
        &f.docker_archive,
        &f.storage,
        &f.docker,
    ] {
        let src = open(reference)?;
        let dest = tempfile::Builder::new()
            .prefix("flat-")
            .tempdir_in(&f.dir)?;
        for i in 0..src.info().layers.len() {
            apply_layer(&*src, i, dest.path(), &IN_PLACE)
                .map_err(|e| format!("{reference}: {e:#}"))?;
        }
        diff_trees(
            reference,
            &store_oracle(f, reference),
            &snapshot(dest.path())?,
        )?;
    }
    Ok(())
}

fn overlay_over_diff_dirs_shows_umoci_rootfs() -> Result<(), Failed> {
    let f = fixture()?;
    for reference in [&f.oci_mixed, &f.storage] {
        let src = open(reference)?;
        let base = tempfile::Builder::new()
            .prefix("diffs-")
            .tempdir_in(&f.dir)?;
        let n = src.info().layers.len();
        let dirs: Vec<PathBuf> = (0..n).map(|i| base.path().join(format!("d{i}"))).collect();
        // Layers are independent streams: apply them in parallel, as a layout would.
        std::thread::scope(|s| -> Result<(), Failed> {
            let handles: Vec<_> = dirs
                .iter()
                .enumerate()
                .map(|(i, d)| {
                    let src = &*src;
                    s.spawn(move || {
                        fs::create_dir(d).map_err(|e| e.to_string())?;
                        apply_layer(src, i, d, &DIFF).map_err(|e| format!("{e:#}"))
                    })
                })
                .collect();
            let mut implicit = Vec::new();
            for h in handles {
                implicit.push(
                    h.join()
                        .map_err(|_| "apply thread panicked")??
                        .implicit_dirs,
                );
            }
            inherit_implicit_dirs(&dirs, &implicit)?;
            Ok(())
        })?;
        // The diff dirs carry overlay's own markers.
        let wh = fs::symlink_metadata(dirs[1].join("opt/gone"))?;
        if !(wh.file_type().is_char_device() && wh.rdev() == 0) {
            return Err(format!("{reference}: opt/gone in layer 1 is not a 0/0 whiteout").into());
        }
        if xattr::get(dirs[1].join("opt/opq"), "trusted.overlay.opaque")?.as_deref()
            != Some(b"y".as_slice())
        {
            return Err(format!("{reference}: opt/opq in layer 1 is not opaque").into());
        }
        let target = base.path().join("merged");
        fs::create_dir(&target)?;
        let m = mount_overlay(
            &OverlayMount {
                lowers: dirs.iter().rev().cloned().collect(),
                lowers_base: None,
                upper_work: None,
                options: Vec::new(),
                target: target.clone(),
            },
            MountApi::New,
        )?;
        let got = snapshot(&target);
        m.guard.unmount()?;
        // overlay reports a lower file's own link count, which counts links
        // that a higher layer replaced: compare link counts on flattened trees only.
        let no_nlink = |t: BTreeMap<PathBuf, Node>| -> BTreeMap<PathBuf, Node> {
            t.into_iter()
                .map(|(k, mut n)| {
                    n.nlink = 0;
                    (k, n)
                })
                .collect()
        };
        diff_trees(
            &format!("{reference} (overlay)"),
            &no_nlink(store_oracle(f, reference)),
            &no_nlink(got?),
        )?;
    }
    Ok(())
}

/// containerd, rootless, fuse-overlayfs and btrfs import the real image through
/// their own stores and mounts and must show exactly umoci's rootfs (link
/// counts only where the view is a flattened tree of its own).
fn every_new_layout_shows_umoci_rootfs() -> Result<(), Failed> {
    let f = fixture()?;
    let reference = &f.oci_mixed;
    let scratches = crate::differential::Scratches::new();
    for name in ["containerd", "rootless", "fuse-overlayfs", "btrfs"] {
        for api in [MountApi::New, MountApi::Classic] {
            let l = overlaybench::layout::make(name, &crate::config(api));
            let scratch = scratches.for_layout(l.as_ref())?;
            let dir = scratch.path().join(format!("{name}-{api:?}"));
            let src = open(reference)?;
            let img = l.prepare(&*src, &dir.join("img"))?;
            let c = l.create_container(&img, &dir.join("c"))?;
            let m = l.mount(&img, &c)?;
            let got = snapshot(&m.merged);
            m.unmount()?;
            l.remove_container(&c)?;
            let caps = l.capabilities();
            let own_tree = matches!(caps.copy_up, CopyUp::None | CopyUp::BlockCow);
            let links = |t: BTreeMap<PathBuf, Node>| -> BTreeMap<PathBuf, Node> {
                t.into_iter()
                    .map(|(k, mut n)| {
                        if !own_tree {
                            n.nlink = 0;
                        }
                        (k, n)
                    })
                    .collect()
            };
            diff_trees(
                &format!("{reference} through {name} ({api:?} mount API)"),
                &links(store_oracle(f, reference)),
                &links(got?),
            )?;
        }
    }
    Ok(())
}

/// Every entry of every layer, with a hash of its content.
pub fn entries(src: &dyn ImageSource) -> Result<Vec<Vec<(Entry, String)>>, Failed> {
    let mut layers = Vec::new();
    for i in 0..src.info().layers.len() {
        let mut out = Vec::new();
        let mut sink = |e: &Entry, c: &mut dyn Read| {
            let mut h = Sha256::new();
            let mut buf = [0u8; 8192];
            loop {
                match c.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => h.update(&buf[..n]),
                    Err(_) => return Err(overlaybench::image::Stop),
                }
            }
            out.push((e.clone(), format!("{:x}", h.finalize())));
            Ok(())
        };
        src.visit_layer(i, &mut sink)?;
        layers.push(out);
    }
    Ok(layers)
}

fn tar_transports_give_the_same_entries() -> Result<(), Failed> {
    let f = fixture()?;
    let want = entries(&*open(&f.oci)?)?;
    if want.iter().map(Vec::len).sum::<usize>() < 40 {
        return Err("the fixture should have at least 40 entries".into());
    }
    for reference in [&f.oci_mixed, &f.oci_archive, &f.docker_archive] {
        let got = entries(&*open(reference)?)?;
        if got != want {
            return Err(format!("{reference}: entries differ from {}", f.oci).into());
        }
    }
    Ok(())
}

fn info_has_digests_diff_ids_and_chain_ids() -> Result<(), Failed> {
    let f = fixture()?;
    let oci = open(&f.oci)?;
    let info = oci.info();
    let layout = f.oci.trim_start_matches("oci:").trim_end_matches(":t");
    let index = json(&Path::new(layout).join("index.json"))?;
    let mdigest = index["manifests"][0]["digest"].as_str().unwrap_or_default();
    if info.manifest_digest.as_deref() != Some(mdigest)
        || info.layers.len() != 3
        || info.reference != f.oci
    {
        return Err(format!("{info:?}").into());
    }
    let diff_ids: Vec<source::Digest> = info
        .layers
        .iter()
        .map(|l| source::Digest::parse(l.diff_id.as_deref().unwrap_or_default()))
        .collect::<Result<_, _>>()?;
    let chains: Vec<String> = source::chain_ids(&diff_ids)
        .iter()
        .map(|c| c.to_string())
        .collect();
    for reference in [
        &f.oci_mixed,
        &f.oci_archive,
        &f.docker_archive,
        &f.storage,
        &f.docker,
    ] {
        let other = open(reference)?;
        let got: Vec<(Option<String>, String)> = other
            .info()
            .layers
            .iter()
            .map(|l| (l.diff_id.clone(), l.chain_id.clone()))
            .collect();
        let want: Vec<(Option<String>, String)> = info
            .layers
            .iter()
            .map(|l| l.diff_id.clone())
            .zip(chains.clone())
            .collect();
        if got != want {
            return Err(format!("{reference}: diff_ids/chain_ids {got:?}, want {want:?}").into());
        }
    }
    // The gzip layers' digests are the blobs'; the mixed image stores layer 2 raw.
    let mixed = open(&f.oci_mixed)?;
    let l2 = &mixed.info().layers[1];
    if Some(&l2.digest) != l2.diff_id.as_ref() || l2.uncompressed_bytes != Some(l2.stored_bytes) {
        return Err(format!("uncompressed layer: {l2:?}").into());
    }
    let hint = open(&f.storage)?.info().unpacked_bytes_hint();
    if !hint.exact || hint.bytes < 350_000 {
        return Err(format!("containers-storage size hint {hint:?}").into());
    }
    Ok(())
}

/// An image cannot forge overlay markers: `trusted.overlay.*` and
/// `user.overlay.*` xattrs are dropped and counted; others are kept.
fn overlay_markers_are_dropped_from_image_xattrs() -> Result<(), Failed> {
    let f = fixture()?;
    let d = tempfile::Builder::new()
        .prefix("forged-")
        .tempdir_in(&f.dir)?;
    let tar = layer_tar(&[
        E::Xattr(
            "d/",
            0o755,
            b"",
            &[
                ("trusted.overlay.opaque", b"y"),
                ("user.overlay.redirect", b"/x"),
                ("user.keep", b"1"),
            ],
        ),
        E::File("d/f", 0o644, b"f"),
    ]);
    let src = crate::hostile::single_layer_image(d.path(), &tar)?;
    let dest = d.path().join("out");
    fs::create_dir(&dest)?;
    let stats = apply_layer(&*src, 0, &dest, &DIFF)?;
    let names: Vec<String> = xattr::list(dest.join("d"))?
        .map(|k| k.to_string_lossy().into_owned())
        .collect();
    if stats.xattrs_dropped != 2 || stats.xattrs != 1 || names != ["user.keep"] {
        return Err(format!("stats {stats:?}, xattrs {names:?}").into());
    }
    let _ = std::io::stdout().flush();
    Ok(())
}
