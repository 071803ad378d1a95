//! HTTP for the registry source, hardened against the registry (and whatever
//! its token realm and redirects name):
//! - every hop is checked before it is connected to: HTTPS, or plain HTTP to a
//!   loopback address with `registry_insecure` — the registry itself, its token
//!   realm and each redirect alike. Redirects are followed here (ureq's own
//!   following is off) so each one passes the same check, at most
//!   `MAX_REDIRECTS` of them;
//! - a credential (the registry's Bearer token) goes only to the origin
//!   (scheme, host, port) it was issued for: a redirect elsewhere drops it;
//! - each request has a deadline (time spent waiting on the network, derived
//!   from the expected size unless given) and a minimum transfer rate averaged
//!   over a window, and every wait checks the process's stop flag at least
//!   every `POLL`. The blocking socket I/O runs on a thread of its own that
//!   hands chunks over a small bounded channel, so the waiting side can give up
//!   at once; the abandoned thread ends at its next chunk (its send fails) or at
//!   ureq's per-read backstop.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use ureq::http::{HeaderMap, Uri};

use super::SourceError;
use crate::error::ErrorClass;

/// How often a wait looks at the stop flag, the deadline and the rate.
const POLL: Duration = Duration::from_millis(100);
/// Redirects followed per request (registries redirect blobs once, to storage).
pub(crate) const MAX_REDIRECTS: usize = 5;
/// Bytes one socket read hands over; the channel holds at most `CHANNEL_CHUNKS`.
const CHUNK_BYTES: usize = 64 * 1024;
const CHANNEL_CHUNKS: usize = 4;
/// ureq's own bound on one silent socket read: only the abandoned transfer
/// thread ever waits this long (the waiting side gives up by its own limits).
const BACKSTOP_READ: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Bounds on each registry request. The deadline counts only the time spent
/// waiting for the registry's bytes (not the time the consumer spends on
/// them), from the request to the end of its body, redirects included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryLimits {
    /// The deadline of every request; `None`: `DEFAULT_TIMEOUT_BASE` plus
    /// `DEFAULT_TIMEOUT_PER_MIB` for each MiB the request is expected to carry.
    pub timeout: Option<Duration>,
    /// Below this many bytes per second, averaged over `rate_window` of
    /// waiting, a transfer fails; 0 turns the check off.
    pub min_rate: u64,
    /// The window the rate is averaged over.
    pub rate_window: Duration,
}

/// The default deadline of a request whose size is unknown or small.
pub const DEFAULT_TIMEOUT_BASE: Duration = Duration::from_secs(120);
/// Added to the default deadline per MiB expected (1 MiB/s at the least).
pub const DEFAULT_TIMEOUT_PER_MIB: Duration = Duration::from_secs(1);
/// The default minimum rate, bytes per second.
pub const DEFAULT_MIN_RATE: u64 = 16 * 1024;
/// The default rate window.
pub const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(30);

impl Default for RegistryLimits {
    fn default() -> Self {
        RegistryLimits {
            timeout: None,
            min_rate: DEFAULT_MIN_RATE,
            rate_window: DEFAULT_RATE_WINDOW,
        }
    }
}

impl RegistryLimits {
    /// The deadline of a request expected to carry `expected` bytes.
    pub fn deadline(&self, expected: Option<u64>) -> Duration {
        self.timeout.unwrap_or_else(|| {
            let mib = expected.unwrap_or(0).div_ceil(1 << 20);
            DEFAULT_TIMEOUT_BASE.saturating_add(
                DEFAULT_TIMEOUT_PER_MIB.saturating_mul(mib.min(u32::MAX as u64) as u32),
            )
        })
    }
}

/// Why a request failed while waiting on the network. Carried inside
/// `io::Error` through the layer readers, so a stream error keeps its class.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum HttpFault {
    #[error("interrupted while waiting on {url}")]
    Interrupted { url: String },
    #[error("no complete answer after {} s of waiting (the request's deadline; --registry-timeout)", .after.as_secs_f64())]
    Timeout { url: String, after: Duration },
    #[error(
        "the transfer averaged {rate:.0} bytes/s over the last {} s, below the minimum {min} bytes/s (--registry-min-rate)",
        .window.as_secs_f64()
    )]
    TooSlow {
        url: String,
        rate: f64,
        min: u64,
        window: Duration,
    },
    #[error("{reason}")]
    Failed { url: String, reason: String },
}

impl HttpFault {
    /// The fault inside `e`, if `e` carries one.
    pub(crate) fn find(e: &io::Error) -> Option<&HttpFault> {
        e.get_ref()?.downcast_ref::<HttpFault>()
    }

