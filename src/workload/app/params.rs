//! app's options, suite defaults and validation: the command that overrides
//! the image's own, the ready line (a regular expression, size-bounded), the
//! timeout, the rounds.

use std::time::Duration;

use serde::Serialize;

use crate::workload::{within, ParamError, Suite};

/// What the user may set (everything else comes from the suite).
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--app-command 'CMD ARGS…'`: run this instead of Entrypoint + Cmd.
    pub command: Option<String>,
    /// `--app-ready-line REGEX`: ready when a line of stdout/stderr matches.
    pub ready_line: Option<String>,
    /// `--app-timeout`: a start not ready by then fails.
    pub timeout: Option<Duration>,
    /// `--app-rounds`: cold + warm starts per layout.
    pub rounds: Option<usize>,
}

/// Longest `--app-command` and `--app-ready-line`.
pub const MAX_OPTION_BYTES: usize = 32 << 10;
/// Most memory a compiled ready-line expression may take.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Longest `--app-timeout`.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Time a server gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// Parameters of the app workload, resolved (written to the report's config).
#[derive(Debug, Clone, Serialize)]
pub struct Params {
    /// The command run instead of the image's Entrypoint + Cmd, split into words.
    pub command: Option<Vec<String>>,
    /// The ready line's expression (None: ready at exit 0).
    pub ready_line: Option<String>,
    /// A start not ready within this fails its case, seconds.
    pub timeout_s: f64,
    /// SIGTERM to SIGKILL, seconds.
    pub grace_s: f64,
    /// Rounds: each starts the image cold then warm on every layout, interleaved.
    pub rounds: usize,
}

impl Params {
    /// The suite's defaults with the user's overrides, validated; `images` is
    /// how many of the user's images the run has (app needs one).
    pub fn resolve(suite: Suite, o: &Options, images: usize) -> Result<Params, ParamError> {
        let rounds = match suite {
            Suite::Quick => 5,
            Suite::Standard => 10,
            Suite::Full => 20,
        };
        let rounds = within("--app-rounds", o.rounds.unwrap_or(rounds), 1, 1000, "")?;
        let command = match &o.command {
            None => None,
            Some(c) => {
                if c.len() > MAX_OPTION_BYTES || c.contains('\0') {
                    return Err(ParamError::Invalid(format!(
                        "--app-command {:?}: longer than {MAX_OPTION_BYTES} bytes or holding a NUL byte",
                        c.chars().take(60).collect::<String>()
                    )));
                }
                let words = crate::runtime::split_command(c)
                    .map_err(|why| ParamError::Invalid(format!("--app-command {c:?}: {why}")))?;
                if words.is_empty() {
                    return Err(ParamError::Invalid(format!(
                        "--app-command {c:?} is empty; give 'CMD ARGS…'"
                    )));
                }
                Some(words)
            }
        };
        if let Some(r) = &o.ready_line {
            Self::compile(r)?;
        }
        let timeout = o.timeout.unwrap_or(Duration::from_secs(60));
        if timeout.is_zero() || timeout > MAX_TIMEOUT {
            return Err(ParamError::range(
                "--app-timeout",
                humantime::format_duration(timeout),
                format!(
                    "use a duration above 0 and up to {}",
                    humantime::format_duration(MAX_TIMEOUT)
                ),
            ));
        }
        if images == 0 {
            return Err(ParamError::Invalid(
                "--workloads app starts the user's own image: give --image SRC (e.g. oci:DIR:TAG)"
                    .into(),
            ));
        }
        Ok(Params {
            command,
            ready_line: o.ready_line.clone(),
            timeout_s: timeout.as_secs_f64(),
            grace_s: GRACE.as_secs_f64(),
            rounds,
        })
    }

    /// The ready line's expression, compiled within a size bound.
    pub fn compile(r: &str) -> Result<regex::Regex, ParamError> {
        if r.len() > MAX_OPTION_BYTES || r.is_empty() {
            return Err(ParamError::Invalid(format!(
                "--app-ready-line {:?}: give a regular expression of 1 to {MAX_OPTION_BYTES} bytes",
                r.chars().take(60).collect::<String>()
            )));
        }
        regex::RegexBuilder::new(r)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|e| ParamError::Invalid(format!("--app-ready-line {r:?}: {e}")))
    }

    /// The timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(o: Options, images: usize) -> String {
        Params::resolve(Suite::Quick, &o, images)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn bad_values_are_named() {
        assert!(err(Options::default(), 0).contains("--image"));
        let e = err(
            Options {
                ready_line: Some("(".into()),
                ..Default::default()
            },
            1,
        );
        assert!(e.contains("--app-ready-line \"(\""), "{e}");
        let e = err(
            Options {
                command: Some("a 'b".into()),
                ..Default::default()
            },
            1,
        );
        assert!(e.contains("--app-command") && e.contains("quote"), "{e}");
        let e = err(
            Options {
                command: Some("  ".into()),
                ..Default::default()
            },
            1,
        );
        assert!(e.contains("empty"), "{e}");
        let e = err(
            Options {
                timeout: Some(Duration::ZERO),
                ..Default::default()
            },
            1,
        );
        assert!(e.contains("--app-timeout"), "{e}");
        // A huge repetition is refused by the size bound, not compiled.
        let e = err(
            Options {
                ready_line: Some("(a{1000}){1000}".into()),
                ..Default::default()
            },
            1,
        );
        assert!(e.contains("--app-ready-line"), "{e}");
        let p = Params::resolve(
            Suite::Quick,
            &Options {
                command: Some("python3 -c 'print(1)'".into()),
                ..Default::default()
            },
            1,
        )
        .expect("valid");
        assert_eq!(
            p.command,
            Some(vec!["python3".into(), "-c".into(), "print(1)".into()])
        );
        assert_eq!(p.timeout_s, 60.0);
    }
}
