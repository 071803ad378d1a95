//! Fault injection for the isolation tests: `OVERLAYBENCH_FAULT=<point>:<panic|error>`
//! makes the named point panic or fail, so tests can prove that a panic or an
//! error mid-run leaves nothing mounted. Unset, it costs one env lookup per call
//! outside any timed region.

/// What an armed fault point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Return an error from the point.
    Error,
}

/// Checks the point `name`: panics if armed with `panic`, returns `Some(Fault)` for `error`.
pub fn hit(name: &str) -> Option<Fault> {
    let spec = std::env::var("OVERLAYBENCH_FAULT").ok()?;
    let (point, action) = spec.split_once(':')?;
    if point != name {
        return None;
    }
    match action {
        "panic" => panic!("injected fault at {name}"),
        "error" => Some(Fault::Error),
        _ => None,
    }
}
