//! How busy the machine was while a workload measured: pressure stall
//! information, steal time, load and CPU clock, read before and after each
//! workload so `compare` can tell a run too noisy to judge from a real change.
//! Readers take a root path so tests can feed captured trees; a file the
//! kernel does not offer (no PSI, no cpufreq in a VM) gives `None`, never 0.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Counters at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// When, as read from the monotonic clock.
    at: Option<std::time::Instant>,
    /// `/proc/pressure/{cpu,io,memory}` "some" totals, µs.
    pressure_us: [Option<u64>; 3],
    /// `/proc/stat` aggregate cpu line: (all ticks, steal ticks, idle + iowait ticks).
    ticks: Option<(u64, u64, u64)>,
    /// This process's CPU time, its threads' and its waited-for children's, ticks.
    own_ticks: Option<u64>,
    /// 1-minute load average.
    load_1m: Option<f64>,
    /// Mean current clock of the online CPUs, MHz.
    cpu_mhz: Option<f64>,
}

const PRESSURE: [&str; 3] = ["cpu", "io", "memory"];

fn read(root: &Path, rel: &str) -> Option<String> {
    // Small kernel text files; a bounded read is enough.
    let mut s = String::new();
    use std::io::Read;
    std::fs::File::open(root.join(rel))
        .ok()?
        .take(1 << 16)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

fn some_total(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace()
        .find_map(|f| f.strip_prefix("total="))?
        .parse()
        .ok()
}

fn cpu_ticks(text: &str) -> Option<(u64, u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice]: the
    // guest times are already inside user and nice.
    let all: u64 = v.iter().take(8).sum();
    Some((all, *v.get(7)?, v.get(3)? + v.get(4)?))
}

/// utime + stime + cutime + cstime of `/proc/<pid>/stat` (fields 14–17, in the
/// same clock ticks as `/proc/stat`); the command name may hold spaces, so
/// fields are counted after its closing parenthesis.
fn own_ticks(text: &str) -> Option<u64> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) is index 11.
    (11..15).map(|i| f.get(i)?.parse::<u64>().ok()).sum()
}

fn mean_mhz(root: &Path) -> Option<f64> {
    let mut khz = Vec::new();
    for i in 0..4096 {
        match read(
            root,
            &format!("sys/devices/system/cpu/cpu{i}/cpufreq/scaling_cur_freq"),
        ) {
            Some(s) => khz.extend(s.trim().parse::<f64>().ok()),
            None => break,
        }
    }
    if !khz.is_empty() {
        return Some(khz.iter().sum::<f64>() / khz.len() as f64 / 1000.0);
    }
    // A VM without cpufreq: /proc/cpuinfo's per-CPU "cpu MHz".
    let info = read(root, "proc/cpuinfo")?;
    let mhz: Vec<f64> = info
        .lines()
        .filter(|l| l.starts_with("cpu MHz"))
        .filter_map(|l| l.split(':').nth(1)?.trim().parse().ok())
        .collect();
    (!mhz.is_empty()).then(|| mhz.iter().sum::<f64>() / mhz.len() as f64)
}

impl Snapshot {
    /// Reads the counters under `root` (normally `/`).
    pub fn take(root: &Path) -> Snapshot {
        Snapshot {
            at: Some(std::time::Instant::now()),
            pressure_us: PRESSURE
                .map(|r| read(root, &format!("proc/pressure/{r}")).and_then(|t| some_total(&t))),
            ticks: read(root, "proc/stat").and_then(|t| cpu_ticks(&t)),
            own_ticks: read(root, "proc/self/stat").and_then(|t| own_ticks(&t)),
            load_1m: read(root, "proc/loadavg")
                .and_then(|t| t.split_whitespace().next()?.parse().ok()),
            cpu_mhz: mean_mhz(root),
        }
    }
}

