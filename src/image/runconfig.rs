//! What an image says to run: the `config` part of its image config
//! (Entrypoint, Cmd, Env, WorkingDir, User), read with oci-spec's types and
//! checked before anything is started from it.
//!
//! The config comes from the image, so from anyone: every string and list is
//! bounded here (a container's argv and environment go to `execve`, which
//! refuses more than about 2 MiB and any NUL inside a string), and a refusal
//! names the field and the value. A `User` is checked against the image's own
//! `/etc/passwd` and `/etc/group` where the container runs (`resolve_user`).

use std::io::Read;
use std::path::Path;

/// Most environment entries an image may set.
pub const MAX_ENV_ENTRIES: usize = 1024;
/// Most arguments (Entrypoint + Cmd, or `--app-command`).
pub const MAX_ARGS: usize = 1024;
/// Longest single string (an argument, an environment entry, a path).
pub const MAX_STRING_BYTES: usize = 32 << 10;
/// Most bytes of argv and environment together (a quarter of Linux's usual
/// ARG_MAX, so the runtime's own additions fit beside them).
pub const MAX_TOTAL_BYTES: usize = 512 << 10;
/// Longest `User` value.
pub const MAX_USER_BYTES: usize = 256;
/// Largest `/etc/passwd` or `/etc/group` read to resolve a user.
pub const MAX_ACCOUNTS_FILE_BYTES: u64 = 4 << 20;

/// The image config's run settings, as the image gave them (unchecked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunConfig {
    /// `Entrypoint`.
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    pub cmd: Option<Vec<String>>,
    /// `Env` (`KEY=VALUE`).
    pub env: Vec<String>,
    /// `WorkingDir`.
    pub working_dir: Option<String>,
    /// `User` (`user`, `uid`, `user:group`, `uid:gid`, …).
    pub user: Option<String>,
}

/// A run config or a command that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunConfigError {
    /// A value breaks a bound or holds what `execve` refuses.
    #[error("{image}: image config {field} {value}: {reason}")]
    Field {
        image: String,
        field: &'static str,
        value: String,
        reason: String,
    },
    /// Nothing to run.
    #[error(
        "{image}: nothing to run: the image config has no Entrypoint and no Cmd, and no --app-command \
         was given; give --app-command 'CMD ARGS…'"
    )]
    NoCommand { image: String },
    /// `User` names an account the image does not have.
    #[error("{image}: image config User {user:?}: {reason}")]
    User {
        image: String,
        user: String,
        reason: String,
    },
    /// The source carries no image config at all (a store read as
    /// directories): how it starts (Env, User, WorkingDir, its command) is unknown.
    #[error(
        "{image}: this source gives no image config (Entrypoint, Cmd, Env, User, WorkingDir), so how the \
         image starts is unknown; give it as oci:, oci-archive:, docker-archive: or registry: (skopeo copy \
         writes one)"
    )]
    NoConfig { image: String },
}

impl RunConfigError {
    /// Always bad input.
    pub fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Usage
    }
}

/// A value shown in a message: its start, escaped, and its length when long.
fn shown(s: &str) -> String {
    if s.len() <= 80 {
        format!("{s:?}")
    } else {
        let mut end = 60;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{:?}… ({} bytes)", &s[..end], s.len())
    }
}

impl RunConfig {
    /// From the image config's `config` object (oci-spec's type).
    pub fn from_oci(c: &oci_spec::image::Config) -> RunConfig {
        RunConfig {
            entrypoint: c.entrypoint().clone(),
            cmd: c.cmd().clone(),
            env: c.env().clone().unwrap_or_default(),
            working_dir: c.working_dir().clone().filter(|w| !w.is_empty()),
            user: c.user().clone().filter(|u| !u.is_empty()),
        }
    }

