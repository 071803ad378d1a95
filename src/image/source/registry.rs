//! `registry:HOST[:PORT]/REPO[:TAG|@DIGEST]` — the OCI distribution API over
//! HTTPS with `ureq` (blocking, small; no async runtime to build on 2 cores):
//! anonymous access, or a Bearer token fetched from the realm a 401's
//! `WWW-Authenticate` challenge names. Plain HTTP only with
//! `registry_insecure`, and only to a loopback address. Manifests and configs
//! are capped and digest-checked; layers stream through the same
//! digest-verifying reader as every other transport.

use std::io::Read;
use std::sync::Mutex;

use super::blob::{self, Digest};
use super::http::{self, Credential, Http, RegistryLimits, Response};
use super::manifest::{
    self, Blobs, Platform, TarImage, TarLayer, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX,
    OCI_MANIFEST,
};
use super::reference::{RegistryRef, RegistryTag};
use super::{SourceError, MAX_DOCUMENT_BYTES};
use crate::error::ErrorClass;

/// A token response larger than this is refused.
const MAX_TOKEN_BYTES: u64 = 1 << 20;

pub(crate) struct RegistryBlobs {
    http: Http,
    base: String,
    repository: String,
    reference: String,
    /// The Bearer token, sent only to the registry's own origin.
    token: Mutex<Option<Credential>>,
}

fn is_loopback(host: &str) -> bool {
    let h = if host.starts_with('[') {
        host.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    http::is_loopback_host(h)
}

/// `key="value"` pairs of a `WWW-Authenticate` challenge (values may hold commas).
fn challenge_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = &rest[eq + 1..];
        let (value, tail) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            }
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.push((key, value));
        rest = tail.trim_start_matches([',', ' ']);
    }
    out
}

fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl RegistryBlobs {
    fn err(&self, url: &str, reason: impl std::fmt::Display, class: ErrorClass) -> SourceError {
        SourceError::Registry {
            url: url.to_string(),
            reason: reason.to_string(),
            class,
        }
    }

    /// GET `path` (under `/v2/<repo>/`), fetching a token once on a Bearer
    /// challenge. `expected` (bytes) sizes the request's deadline.
    fn get(
        &self,
        path: &str,
        accept: Option<&str>,
        expected: Option<u64>,
    ) -> Result<Response, SourceError> {
        let url = format!("{}/v2/{}/{path}", self.base, self.repository);
        let mut retried = false;
        loop {
            let token = self.token.lock().map(|t| t.clone()).unwrap_or(None);
            let resp = self.http.get(&url, accept, token.as_ref(), expected)?;
            let status = resp.status;
            if status == 401 && !retried {
                let challenge = resp
                    .header("www-authenticate")
                    .unwrap_or_default()
                    .to_string();
                self.authenticate(&url, &challenge)?;
                retried = true;
                continue;
            }
            let url = resp.url.clone();
            return match status {
                200..=299 => Ok(resp),
                401 | 403 => Err(self.err(&url, format!("HTTP {status}: access denied (only anonymous and token access are supported)"), ErrorClass::Unsupported)),
                404 => Err(self.err(&url, "HTTP 404: not found", ErrorClass::Usage)),
                _ => Err(self.err(&url, format!("HTTP {status}"), ErrorClass::Runtime)),
            };
        }
    }

    fn authenticate(&self, url: &str, challenge: &str) -> Result<(), SourceError> {
        let Some(params) = challenge
            .strip_prefix("Bearer ")
            .or_else(|| challenge.strip_prefix("bearer "))
        else {
            return Err(self.err(
                url,
                format!("the registry asks for credentials ({challenge:?}); only anonymous and token access are supported"),
                ErrorClass::Unsupported,
            ));
        };
        let params = challenge_params(params);
        let get = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let realm = get("realm").ok_or_else(|| {
            self.err(
                url,
                "a Bearer challenge without a realm",
                ErrorClass::Runtime,
            )
        })?;
        let scope = get("scope").unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        let sep = if realm.contains('?') { '&' } else { '?' };
        let mut token_url = format!("{realm}{sep}scope={}", url_encode(&scope));
        if let Some(service) = get("service") {
            token_url.push_str(&format!("&service={}", url_encode(&service)));
        }
        // The realm is a hop like any other (https, or plain HTTP to loopback
        // with --registry-insecure), checked before it is connected to; no
        // credential goes to it.
        let mut resp = self.http.get(&token_url, None, None, None)?;
        if !(200..=299).contains(&resp.status) {
            return Err(self.err(
                &resp.url,
                format!("token endpoint answered HTTP {}", resp.status),
                ErrorClass::Unsupported,
            ));
        }
        let body = read_limited(&mut resp, MAX_TOKEN_BYTES)?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|e| {
            self.err(
                &resp.url,
                format!("bad token response: {e}"),
                ErrorClass::Runtime,
            )
        })?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.err(&resp.url, "no token in the response", ErrorClass::Runtime))?;
        // Issued for the registry: sent to the registry's origin only.
        let (_, origin) = http::check_hop(url, self.http.insecure())?;
        if let Ok(mut slot) = self.token.lock() {
            *slot = Some(Credential {
                origin,
                header: format!("Bearer {token}"),
            });
        }
        Ok(())
    }

    /// A manifest or index by tag or digest: bytes and their digest.
    fn manifest(
        &self,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<(Vec<u8>, Digest), SourceError> {
        let accept = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST].join(", ");
        let resp = self.get(&format!("manifests/{reference}"), Some(&accept), None)?;
        let header_digest = resp.header("docker-content-digest").map(str::to_string);
        let location = format!("{}/v2/{}/manifests/{reference}", self.base, self.repository);
        let bytes = read_doc(resp, "manifest", &location)?;
        let actual = Digest::of(&bytes);
        let want = match (expected, header_digest.as_deref().map(Digest::parse)) {
            (Some(d), _) => Some(*d),
            (None, Some(Ok(d))) => Some(d),
            _ => None,
        };
        if let Some(want) = want {
            if want != actual {
                return Err(SourceError::DigestMismatch {
                    layer: location,
                    what: "manifest",
                    expected: want.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        Ok((bytes, actual))
    }
}

/// The whole body, at most `cap` bytes; a fault while waiting keeps its class.
fn read_limited(resp: &mut Response, cap: u64) -> Result<Vec<u8>, SourceError> {
    let mut v = Vec::new();
    let read = (&mut resp.body).take(cap + 1).read_to_end(&mut v);
    if let Err(e) = read {
        return Err(fault(&resp.url, e));
    }
    if v.len() as u64 > cap {
        return Err(SourceError::TooLarge {
            what: "token response",
            location: resp.url.clone(),
            bytes: v.len() as u64,
            cap,
        });
    }
    Ok(v)
}

/// A body read error as the source error it is.
fn fault(url: &str, e: std::io::Error) -> SourceError {
    match http::HttpFault::find(&e) {
        Some(f) => f.to_source(),
        None => SourceError::Registry {
            url: url.to_string(),
            reason: e.to_string(),
            class: ErrorClass::Runtime,
        },
    }
}

fn read_doc(resp: Response, what: &'static str, location: &str) -> Result<Vec<u8>, SourceError> {
    let declared = resp
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > MAX_DOCUMENT_BYTES) {
        return Err(SourceError::TooLarge {
            what,
            location: location.to_string(),
            bytes: n,
            cap: MAX_DOCUMENT_BYTES,
        });
    }
    let url = resp.url.clone();
    let mut v = Vec::new();
    match resp.body.take(MAX_DOCUMENT_BYTES + 1).read_to_end(&mut v) {
        Ok(_) => {}
        Err(e) => return Err(fault(&url, e)),
    }
    blob::read_document(&v[..], what, location, None)
}

impl Blobs for RegistryBlobs {
    fn location(&self) -> String {
        format!("{}/v2/{}", self.base, self.repository)
    }

    fn document(&self, digest: &Digest, what: &'static str) -> Result<Vec<u8>, SourceError> {
        let resp = self
            .get(&format!("blobs/{digest}"), None, None)
            .map_err(|e| self.missing(e, digest))?;
        let location = format!("{}/blobs/{digest}", self.location());
        let bytes = read_doc(resp, what, &location)?;
        blob::read_document(&bytes[..], what, &location, Some(digest))
    }

    fn layer(&self, layer: &TarLayer) -> Result<Box<dyn Read + Send + '_>, SourceError> {
        let digest = layer.digest.as_ref().ok_or_else(|| {
            SourceError::malformed("manifest", &self.reference, "a layer without a digest")
        })?;
        let resp = self
            .get(&format!("blobs/{digest}"), None, Some(layer.size))
            .map_err(|e| self.missing(e, digest))?;
        Ok(Box::new(resp.body))
    }
}

impl RegistryBlobs {
    fn missing(&self, e: SourceError, digest: &Digest) -> SourceError {
        match e {
            SourceError::Registry {
                class: ErrorClass::Usage,
                ref reason,
                ..
            } if reason.starts_with("HTTP 404") => SourceError::MissingBlob {
                reference: self.reference.clone(),
                digest: digest.to_string(),
                location: self.location(),
            },
            e => e,
        }
    }
}

pub(crate) fn open(
    reference: &str,
    r: &RegistryRef,
    platform: &Platform,
    insecure: bool,
    limits: RegistryLimits,
) -> Result<TarImage<RegistryBlobs>, SourceError> {
    if insecure && !is_loopback(&r.host) {
        return Err(SourceError::BadReference {
            value: reference.to_string(),
            reason: format!(
                "plain HTTP (--registry-insecure) is only allowed to a loopback registry, not {}",
                r.host
            ),
        });
    }
    let api_host = if r.host == "docker.io" {
        "registry-1.docker.io"
    } else {
        r.host.as_str()
    };
    let base = format!("{}://{api_host}", if insecure { "http" } else { "https" });
    let blobs = RegistryBlobs {
        http: Http::new(insecure, limits),
        base,
        repository: r.repository.clone(),
        reference: reference.to_string(),
        token: Mutex::new(None),
    };
    let (expected, tag) = match &r.reference {
        RegistryTag::Digest(d) => (Some(*d), d.to_string()),
        RegistryTag::Tag(t) => (None, t.clone()),
    };
    let (bytes, digest) = blobs
        .manifest(&tag, expected.as_ref())
        .map_err(|e| match e {
            SourceError::Registry {
                class: ErrorClass::Usage,
                url,
                reason,
            } if reason.starts_with("HTTP 404") => SourceError::NotFound {
                reference: reference.to_string(),
                what: format!("manifest {tag} ({url})"),
                choices: Vec::new(),
            },
            e => e,
        })?;
    let (doc, mdigest, chosen) = manifest::resolve(reference, bytes, digest, platform, &|d| {
        let want = manifest::parse_digest(reference, "index", &d.digest)?;
        blobs
            .manifest(&want.to_string(), Some(&want))
            .map(|(b, _)| b)
    })?;
    manifest::build(reference, doc, mdigest, chosen, blobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_commas_in_values() {
        let p = challenge_params(
            r#"realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push""#,
        );
        assert_eq!(
            p,
            vec![
                ("realm".into(), "https://auth.example/token".into()),
                ("service".into(), "reg".into()),
                ("scope".into(), "repository:a/b:pull,push".into())
            ]
        );
    }

    #[test]
    fn only_loopback_counts_as_loopback() {
        for h in ["127.0.0.1:5000", "localhost", "[::1]:80", "127.1.2.3"] {
            assert!(is_loopback(h), "{h}");
        }
        for h in ["10.0.0.1:5000", "example.com", "[::2]:80"] {
            assert!(!is_loopback(h), "{h}");
        }
    }
}
