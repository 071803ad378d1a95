//! Canonical paths, made once where a path enters: symlinks, `.`, `..` and
//! repeated slashes resolved, relative paths made absolute, so that every later
//! comparison (mountinfo lookups, "is it under the scratch dir") is exact.

use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

use crate::error::ErrorClass;

/// A path the user gave that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("{option} {}: {reason}", path.display())]
    Unusable {
        option: &'static str,
        path: PathBuf,
        reason: String,
    },
}

impl PathError {
    /// Always bad input.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }

    fn new(option: &'static str, path: &Path, reason: impl Into<String>) -> Self {
        PathError::Unusable {
            option,
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}

fn describe(e: &std::io::Error) -> String {
    match e.raw_os_error().map(Errno::from_raw) {
        Some(Errno::ENOENT) => "does not exist".into(),
        Some(Errno::ELOOP) => "too many levels of symbolic links (a symlink loop)".into(),
        Some(Errno::ENOTDIR) => "a component of the path is not a directory".into(),
        _ => e.to_string(),
    }
}

/// The longest path the kernel takes (`PATH_MAX` less its NUL) and the longest name.
const PATH_MAX_BYTES: usize = 4095;
const NAME_MAX_BYTES: usize = 255;

/// Refuses a path the kernel could not take whole (named by its length, not
/// shown: it may be thousands of characters).
fn check_length(option: &'static str, path: &Path, resolved: &Path) -> Result<(), PathError> {
    let len = resolved.as_os_str().len();
    let short = || {
        let s = path.display().to_string();
        if s.chars().count() > 80 {
            format!("{}…", s.chars().take(80).collect::<String>())
        } else {
            s
        }
    };
    if len > PATH_MAX_BYTES {
        return Err(PathError::new(
            option,
            Path::new(&short()),
            format!("is {len} bytes long; a path is at most {PATH_MAX_BYTES} bytes (PATH_MAX): name a shorter one"),
        ));
    }
    if let Some(name) = resolved
        .components()
        .map(|c| c.as_os_str().len())
        .find(|n| *n > NAME_MAX_BYTES)
    {
        return Err(PathError::new(
            option,
            Path::new(&short()),
            format!("has a {name}-byte name; a name is at most {NAME_MAX_BYTES} bytes: name a shorter one"),
        ));
    }
    Ok(())
}

/// The canonical form of an existing path (`option` names it in errors).
pub fn canonical_existing(option: &'static str, path: &Path) -> Result<PathBuf, PathError> {
    if path.as_os_str().is_empty() {
        return Err(PathError::new(option, path, "is empty"));
    }
    check_length(option, path, path)?;
    std::fs::canonicalize(path).map_err(|e| PathError::new(option, path, describe(&e)))
}

/// The canonical form of a path that may not exist yet (a dir we will create):
/// its longest existing ancestor resolved, the rest normalised lexically (it
/// cannot hold symlinks: it does not exist). Refuses a path whose existing part
/// is not a directory.
pub fn canonical_for_creation(option: &'static str, path: &Path) -> Result<PathBuf, PathError> {
    if path.as_os_str().is_empty() {
        return Err(PathError::new(option, path, "is empty"));
    }
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| PathError::new(option, path, format!("the current directory: {e}")))?
            .join(path)
    };
    check_length(option, path, &abs)?;
    let comps: Vec<Component> = abs.components().collect();
    let mut resolved = PathBuf::from("/");
    let mut missing = false;
    for (i, comp) in comps.iter().enumerate() {
        match comp {
            Component::RootDir | Component::Prefix(_) | Component::CurDir => {}
            Component::ParentDir => {
                resolved.pop();
            }
            Component::Normal(name) => {
                let next = resolved.join(name);
                if missing {
                    resolved = next;
                    continue;
                }
                match std::fs::symlink_metadata(&next) {
                    Ok(_) => {
                        resolved = std::fs::canonicalize(&next)
                            .map_err(|e| PathError::new(option, path, describe(&e)))?;
                        let more = comps[i + 1..]
                            .iter()
                            .any(|c| !matches!(c, Component::CurDir));
                        if more && !resolved.is_dir() {
                            return Err(PathError::new(
                                option,
                                path,
                                format!("{} is not a directory", resolved.display()),
                            ));
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        missing = true;
                        resolved = next;
                    }
                    Err(e) => return Err(PathError::new(option, path, describe(&e))),
                }
            }
        }
    }
    check_length(option, path, &resolved)?;
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_links_dots_and_missing_tails() {
        let d = tempfile::tempdir().expect("tempdir");
        let base = std::fs::canonicalize(d.path()).expect("canon");
        std::fs::create_dir(base.join("a")).expect("mkdir");
        std::os::unix::fs::symlink(base.join("a"), base.join("link")).expect("symlink");
        let typed = PathBuf::from(format!("{}//link/../a/./new/x/../y/", base.display()));
        assert_eq!(
            canonical_for_creation("--scratch", &typed).expect("ok"),
            base.join("a/new/y")
        );
        assert_eq!(
            canonical_for_creation("--scratch", &base.join("link/new")).expect("ok"),
            base.join("a/new")
        );
        std::fs::write(base.join("file"), "x").expect("write");
        let err = canonical_for_creation("--scratch", &base.join("file/sub")).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
        assert_eq!(
            canonical_for_creation("--out", &base.join("file")).expect("a file is a path"),
            base.join("file")
        );
        let err = canonical_existing("--path", &base.join("none")).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let long = base.join("a/".repeat(2500));
        let err = canonical_for_creation("--out", &long).unwrap_err();
        assert!(err.to_string().contains("PATH_MAX"), "{err}");
        let err = canonical_for_creation("--out", &base.join("n".repeat(300))).unwrap_err();
        assert!(err.to_string().contains("255 bytes"), "{err}");
    }
}
