//! Claim 7: `rename(2)` works only when source and target are both in the top
//! layer, otherwise it fails with EXDEV. Checked with raw `rename(2)` (not
//! `mv`, which falls back to copying on EXDEV) of a lower file, a lower
//! directory and a directory made in the container, with `redirect_dir=off`
//! and `redirect_dir=on`.

use std::fs;
use std::path::Path;

use super::rig::{self, Container};
use super::{ClaimContext, ClaimEntry, ClaimError, Finding};
use crate::report::ClaimVerdict;

/// Registry entry.
pub static CLAIM: ClaimEntry = ClaimEntry {
    id: 7,
    slug: "rename-exdev",
    statement: "rename(2) works only when source and target are both in the top layer; otherwise it fails with \
                EXDEV (\"cross-device link not permitted\").",
    check,
    compares: None,
};

/// The outcome of the three renames under one `redirect_dir` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renames {
    /// A file of the image.
    pub lower_file: String,
    /// A directory of the image.
    pub lower_dir: String,
    /// A directory made in the container (upper only).
    pub upper_dir: String,
    /// The renamed lower directory carries overlay's redirect xattr.
    pub redirect_xattr: bool,
}

/// Changed when files always rename and lower directories give EXDEV only with
/// `redirect_dir=off`; confirmed when every rename out of a lower layer gives
/// EXDEV; refuted otherwise.
pub fn verdict_for(off: &Renames, on: &Renames) -> ClaimVerdict {
    let exdev = |s: &str| s == "EXDEV";
    if off.lower_file == "ok"
        && on.lower_file == "ok"
        && exdev(&off.lower_dir)
        && on.lower_dir == "ok"
    {
        ClaimVerdict::Changed
    } else if exdev(&off.lower_file)
        && exdev(&off.lower_dir)
        && exdev(&on.lower_file)
        && exdev(&on.lower_dir)
    {
        ClaimVerdict::Confirmed
    } else {
        ClaimVerdict::Refuted
    }
}

fn renames(c: &Container, redirect_xattr: Option<&str>) -> Result<Renames, ClaimError> {
    let ren = |a: &str, b: &str| rig::errno_word(&fs::rename(c.path(a), c.path(b)));
    let made = c.path("made");
    fs::create_dir(&made).map_err(ClaimError::io("creating", &made))?;
    let r = Renames {
        lower_file: ren("file", "file2"),
        lower_dir: ren("dir", "dir2"),
        upper_dir: ren("made", "made2"),
        redirect_xattr: false,
    };
    let renamed = c.upper()?.join("dir2");
    let redirect = match redirect_xattr {
        Some(name) if renamed.is_dir() => xattr::get(&renamed, name)
            .map_err(ClaimError::io("reading xattrs of", &renamed))?
            .is_some(),
        _ => false,
    };
    Ok(Renames {
        redirect_xattr: redirect,
        ..r
    })
}

fn describe(r: &Renames) -> String {
    format!(
        "lower file {}, lower directory {}{}, directory made in the container {}",
        r.lower_file,
        r.lower_dir,
        if r.redirect_xattr {
            " (redirect xattr written)"
        } else {
            ""
        },
        r.upper_dir
    )
}

/// This kernel's default for `redirect_dir` (module parameter, Y/N).
fn kernel_default(sys: &Path) -> String {
    match fs::read_to_string(sys.join("module/overlay/parameters/redirect_dir")) {
        Ok(v) if v.trim() == "Y" => "on".into(),
        Ok(v) if v.trim() == "N" => "off".into(),
        Ok(v) => v.trim().to_string(),
        Err(_) => "unknown".into(),
    }
}

fn check(ctx: &ClaimContext<'_>) -> Result<Finding, ClaimError> {
    let layout = match rig::overlay_layout(ctx) {
        Ok(l) => l,
        Err(f) => return Ok(f),
    };
    let spec = rig::image(vec![vec![
        rig::file("file", 4096, 1),
        rig::dir("dir"),
        rig::file("dir/inner", 4096, 2),
    ]]);
    let img = layout.prepare_spec(&spec, &ctx.dir.join("img"))?;
    let redirect = layout.overlay_xattr("redirect");
    let mut results = Vec::new();
    let mut obs = Vec::new();
    for setting in ["off", "on"] {
        let Some(l) = layout.with_options(&[("redirect_dir".into(), Some(setting.into()))]) else {
            return Ok(Finding::not_testable(format!(
                "layout {} takes no overlay options",
                layout.name()
            )));
        };
        let c = match Container::new(l.as_ref(), &img, &ctx.dir.join(format!("c-{setting}"))) {
            Ok(c) => c,
            Err(e) => {
                return Ok(Finding::not_testable(format!(
                    "the kernel refuses redirect_dir={setting} here: {e}"
                ))
                .with_observations(obs))
            }
        };
        let r = renames(&c, redirect.as_deref())?;
        c.unmount()?;
        obs.push(format!("redirect_dir={setting}: {}", describe(&r)));
        results.push(r);
    }
    let default = kernel_default(Path::new("/sys"));
    obs.push(format!(
        "this kernel's default is redirect_dir={default} (module parameter); Docker's overlay2 does not set it"
    ));
    let (off, on) = (&results[0], &results[1]);
    let verdict = verdict_for(off, on);
    let figure = if verdict == ClaimVerdict::Changed {
        format!(
            "files rename (copied up first) with redirect_dir off and on; a lower directory gives EXDEV with off \
             (the default here: {default}) and renames with on"
        )
    } else {
        format!(
            "redirect_dir=off: {}; redirect_dir=on: {}",
            describe(off),
            describe(on)
        )
    };
    Ok(Finding::new(verdict, figure).with_observations(obs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(file: &str, dir: &str) -> Renames {
        Renames {
            lower_file: file.into(),
            lower_dir: dir.into(),
            upper_dir: "ok".into(),
            redirect_xattr: false,
        }
    }

    #[test]
    fn redirect_dir_makes_the_note_out_of_date() {
        assert_eq!(
            verdict_for(&r("ok", "EXDEV"), &r("ok", "ok")),
            ClaimVerdict::Changed
        );
        assert_eq!(
            verdict_for(&r("EXDEV", "EXDEV"), &r("EXDEV", "EXDEV")),
            ClaimVerdict::Confirmed
        );
        assert_eq!(
            verdict_for(&r("ok", "ok"), &r("ok", "ok")),
            ClaimVerdict::Refuted
        );
    }

    #[test]
    fn reads_the_module_default() {
        let d = tempfile::tempdir().expect("tempdir");
        assert_eq!(kernel_default(d.path()), "unknown");
        let p = d.path().join("module/overlay/parameters");
        fs::create_dir_all(&p).expect("mkdir");
        fs::write(p.join("redirect_dir"), "N\n").expect("write");
        assert_eq!(kernel_default(d.path()), "off");
    }
}
