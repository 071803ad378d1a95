//! The gate file: thresholds checked into a repository next to the baseline.
//!
//! ```toml
//! threshold = "10%"        # default for every figure
//! missing = "fail"         # or "skip"
//! [workloads]              # per-workload overrides
//! lookup = "15%"
//! "copy-up" = "8%"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

/// A parsed gate file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateFile {
    /// Default threshold (`"10%"` or `0.10`).
    pub threshold: Option<Threshold>,
    /// `fail` or `skip`.
    pub missing: Option<super::MissingPolicy>,
    /// Per-workload thresholds.
    #[serde(default)]
    pub workloads: BTreeMap<String, Threshold>,
}

/// A relative threshold, written `"10%"` or `0.1`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub struct Threshold(pub f64);

impl TryFrom<toml::Value> for Threshold {
    type Error = String;
    fn try_from(v: toml::Value) -> Result<Self, Self::Error> {
        match v {
            toml::Value::String(s) => parse_threshold(&s).map(Threshold),
            toml::Value::Float(f) => check(f).map(Threshold),
            toml::Value::Integer(i) => check(i as f64).map(Threshold),
            other => Err(format!("threshold {other} must be like \"10%\" or 0.1")),
        }
    }
}

fn check(f: f64) -> Result<f64, String> {
    if f.is_finite() && f > 0.0 && f < 10.0 {
        Ok(f)
    } else {
        Err(format!(
            "threshold {f} is out of range: use a fraction above 0 (0.1 = 10%)"
        ))
    }
}

/// Parses `10%`, `10 %` or `0.1`.
pub fn parse_threshold(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let v = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|v| v / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| {
        format!("invalid threshold '{s}': use a percentage like 10% or a fraction like 0.1")
    })?;
    check(v)
}

/// Reads and parses a gate file.
pub fn read(path: &std::path::Path) -> Result<GateFile, String> {
    let text = crate::input::read_text(
        path,
        crate::input::CONFIG_MAX_BYTES,
        "a gate file",
        crate::input::Follow::Symlinks,
    )
    .map_err(|e| format!("gate file {e}"))?;
    toml::from_str(&text).map_err(|e| format!("gate file {}: {}", path.display(), e.message()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_thresholds_and_overrides() {
        assert_eq!(parse_threshold("10%"), Ok(0.10));
        assert_eq!(parse_threshold("0.25"), Ok(0.25));
        assert!(parse_threshold("-5%").is_err() && parse_threshold("lots").is_err());
        let g: GateFile =
            toml::from_str("threshold = \"12%\"\nmissing = \"skip\"\n[workloads]\nlookup = 0.2\n")
                .expect("parses");
        assert_eq!(g.threshold, Some(Threshold(0.12)));
        assert_eq!(g.workloads.get("lookup"), Some(&Threshold(0.2)));
        assert!(
            toml::from_str::<GateFile>("thresold = \"1%\"").is_err(),
            "unknown keys are refused"
        );
    }
}