    fn url(&self) -> &str {
        match self {
            HttpFault::Interrupted { url }
            | HttpFault::Timeout { url, .. }
            | HttpFault::TooSlow { url, .. }
            | HttpFault::Failed { url, .. } => url,
        }
    }

    /// The source error this fault is: an interrupt, or registry trouble.
    pub(crate) fn to_source(&self) -> SourceError {
        match self {
            HttpFault::Interrupted { url } => SourceError::Interrupted { url: url.clone() },
            f => SourceError::Registry {
                url: f.url().to_string(),
                reason: f.to_string(),
                class: ErrorClass::Runtime,
            },
        }
    }
}

/// Where a URL points: scheme, host (lowercase, no brackets) and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

pub(crate) fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn refused(url: &str, reason: impl Into<String>) -> SourceError {
    SourceError::Registry {
        url: url.to_string(),
        reason: reason.into(),
        class: ErrorClass::Usage,
    }
}

/// Checks one hop before anything connects to it: HTTPS, or plain HTTP to a
/// loopback address when `insecure`.
pub(crate) fn check_hop(url: &str, insecure: bool) -> Result<(Uri, Origin), SourceError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| refused(url, format!("not a URL: {e}")))?;
    // Credentials in a URL would go wherever it points: refused, as
    // containers/image refuses them in a token realm.
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(refused(url, "a URL with user information is refused"));
    }
    let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
    let host = uri
        .host()
        .ok_or_else(|| refused(url, "the URL names no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    let port = match (uri.port_u16(), scheme.as_str()) {
        (Some(p), _) => p,
        (None, "https") => 443,
        (None, "http") => 80,
        (None, _) => 0,
    };
    match scheme.as_str() {
        "https" => {}
        "http" if insecure && is_loopback_host(&host) => {}
        "http" if insecure => {
            return Err(refused(
                url,
                format!(
                    "plain HTTP to {host}, not a loopback address: refused before connecting \
                     (--registry-insecure allows plain HTTP to loopback only, on every hop: \
                     registry, token realm, redirects)"
                ),
            ))
        }
        "http" => {
            return Err(refused(
                url,
                "plain HTTP: refused before connecting (every hop must be https; \
                 --registry-insecure allows plain HTTP to a loopback registry)",
            ))
        }
        other => return Err(refused(url, format!("scheme {other:?} is not https"))),
    }
    Ok((uri, Origin { scheme, host, port }))
}

/// The target of a redirect's `Location`, relative to the URL that answered.
fn resolve_location(base: &Uri, location: &str) -> Option<String> {
    if location.contains("://") {
        return Some(location.to_string());
    }
    let scheme = base.scheme_str()?;
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    let authority = base.authority()?.as_str();
    if location.starts_with('/') {
        return Some(format!("{scheme}://{authority}{location}"));
    }
    // A relative path: beside the answering resource.
    let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
    Some(format!("{scheme}://{authority}{dir}/{location}"))
}

/// A credential and the only origin it may be sent to.
#[derive(Debug, Clone)]
pub(crate) struct Credential {
    pub origin: Origin,
    /// The `Authorization` header's value.
    pub header: String,
}

/// A response whose head arrived; the body streams on `Body`.
pub(crate) struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    /// The URL that answered (after redirects).
    pub url: String,
    pub body: Body,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The registry's HTTP client.
pub(crate) struct Http {
    agent: ureq::Agent,
    insecure: bool,
    limits: RegistryLimits,
}

enum Msg {
    Head(u16, Box<HeaderMap>),
    Data(Vec<u8>),
    End,
    Fail(String),
}

