//! Image references in skopeo's transport spelling.

use std::path::PathBuf;
use std::str::FromStr;

use super::blob::Digest;
use super::SourceError;

/// The forms `ImageRef::parse` accepts, for error messages and help text.
pub const ACCEPTED_FORMS: &str = "oci:DIR[:TAG], oci-archive:FILE[:TAG], \
docker-archive:FILE[:NAME[:TAG]|:@INDEX], containers-storage:[[ROOT]]NAME, \
docker:ROOT:NAME, registry:HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]";

/// A parsed image reference, with the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The reference as the user gave it (kept for reports and messages).
    pub given: String,
    /// Where the image is.
    pub target: Target,
}

/// Where an image is, per transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An OCI image layout directory; `tag` matches the index's
    /// `org.opencontainers.image.ref.name` annotation.
    Oci { dir: PathBuf, tag: Option<String> },
    /// An OCI image layout in an uncompressed tar.
    OciArchive { file: PathBuf, tag: Option<String> },
    /// What `docker save`/`podman save` write; `reference` is `NAME[:TAG]`
    /// matched against `RepoTags`, or `@N` for the N-th image of the archive.
    DockerArchive {
        file: PathBuf,
        reference: Option<String>,
    },
    /// A containers-storage store read in place; `root` `None` means the
    /// graphroot of storage.conf (or the default).
    ContainersStorage { root: Option<PathBuf>, name: String },
    /// A Docker data root (`/var/lib/docker`) with the overlay2 driver, read in place.
    Docker { root: PathBuf, name: String },
    /// An image in a registry, over the OCI distribution API.
    Registry(RegistryRef),
}

/// `HOST[:PORT]/REPO[:TAG|@DIGEST]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryRef {
    /// Host and optional port, as given (`docker.io` is mapped to Docker Hub's API host).
    pub host: String,
    /// Repository path (`library/debian`).
    pub repository: String,
    /// Tag or digest.
    pub reference: RegistryTag,
}

/// A registry manifest reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryTag {
    /// A tag (`latest` when none is given).
    Tag(String),
    /// A manifest digest.
    Digest(Digest),
}

impl std::fmt::Display for RegistryTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryTag::Tag(t) => f.write_str(t),
            RegistryTag::Digest(d) => write!(f, "{d}"),
        }
    }
}

impl FromStr for ImageRef {
    type Err = SourceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

impl std::fmt::Display for ImageRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.given)
    }
}