    /// The argv to run: `command` when given, else Entrypoint + Cmd; every
    /// field checked against the bounds. `image` names the image in messages.
    pub fn checked_argv(
        &self,
        image: &str,
        command: Option<&[String]>,
    ) -> Result<Vec<String>, RunConfigError> {
        let field = |field: &'static str, value: &str, reason: String| RunConfigError::Field {
            image: image.to_string(),
            field,
            value: shown(value),
            reason,
        };
        let string = |name: &'static str, s: &str| -> Result<(), RunConfigError> {
            if s.contains('\0') {
                return Err(field(
                    name,
                    s,
                    "holds a NUL byte, which no exec argument or environment entry can".into(),
                ));
            }
            if s.len() > MAX_STRING_BYTES {
                return Err(field(
                    name,
                    s,
                    format!("is longer than {MAX_STRING_BYTES} bytes"),
                ));
            }
            Ok(())
        };
        if self.env.len() > MAX_ENV_ENTRIES {
            return Err(field(
                "Env",
                &format!("[{} entries]", self.env.len()),
                format!("has more than {MAX_ENV_ENTRIES} entries"),
            ));
        }
        for e in &self.env {
            string("Env", e)?;
            match e.split_once('=') {
                Some((k, _)) if !k.is_empty() => {}
                _ => return Err(field("Env", e, "is not KEY=VALUE".into())),
            }
        }
        if let Some(w) = &self.working_dir {
            string("WorkingDir", w)?;
            if !w.starts_with('/') {
                return Err(field("WorkingDir", w, "is not an absolute path".into()));
            }
        }
        if let Some(u) = &self.user {
            string("User", u)?;
            if u.len() > MAX_USER_BYTES {
                return Err(field(
                    "User",
                    u,
                    format!("is longer than {MAX_USER_BYTES} bytes"),
                ));
            }
        }
        for (name, list) in [("Entrypoint", &self.entrypoint), ("Cmd", &self.cmd)] {
            for a in list.iter().flatten() {
                string(name, a)?;
            }
        }
        let argv: Vec<String> = match command {
            Some(c) => {
                for a in c {
                    string("--app-command", a)?;
                }
                c.to_vec()
            }
            None => self
                .entrypoint
                .iter()
                .flatten()
                .chain(self.cmd.iter().flatten())
                .cloned()
                .collect(),
        };
        if argv.is_empty() {
            return Err(RunConfigError::NoCommand {
                image: image.to_string(),
            });
        }
        if argv.len() > MAX_ARGS {
            return Err(field(
                "Entrypoint+Cmd",
                &format!("[{} arguments]", argv.len()),
                format!("has more than {MAX_ARGS} arguments"),
            ));
        }
        let total: usize = argv.iter().chain(&self.env).map(|s| s.len() + 1).sum();
        if total > MAX_TOTAL_BYTES {
            return Err(field(
                "Env+Entrypoint+Cmd",
                &format!("[{total} bytes]"),
                format!("take more than {MAX_TOTAL_BYTES} bytes together"),
            ));
        }
        Ok(argv)
    }
}

/// A user and group as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ids {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Reads `/etc/<name>` of the container's root `root` (a directory fd's path
/// the caller made), resolved inside that root so an image's symlink cannot
/// reach the host's files; bounded; `None` when the image has none.
fn accounts_file(root: &Path, name: &str) -> Result<Option<String>, String> {
    let path = format!("etc/{name}");
    let file = match open_in_root(root, Path::new(&path)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("opening /{path} of the image: {e}")),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("reading /{path} of the image: {e}"))?;
    if !meta.is_file() {
        return Err(format!("/{path} of the image is not a regular file"));
    }
    let mut text = Vec::new();
    file.take(MAX_ACCOUNTS_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("reading /{path} of the image: {e}"))?;
    if text.len() as u64 > MAX_ACCOUNTS_FILE_BYTES {
        return Err(format!(
            "/{path} of the image is larger than {MAX_ACCOUNTS_FILE_BYTES} bytes"
        ));
    }
    Ok(Some(String::from_utf8_lossy(&text).into_owned()))
}

/// Opens `rel` for reading as if `root` were `/` (symlinks, `..` and
/// absolute links stay inside it; magic links are refused).
fn open_in_root(root: &Path, rel: &Path) -> std::io::Result<std::fs::File> {
    use rustix::fs::{openat2, Mode, OFlags, ResolveFlags, CWD};
    let dir = openat2(
        CWD,
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::empty(),
    )?;
    let fd = openat2(
        &dir,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )?;
    Ok(std::fs::File::from(fd))
}

/// `(name, id, gid-if-passwd)` of each line of a passwd or group file.
fn entries(text: &str) -> impl Iterator<Item = (&str, u32, Option<u32>)> {
    text.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        let id = f.get(2)?.parse().ok()?;
        Some((*f.first()?, id, f.get(3).and_then(|g| g.parse().ok())))
    })
}