impl Http {
    pub(crate) fn new(insecure: bool, limits: RegistryLimits) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Every hop is checked by `check_hop` before it is requested.
            .https_only(false)
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(BACKSTOP_READ))
            .user_agent("overlaybench")
            .build()
            .into();
        Http {
            agent,
            insecure,
            limits,
        }
    }

    pub(crate) fn insecure(&self) -> bool {
        self.insecure
    }

    /// GETs `url`, following redirects (each hop checked first), sending
    /// `auth` only to its own origin. `expected` (bytes) sizes the deadline.
    pub(crate) fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        auth: Option<&Credential>,
        expected: Option<u64>,
    ) -> Result<Response, SourceError> {
        let deadline = self.limits.deadline(expected);
        let mut url = url.to_string();
        let mut waited = Duration::ZERO;
        for _ in 0..=MAX_REDIRECTS {
            let (uri, origin) = check_hop(&url, self.insecure)?;
            let mut headers: Vec<(&'static str, String)> = Vec::new();
            if let Some(a) = accept {
                headers.push(("Accept", a.to_string()));
            }
            if let Some(c) = auth.filter(|c| c.origin == origin) {
                headers.push(("Authorization", c.header.clone()));
            }
            let rx = self.spawn(&url, headers)?;
            let mut body = Body {
                rx,
                url: url.clone(),
                pending: Vec::new(),
                pos: 0,
                done: false,
                limits: self.limits,
                deadline,
                waited,
                window_waited: Duration::ZERO,
                window_bytes: 0,
                failed: None,
            };
            let (status, headers) = match body.next().map_err(|f| f.to_source())? {
                Msg::Head(s, h) => (s, *h),
                Msg::Fail(reason) => {
                    return Err(SourceError::Registry {
                        url,
                        reason,
                        class: ErrorClass::Runtime,
                    })
                }
                Msg::Data(_) | Msg::End => {
                    return Err(SourceError::Registry {
                        url,
                        reason: "the transfer ended before a response".into(),
                        class: ErrorClass::Runtime,
                    })
                }
            };
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let location = headers
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| refused(&url, format!("HTTP {status} without a Location")))?;
                url = resolve_location(&uri, location).ok_or_else(|| {
                    refused(
                        &url,
                        format!("HTTP {status} to an unusable Location {location:?}"),
                    )
                })?;
                // The redirect's own body is not read; dropping it ends its thread.
                waited = body.waited;
                continue;
            }
            return Ok(Response {
                status,
                headers,
                url,
                body,
            });
        }
        Err(SourceError::Registry {
            url,
            reason: format!("more than {MAX_REDIRECTS} redirects"),
            class: ErrorClass::Runtime,
        })
    }

    /// Starts the request on a thread of its own.
    fn spawn(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
    ) -> Result<Receiver<Msg>, SourceError> {
        let (tx, rx) = sync_channel::<Msg>(CHANNEL_CHUNKS);
        let agent = self.agent.clone();
        let target = url.to_string();
        std::thread::Builder::new()
            .name("registry-http".into())
            .spawn(move || {
                let mut req = agent.get(&target);
                for (k, v) in &headers {
                    req = req.header(*k, v);
                }
                let resp = match req.call() {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Msg::Fail(e.to_string()));
                        return;
                    }
                };
                let (parts, body) = resp.into_parts();
                if tx
                    .send(Msg::Head(parts.status.as_u16(), Box::new(parts.headers)))
                    .is_err()
                {
                    return;
                }
                let mut r = body.into_reader();
                loop {
                    let mut buf = vec![0u8; CHUNK_BYTES];
                    match r.read(&mut buf) {
                        Ok(0) => {
                            let _ = tx.send(Msg::End);
                            return;
                        }
                        Ok(n) => {
                            buf.truncate(n);
                            if n < CHUNK_BYTES / 2 {
                                buf.shrink_to_fit();
                            }
                            // Fails once the waiting side gave up: this thread ends.
                            if tx.send(Msg::Data(buf)).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.send(Msg::Fail(e.to_string()));
                            return;
                        }
                    }
                }
            })
            .map_err(|e| SourceError::Registry {
                url: url.to_string(),
                reason: format!("cannot start the transfer thread: {e}"),
                class: ErrorClass::Runtime,
            })?;
        Ok(rx)
    }
}

/// A response body that waits with the request's deadline, minimum rate and
/// the stop flag.
pub(crate) struct Body {
    rx: Receiver<Msg>,
    url: String,
    pending: Vec<u8>,
    pos: usize,
    done: bool,
    limits: RegistryLimits,
    deadline: Duration,
    /// Time spent waiting on the network since the request began.
    waited: Duration,
    window_waited: Duration,
    window_bytes: u64,
    /// The first failure, repeated on every later read.
    failed: Option<HttpFault>,
}

