//! Image sources against hostile servers and unsupported formats: a registry
//! (a small HTTP server on loopback, run by the test) whose token realm or
//! redirects name a plain-HTTP address elsewhere, that redirects with a
//! token to another port, that never answers or trickles; OCI layouts in
//! formats this tool does not read; `doctor --image` on an image it cannot
//! read. Non-loopback addresses are TEST-NET-1 (192.0.2.0/24), refused before
//! any connection: no traffic leaves the machine.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use super::*;

pub fn tests() -> Vec<(String, bool, fn())> {
    vec![
        cli_trial!(a_token_realm_over_plain_http_elsewhere_is_refused),
        cli_trial!(redirects_over_plain_http_elsewhere_are_refused),
        cli_trial!(a_redirect_to_another_port_does_not_carry_the_token),
        cli_trial!(a_silent_registry_times_out_naming_the_url),
        cli_trial!(a_trickling_registry_fails_below_the_minimum_rate),
        cli_trial!(sigterm_ends_a_wait_on_a_silent_registry),
        cli_trial!(unsupported_formats_exit_2_naming_the_value),
        cli_trial!(doctor_refuses_an_image_it_cannot_read, user),
    ]
}

/// One request as the server saw it: its request line and headers
/// (names lowercase).
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn path(&self) -> &str {
        self.line.split(' ').nth(1).unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
enum Reply {
    /// Status line and headers (without Content-Length), then the body.
    Full(String, Vec<u8>),
    /// Accept, read the request, never answer (until the test process ends).
    Silent,
    /// The head at once, then the body one byte per `every`.
    Trickle(Vec<u8>, Duration),
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves on 127.0.0.1 (a free port), one request per connection, recording
/// every request.
fn serve(reply: impl Fn(&Seen, u16) -> Reply + Send + Sync + 'static) -> (u16, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let reply = Arc::new(reply);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(s) = stream else { continue };
            let seen = seen.clone();
            let reply = reply.clone();
            std::thread::spawn(move || handle(s, port, &seen, &*reply));
        }
    });
    (port, log)
}

fn handle(mut s: TcpStream, port: u16, log: &Log, reply: &dyn Fn(&Seen, u16) -> Reply) {
    let Ok(clone) = s.try_clone() else { return };
    let mut reader = BufReader::new(clone);
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) <= 2 {
            break;
        }
        if let Some((k, v)) = h.trim_end().split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let seen = Seen {
        line: line.trim().to_string(),
        headers,
    };
    if let Ok(mut l) = log.lock() {
        l.push(seen.clone());
    }
    match reply(&seen, port) {
        Reply::Full(head, body) => {
            let _ = write!(
                s,
                "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(&body);
        }
        Reply::Silent => std::thread::sleep(Duration::from_secs(60)),
        Reply::Trickle(body, every) => {
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            for b in body {
                if s.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(every);
            }
        }
    }
}

fn wait_for_request(log: &Log) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while log.lock().map(|l| l.is_empty()).unwrap_or(true) {
        assert!(Instant::now() < deadline, "the registry was never asked");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `plan --image` on `image`: opens the image (and streams its layers)
/// before it measures anything.
fn plan_image(image: &str, extra: &[&str]) -> std::process::Output {
    bin()
        .args([
            "plan",
            "--image",
            image,
            "--count",
            "1",
            "--fs-size",
            "1G",
            "--registry-insecure",
        ])
        .args(extra)
        .timeout(Duration::from_secs(120))
        .output()
        .expect("runs")
}

fn assert_refused(out: &std::process::Output, code: i32, names: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    for n in names {
        assert!(err.contains(n), "{n:?} not named in: {err}");
    }
}

fn sha(b: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(b))
}

/// A one-layer image: (manifest, config, layer blob); the layer is an
/// uncompressed tar of one file.
fn tiny_image(layer_media_type: &str, config_media_type: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "f", &b"hi"[..]).expect("tar");
    let layer = b.into_inner().expect("tar");
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha(&layer)]},
    }))
    .expect("json");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": config_media_type, "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": layer_media_type, "digest": sha(&layer), "size": layer.len()}],
    }))
    .expect("json");
    (manifest, config, layer)
}

const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

fn ok(content_type: &str, body: Vec<u8>) -> Reply {
    Reply::Full(
        format!("HTTP/1.1 200 OK\r\nContent-Type: {content_type}"),
        body,
    )
}

fn redirect(to: &str) -> Reply {
    Reply::Full(
        format!("HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}"),
        Vec::new(),
    )
}

