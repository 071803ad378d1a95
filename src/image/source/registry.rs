//! `registry:HOST[:PORT]/REPO[:TAG|@DIGEST]` — the OCI distribution API over
//! HTTPS with `ureq` (blocking, small; no async runtime to build on 2 cores):
//! anonymous access, or a Bearer token fetched from the realm a 401's
//! `WWW-Authenticate` challenge names. Plain HTTP only with
//! `registry_insecure`, and only to a loopback address. Manifests and configs
//! are capped and digest-checked; layers stream through the same
//! digest-verifying reader as every other transport.

use std::io::Read;
use std::sync::Mutex;
use std::time::Duration;

use super::blob::{self, Digest};
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
    agent: ureq::Agent,
    base: String,
    repository: String,
    reference: String,
    insecure: bool,
    token: Mutex<Option<String>>,
}

fn is_loopback(host: &str) -> bool {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

    /// GET `path` (under `/v2/<repo>/`), fetching a token once on a Bearer challenge.
    fn get(
        &self,
        path: &str,
        accept: Option<&str>,
    ) -> Result<ureq::http::Response<ureq::Body>, SourceError> {
        let url = format!("{}/v2/{}/{path}", self.base, self.repository);
        let mut retried = false;
        loop {
            let mut req = self.agent.get(&url);
            if let Some(a) = accept {
                req = req.header("Accept", a);
            }
            let token = self.token.lock().map(|t| t.clone()).unwrap_or(None);
            if let Some(t) = &token {
                req = req.header("Authorization", format!("Bearer {t}"));
            }
            let resp = req
                .call()
                .map_err(|e| self.err(&url, e, ErrorClass::Runtime))?;
            let status = resp.status().as_u16();
            if status == 401 && !retried {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                self.authenticate(&url, &challenge)?;
                retried = true;
                continue;
            }
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
        if !(realm.starts_with("https://") || (self.insecure && realm.starts_with("http://"))) {
            return Err(self.err(
                url,
                format!("token realm {realm:?} is not https"),
                ErrorClass::Usage,
            ));
        }
        let scope = get("scope").unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        let mut token_url = format!("{realm}?scope={}", url_encode(&scope));
        if let Some(service) = get("service") {
            token_url.push_str(&format!("&service={}", url_encode(&service)));
        }
        let resp = self
            .agent
            .get(&token_url)
            .call()
            .map_err(|e| self.err(&token_url, e, ErrorClass::Runtime))?;
        if !resp.status().is_success() {
            return Err(self.err(
                &token_url,
                format!("token endpoint answered HTTP {}", resp.status().as_u16()),
                ErrorClass::Unsupported,
            ));
        }
        let body = read_limited(resp, MAX_TOKEN_BYTES)
            .map_err(|e| self.err(&token_url, e, ErrorClass::Runtime))?;
        #[derive(serde::Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Token = serde_json::from_slice(&body).map_err(|e| {
            self.err(
                &token_url,
                format!("bad token response: {e}"),
                ErrorClass::Runtime,
            )
        })?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.err(&token_url, "no token in the response", ErrorClass::Runtime))?;
        if let Ok(mut slot) = self.token.lock() {
            *slot = Some(token);
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
        let resp = self.get(&format!("manifests/{reference}"), Some(&accept))?;
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
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

fn read_limited(
    resp: ureq::http::Response<ureq::Body>,
    cap: u64,
) -> Result<Vec<u8>, std::io::Error> {
    let mut v = Vec::new();
    resp.into_body()
        .into_reader()
        .take(cap + 1)
        .read_to_end(&mut v)?;
    if v.len() as u64 > cap {
        return Err(std::io::Error::other(format!(
            "the response exceeds {cap} bytes"
        )));
    }
    Ok(v)
}

fn read_doc(
    resp: ureq::http::Response<ureq::Body>,
    what: &'static str,
    location: &str,
) -> Result<Vec<u8>, SourceError> {
    let declared = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(n) = declared.filter(|&n| n > MAX_DOCUMENT_BYTES) {
        return Err(SourceError::TooLarge {
            what,
            location: location.to_string(),
            bytes: n,
            cap: MAX_DOCUMENT_BYTES,
        });
    }
    blob::read_document(resp.into_body().into_reader(), what, location, None)
}

impl Blobs for RegistryBlobs {
    fn location(&self) -> String {
        format!("{}/v2/{}", self.base, self.repository)
    }

    fn document(&self, digest: &Digest, what: &'static str) -> Result<Vec<u8>, SourceError> {
        let resp = self
            .get(&format!("blobs/{digest}"), None)
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
            .get(&format!("blobs/{digest}"), None)
            .map_err(|e| self.missing(e, digest))?;
        Ok(Box::new(resp.into_body().into_reader()))
    }
}

impl RegistryBlobs {
    fn missing(&self, e: SourceError, digest: &Digest) -> SourceError {
        match e {
            SourceError::Registry {
                class: ErrorClass::Usage,
                ..
            } => SourceError::MissingBlob {
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
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .https_only(!insecure)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(120)))
        .user_agent("overlaybench")
        .build()
        .into();
    let blobs = RegistryBlobs {
        agent,
        base,
        repository: r.repository.clone(),
        reference: reference.to_string(),
        insecure,
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
                ..
            } => SourceError::NotFound {
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
