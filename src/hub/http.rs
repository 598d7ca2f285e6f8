//! The hub's HTTP API, as huggingface_hub calls it, through `ureq`: the
//! repository listing (`/api/models/{id}/revision/{rev}`) and each file
//! (`/{id}/resolve/{commit}/{file}`), whose metadata request follows only
//! redirects inside the endpoint (`x-repo-commit`, `x-linked-etag` or
//! `etag` are read there) and whose download may go to a CDN.
//!
//! Everything the server says is untrusted: the commit must be a commit
//! hash, the etag a plain token (it names a file in `blobs/`), sizes are
//! bounded and checked, and no header becomes a path without that check.
//! (hf-hub 0.4.3, used before, joined the etag and commit into paths as
//! sent and unwrapped malformed redirects.)

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use super::is_commit_hash;

/// The largest file bertc fetches (a checkpoint past this is no encoder).
pub const MAX_FILE_BYTES: u64 = 256 << 30;
/// The repository listing is a few kB; a huge one is refused.
const MAX_INFO_BYTES: u64 = 16 << 20;
/// Relative redirects followed for a file's metadata (the hub uses one).
const MAX_REDIRECTS: usize = 5;

/// A connection to one endpoint, with the user's token if any.
pub struct HubClient {
    endpoint: String,
    token: Option<String>,
    /// Follows no redirect: the metadata request walks them itself.
    metadata_agent: ureq::Agent,
    /// Follows redirects (to the CDN), never sending the token on.
    download_agent: ureq::Agent,
}

/// What the listing says of a revision.
pub struct RepoInfo {
    pub commit: String,
    pub files: Vec<String>,
}

/// What the server says of one file.
pub struct FileMeta {
    pub etag: String,
    pub size: Option<u64>,
}

