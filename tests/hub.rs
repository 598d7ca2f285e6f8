//! Models named by hub id: a huggingface_hub cache built here (files in
//! blobs/, snapshots/<commit>/ symlinks into them, refs/<branch>), and for
//! the download path a hub-shaped HTTP server on 127.0.0.1 that serves the
//! endpoints hf-hub calls. Nothing reaches the internet: every run sets
//! HF_HUB_CACHE to a temporary folder and either HF_HUB_OFFLINE=1 or
//! HF_ENDPOINT to the loopback server.
#![cfg(unix)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{fixture, stderr_of};
use sha2::{Digest, Sha256};

const COMMIT_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const COMMIT_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// `bertc ARGS` in `cwd` with the cache at `cache` and `env` set; proxies
/// removed so that a loopback address is reached directly.
fn bertc_in(cwd: &Path, cache: &Path, env: &[(&str, &str)], args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bertc"));
    cmd.current_dir(cwd)
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_ENDPOINT");
    for var in [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HF_TOKEN",
        "HF_HOME",
    ] {
        cmd.env_remove(var);
    }
    // The machine's own `huggingface-cli login` token is never sent to the
    // loopback servers here: tests that want a token file name one.
    cmd.env("HF_TOKEN_PATH", cwd.join("no-token-file"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    for a in args {
        cmd.arg(a);
    }
    cmd.output().expect("bertc runs")
}

const OFFLINE: &[(&str, &str)] = &[("HF_HUB_OFFLINE", "1")];

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Every regular file under `dir`, relative, sorted.
fn files_of(dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// `fixture`'s files cached as hub model `id` at `commit`, `refs/<branch>`
/// naming it, as huggingface_hub lays them out. Returns the snapshot folder.
fn cache_model(cache: &Path, id: &str, source: &Path, commit: &str, branch: Option<&str>) -> PathBuf {
    let repository = cache.join(format!("models--{}", id.replace('/', "--")));
    let snapshot = repository.join("snapshots").join(commit);
    std::fs::create_dir_all(repository.join("blobs")).unwrap();
    for rel in files_of(source) {
        if rel.ends_with("golden.json") || rel.ends_with("golden.safetensors") {
            continue;
        }
        let bytes = std::fs::read(source.join(&rel)).unwrap();
        let blob = hex(&bytes);
        std::fs::write(repository.join("blobs").join(&blob), &bytes).unwrap();
        let link = snapshot.join(&rel);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        let up = "../".repeat(rel.matches('/').count() + 2);
        symlink(format!("{up}blobs/{blob}"), &link).unwrap();
    }
    if let Some(branch) = branch {
        std::fs::create_dir_all(repository.join("refs")).unwrap();
        std::fs::write(repository.join("refs").join(branch), commit).unwrap();
    }
    snapshot
}

/// Every file of an export folder, by name.
fn export_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files_of(dir)
        .into_iter()
        .map(|f| (f.clone(), std::fs::read(dir.join(&f)).unwrap()))
        .collect()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(out.status.success(), "{what} failed: {}", stderr_of(out));
}

/// `compile MODEL -o DIR/` (fast: no tract check) and the folder written.
fn compile_folder(
    cwd: &Path,
    cache: &Path,
    env: &[(&str, &str)],
    model: &str,
    extra: &[&str],
    out: &Path,
) -> BTreeMap<String, Vec<u8>> {
    let dest = format!("{}/", out.display());
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"compile", &model, &"-o", &dest, &"--no-check"];
    for e in extra {
        args.push(e);
    }
    assert_ok(&bertc_in(cwd, cache, env, &args), &format!("compile {model}"));
    export_of(out)
}

#[test]
fn a_cached_bert_and_sentence_transformers_model_compile_and_run_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let cwd = tmp.path();
    for (id, case) in [
        ("org/bert-cls", "pipelines/seq-cls"),
        ("org/st", "pipelines/st-cls"),
    ] {
        cache_model(&cache, id, &fixture(case), COMMIT_A, Some("main"));
        let from_hub = compile_folder(
            cwd,
            &cache,
            OFFLINE,
            id,
            &[],
            &cwd.join(format!("{}-hub", case.replace('/', "-"))),
        );
        let from_folder = compile_folder(
            cwd,
            &cache,
            OFFLINE,
            fixture(case).to_str().unwrap(),
            &[],
            &cwd.join(format!("{}-dir", case.replace('/', "-"))),
        );
        assert_eq!(
            from_hub.keys().collect::<Vec<_>>(),
            from_folder.keys().collect::<Vec<_>>(),
            "{id}"
        );
        assert!(
            from_hub == from_folder,
            "{id}: the export from the cache differs from the fixture's"
        );
        assert!(
            from_hub.contains_key("tokenizer.json"),
            "{id}: {:?}",
            from_hub.keys()
        );
        let ran = bertc_in(
            cwd,
            &cache,
            OFFLINE,
            &[&"run", &id, &"a fine day", &"--json", &"--threads", &"1"],
        );
        assert_ok(&ran, &format!("run {id}"));
        let direct = bertc_in(
            cwd,
            &cache,
            OFFLINE,
            &[
                &"run",
                &fixture(case),
                &"a fine day",
                &"--json",
                &"--threads",
                &"1",
            ],
        );
        assert_eq!(
            ran.stdout, direct.stdout,
            "{id}: run from the cache differs from the fixture's"
        );
    }
    assert!(export_of(&cwd.join("pipelines-st-cls-hub")).contains_key("modules.json"));
}

