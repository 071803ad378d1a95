//! A real registry on loopback (Debian's `docker-registry`, distribution 2.x):
//! the fixture image pushed by `skopeo`, pulled by the registry source, must
//! give the same entries as the OCI layout — anonymously, and with Bearer
//! token auth against a token endpoint this test runs (a JWT signed with a
//! key whose certificate the registry trusts).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use libtest_mimic::{Failed, Trial};

use overlaybench::image::source::{self, ImageRef, OpenOptions};

use crate::images::{entries, fixture, open};

pub fn tests() -> Vec<Trial> {
    vec![
        trial!(anonymous_pull_equals_the_layout),
        trial!(token_auth_pull_equals_the_layout),
    ]
}

fn free_port() -> Result<u16, Failed> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The registry process; killed on drop.
struct Registry(Child);

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_registry(dir: &Path, port: u16, auth: &str) -> Result<Registry, Failed> {
    let config = format!(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
        dir.join("data").display()
    );
    let cfg = dir.join("config.yml");
    std::fs::write(&cfg, config)?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("docker-registry: {e} (scripts/setup installs it)"))?;
    let reg = Registry(child);
    // Ready when it accepts a connection; bounded by attempts, not by a clock assertion.
    for _ in 0..300 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(reg);
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Err("docker-registry did not start listening".into())
}

fn push(port: u16) -> Result<(), Failed> {
    let f = fixture()?;
    let src = f.oci.clone();
    let out = Command::new("skopeo")
        .args([
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &src,
            &format!("docker://127.0.0.1:{port}/fixture:t"),
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!("skopeo push: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(())
}

fn pull_and_compare(port: u16) -> Result<(), Failed> {
    let f = fixture()?;
    let want = entries(&*open(&f.oci)?)?;
    let oci = open(&f.oci)?;
    let opts = OpenOptions {
        registry_insecure: true,
        ..Default::default()
    };
    let by_tag = source::open(
        &ImageRef::parse(&format!("registry:127.0.0.1:{port}/fixture:t"))?,
        &opts,
    )?;
    if entries(&*by_tag)? != want {
        return Err("registry pull by tag: entries differ from the OCI layout".into());
    }
    let digest = by_tag
        .info()
        .manifest_digest
        .clone()
        .ok_or("no manifest digest")?;
    if by_tag.info().layers != oci.info().layers {
        return Err(format!(
            "layers differ: {:?} vs {:?}",
            by_tag.info().layers,
            oci.info().layers
        )
        .into());
    }
    let by_digest = source::open(
        &ImageRef::parse(&format!("registry:127.0.0.1:{port}/fixture@{digest}"))?,
        &opts,
    )?;
    if entries(&*by_digest)? != want {
        return Err("registry pull by digest: entries differ".into());
    }
    // A tag that is not there: a usage error naming it.
    match source::open(
        &ImageRef::parse(&format!("registry:127.0.0.1:{port}/fixture:nope"))?,
        &opts,
    ) {
        Err(e)
            if e.class() == overlaybench::error::ErrorClass::Usage
                && e.to_string().contains("nope") =>
        {
            Ok(())
        }
        Err(e) => Err(format!("missing tag: {e} ({:?})", e.class()).into()),
        Ok(_) => Err("a missing tag opened".into()),
    }
}

fn anonymous_pull_equals_the_layout() -> Result<(), Failed> {
    let dir = tempfile::Builder::new()
        .prefix("obk-reg-")
        .tempdir_in("/var/tmp")?;
    let port = free_port()?;
    let _reg = start_registry(dir.path(), port, "")?;
    push(port)?;
    pull_and_compare(port)
}

fn b64(data: &[u8], url: bool) -> String {
    let table: &[u8; 64] = if url {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(table[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else if !url {
                out.push('=');
            }
        }
    }
    out
}

fn openssl(args: &[&str], dir: &Path, input: Option<&[u8]>) -> Result<Vec<u8>, Failed> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("openssl: {e}"))?;
    if let Some(i) = input {
        child.stdin.take().ok_or("stdin")?.write_all(i)?;
    }
    drop(child.stdin.take());
    let out = child.wait_with_output()?;
    if !out.status.success() {
        return Err(format!("openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(out.stdout)
}

/// A JWT the registry accepts: RS256, the signing certificate in `x5c`.
fn token(dir: &Path) -> Result<String, Failed> {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-subj",
            "/CN=token-issuer",
        ],
        dir,
        None,
    )?;
    let der = openssl(&["x509", "-in", "cert.pem", "-outform", "DER"], dir, None)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [b64(&der, false)]});
    let claims = serde_json::json!({
        "iss": "test-issuer", "sub": "tester", "aud": "test-registry",
        "exp": now + 3600, "nbf": now - 60, "iat": now - 60, "jti": "1",
        "access": [{"type": "repository", "name": "fixture", "actions": ["pull", "push"]}],
    });
    let signing = format!(
        "{}.{}",
        b64(header.to_string().as_bytes(), true),
        b64(claims.to_string().as_bytes(), true)
    );
    let sig = openssl(
        &["dgst", "-sha256", "-sign", "key.pem"],
        dir,
        Some(signing.as_bytes()),
    )?;
    Ok(format!("{signing}.{}", b64(&sig, true)))
}

/// Request lines the token endpoint received.
type Seen = Arc<Mutex<Vec<String>>>;

/// Serves the token to every request (at most `max`), recording request lines.
fn token_server(token: String, max: usize) -> Result<(u16, Seen), Failed> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(match s.try_clone() {
                Ok(c) => c,
                Err(_) => continue,
            });
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).unwrap_or(0) <= 2 {
                    break;
                }
            }
            if let Ok(mut l) = log.lock() {
                l.push(line.trim().to_string());
            }
            let body = serde_json::json!({"token": token, "access_token": token}).to_string();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok((port, seen))
}

fn token_auth_pull_equals_the_layout() -> Result<(), Failed> {
    let dir = tempfile::Builder::new()
        .prefix("obk-reg-")
        .tempdir_in("/var/tmp")?;
    let jwt = token(dir.path())?;
    let (tport, seen) = token_server(jwt, 200)?;
    let port = free_port()?;
    let auth = format!(
        "auth:\n  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: test-registry\n    issuer: test-issuer\n    rootcertbundle: {}\n",
        dir.path().join("cert.pem").display()
    );
    let _reg = start_registry(dir.path(), port, &auth)?;
    // Without a token the registry refuses: auth is really in force.
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://127.0.0.1:{port}/v2/"),
        ])
        .output();
    if let Ok(o) = out {
        let code = String::from_utf8_lossy(&o.stdout).to_string();
        if o.status.success() && code != "401" {
            return Err(format!("registry without a token answered {code}, want 401").into());
        }
    }
    push(port)?;
    let before = seen.lock().map(|s| s.len()).unwrap_or(0);
    pull_and_compare(port)?;
    let lines = seen.lock().map(|s| s.clone()).unwrap_or_default();
    let ours: Vec<&String> = lines[before..].iter().collect();
    if !ours.iter().any(|l| {
        l.contains("scope=repository%3Afixture%3Apull") && l.contains("service=test-registry")
    }) {
        return Err(format!(
            "the source never asked the token endpoint for pull on fixture: {ours:?}"
        )
        .into());
    }
    Ok(())
}