impl HubClient {
    pub fn new(endpoint: &str, token: Option<String>) -> HubClient {
        let agent = |redirects: u32| {
            ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(30))
                .timeout_read(Duration::from_secs(120))
                .redirects(redirects)
                .redirect_auth_headers(ureq::RedirectAuthHeaders::Never)
                .build()
        };
        HubClient {
            endpoint: endpoint.to_string(),
            token,
            metadata_agent: agent(0),
            download_agent: agent(10),
        }
    }

    fn request(&self, agent: &ureq::Agent, url: &str) -> ureq::Request {
        let request = agent
            .get(url)
            .set("user-agent", concat!("bertc/", env!("CARGO_PKG_VERSION")));
        match &self.token {
            Some(token) => request.set("authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// The commit `revision` names and the files it lists.
    pub fn info(&self, id: &str, revision: &str) -> Result<RepoInfo, String> {
        let url = format!("{}/api/models/{id}/revision/{}", self.endpoint, encode(revision));
        let response = self
            .request(&self.download_agent, &url)
            .call()
            .map_err(describe)?;
        let mut body = vec![];
        response
            .into_reader()
            .take(MAX_INFO_BYTES + 1)
            .read_to_end(&mut body)
            .map_err(|e| format!("reading the listing: {e}"))?;
        if body.len() as u64 > MAX_INFO_BYTES {
            return Err(format!("the listing is over {MAX_INFO_BYTES} bytes"));
        }
        let json: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("the listing is not JSON: {e}"))?;
        let commit = json["sha"].as_str().unwrap_or_default().to_string();
        if !is_commit_hash(&commit) {
            return Err(format!(
                "the listing's `sha` is {:?}, not a commit hash",
                json["sha"]
            ));
        }
        let files = json["siblings"]
            .as_array()
            .ok_or("the listing has no `siblings` list")?
            .iter()
            .filter_map(|s| s["rfilename"].as_str().map(str::to_string))
            .collect();
        Ok(RepoInfo { commit, files })
    }

    fn file_url(&self, id: &str, commit: &str, name: &str) -> String {
        let path: Vec<String> = name.split('/').map(encode).collect();
        format!("{}/{id}/resolve/{commit}/{}", self.endpoint, path.join("/"))
    }

    /// The file's etag and size, checked: its commit must be `commit`.
    pub fn metadata(&self, id: &str, commit: &str, name: &str) -> Result<FileMeta, String> {
        let mut url = self.file_url(id, commit, name);
        let mut response = None;
        for _ in 0..=MAX_REDIRECTS {
            let r = self
                .request(&self.metadata_agent, &url)
                .set("range", "bytes=0-0")
                .call()
                .map_err(describe)?;
            match (r.status(), r.header("location")) {
                // Relative redirects stay on the endpoint (a renamed
                // repository); an absolute one is the CDN: the headers
                // wanted are on this response.
                (300..=399, Some(location)) if location.starts_with('/') && !location.starts_with("//") => {
                    url = format!("{}{location}", origin(&self.endpoint));
                }
                _ => {
                    response = Some(r);
                    break;
                }
            }
        }
        let r = response.ok_or_else(|| format!("{name}: more than {MAX_REDIRECTS} redirects"))?;
        let served_commit = r.header("x-repo-commit").unwrap_or_default();
        if served_commit != commit {
            return Err(format!(
                "{name}: served from commit {served_commit:?}, not the listing's {commit}"
            ));
        }
        let raw = r
            .header("x-linked-etag")
            .or_else(|| r.header("etag"))
            .ok_or_else(|| format!("{name}: the response has no etag"))?;
        let etag = raw.trim_start_matches("W/").trim_matches('"').to_string();
        if !is_plain_token(&etag) {
            return Err(format!(
                "{name}: etag {raw:?} is not a plain token (letters, digits, `-`, `_`; it names the cached file)"
            ));
        }
        let size = match r.header("x-linked-size") {
            Some(s) => Some(s),
            None => r.header("content-range").and_then(|c| c.rsplit('/').next()),
        };
        let size = match size {
            None | Some("*") => None,
            Some(s) => Some(
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| format!("{name}: size {s:?} is not a number"))?,
            ),
        };
        if let Some(s) = size.filter(|&s| s > MAX_FILE_BYTES) {
            return Err(format!(
                "{name}: {s} bytes, over the {MAX_FILE_BYTES} bertc fetches"
            ));
        }
        Ok(FileMeta { etag, size })
    }

    /// Streams the file into `destination` (which must not exist),
    /// checking its length against `meta.size` and the bound, and its
    /// SHA-256 against the etag when the etag is one (the hub's LFS files);
    /// returns the bytes written.
    pub fn fetch(
        &self,
        id: &str,
        commit: &str,
        name: &str,
        meta: &FileMeta,
        destination: &Path,
        progress: &mut dyn FnMut(u64),
    ) -> Result<u64, String> {
        let url = self.file_url(id, commit, name);
        let response = self
            .request(&self.download_agent, &url)
            .call()
            .map_err(describe)?;
        let mut file =
            // A new file: never through a link planted at this name.
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(destination)
                .map_err(|e| format!("{}: {e}", destination.display()))?;
        let mut reader = response.into_reader().take(MAX_FILE_BYTES + 1);
        let mut buffer = vec![0u8; 1 << 20];
        let mut written = 0u64;
        let sha256 = meta.etag.len() == 64 && meta.etag.bytes().all(|b| b.is_ascii_hexdigit());
        let mut hasher = sha2::Sha256::default();
        loop {
            let n = reader
                .read(&mut buffer)
                .map_err(|e| format!("{name}: reading: {e}"))?;
            if n == 0 {
                break;
            }
            written += n as u64;
            if written > meta.size.unwrap_or(MAX_FILE_BYTES) {
                return Err(format!(
                    "{name}: the server sent more than the {} bytes it announced",
                    meta.size.unwrap_or(MAX_FILE_BYTES)
                ));
            }
            file.write_all(&buffer[..n])
                .map_err(|e| format!("{}: {e}", destination.display()))?;
            if sha256 {
                sha2::Digest::update(&mut hasher, &buffer[..n]);
            }
            progress(written);
        }
        if sha256 {
            let digest: String = sha2::Digest::finalize(hasher)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            if !digest.eq_ignore_ascii_case(&meta.etag) {
                return Err(format!(
                    "{name}: its SHA-256 is {digest}, not the etag {} the server announced",
                    meta.etag
                ));
            }
        }
        if let Some(size) = meta.size.filter(|&s| s != written) {
            return Err(format!("{name}: {written} bytes received of {size} announced"));
        }
        file.sync_all()
            .map_err(|e| format!("{}: {e}", destination.display()))?;
        Ok(written)
    }
}

/// An error of a request in one line: the status and the URL, or the
/// transport's reason.
fn describe(e: ureq::Error) -> String {
    match e {
        ureq::Error::Status(code, response) => format!("{} answered {code}", response.get_url()),
        ureq::Error::Transport(t) => t.to_string(),
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

/// A name safe as one file name: etags are hex hashes on the hub.
fn is_plain_token(s: &str) -> bool {
    (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Percent-encodes a path segment (RFC 3986 unreserved bytes stay).
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_that_could_climb_or_hide_are_refused() {
        assert!(is_plain_token("0123abcdef"));
        for bad in ["", "../x", "a/b", "a\\b", "..", "a.b", &"f".repeat(129), "a b"] {
            assert!(!is_plain_token(bad), "{bad}");
        }
    }

    #[test]
    fn segments_are_encoded_and_origins_found() {
        assert_eq!(encode("refs/pr/1"), "refs%2Fpr%2F1");
        assert_eq!(encode("model.safetensors"), "model.safetensors");
        assert_eq!(origin("http://127.0.0.1:8080/a/b"), "http://127.0.0.1:8080");
        assert_eq!(origin("https://huggingface.co"), "https://huggingface.co");
    }
}