/// How busy the machine was over one span of a run (a workload on a backing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conditions {
    /// The workload measured in the span.
    pub workload: String,
    /// Its backing filesystem.
    pub backing: String,
    /// Length of the span, seconds.
    pub wall_s: f64,
    /// Share of the span in which some task waited for a CPU (PSI cpu
    /// "some", %); the run's own threads count too.
    pub cpu_pressure_pct: Option<f64>,
    /// Share in which some task waited for I/O (PSI io "some", %): the run's
    /// own cold reads and fsyncs count too, so it is recorded, not judged.
    pub io_pressure_pct: Option<f64>,
    /// Share in which some task waited for memory (PSI memory "some", %).
    pub memory_pressure_pct: Option<f64>,
    /// Share of all CPUs' time that other processes (and the kernel's
    /// threads) used, this run's own CPU time taken out, %: 50 on a 2-core
    /// machine where one core spins for someone else.
    pub others_cpu_pct: Option<f64>,
    /// Share of CPU time the hypervisor gave to others (steal, %).
    pub steal_pct: Option<f64>,
    /// 1-minute load average at the end of the span.
    pub load_1m: Option<f64>,
    /// Mean CPU clock at the start and at the end, MHz.
    pub cpu_mhz: Option<(f64, f64)>,
}

impl Conditions {
    /// The span between two snapshots.
    pub fn between(workload: &str, backing: &str, a: &Snapshot, b: &Snapshot) -> Conditions {
        let wall = match (a.at, b.at) {
            (Some(x), Some(y)) => y.saturating_duration_since(x).as_secs_f64(),
            _ => 0.0,
        };
        let pct = |i: usize| match (a.pressure_us[i], b.pressure_us[i]) {
            (Some(x), Some(y)) if wall > 0.0 => {
                Some((100.0 * y.saturating_sub(x) as f64 / 1e6 / wall).min(100.0))
            }
            _ => None,
        };
        let steal = match (a.ticks, b.ticks) {
            (Some((all0, st0, _)), Some((all1, st1, _))) if all1 > all0 => {
                Some(100.0 * st1.saturating_sub(st0) as f64 / (all1 - all0) as f64)
            }
            _ => None,
        };
        let others = match (a.ticks, b.ticks, a.own_ticks, b.own_ticks) {
            (Some((all0, st0, id0)), Some((all1, st1, id1)), Some(o0), Some(o1)) if all1 > all0 => {
                let busy = (all1 - all0)
                    .saturating_sub(id1.saturating_sub(id0))
                    .saturating_sub(st1.saturating_sub(st0));
                let others = busy.saturating_sub(o1.saturating_sub(o0));
                Some(100.0 * others as f64 / (all1 - all0) as f64)
            }
            _ => None,
        };
        Conditions {
            workload: workload.into(),
            backing: backing.into(),
            wall_s: wall,
            cpu_pressure_pct: pct(0),
            io_pressure_pct: pct(1),
            memory_pressure_pct: pct(2),
            others_cpu_pct: others,
            steal_pct: steal,
            load_1m: b.load_1m,
            cpu_mhz: a.cpu_mhz.zip(b.cpu_mhz),
        }
    }

    /// Why the span was too noisy to gate on, if it was (limits from
    /// docs/ci-gate.md). Pressure is recorded, not judged: the run's own
    /// parallel fixture builds and cold reads make most of it.
    pub fn too_noisy(&self) -> Option<String> {
        let mut why = Vec::new();
        if let Some(p) = self.others_cpu_pct.filter(|p| *p > NOISY_OTHERS_CPU_PCT) {
            why.push(format!(
                "other processes used {p:.0}% of the CPUs (limit {NOISY_OTHERS_CPU_PCT:.0}%)"
            ));
        }
        if let Some(s) = self.steal_pct.filter(|s| *s > NOISY_STEAL_PCT) {
            why.push(format!(
                "the hypervisor took {s:.0}% of the CPU time (limit {NOISY_STEAL_PCT:.0}%)"
            ));
        }
        if let Some(m) = self
            .memory_pressure_pct
            .filter(|m| *m > NOISY_MEMORY_PRESSURE_PCT)
        {
            why.push(format!(
                "tasks waited for memory {m:.0}% of the time (limit {NOISY_MEMORY_PRESSURE_PCT:.0}%)"
            ));
        }
        (!why.is_empty()).then(|| {
            format!(
                "{} on {} ({:.0} s): {}",
                self.workload,
                self.backing,
                self.wall_s,
                why.join("; ")
            )
        })
    }
}