fn bad(value: &str, reason: impl Into<String>) -> SourceError {
    SourceError::BadReference {
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// `PATH[:REST]` split at the first colon, as containers/image does.
fn path_and_rest(
    value: &str,
    body: &str,
    what: &str,
) -> Result<(PathBuf, Option<String>), SourceError> {
    let (path, rest) = match body.split_once(':') {
        Some((p, r)) => (p, Some(r)),
        None => (body, None),
    };
    if path.is_empty() {
        return Err(bad(value, format!("the {what} path is empty")));
    }
    if let Some(r) = rest {
        if r.is_empty() {
            return Err(bad(value, "empty name after ':'"));
        }
    }
    Ok((PathBuf::from(path), rest.map(str::to_string)))
}

fn valid_tag(tag: &str) -> bool {
    // Distribution's tag grammar: [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    !tag.is_empty()
        && tag.len() <= 128
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

impl ImageRef {
    /// Parses `TRANSPORT:REST` (see `ACCEPTED_FORMS`). Paths are kept as
    /// given; they are opened (and must exist) when the image is opened.
    pub fn parse(value: &str) -> Result<ImageRef, SourceError> {
        let Some((transport, body)) = value.split_once(':') else {
            return Err(bad(value, "no transport prefix"));
        };
        if body.is_empty() {
            return Err(bad(value, "nothing after the transport"));
        }
        let target = match transport {
            "oci" => {
                let (dir, tag) = path_and_rest(value, body, "layout directory")?;
                Target::Oci { dir, tag }
            }
            "oci-archive" => {
                let (file, tag) = path_and_rest(value, body, "archive")?;
                Target::OciArchive { file, tag }
            }
            "docker-archive" => {
                let (file, reference) = path_and_rest(value, body, "archive")?;
                Target::DockerArchive { file, reference }
            }
            "containers-storage" => {
                let (root, name) = match body.strip_prefix('[') {
                    Some(rest) => {
                        let (spec, name) = rest
                            .split_once(']')
                            .ok_or_else(|| bad(value, "'[' without a closing ']'"))?;
                        (Some(store_root(value, spec)?), name)
                    }
                    None => (None, body),
                };
                if name.is_empty() {
                    return Err(bad(value, "no image name after the store"));
                }
                Target::ContainersStorage {
                    root,
                    name: name.to_string(),
                }
            }
            "docker" => {
                let (root, name) = path_and_rest(value, body, "data root")?;
                let name = name.ok_or_else(|| {
                    bad(
                        value,
                        "no image name after the data root (docker:ROOT:NAME)",
                    )
                })?;
                Target::Docker { root, name }
            }
            "registry" => Target::Registry(parse_registry(value, body)?),
            other => return Err(bad(value, format!("unknown transport {other:?}"))),
        };
        Ok(ImageRef {
            given: value.to_string(),
            target,
        })
    }
}

/// The graphroot of skopeo's `[driver@graphroot+runroot:options]` specifier
/// (or of a bare `[graphroot]`).
fn store_root(value: &str, spec: &str) -> Result<PathBuf, SourceError> {
    let after_driver = match spec.split_once('@') {
        Some((_, r)) => r,
        None => spec,
    };
    let root = after_driver.split(['+', ':']).next().unwrap_or_default();
    if root.is_empty() || !root.starts_with('/') {
        return Err(bad(value, "the store root in [ ] must be an absolute path"));
    }
    Ok(PathBuf::from(root))
}

fn parse_registry(value: &str, body: &str) -> Result<RegistryRef, SourceError> {
    let body = body.strip_prefix("//").unwrap_or(body);
    let (host, rest) = body
        .split_once('/')
        .ok_or_else(|| bad(value, "expected HOST[:PORT]/REPO"))?;
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
    {
        return Err(bad(value, format!("bad registry host {host:?}")));
    }
    let (repo, reference) = if let Some((repo, digest)) = rest.split_once('@') {
        let d = Digest::parse(digest).map_err(|e| bad(value, e))?;
        (repo, RegistryTag::Digest(d))
    } else {
        // A tag follows the last ':' that comes after the last '/'.
        let slash = rest.rfind('/').map_or(0, |i| i + 1);
        match rest[slash..].rfind(':') {
            Some(i) => {
                let tag = &rest[slash + i + 1..];
                if !valid_tag(tag) {
                    return Err(bad(value, format!("bad tag {tag:?}")));
                }
                (&rest[..slash + i], RegistryTag::Tag(tag.to_string()))
            }
            None => (rest, RegistryTag::Tag("latest".into())),
        }
    };
    // Distribution's repository grammar: lowercase components separated by '/'.
    let ok_component = |c: &str| {
        !c.is_empty()
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && !c.starts_with(['.', '_', '-'])
    };
    if repo.is_empty() || !repo.split('/').all(ok_component) {
        return Err(bad(
            value,
            format!("bad repository {repo:?} (lowercase a-z0-9._- components)"),
        ));
    }
    Ok(RegistryRef {
        host: host.to_string(),
        repository: repo.to_string(),
        reference,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        ImageRef::parse(s).expect(s).target
    }

    #[test]
    fn transports_parse_as_skopeo_spells_them() {
        assert_eq!(
            t("oci:/x/y:v1"),
            Target::Oci {
                dir: "/x/y".into(),
                tag: Some("v1".into())
            }
        );
        assert_eq!(
            t("oci:rel"),
            Target::Oci {
                dir: "rel".into(),
                tag: None
            }
        );
        assert_eq!(
            t("docker-archive:/a.tar:busybox:latest"),
            Target::DockerArchive {
                file: "/a.tar".into(),
                reference: Some("busybox:latest".into())
            }
        );
        assert_eq!(
            t("containers-storage:[/s]img"),
            Target::ContainersStorage {
                root: Some("/s".into()),
                name: "img".into()
            }
        );
        assert_eq!(
            t("containers-storage:[overlay@/s+/run/s:opt=1]img:tag"),
            Target::ContainersStorage {
                root: Some("/s".into()),
                name: "img:tag".into()
            }
        );
        assert_eq!(
            t("containers-storage:img"),
            Target::ContainersStorage {
                root: None,
                name: "img".into()
            }
        );
        assert_eq!(
            t("docker:/var/lib/docker:debian:12"),
            Target::Docker {
                root: "/var/lib/docker".into(),
                name: "debian:12".into()
            }
        );
        assert_eq!(
            t("registry:127.0.0.1:5000/a/b:t1"),
            Target::Registry(RegistryRef {
                host: "127.0.0.1:5000".into(),
                repository: "a/b".into(),
                reference: RegistryTag::Tag("t1".into())
            })
        );
        let d = format!("sha256:{}", "ab".repeat(32));
        assert_eq!(
            t(&format!("registry:h/r@{d}")),
            Target::Registry(RegistryRef {
                host: "h".into(),
                repository: "r".into(),
                reference: RegistryTag::Digest(Digest::parse(&d).unwrap())
            })
        );
        assert_eq!(
            t("registry:h:5000/r"),
            Target::Registry(RegistryRef {
                host: "h:5000".into(),
                repository: "r".into(),
                reference: RegistryTag::Tag("latest".into())
            })
        );
    }

    #[test]
    fn bad_references_name_the_value_and_the_forms() {
        for bad in [
            "",
            "nothing",
            "oci:",
            "oci::tag",
            "ftp:/x",
            "docker:/root",
            "containers-storage:[rel]x",
            "containers-storage:[/s",
            "registry:host",
            "registry:h/UPPER:t",
            "registry:h/r:bad tag",
            "registry:h/r@sha256:short",
            "oci-archive:/x:",
        ] {
            let e = ImageRef::parse(bad).expect_err(bad).to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
            assert!(e.contains("oci-archive:FILE"), "{e}");
            assert_eq!(
                ImageRef::parse(bad).unwrap_err().class(),
                crate::error::ErrorClass::Usage
            );
        }
    }
}