#[test]
fn a_link_leaving_the_repository_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let snapshot = cache_model(
        &cache,
        "org/st",
        &fixture("pipelines/st-cls"),
        COMMIT_A,
        Some("main"),
    );
    std::fs::write(tmp.path().join("secret"), "{}").unwrap();
    std::fs::remove_file(snapshot.join("1_Pooling/config.json")).unwrap();
    symlink(tmp.path().join("secret"), snapshot.join("1_Pooling/config.json")).unwrap();
    let out = bertc_in(
        tmp.path(),
        &cache,
        OFFLINE,
        &[&"compile", &"org/st", &"-o", &"m.onnx"],
    );
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("1_Pooling/config.json") && err.contains("outside its repository's cache folder"),
        "{err}"
    );
    assert!(!tmp.path().join("m.onnx").exists());
}

#[test]
fn revisions_by_branch_and_by_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let cwd = tmp.path();
    cache_model(
        &cache,
        "org/m",
        &fixture("pipelines/seq-cls"),
        COMMIT_A,
        Some("main"),
    );
    cache_model(
        &cache,
        "org/m",
        &fixture("pipelines/st-cls"),
        COMMIT_B,
        Some("v2"),
    );
    let main = compile_folder(cwd, &cache, OFFLINE, "org/m", &[], &cwd.join("main"));
    let by_branch = compile_folder(
        cwd,
        &cache,
        OFFLINE,
        "org/m",
        &["--revision", "v2"],
        &cwd.join("v2"),
    );
    let by_hash = compile_folder(
        cwd,
        &cache,
        OFFLINE,
        "org/m",
        &["--revision", COMMIT_B],
        &cwd.join("hash"),
    );
    assert!(!main.contains_key("modules.json") && by_branch.contains_key("modules.json"));
    assert!(by_branch == by_hash);
    let missing = bertc_in(
        cwd,
        &cache,
        OFFLINE,
        &[&"compile", &"org/m", &"--revision", &"v3", &"-o", &"x.onnx"],
    );
    let err = stderr_of(&missing);
    assert!(
        err.contains("`org/m` (revision v3)")
            && err.contains("HF_HUB_OFFLINE=1")
            && err.contains("models--org--m"),
        "{err}"
    );
    // A model list's form `org/name@rev` (bench, sweep) is the same revision;
    // with --revision too it is two answers to one question.
    let at = compile_folder(cwd, &cache, OFFLINE, "org/m@v2", &[], &cwd.join("at"));
    assert!(at == by_branch);
    let both = bertc_in(
        cwd,
        &cache,
        OFFLINE,
        &[&"compile", &"org/m@v2", &"--revision", &"v2", &"-o", &"x.onnx"],
    );
    assert!(
        stderr_of(&both).contains("names its revision after `@`"),
        "{}",
        stderr_of(&both)
    );
    // --revision on anything but a hub id would be silently ignored: refused.
    let preset = bertc_in(
        cwd,
        &cache,
        OFFLINE,
        &[&"compile", &"bert-tiny", &"--revision", &"v2", &"-o", &"x.onnx"],
    );
    assert!(
        stderr_of(&preset).contains("--revision v2 names a revision of a hub id"),
        "{}",
        stderr_of(&preset)
    );
}