fn a_token_realm_over_plain_http_elsewhere_is_refused() {
    let realm = "http://192.0.2.1/token";
    let (port, _) = serve(move |_, _| {
        Reply::Full(
            format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"{realm}\",service=\"s\""
            ),
            Vec::new(),
        )
    });
    let out = plan_image(&format!("registry:127.0.0.1:{port}/r:t"), &[]);
    assert_refused(&out, 2, &[realm, "before connecting"]);
}

fn redirects_over_plain_http_elsewhere_are_refused() {
    // The manifest itself redirected.
    let (port, _) = serve(|_, _| redirect("http://192.0.2.1/v2/r/manifests/t"));
    let out = plan_image(&format!("registry:127.0.0.1:{port}/r:t"), &[]);
    assert_refused(&out, 2, &["http://192.0.2.1/v2/r/manifests/t"]);

    // A layer blob redirected, as registries send blobs to storage.
    let (manifest, config, layer) = tiny_image(OCI_LAYER, OCI_CONFIG);
    let (cd, ld) = (sha(&config), sha(&layer));
    let (port, _) = serve(move |req, _| {
        let p = req.path();
        if p.ends_with("/manifests/t") {
            ok(
                "application/vnd.oci.image.manifest.v1+json",
                manifest.clone(),
            )
        } else if p.ends_with(&cd) {
            ok("application/octet-stream", config.clone())
        } else if p.ends_with(&ld) {
            redirect("http://192.0.2.1/storage/layer")
        } else {
            Reply::Full("HTTP/1.1 404 Not Found".into(), Vec::new())
        }
    });
    // Through doctor, which streams every layer itself (plan streams them
    // while measuring, where a layer's error is reported as the measurement's).
    let out = bin()
        .args(["doctor", "--no-probe", "--registry-insecure", "--image"])
        .arg(format!("registry:127.0.0.1:{port}/r:t"))
        .timeout(Duration::from_secs(120))
        .output()
        .expect("runs");
    assert_refused(&out, 2, &["http://192.0.2.1/storage/layer"]);
}

