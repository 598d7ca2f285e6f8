//! A load client for `bertc serve` (loopback only; bounded in requests and
//! time; stops by itself): closed-loop phases at given concurrencies, then
//! an open-loop overload at a multiple of the measured capacity. Reports
//! per phase inputs/s, tokens/s (the server's own count, from /metrics),
//! p50/p90/p99 latency, answers by status, and the server's peak RSS
//! (VmHWM, with --pid).
//!
//! cargo run --release --example serve_load -- --url http://127.0.0.1:8080 \
//!     --file ../shared/text-mix/lines-2000.txt --pid $(pgrep -n bertc)
//!
//! `--openai MODEL` sends OpenAI's embeddings body (`{"input": [...],
//! "model": MODEL}`) instead of TEI's, for servers that speak only it
//! (`--route /v1/embeddings` on bertc, `/embeddings` on infinity-emb); a
//! server without bertc's /metrics shows "-" for tokens/s.
//!
//! Open loop: request i is due at start + i / rate whatever came before,
//! and its latency counts from when it was due, so queueing shows (a
//! closed loop would slow down with the server and hide it).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    url: String,
    lines: Vec<String>,
    route: String,
    /// OpenAI's body with this model name, instead of TEI's.
    openai: Option<String>,
    concurrency: Vec<usize>,
    requests: usize,
    inputs: usize,
    overload: f64,
    overload_seconds: f64,
    overload_threads: usize,
    max_seconds: f64,
    pid: Option<u32>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        url: String::new(),
        lines: vec![],
        route: "/embed".into(),
        openai: None,
        concurrency: vec![1, 8, 32],
        requests: 2000,
        inputs: 1,
        overload: 2.0,
        overload_seconds: 10.0,
        overload_threads: 256,
        max_seconds: 60.0,
        pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| v.parse::<f64>().map_err(|e| format!("{v}: {e}"));
        match flag.as_str() {
            "--url" => a.url = value()?,
            "--file" => {
                let f = value()?;
                let text = std::fs::read_to_string(&f).map_err(|e| format!("{f}: {e}"))?;
                a.lines = text
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect();
            }
            "--route" => a.route = value()?,
            "--openai" => a.openai = Some(value()?),
            "--concurrency" => {
                a.concurrency = value()?
                    .split(',')
                    .map(|c| c.parse().map_err(|e| format!("{c}: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--requests" => a.requests = number(value()?)? as usize,
            "--inputs" => a.inputs = number(value()?)? as usize,
            "--overload" => a.overload = number(value()?)?,
            "--overload-seconds" => a.overload_seconds = number(value()?)?,
            "--overload-threads" => a.overload_threads = number(value()?)? as usize,
            "--max-seconds" => a.max_seconds = number(value()?)?,
            "--pid" => a.pid = Some(number(value()?)? as u32),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let host = a.url.trim_start_matches("http://");
    let loopback = ["127.", "localhost", "[::1]"].iter().any(|p| host.starts_with(p));
    if !loopback {
        return Err("--url must be a loopback address (http://127.0.0.1:PORT)".into());
    }
    if a.lines.is_empty() || a.inputs == 0 {
        return Err("--file with lines, and --inputs at least 1, are needed".into());
    }
    Ok(a)
}

/// What one phase saw.
#[derive(Default)]
struct Seen {
    latencies: Vec<f64>,
    statuses: BTreeMap<String, usize>,
    inputs: usize,
}

fn send(agent: &ureq::Agent, url: &str, body: &str) -> String {
    match agent
        .post(url)
        .set("Content-Type", "application/json")
        .send_string(body)
    {
        Ok(r) => {
            let _ = r.into_string();
            "200".into()
        }
        Err(ureq::Error::Status(code, r)) => {
            let _ = r.into_string();
            code.to_string()
        }
        Err(ureq::Error::Transport(_)) => "lost".into(),
    }
}

fn body(args: &Args, i: usize) -> String {
    let texts: Vec<&String> = (0..args.inputs)
        .map(|k| &args.lines[(i * args.inputs + k) % args.lines.len()])
        .collect();
    match &args.openai {
        Some(model) => serde_json::json!({"input": texts, "model": model}).to_string(),
        None => serde_json::json!({"inputs": texts, "truncate": true}).to_string(),
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .max_idle_connections_per_host(512)
        .build()
}

/// `threads` clients; request `i` is sent when `due(i)` has come (now, in
/// a closed loop); at most `count` requests, none started after `limit`.
fn phase(args: &Arc<Args>, threads: usize, count: usize, due: Option<f64>, limit: f64) -> (Seen, f64) {
    let next = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (args, next, seen) = (args.clone(), next.clone(), seen.clone());
            std::thread::spawn(move || {
                let agent = agent();
                let url = format!("{}{}", args.url, args.route);
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= count || start.elapsed().as_secs_f64() > limit {
                        break;
                    }
                    let body = body(&args, i);
                    let due_at = match due {
                        Some(rate) => {
                            let at = start + Duration::from_secs_f64(i as f64 / rate);
                            if let Some(wait) = at.checked_duration_since(Instant::now()) {
                                std::thread::sleep(wait);
                            }
                            at
                        }
                        None => Instant::now(),
                    };
                    let status = send(&agent, &url, &body);
                    let took = due_at.elapsed().as_secs_f64();
                    let mut s = seen.lock().unwrap();
                    if status == "200" {
                        s.latencies.push(took);
                        s.inputs += args.inputs;
                    }
                    *s.statuses.entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    let wall = start.elapsed().as_secs_f64();
    let seen = Arc::try_unwrap(seen)
        .ok()
        .map(|m| m.into_inner().unwrap())
        .unwrap_or_default();
    (seen, wall)
}

/// The server's count of tokens run (NaN when it keeps none).
fn tokens(args: &Args) -> f64 {
    let text = agent()
        .get(&format!("{}/metrics", args.url))
        .call()
        .ok()
        .and_then(|r| r.into_string().ok())
        .unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("bertc_tokens_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

fn peak_rss_mb(pid: Option<u32>) -> String {
    let Some(pid) = pid else { return "-".into() };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or("-".into(), |kb| format!("{:.0}", kb / 1024.0))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n => sorted[((n as f64 * p).ceil() as usize).clamp(1, n) - 1] * 1000.0,
    }
}

fn report(args: &Args, name: &str, mut seen: Seen, wall: f64, tokens: f64) -> f64 {
    seen.latencies.sort_by(f64::total_cmp);
    let statuses: Vec<String> = seen.statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    let sent: usize = seen.statuses.values().sum();
    println!(
        "| {name} | {sent} | {:.1} | {} | {:.2} | {:.2} | {:.2} | {} | {} |",
        seen.inputs as f64 / wall,
        match tokens.is_nan() {
            true => "-".to_string(),
            false => format!("{:.0}", tokens / wall),
        },
        percentile(&seen.latencies, 0.5),
        percentile(&seen.latencies, 0.9),
        percentile(&seen.latencies, 0.99),
        statuses.join(", "),
        peak_rss_mb(args.pid),
    );
    seen.latencies.len() as f64 / wall
}

fn main() -> std::process::ExitCode {
    let args = match parse() {
        Ok(a) => Arc::new(a),
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    println!("| phase | requests | inputs/s | tokens/s | p50 ms | p90 ms | p99 ms | answers | peak RSS MB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut capacity = 0.0;
    for &c in &args.concurrency {
        let before = tokens(&args);
        let (seen, wall) = phase(&args, c, args.requests, None, args.max_seconds);
        capacity = report(
            &args,
            &format!("closed c={c}"),
            seen,
            wall,
            tokens(&args) - before,
        );
    }
    if args.overload > 0.0 && capacity > 0.0 {
        let rate = capacity * args.overload;
        let count = (rate * args.overload_seconds) as usize;
        let before = tokens(&args);
        let (seen, wall) = phase(&args, args.overload_threads, count, Some(rate), args.max_seconds);
        let name = format!("open {:.0} req/s ({}× capacity)", rate, args.overload);
        report(&args, &name, seen, wall, tokens(&args) - before);
    }
    std::process::ExitCode::SUCCESS
}