#[test]
fn a_local_path_wins_over_a_preset_and_a_hub_id() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let cwd = tmp.path();
    // A folder named like a preset, compiled from the folder holding it.
    let family2 = fixture("family2");
    let by_name = compile_folder(
        &family2,
        &cache,
        OFFLINE,
        "modernbert-base",
        &[],
        &cwd.join("by-name"),
    );
    let by_path = compile_folder(
        cwd,
        &cache,
        OFFLINE,
        family2.join("modernbert-base").to_str().unwrap(),
        &[],
        &cwd.join("by-path"),
    );
    assert!(
        by_name == by_path,
        "the folder modernbert-base must be compiled, not the preset"
    );
    // Elsewhere the name is the preset (random weights: another model).
    let preset = bertc_in(cwd, &cache, OFFLINE, &[&"inspect", &"modernbert-base", &"--json"]);
    assert_ok(&preset, "inspect the preset");
    assert!(String::from_utf8_lossy(&preset.stdout).contains("\"source\": \"preset\""));
    // A folder org/name beside the command wins over the cached hub id.
    cache_model(
        &cache,
        "org/name",
        &fixture("pipelines/st-cls"),
        COMMIT_A,
        Some("main"),
    );
    let local = cwd.join("org/name");
    std::fs::create_dir_all(&local).unwrap();
    for f in files_of(&fixture("pipelines/seq-cls")) {
        std::fs::copy(fixture("pipelines/seq-cls").join(&f), local.join(&f)).unwrap();
    }
    let local_export = compile_folder(cwd, &cache, OFFLINE, "org/name", &[], &cwd.join("local"));
    assert!(
        !local_export.contains_key("modules.json"),
        "the local folder org/name is a plain BERT"
    );
}