impl Body {
    fn next(&mut self) -> Result<Msg, HttpFault> {
        loop {
            if crate::stop::requested() {
                return Err(HttpFault::Interrupted {
                    url: self.url.clone(),
                });
            }
            let t0 = Instant::now();
            let got = self.rx.recv_timeout(POLL);
            let dt = t0.elapsed();
            self.waited += dt;
            self.window_waited += dt;
            match got {
                Ok(msg) => {
                    if let Msg::Data(d) = &msg {
                        self.window_bytes += d.len() as u64;
                    }
                    self.check()?;
                    return Ok(msg);
                }
                Err(RecvTimeoutError::Timeout) => self.check()?,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(HttpFault::Failed {
                        url: self.url.clone(),
                        reason: "the transfer thread ended without an answer".into(),
                    })
                }
            }
        }
    }

    /// The deadline, then the rate over the window just completed.
    fn check(&mut self) -> Result<(), HttpFault> {
        if self.waited > self.deadline {
            return Err(HttpFault::Timeout {
                url: self.url.clone(),
                after: self.deadline,
            });
        }
        let window = self.limits.rate_window;
        if self.limits.min_rate > 0 && !window.is_zero() && self.window_waited >= window {
            let rate = self.window_bytes as f64 / self.window_waited.as_secs_f64();
            if rate < self.limits.min_rate as f64 {
                return Err(HttpFault::TooSlow {
                    url: self.url.clone(),
                    rate,
                    min: self.limits.min_rate,
                    window: self.window_waited,
                });
            }
            self.window_waited = Duration::ZERO;
            self.window_bytes = 0;
        }
        Ok(())
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(f) = &self.failed {
                return Err(io::Error::other(f.clone()));
            }
            if self.pos < self.pending.len() {
                let n = buf.len().min(self.pending.len() - self.pos);
                buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done || buf.is_empty() {
                return Ok(0);
            }
            let fault = match self.next() {
                Ok(Msg::Data(d)) => {
                    self.pending = d;
                    self.pos = 0;
                    continue;
                }
                Ok(Msg::End) => {
                    self.done = true;
                    continue;
                }
                Ok(Msg::Head(..)) => HttpFault::Failed {
                    url: self.url.clone(),
                    reason: "a second response head".into(),
                },
                Ok(Msg::Fail(reason)) => HttpFault::Failed {
                    url: self.url.clone(),
                    reason,
                },
                Err(f) => f,
            };
            self.failed = Some(fault);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_are_https_or_loopback_http_when_insecure() {
        for ok in ["https://auth.example/token", "https://10.0.0.1:5000/v2/"] {
            assert!(check_hop(ok, false).is_ok(), "{ok}");
            assert!(check_hop(ok, true).is_ok(), "{ok}");
        }
        for lo in [
            "http://127.0.0.1:5000/v2/",
            "http://localhost/x",
            "http://[::1]:80/x",
            "http://127.9.9.9/x",
        ] {
            assert!(check_hop(lo, true).is_ok(), "{lo}");
            assert!(check_hop(lo, false).is_err(), "{lo}");
        }
        for bad in [
            "http://192.0.2.1/token",
            "http://[::2]/x",
            "http://example.com/x",
            "ftp://127.0.0.1/x",
            "http://127.0.0.1.example.com/x",
            "https://user:pw@auth.example/token",
        ] {
            let e = check_hop(bad, true).unwrap_err();
            assert_eq!(e.class(), ErrorClass::Usage, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn origins_tell_hosts_and_ports_apart() {
        let o = |u: &str| check_hop(u, true).unwrap().1;
        assert_eq!(o("http://127.0.0.1:5000/a"), o("http://127.0.0.1:5000/b"));
        assert_ne!(o("http://127.0.0.1:5000/a"), o("http://127.0.0.1:5001/a"));
        assert_eq!(o("https://Reg.Example/a"), o("https://reg.example:443/b"));
        assert_ne!(o("https://reg.example/a"), o("https://cdn.example/a"));
    }

    #[test]
    fn locations_resolve_against_the_answering_url() {
        let base: Uri = "http://127.0.0.1:5000/v2/r/blobs/x".parse().unwrap();
        assert_eq!(
            resolve_location(&base, "http://192.0.2.1/b").as_deref(),
            Some("http://192.0.2.1/b")
        );
        assert_eq!(
            resolve_location(&base, "//127.0.0.1:6000/b").as_deref(),
            Some("http://127.0.0.1:6000/b")
        );
        assert_eq!(
            resolve_location(&base, "/other").as_deref(),
            Some("http://127.0.0.1:5000/other")
        );
        assert_eq!(
            resolve_location(&base, "y").as_deref(),
            Some("http://127.0.0.1:5000/v2/r/blobs/y")
        );
    }

    #[test]
    fn the_default_deadline_grows_with_the_size() {
        let l = RegistryLimits::default();
        assert_eq!(l.deadline(None), DEFAULT_TIMEOUT_BASE);
        assert_eq!(
            l.deadline(Some(100 << 20)),
            DEFAULT_TIMEOUT_BASE + Duration::from_secs(100)
        );
        let fixed = RegistryLimits {
            timeout: Some(Duration::from_secs(3)),
            ..l
        };
        assert_eq!(fixed.deadline(Some(100 << 20)), Duration::from_secs(3));
    }
}