fn a_redirect_to_another_port_does_not_carry_the_token() {
    let (other, other_log) = serve(|_, _| Reply::Full("HTTP/1.1 404 Not Found".into(), Vec::new()));
    let (port, log) = serve(move |req, port| {
        if req.path().starts_with("/token") {
            return ok("application/json", br#"{"token":"sekrit"}"#.to_vec());
        }
        if req.header("authorization") == Some("Bearer sekrit") {
            return redirect(&format!("http://127.0.0.1:{other}/elsewhere"));
        }
        Reply::Full(
            format!(
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"s\""
            ),
            Vec::new(),
        )
    });
    let out = plan_image(&format!("registry:127.0.0.1:{port}/r:t"), &[]);
    assert_ne!(out.status.code(), Some(0));
    let ours = log.lock().expect("log").clone();
    assert!(
        ours.iter()
            .any(|r| r.header("authorization") == Some("Bearer sekrit")),
        "the registry never got its token: {ours:?}"
    );
    assert!(
        ours.iter()
            .filter(|r| r.path().starts_with("/token"))
            .all(|r| r.header("authorization").is_none()),
        "a credential went to the token realm: {ours:?}"
    );
    let theirs = other_log.lock().expect("log").clone();
    assert!(!theirs.is_empty(), "the redirect was not followed");
    assert!(
        theirs.iter().all(|r| r.header("authorization").is_none()),
        "the token crossed to another origin: {theirs:?}"
    );
}

fn a_silent_registry_times_out_naming_the_url() {
    let (port, _) = serve(|_, _| Reply::Silent);
    let started = Instant::now();
    let out = plan_image(
        &format!("registry:127.0.0.1:{port}/r:t"),
        &["--registry-timeout", "1s"],
    );
    assert_refused(
        &out,
        1,
        &[
            &format!("http://127.0.0.1:{port}/v2/r/manifests/t"),
            "deadline",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

fn a_trickling_registry_fails_below_the_minimum_rate() {
    // One byte every 200 ms of a 4 KiB manifest: 5 bytes/s.
    let (port, _) = serve(|_, _| Reply::Trickle(vec![b' '; 4096], Duration::from_millis(200)));
    let out = plan_image(
        &format!("registry:127.0.0.1:{port}/r:t"),
        &["--registry-min-rate", "1K/1s"],
    );
    assert_refused(
        &out,
        1,
        &[
            &format!("http://127.0.0.1:{port}/v2/r/manifests/t"),
            "bytes/s",
            "below the minimum 1024",
        ],
    );
}

fn sigterm_ends_a_wait_on_a_silent_registry() {
    let (port, log) = serve(|_, _| Reply::Silent);
    let d = tmp();
    let mut args = small_run_args(d.path());
    args.extend([
        "--image".into(),
        format!("registry:127.0.0.1:{port}/r:t"),
        "--registry-insecure".into(),
    ]);
    let child = StdCommand::new(assert_cmd::cargo::cargo_bin("overlaybench"))
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_for_request(&log);
    let signalled = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("kill");
    let out = child.wait_with_output().expect("wait");
    let took = signalled.elapsed();
    assert_eq!(
        out.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The waits look at the stop flag every 100 ms; the rest is exiting.
    assert!(took < Duration::from_secs(5), "SIGTERM took {took:?}");
    assert!(
        !d.path().join("out").exists(),
        "a refused run wrote a report"
    );
    assert_clean(d.path());
}

/// An OCI layout holding `manifest` (and `config`, `layer`), tagged `t`;
/// `layout_version` goes into `oci-layout`.
fn layout(dir: &Path, manifest: &[u8], blobs: &[&[u8]], layout_version: &str) -> String {
    let b = dir.join("blobs/sha256");
    std::fs::create_dir_all(&b).expect("mkdir");
    for blob in blobs.iter().chain([&manifest]) {
        std::fs::write(b.join(sha(blob).trim_start_matches("sha256:")), blob).expect("write");
    }
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha(manifest), "size": manifest.len(),
            "annotations": {"org.opencontainers.image.ref.name": "t"}}],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("write");
    std::fs::write(
        dir.join("oci-layout"),
        format!(r#"{{"imageLayoutVersion":"{layout_version}"}}"#),
    )
    .expect("write");
    format!("oci:{}:t", dir.display())
}

fn unsupported_formats_exit_2_naming_the_value() {
    let d = tmp();
    let lz4 = "application/vnd.oci.image.layer.v1.tar+lz4";
    let artifact = "application/vnd.cncf.helm.config.v1+json";
    let mut cases: Vec<(String, Vec<&str>)> = Vec::new();
    // The control: the same image, well formed, opens.
    let (m, c, l) = tiny_image(OCI_LAYER, OCI_CONFIG);
    let good = layout(&d.path().join("good"), &m, &[&c, &l], "1.0.0");
    // An lz4 (unknown) layer media type.
    let (m, c, l) = tiny_image(lz4, OCI_CONFIG);
    cases.push((
        layout(&d.path().join("lz4"), &m, &[&c, &l], "1.0.0"),
        vec![lz4],
    ));
    // An artifact: its config is not an image config.
    let (m, c, l) = tiny_image(OCI_LAYER, artifact);
    cases.push((
        layout(&d.path().join("artifact"), &m, &[&c, &l], "1.0.0"),
        vec![artifact],
    ));
    // A Docker schema 1 manifest.
    let schema1 = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 1, "name": "r", "tag": "t", "architecture": "amd64",
        "fsLayers": [{"blobSum": sha(b"")}], "history": [{"v1Compatibility": "{}"}],
    }))
    .expect("json");
    cases.push((
        layout(&d.path().join("schema1"), &schema1, &[], "1.0.0"),
        vec!["schemaVersion 1"],
    ));
    // An OCI layout of a version this tool does not know.
    let (m, c, l) = tiny_image(OCI_LAYER, OCI_CONFIG);
    cases.push((
        layout(&d.path().join("v2"), &m, &[&c, &l], "2.0.0"),
        vec!["2.0.0", "oci-layout"],
    ));
    let out = bin()
        .args(["doctor", "--no-probe", "--json", "--image", &good])
        .output()
        .expect("runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "the well-formed control: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (image, names) in cases {
        let out = plan_image(&image, &[]);
        let mut named = names.clone();
        named.push(image.trim_start_matches("oci:").trim_end_matches(":t"));
        assert_refused(&out, 2, &named);
    }
}

fn doctor_refuses_an_image_it_cannot_read() {
    let d = tmp();
    // Missing; a directory that is no OCI layout; a layout whose layer blob is corrupt.
    let missing = format!("oci:{}:t", d.path().join("nope").display());
    let empty_dir = d.path().join("empty");
    std::fs::create_dir_all(&empty_dir).expect("mkdir");
    let empty = format!("oci:{}", empty_dir.display());
    let (m, c, l) = tiny_image(OCI_LAYER, OCI_CONFIG);
    let corrupt = layout(&d.path().join("corrupt"), &m, &[&c, &l], "1.0.0");
    let blob = d
        .path()
        .join("corrupt/blobs/sha256")
        .join(sha(&l).trim_start_matches("sha256:"));
    let mut bad = l.clone();
    bad[600] ^= 1;
    std::fs::write(&blob, bad).expect("write");
    for image in [&missing, &empty, &corrupt] {
        let out = bin()
            .args(["doctor", "--no-probe", "--image", image])
            .output()
            .expect("runs");
        assert_refused(&out, 2, &["--image", image]);
    }
}