/// Share of the CPUs other processes used (%) past which a run is too noisy.
pub const NOISY_OTHERS_CPU_PCT: f64 = 75.0;
/// Steal time (%) past which a run is too noisy.
pub const NOISY_STEAL_PCT: f64 = 10.0;
/// Memory pressure (%) past which a run is too noisy.
pub const NOISY_MEMORY_PRESSURE_PCT: f64 = 5.0;

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().expect("tempdir");
        for (p, text) in files {
            let path = d.path().join(p);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
        }
        d
    }

    #[test]
    fn a_busy_span_is_named_with_its_readings() {
        let before = tree(&[
            ("proc/pressure/cpu", "some avg10=0.00 avg60=0.00 avg300=0.00 total=1000000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"),
            ("proc/pressure/io", "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"),
            ("proc/stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3\n"),
            ("proc/loadavg", "0.50 0.40 0.30 1/100 42\n"),
            ("proc/self/stat", "42 (over (bench)) R 1 2 3 4 5 6 7 8 9 10 50 50 0 0 20\n"),
        ]);
        let after = tree(&[
            (
                "proc/pressure/cpu",
                "some avg10=40.00 avg60=0.00 avg300=0.00 total=1400000\n",
            ),
            (
                "proc/pressure/io",
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=100000\n",
            ),
            ("proc/stat", "cpu  200 0 200 1400 0 0 0 200 0 0\n"),
            ("proc/loadavg", "2.50 0.40 0.30 1/100 42\n"),
            (
                "proc/self/stat",
                "42 (over (bench)) R 1 2 3 4 5 6 7 8 9 10 60 60 0 0 20\n",
            ),
        ]);
        let mut a = Snapshot::take(before.path());
        let mut b = Snapshot::take(after.path());
        // A one-second span, whatever the test's own timing.
        let t0 = std::time::Instant::now();
        a.at = Some(t0);
        b.at = Some(t0 + std::time::Duration::from_secs(1));
        let c = Conditions::between("lookup", "ext4", &a, &b);
        assert_eq!(c.cpu_pressure_pct, Some(40.0));
        assert_eq!(c.io_pressure_pct, Some(10.0));
        assert_eq!(c.memory_pressure_pct, None, "no file: unknown, not 0");
        assert_eq!(c.steal_pct, Some(20.0));
        // 1000 ticks: 600 idle, 200 steal, 200 busy of which 20 were ours.
        assert_eq!(c.others_cpu_pct, Some(18.0));
        assert_eq!(c.load_1m, Some(2.5));
        let why = c.too_noisy().expect("noisy");
        assert!(why.contains("20% of the CPU time"), "{why}");
        let busy = Conditions {
            others_cpu_pct: Some(95.0),
            steal_pct: Some(0.0),
            ..c.clone()
        };
        assert!(busy
            .too_noisy()
            .is_some_and(|w| w.contains("other processes used 95% of the CPUs")));
        // One core of two spinning for someone else is within the limit.
        let quiet = Conditions {
            others_cpu_pct: Some(50.0),
            steal_pct: Some(0.0),
            ..c
        };
        assert_eq!(quiet.too_noisy(), None);
    }

    #[test]
    fn the_real_host_gives_readings_or_none() {
        let a = Snapshot::take(Path::new("/"));
        let b = Snapshot::take(Path::new("/"));
        let c = Conditions::between("w", "ext4", &a, &b);
        for v in [
            c.cpu_pressure_pct,
            c.io_pressure_pct,
            c.steal_pct,
            c.others_cpu_pct,
        ]
        .into_iter()
        .flatten()
        {
            assert!((0.0..=100.0).contains(&v), "{c:?}");
        }
    }
}