/// A hub-shaped server: `/api/models/{id}/revision/{rev}` lists the files,
/// `/{id}/resolve/{rev}/{file}` serves them with the headers hf-hub reads
/// (etag, x-repo-commit, Content-Range). It answers at most `budget`
/// requests and stops by itself after `lifetime`.
struct Hub {
    address: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// A header a hostile server sends on every file instead of the true one.
type Lie = Option<(&'static str, &'static str)>;

fn serve_hub(
    id: &'static str,
    source: PathBuf,
    commit: &'static str,
    budget: usize,
    lifetime: Duration,
) -> Hub {
    serve_hub_lying(id, source, commit, budget, lifetime, None)
}

fn serve_hub_lying(
    id: &'static str,
    source: PathBuf,
    commit: &'static str,
    budget: usize,
    lifetime: Duration,
    lie: Lie,
) -> Hub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let requests = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let log = requests.clone();
    std::thread::spawn(move || {
        let files: BTreeMap<String, Vec<u8>> = files_of(&source)
            .into_iter()
            .filter(|f| !f.contains("golden"))
            .map(|f| (f.clone(), std::fs::read(source.join(&f)).unwrap()))
            .collect();
        let start = Instant::now();
        let mut served = 0;
        while served < budget && start.elapsed() < lifetime {
            match listener.accept() {
                Ok((stream, _)) => {
                    served += 1;
                    if let Some(line) = answer(stream, id, commit, &files, lie) {
                        log.lock().unwrap().push(line);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    Hub { address, requests }
}

fn answer(
    stream: TcpStream,
    id: &str,
    commit: &str,
    files: &BTreeMap<String, Vec<u8>>,
    lie: Lie,
) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut first = String::new();
    reader.read_line(&mut first).ok()?;
    let mut range = None;
    let mut authorization = "-".to_string();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = v.trim().strip_prefix("bytes=").map(str::to_string);
            }
            if k.eq_ignore_ascii_case("authorization") {
                authorization = v.trim().to_string();
            }
        }
    }
    let path = first.split_whitespace().nth(1)?.to_string();
    let mut stream = stream;
    let info = format!("/api/models/{id}/revision/");
    let resolve = format!("/{id}/resolve/");
    let (status, headers, body) = if path.starts_with(&info) {
        let siblings: Vec<_> = files
            .keys()
            .map(|f| serde_json::json!({"rfilename": f}))
            .collect();
        let body = serde_json::json!({"sha": commit, "siblings": siblings})
            .to_string()
            .into_bytes();
        (
            "200 OK",
            vec![("Content-Type".to_string(), "application/json".to_string())],
            body,
        )
    } else if let Some(rest) = path.strip_prefix(&resolve) {
        let (_, file) = rest.split_once('/')?;
        match files.get(file) {
            None => ("404 Not Found", vec![], b"not found".to_vec()),
            Some(bytes) => {
                let (from, to) = match range.as_deref().and_then(|r| r.split_once('-')) {
                    Some((a, b)) => (
                        a.parse().unwrap_or(0),
                        b.parse().unwrap_or(bytes.len().max(1) - 1),
                    ),
                    None => (0, bytes.len().max(1) - 1),
                };
                let to = to.min(bytes.len().saturating_sub(1));
                let body = bytes.get(from..=to).unwrap_or_default().to_vec();
                let mut headers = vec![
                    ("etag".to_string(), format!("\"{}\"", hex(bytes))),
                    ("x-repo-commit".to_string(), commit.to_string()),
                    (
                        "Content-Range".to_string(),
                        format!("bytes {from}-{to}/{}", bytes.len()),
                    ),
                ];
                if let Some((name, value)) = lie {
                    headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
                    headers.push((name.to_string(), value.to_string()));
                }
                ("206 Partial Content", headers, body)
            }
        }
    } else {
        ("404 Not Found", vec![], b"not found".to_vec())
    };
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(&body).ok()?;
    stream.flush().ok()?;
    // Drain what the client may still send before closing.
    let _ = reader.get_mut().read(&mut [0u8; 1]);
    Some(format!("{path} {authorization}"))
}

#[test]
fn an_absent_model_is_downloaded_into_the_cache_from_hf_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let cwd = tmp.path();
    let hub = serve_hub(
        "org/st",
        fixture("pipelines/st-cls"),
        COMMIT_A,
        200,
        Duration::from_secs(120),
    );
    let env = [("HF_ENDPOINT", hub.address.as_str())];
    let downloaded = compile_folder(cwd, &cache, &env, "org/st", &[], &cwd.join("hub-export"));
    let from_folder = compile_folder(
        cwd,
        &cache,
        OFFLINE,
        fixture("pipelines/st-cls").to_str().unwrap(),
        &[],
        &cwd.join("dir-export"),
    );
    assert!(
        downloaded == from_folder,
        "the downloaded model compiles to another export"
    );
    let repository = cache.join("models--org--st");
    assert_eq!(
        std::fs::read_to_string(repository.join("refs/main"))
            .unwrap()
            .trim(),
        COMMIT_A
    );
    let snapshot = repository.join("snapshots").join(COMMIT_A);
    let link = std::fs::read_link(snapshot.join("1_Pooling/config.json")).unwrap();
    assert!(link.starts_with("../../../blobs"), "{}", link.display());
    // Only what bertc reads was fetched, and no partial file is left.
    let fetched = files_of(&snapshot);
    assert!(
        !fetched.contains(&"pipeline-golden.json".to_string()),
        "{fetched:?}"
    );
    assert!(fetched.contains(&"model.safetensors".to_string()) && fetched.contains(&"vocab.txt".to_string()));
    assert!(files_of(&repository.join("blobs"))
        .iter()
        .all(|b| !b.ends_with(".part")));
    // Nothing was written outside the cache but the export itself.
    let mut top: Vec<String> = std::fs::read_dir(cwd)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, ["dir-export", "hub", "hub-export"]);
    // Now cached: offline works and asks the server nothing more.
    let asked = hub.requests.lock().unwrap().len();
    assert!(asked >= 3, "{asked} requests");
    compile_folder(cwd, &cache, OFFLINE, "org/st", &[], &cwd.join("again"));
    assert_eq!(hub.requests.lock().unwrap().len(), asked);
}

