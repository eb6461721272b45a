//! `serve` under load and abuse, on loopback: 10 000 requests, 16 at a time, good ones mixed with
//! hostile ones (random bytes, a decompression bomb, a 6 MiB body, malformed JSON, absurd
//! positions, traversal ids, a kernel larger than the picture), while 300 slow clients hold
//! connections open with half a request. Every answer must be 2xx or 4xx, every slow client must
//! be cut off by the header timeout, and the figures (latency, peak memory) are printed.
//!
//! Long (about a minute): `cargo test --release -p convlearn-web --test load -- --ignored`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const REQUESTS: usize = 10_000;
const CONCURRENCY: usize = 16;
const SLOW_CLIENTS: usize = 300;

/// A request of the mix: method, path, content type, body.
type Planned = (&'static str, String, &'static str, Vec<u8>);

/// Sends one request (`Connection: close`) and returns the status code and the body.
async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    kind: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    // The server may answer (413) before reading a large body, and close.
    let _ = stream.write_all(body).await;
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response[..response.len().min(64)]).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line from {path}: {text:?}"));
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(response.len(), |p| p + 4);
    (status, response[split..].to_vec())
}

fn multipart(bytes: &[u8]) -> Vec<u8> {
    let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.png\"\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
    body.extend_from_slice(bytes);
    body.extend_from_slice(b"\r\n--XyZ--\r\n");
    body
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 7) as u8, (y * 5) as u8, 90]));
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A PNG header (and nothing more) claiming 100 000 × 100 000 pixels.
fn png_bomb() -> Vec<u8> {
    let mut p = png(1, 1);
    p[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    p[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    p.truncate(33);
    p
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a minute of load; run with --ignored"]
async fn the_server_survives_load_abuse_and_slow_clients() {
    let state = convlearn_web::app_state(&convlearn_web::ServeConfig::default()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(convlearn_web::serve_connections(
        listener,
        convlearn_web::router(state),
        async {
            let _ = stopped.await;
        },
    ));

    // The built-in model trains for a few seconds at start-up.
    let start = Instant::now();
    loop {
        let (_, body) = send(addr, "GET", "/api/model", "text/plain", b"").await;
        if String::from_utf8_lossy(&body).contains("\"ready\"") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the model never got ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, body) = send(
        addr,
        "POST",
        "/api/upload",
        "multipart/form-data; boundary=XyZ",
        &multipart(&png(1, 1)),
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let tiny: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let tiny = tiny["id"].as_str().unwrap().to_string();

    // Slow clients: half a request each, then nothing.
    let cut_off = Arc::new(AtomicUsize::new(0));
    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| {
            let cut_off = Arc::clone(&cut_off);
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(addr).await.expect("slow connect");
                stream
                    .write_all(b"POST /api/convolve HTTP/1.1\r\nHost: loc")
                    .await
                    .unwrap();
                let mut buf = [0u8; 1024];
                let limit = convlearn_web::HEADER_TIMEOUT + Duration::from_secs(10);
                // The server must close (or answer 408) within the header timeout.
                if let Ok(Ok(_)) = tokio::time::timeout(limit, stream.read(&mut buf)).await {
                    cut_off.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    let kernel3 = serde_json::json!([[-1, -1, -1], [0, 0, 0], [1, 1, 1]]);
    let kernel5 = serde_json::json!(vec![vec![0.04; 5]; 5]);
    let kernel9 = serde_json::json!(vec![vec![1.0; 9]; 9]);
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let big = vec![b'a'; 6 << 20];
    let requests: Arc<Vec<Planned>> = Arc::new(vec![
        ("POST", "/api/convolve".into(), "application/json", serde_json::json!({"image": "sample-0", "kernel": kernel3}).to_string().into_bytes()),
        ("POST", "/api/arithmetic".into(), "application/json", serde_json::json!({"image": "sample-1", "kernel": kernel3, "x": 5, "y": 7}).to_string().into_bytes()),
        ("POST", "/api/convolve".into(), "application/json", serde_json::json!({"image": "sample-2", "kernel": kernel5, "color": true, "padding": "replicate"}).to_string().into_bytes()),
        ("POST", "/api/explore".into(), "application/json", serde_json::json!({"image": "sample-0"}).to_string().into_bytes()),
        ("POST", "/api/upload".into(), "multipart/form-data; boundary=XyZ", multipart(&random)),
        ("POST", "/api/upload".into(), "multipart/form-data; boundary=XyZ", multipart(&png_bomb())),
        ("POST", "/api/upload".into(), "multipart/form-data; boundary=XyZ", big),
        ("POST", "/api/convolve".into(), "application/json", b"{\"image\": \"sample-0\", \"kernel\": [[1,".to_vec()),
        ("POST", "/api/arithmetic".into(), "application/json", serde_json::json!({"image": "sample-0", "kernel": kernel3, "x": 1_000_000_000_000u64, "y": 3}).to_string().into_bytes()),
        ("POST", "/api/arithmetic".into(), "application/json", serde_json::json!({"image": "sample-0", "kernel": kernel3, "x": -5, "y": 3}).to_string().into_bytes()),
        ("GET", "/api/images/..%2F..%2F..%2Fetc%2Fpasswd".into(), "text/plain", Vec::new()),
        ("POST", "/api/convolve".into(), "application/json", serde_json::json!({"image": tiny, "kernel": kernel9}).to_string().into_bytes()),
        ("POST", "/api/explain".into(), "application/json", serde_json::json!({"image": "sample-0", "layer": 99, "channel": 0, "x": 0, "y": 0}).to_string().into_bytes()),
    ]);

    let next = Arc::new(AtomicUsize::new(0));
    let load_start = Instant::now();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (next, requests) = (Arc::clone(&next), Arc::clone(&requests));
            tokio::spawn(async move {
                let mut seen = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= REQUESTS {
                        return seen;
                    }
                    let (method, path, kind, body) = &requests[i % requests.len()];
                    let t = Instant::now();
                    let (status, answer) = send(addr, method, path, kind, body).await;
                    assert!(
                        status < 500,
                        "{method} {path} answered {status}: {}",
                        String::from_utf8_lossy(&answer)
                    );
                    seen.push((i % requests.len(), status, t.elapsed()));
                }
            })
        })
        .collect();
    let mut results = Vec::new();
    for w in workers {
        results.extend(w.await.expect("a client failed"));
    }
    let seconds = load_start.elapsed().as_secs_f64();
    for s in slow {
        s.await.unwrap();
    }
    let _ = stop.send(());
    let _ = server.await;

    let mut latencies: Vec<Duration> = results.iter().map(|r| r.2).collect();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize].as_secs_f64() * 1e3;
    let ok = results.iter().filter(|r| r.1 < 300).count();
    println!(
        "load: {} requests in {seconds:.1} s ({:.0}/s), {ok} 2xx, {} 4xx, 0 5xx; latency p50 {:.1} ms, p99 {:.1} ms; {} of {SLOW_CLIENTS} slow clients cut off; peak RSS {:.0} MiB",
        results.len(),
        results.len() as f64 / seconds,
        results.len() - ok,
        pct(0.5),
        pct(0.99),
        cut_off.load(Ordering::Relaxed),
        peak_rss_mib()
    );
    assert_eq!(results.len(), REQUESTS);
    // The good requests of the mix (the first four) all succeeded.
    for (kind, status, _) in &results {
        if *kind < 4 {
            assert!(*status < 300, "request kind {kind} answered {status}");
        }
    }
    assert_eq!(
        cut_off.load(Ordering::Relaxed),
        SLOW_CLIENTS,
        "slow clients were not cut off"
    );
    assert!(seconds < 150.0, "the load took {seconds:.0} s");
    assert!(
        peak_rss_mib() < 1024.0,
        "peak RSS {:.0} MiB",
        peak_rss_mib()
    );
}
