//! The HTML report as a person sees it: headless Chromium (Debian's `chromium`,
//! installed by scripts/setup) opens the committed example's report.html and
//! the golden compare.html from disk, with no network. The test fails on any
//! console error, uncaught exception or failed resource, and checks that every
//! chart is rendered with a non-zero size and that a link to a raw sample opens
//! the collapsed table holding it.
//!
//! Chromium is driven over the DevTools protocol on a pipe
//! (`--remote-debugging-pipe`: JSON messages, NUL-terminated, on fds 3 and 4),
//! so no port is opened and no crate beyond serde_json is needed.
//! `OVERLAYBENCH_SCREENSHOT=path.png` also writes a screenshot of the top of
//! the example report (how docs/report-html.png is made).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Whole-test budget: the report is ~1 MB of inline HTML and SVG.
const BUDGET: Duration = Duration::from_secs(30);

fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        if let Ok(out) = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
        {
            let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !p.is_empty() {
                return PathBuf::from(p);
            }
        }
    }
    panic!("chromium is not installed: run scripts/setup (apt-get install chromium)");
}

/// A Chromium driven over its DevTools pipe, with one page attached.
struct Browser {
    child: Child,
    to: File,
    from: Receiver<Value>,
    next: u64,
    session: String,
    deadline: Instant,
    /// Every event seen, in order.
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn launch() -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
        let (browser_reads, we_write) = nix::unistd::pipe2(cloexec).expect("pipe");
        let (we_read, browser_writes) = nix::unistd::pipe2(cloexec).expect("pipe");
        let (r, w) = (browser_reads.as_raw_fd(), browser_writes.as_raw_fd());
        let mut cmd = Command::new(chromium());
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between fork and exec.
        // The ends are first copied above 10, so that neither can be 3 or 4 when
        // dup2 puts them there (dup2 onto itself would keep close-on-exec).
        unsafe {
            cmd.pre_exec(move || {
                let (r2, w2) = (
                    libc::fcntl(r, libc::F_DUPFD, 10),
                    libc::fcntl(w, libc::F_DUPFD, 10),
                );
                if r2 < 0 || w2 < 0 || libc::dup2(r2, 3) < 0 || libc::dup2(w2, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("chromium starts");
        drop((browser_reads, browser_writes));
        let (tx, rx) = mpsc::channel();
        let reader: OwnedFd = we_read;
        std::thread::spawn(move || {
            let mut input = BufReader::new(File::from(reader));
            let mut buf = Vec::new();
            while input.read_until(0, &mut buf).is_ok_and(|n| n > 0) {
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
                buf.clear();
            }
        });
        let mut b = Browser {
            child,
            to: File::from(we_write),
            from: rx,
            next: 0,
            session: String::new(),
            deadline: Instant::now() + BUDGET,
            events: Vec::new(),
            _profile: profile,
        };
        let target = b.call_browser("Target.createTarget", json!({ "url": "about:blank" }));
        let target_id = target["targetId"].as_str().expect("target id").to_string();
        let attached = b.call_browser(
            "Target.attachToTarget",
            json!({ "targetId": target_id, "flatten": true }),
        );
        b.session = attached["sessionId"]
            .as_str()
            .expect("session id")
            .to_string();
        for domain in ["Runtime", "Log", "Network", "Page"] {
            b.call(&format!("{domain}.enable"), json!({}));
        }
        b
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> u64 {
        self.next += 1;
        let mut msg = json!({ "id": self.next, "method": method, "params": params });
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let mut bytes = serde_json::to_vec(&msg).expect("json");
        bytes.push(0);
        self.to.write_all(&bytes).expect("writing to chromium");
        self.next
    }

    /// Waits for the reply to `id`, keeping the events that arrive meanwhile.
    fn reply(&mut self, id: u64, method: &str) -> Value {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.from.recv_timeout(left) {
                Ok(v) if v["id"].as_u64() == Some(id) => {
                    if let Some(e) = v.get("error") {
                        panic!("{method} failed: {e}");
                    }
                    return v["result"].clone();
                }
                Ok(v) => self.events.push(v),
                Err(RecvTimeoutError::Timeout) => panic!("no reply to {method} within {BUDGET:?}"),
                Err(RecvTimeoutError::Disconnected) => panic!("chromium went away during {method}"),
            }
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        let id = self.send(method, params, None);
        self.reply(id, method)
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let session = self.session.clone();
        let id = self.send(method, params, Some(&session));
        self.reply(id, method)
    }

    /// Waits for an event named `method` (already seen, or still to come).
    fn wait_event(&mut self, method: &str) {
        if self.events.iter().any(|e| e["method"] == method) {
            return;
        }
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.from.recv_timeout(left) {
                Ok(v) => {
                    let done = v["method"] == method;
                    self.events.push(v);
                    if done {
                        return;
                    }
                }
                Err(_) => panic!("no {method} within {BUDGET:?}"),
            }
        }
    }

    /// Loads `path` and waits for its load event; the events of the load stay in `events`.
    fn open(&mut self, path: &Path) {
        self.events.clear();
        let url = format!(
            "file://{}",
            path.canonicalize().expect("file exists").display()
        );
        self.call("Page.navigate", json!({ "url": url }));
        self.wait_event("Page.loadEventFired");
        // Whatever the load triggered late (console output of scripts run on load).
        self.call("Runtime.evaluate", json!({ "expression": "1" }));
    }

    /// `expression`'s value (JSON-serialisable).
    fn eval(&mut self, expression: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("evaluating {expression}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Console errors, uncaught exceptions and failed resources of the last load.
    fn problems(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| {
                let p = &e["params"];
                match e["method"].as_str()? {
                    "Runtime.exceptionThrown" => {
                        Some(format!("exception: {}", p["exceptionDetails"]))
                    }
                    "Runtime.consoleAPICalled"
                        if matches!(p["type"].as_str(), Some("error" | "assert")) =>
                    {
                        Some(format!("console.{}: {}", p["type"], p["args"]))
                    }
                    "Log.entryAdded" if p["entry"]["level"] == "error" => {
                        Some(format!("log: {}", p["entry"]["text"]))
                    }
                    "Network.loadingFailed" => Some(format!("failed resource: {p}")),
                    "Network.requestWillBeSent"
                        if !p["request"]["url"].as_str()?.starts_with("file:") =>
                    {
                        Some(format!("fetches from the network: {}", p["request"]["url"]))
                    }
                    _ => None,
                }
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.send("Browser.close", json!({}), None);
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (the screenshot's encoding), padding ignored.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').map(val).collect();
    bytes
        .chunks(4)
        .flat_map(|q| {
            let n = q.iter().fold(0u32, |acc, v| (acc << 6) | u32::from(*v)) << (6 * (4 - q.len()));
            let out = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.into_iter().take(q.len().saturating_sub(1))
        })
        .collect()
}

const MEASURE_CHARTS: &str = "JSON.stringify(Array.from(document.querySelectorAll('figure.chart')).map(f => { \
    const s = f.querySelector('svg'); const r = s ? s.getBoundingClientRect() : {width: 0, height: 0}; \
    return { id: f.id, width: r.width, height: r.height, shapes: s ? s.querySelectorAll('polyline, circle, polygon, line').length : 0 }; }))";

#[test]
fn example_report_renders_in_a_browser() {
    let example = Path::new("reports/example/report.html");
    let html = std::fs::read_to_string(example).expect("the example has a report.html");
    let mut b = Browser::launch();
    b.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1280, "height": 1600, "deviceScaleFactor": 1, "mobile": false }),
    );
    b.open(example);
    let problems = b.problems();
    assert!(problems.is_empty(), "the page has problems: {problems:#?}");

    let charts: Vec<Value> =
        serde_json::from_str(b.eval(MEASURE_CHARTS).as_str().expect("a JSON string"))
            .expect("json");
    let expected = html.matches("<figure class=\"chart\"").count();
    assert!(expected >= 4, "the example has a chart per workload");
    assert_eq!(charts.len(), expected, "{charts:#?}");
    for c in &charts {
        let (w, h) = (
            c["width"].as_f64().unwrap_or(0.0),
            c["height"].as_f64().unwrap_or(0.0),
        );
        assert!(
            w > 100.0 && h > 100.0,
            "chart rendered too small or not at all: {c}"
        );
        assert!(
            c["shapes"].as_u64().unwrap_or(0) > 10,
            "chart has no lines: {c}"
        );
    }
    // The findings come first: the first section of the page, above every
    // table, each of its figure links naming an element the page has.
    let first = b.eval("document.querySelector('main > section').id");
    assert_eq!(first, json!("findings"), "the findings lead the page");
    let layout: Value = serde_json::from_str(
        b.eval(
            "JSON.stringify((() => { const f = document.getElementById('findings'); \
             const t = document.querySelector('main table'); \
             const links = Array.from(f.querySelectorAll('a.figure')); \
             return { items: f.querySelectorAll('ul.findings li').length, \
                      recommendation: !!f.querySelector('.recommendation'), \
                      bottom: f.getBoundingClientRect().bottom, \
                      table: t ? t.getBoundingClientRect().top : -1, \
                      links: links.length, \
                      broken: links.map(a => a.getAttribute('href')) \
                                   .filter(h => !document.querySelector(h)) }; })())",
        )
        .as_str()
        .expect("a JSON string"),
    )
    .expect("json");
    assert!(layout["items"].as_u64().unwrap_or(0) >= 5, "{layout}");
    assert_eq!(layout["recommendation"], json!(true), "{layout}");
    assert!(
        layout["bottom"].as_f64() <= layout["table"].as_f64(),
        "findings above the first table: {layout}"
    );
    assert!(layout["links"].as_u64().unwrap_or(0) >= 5, "{layout}");
    assert_eq!(layout["broken"], json!([]), "every cited figure resolves");

    let claims = b.eval("document.querySelectorAll('#claims tbody tr').length");
    assert!(
        claims.as_u64().unwrap_or(0) >= 12,
        "every claim has a row: {claims}"
    );

    // A link to a raw sample opens the collapsed table that holds it.
    let target = b.eval(
        "(() => { const a = document.querySelector('details.raw a[href^=\"#case-\"]'); \
         return a ? a.getAttribute('href') : ''; })()",
    );
    let target = target.as_str().expect("a raw-sample link").to_string();
    assert!(
        target.starts_with("#case-"),
        "derived figures link to their cases"
    );
    let closed = b.eval(&format!(
        "document.querySelector('{target}').closest('details').open"
    ));
    assert_eq!(closed, json!(false), "raw samples start collapsed");
    b.eval(&format!("location.hash = '{target}'; true"));
    b.eval("new Promise(r => setTimeout(r, 50)).then(() => true)");
    let open = b.eval(&format!(
        "document.querySelector('{target}').closest('details').open"
    ));
    assert_eq!(open, json!(true), "following {target} opens its table");
    assert!(b.problems().is_empty(), "{:#?}", b.problems());

    if let Some(out) = std::env::var_os("OVERLAYBENCH_SCREENSHOT") {
        b.eval("location.hash = ''; window.scrollTo(0, 0); true");
        let shot = b.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "clip": { "x": 0, "y": 0, "width": 1280, "height": 1600, "scale": 1 } }),
        );
        let png = base64_decode(shot["data"].as_str().expect("png data"));
        std::fs::write(&out, png).expect("writing the screenshot");
    }
}

#[test]
fn base64_decodes() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGk="), b"hi");
}

#[test]
fn compare_page_renders_in_a_browser() {
    let page = Path::new("tests/golden/compare-self.html");
    let mut b = Browser::launch();
    b.open(page);
    assert!(b.problems().is_empty(), "{:#?}", b.problems());
    let first = b.eval("document.querySelector('main section h2').textContent");
    assert_eq!(
        first,
        json!("Changed figures"),
        "changed figures come first"
    );
}