/// The ids `user` (the image's `User`; root when `None`) names in the image
/// mounted at `root`: numbers stand for themselves (a uid without a group
/// takes its passwd group, else 0); names must exist in the image's
/// `/etc/passwd` / `/etc/group`.
pub fn resolve_user(image: &str, user: Option<&str>, root: &Path) -> Result<Ids, RunConfigError> {
    let Some(user) = user else {
        return Ok(Ids { uid: 0, gid: 0 });
    };
    let err = |reason: String| RunConfigError::User {
        image: image.to_string(),
        user: user.to_string(),
        reason,
    };
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if u.is_empty() || g.is_some_and(str::is_empty) {
        return Err(err("is not user[:group]".into()));
    }
    let passwd = accounts_file(root, "passwd").map_err(&err)?;
    let by_name = |text: &Option<String>, name: &str| {
        text.as_deref().and_then(|t| {
            entries(t)
                .find(|(n, _, _)| *n == name)
                .map(|(_, id, g)| (id, g))
        })
    };
    let (uid, passwd_gid) = match u.parse::<u32>() {
        Ok(uid) => (
            uid,
            passwd
                .as_deref()
                .and_then(|t| entries(t).find(|(_, id, _)| *id == uid).and_then(|e| e.2)),
        ),
        Err(_) => match by_name(&passwd, u) {
            Some((uid, g)) => (uid, g),
            None => {
                return Err(err(format!(
                    "names user {u:?}, which the image's /etc/passwd does not have{}",
                    if passwd.is_none() {
                        " (it has no /etc/passwd)"
                    } else {
                        ""
                    }
                )))
            }
        },
    };
    let gid = match g {
        None => passwd_gid.unwrap_or(0),
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                let group = accounts_file(root, "group").map_err(&err)?;
                match by_name(&group, g) {
                    Some((gid, _)) => gid,
                    None => {
                        return Err(err(format!(
                            "names group {g:?}, which the image's /etc/group does not have"
                        )))
                    }
                }
            }
        },
    };
    Ok(Ids { uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RunConfig {
        RunConfig {
            entrypoint: Some(vec!["/bin/sh".into(), "-c".into()]),
            cmd: Some(vec!["echo hi".into()]),
            env: vec!["PATH=/bin".into()],
            working_dir: Some("/".into()),
            user: None,
        }
    }

    #[test]
    fn argv_is_entrypoint_then_cmd_or_the_command() {
        assert_eq!(
            cfg().checked_argv("i", None).expect("ok"),
            ["/bin/sh", "-c", "echo hi"]
        );
        let c = vec!["true".to_string()];
        assert_eq!(cfg().checked_argv("i", Some(&c)).expect("ok"), ["true"]);
        let none = RunConfig::default();
        let e = none.checked_argv("img", None).expect_err("nothing");
        assert!(e.to_string().contains("no Entrypoint and no Cmd"), "{e}");
        assert!(e.to_string().contains("--app-command"), "{e}");
    }

    #[test]
    fn hostile_values_are_named() {
        let mut c = cfg();
        c.env = vec!["A=b\0c".into()];
        let e = c.checked_argv("i", None).expect_err("nul").to_string();
        assert!(e.contains("Env") && e.contains("NUL"), "{e}");
        let mut c = cfg();
        c.env = (0..2000).map(|i| format!("K{i}=v")).collect();
        let e = c.checked_argv("i", None).expect_err("many").to_string();
        assert!(e.contains("Env") && e.contains("2000 entries"), "{e}");
        let mut c = cfg();
        c.env = vec![format!("K={}", "x".repeat(MAX_STRING_BYTES))];
        let e = c.checked_argv("i", None).expect_err("long").to_string();
        assert!(e.contains("Env") && e.contains("bytes"), "{e}");
        let mut c = cfg();
        c.working_dir = Some("rel".into());
        let e = c.checked_argv("i", None).expect_err("rel").to_string();
        assert!(e.contains("WorkingDir") && e.contains("\"rel\""), "{e}");
        let mut c = cfg();
        c.cmd = Some(vec!["a\0".into()]);
        assert!(c.checked_argv("i", None).is_err());
    }

    #[test]
    fn users_resolve_in_the_image() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(d.path().join("etc")).expect("etc");
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nredis:x:100:101::/:/bin/false\n",
        )
        .expect("passwd");
        std::fs::write(d.path().join("etc/group"), "root:x:0:\nredis:x:101:\n").expect("group");
        let r = |u: &str| resolve_user("i", Some(u), d.path());
        assert_eq!(r("redis"), Ok(Ids { uid: 100, gid: 101 }));
        assert_eq!(r("100"), Ok(Ids { uid: 100, gid: 101 }));
        assert_eq!(r("5:6"), Ok(Ids { uid: 5, gid: 6 }));
        assert_eq!(r("redis:root"), Ok(Ids { uid: 100, gid: 0 }));
        let e = r("nobody").expect_err("missing").to_string();
        assert!(e.contains("\"nobody\"") && e.contains("/etc/passwd"), "{e}");
        let e = r("redis:wheel").expect_err("missing").to_string();
        assert!(e.contains("\"wheel\""), "{e}");
        // A symlink out of the image is resolved inside it.
        std::fs::remove_file(d.path().join("etc/passwd")).expect("rm");
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("etc/passwd")).expect("ln");
        let e = r("root").expect_err("no passwd inside").to_string();
        assert!(e.contains("\"root\""), "{e}");
    }
}