/// The token `huggingface-cli login` wrote (`HF_TOKEN_PATH`, else
/// `$HF_HOME/token`) goes with every request to the hub, `HF_TOKEN` wins over
/// it, and a file that cannot be a token is refused by name, unsent.
#[test]
fn the_login_token_file_is_sent_and_a_bad_one_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let token_file = cwd.join("token");
    std::fs::write(&token_file, "hf_from_file\n").unwrap();
    let hub = serve_hub(
        "org/st",
        fixture("pipelines/st-cls"),
        COMMIT_A,
        200,
        Duration::from_secs(120),
    );
    let path = token_file.to_str().unwrap();
    let by_file = [("HF_ENDPOINT", hub.address.as_str()), ("HF_TOKEN_PATH", path)];
    compile_folder(cwd, &cwd.join("a"), &by_file, "org/st", &[], &cwd.join("x"));
    let by_env = [
        ("HF_ENDPOINT", hub.address.as_str()),
        ("HF_TOKEN_PATH", path),
        ("HF_TOKEN", "hf_from_env"),
    ];
    compile_folder(cwd, &cwd.join("b"), &by_env, "org/st", &[], &cwd.join("y"));
    let seen = hub.requests.lock().unwrap().clone();
    let with = |token: &str| {
        seen.iter()
            .filter(|r| r.ends_with(&format!(" Bearer {token}")))
            .count()
    };
    assert!(
        with("hf_from_file") >= 3
            && with("hf_from_env") >= 3
            && with("hf_from_file") + with("hf_from_env") == seen.len(),
        "{seen:?}"
    );
    std::fs::write(&token_file, "hf_one two\n").unwrap();
    let out = bertc_in(
        cwd,
        &cwd.join("c"),
        &by_file,
        &[&"compile", &"org/st", &"-o", &"z.onnx"],
    );
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(path) && err.contains("one word"), "{err}");
    assert_eq!(hub.requests.lock().unwrap().len(), seen.len(), "nothing asked");
    assert!(!cwd.join("c").exists() && !cwd.join("z.onnx").exists());
    // A link to a device is no token file: refused by name, never read.
    let device = cwd.join("device-token");
    std::os::unix::fs::symlink("/dev/zero", &device).unwrap();
    let env = [
        ("HF_ENDPOINT", hub.address.as_str()),
        ("HF_TOKEN_PATH", device.to_str().unwrap()),
    ];
    let out = bertc_in(
        cwd,
        &cwd.join("d"),
        &env,
        &[&"compile", &"org/st", &"-o", &"z.onnx"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("is not a regular file"),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(hub.requests.lock().unwrap().len(), seen.len(), "nothing asked");
}

/// What a hostile HF_ENDPOINT says never names a path: an etag or commit
/// that climbs, a commit other than the listing's, a size past any model,
/// a redirect without a target are refused by name, and nothing is
/// written outside the repository's cache folder (nor a snapshot that
/// looks complete).
#[test]
fn a_hostile_hub_cannot_write_outside_the_cache() {
    let lies: [(&str, &str, &str); 6] = [
        (
            "etag",
            "\"0000000000000000000000000000000000000000000000000000000000000000\"",
            "its SHA-256 is",
        ),
        ("etag", "\"../../../../escaped\"", "is not a plain token"),
        ("x-linked-etag", "..%2F..%2Fescaped", "is not a plain token"),
        ("x-repo-commit", "../../escaped", "not the listing's"),
        ("Content-Range", "bytes 0-0/99999999999999999", "over the"),
        ("Content-Range", "bytes 0-0/lots", "is not a number"),
    ];
    for (header, value, said) in lies {
        let tmp = tempfile::tempdir().unwrap();
        let cache = tmp.path().join("hub");
        let hub = serve_hub_lying(
            "org/st",
            fixture("pipelines/st-cls"),
            COMMIT_A,
            50,
            Duration::from_secs(60),
            Some((header, value)),
        );
        let env = [("HF_ENDPOINT", hub.address.as_str())];
        let out = bertc_in(
            tmp.path(),
            &cache,
            &env,
            &[&"compile", &"org/st", &"-o", &"m.onnx"],
        );
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{header}: {err}");
        assert!(err.contains(said) && !err.contains("panicked"), "{header}: {err}");
        let everything = files_of(tmp.path());
        assert!(
            everything
                .iter()
                .all(|f| f.starts_with("hub/models--org--st/") && !f.contains("escaped")),
            "{header}: {everything:?}"
        );
        assert!(!cache
            .join("models--org--st/snapshots")
            .join(COMMIT_A)
            .join("config.json")
            .exists());
    }
}

/// Links planted in the cache where the download writes (a ref, a
/// partial blob) are never followed: the files they point at stay as they
/// were.
#[test]
fn links_planted_in_the_cache_are_never_written_through() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    let repository = cache.join("models--org--st");
    let config = std::fs::read(fixture("pipelines/st-cls/config.json")).unwrap();
    let outside = tmp.path().join("precious.txt");
    std::fs::write(&outside, "mine").unwrap();
    std::fs::create_dir_all(repository.join("refs")).unwrap();
    std::fs::create_dir_all(repository.join("blobs")).unwrap();
    std::os::unix::fs::symlink(&outside, repository.join("refs/main")).unwrap();
    std::os::unix::fs::symlink(
        &outside,
        repository.join("blobs").join(format!("{}.part", hex(&config))),
    )
    .unwrap();
    let hub = serve_hub(
        "org/st",
        fixture("pipelines/st-cls"),
        COMMIT_A,
        200,
        Duration::from_secs(60),
    );
    let env = [("HF_ENDPOINT", hub.address.as_str())];
    let out = bertc_in(
        tmp.path(),
        &cache,
        &env,
        &[&"compile", &"org/st", &"-o", &"m.onnx"],
    );
    let err = stderr_of(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "mine");
    // The ref is a link bertc did not make: refused by name, left alone.
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("refs/main"), "{err}");
    assert!(std::fs::symlink_metadata(repository.join("refs/main"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn an_unreachable_hub_and_offline_mode_say_what_was_searched() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("hub");
    // A port bound then released: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let out = bertc_in(
        tmp.path(),
        &cache,
        &[("HF_ENDPOINT", &endpoint)],
        &[&"compile", &"org/none", &"-o", &"m.onnx"],
    );
    let err = stderr_of(&out);
    assert!(!out.status.success());
    assert!(
        err.contains("cannot download hub model `org/none`")
            && err.contains(&endpoint)
            && err.contains("models--org--none"),
        "{err}"
    );
    let out = bertc_in(tmp.path(), &cache, OFFLINE, &[&"run", &"org/none", &"x"]);
    let err = stderr_of(&out);
    assert!(
        err.contains("`org/none` (revision main) is not in the huggingface_hub cache")
            && err.contains("HF_HUB_OFFLINE=1"),
        "{err}"
    );
    assert!(!cache.join("models--org--none/snapshots").exists());

    // Missing paths are not hub ids, whatever their spelling: a file name
    // bertc reads, or anything in an existing local folder, is reported as
    // not found without a request (the unreachable endpoint would say so).
    std::fs::create_dir(tmp.path().join("out")).unwrap();
    for missing in ["out/model", "out/model.onnx", "org/config.json"] {
        for (cmd, last) in [("compile", "-o"), ("run", "x")] {
            let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&cmd, &missing, &last];
            if cmd == "compile" {
                args.push(&"m.onnx");
            }
            let out = bertc_in(tmp.path(), &cache, &[("HF_ENDPOINT", &endpoint)], &args);
            let err = stderr_of(&out);
            assert!(!out.status.success(), "{cmd} {missing}");
            assert!(
                !err.contains("cannot download") && !err.contains(&endpoint),
                "{cmd} {missing}: {err}"
            );
        }
    }
}
