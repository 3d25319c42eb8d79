//! Benchmark for greyd-setup: one million entries fetched from a loopback
//! HTTP server, merged and loaded into a running greyd (aim: under 2 s).
//!
//! Run with `cargo xtask bench lists` (which builds the release binaries first).

use std::time::{Duration, Instant};

use greyd_tests::greyd::Greyd;
use greyd_tests::setup::{Body, HttpServer, greyd_setup, gzip};

const ENTRIES: u32 = 1_000_000;

fn main() {
    // Spread over 10.0.0.0/8 with gaps, so nothing collapses: the worst case for loading.
    let text: String = (0..ENTRIES)
        .map(|i| {
            let a = (10u32 << 24) | (i * 16);
            format!("{}.{}.{}.{}\n", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255)
        })
        .collect();
    let zipped = gzip(text.as_bytes());
    let server = HttpServer::start(vec![
        ("/plain", Body::Fixed(text.into_bytes())),
        ("/gzip", Body::Fixed(zipped)),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let greyd = Greyd::start(dir.path(), &["--firewall", "none"]);
    let control = greyd.control_path();
    let cache = dir.path().join("cache");
    for path in ["/plain", "/gzip"] {
        let conf = dir.path().join("spamd.conf");
        let file = server.file(path).replace(':', "\\:");
        std::fs::write(
            &conf,
            format!("all:big:\nbig:black:msg=\"bench %A\":method=http:file={file}:\n"),
        )
        .unwrap();
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let start = Instant::now();
            let run = greyd_setup(
                &conf,
                &[
                    "--control",
                    control.to_str().unwrap(),
                    "--cache",
                    cache.to_str().unwrap(),
                ],
            );
            let took = start.elapsed();
            assert!(run.ok, "greyd-setup failed");
            best = best.min(took);
        }
        let lists = greyd.control(r#"{"op":"list_lists"}"#);
        assert!(lists.contains(&format!("\"entries\":{ENTRIES}")), "{lists}");
        println!("bench lists {path}: {ENTRIES} entries fetched, merged, loaded: best of 3 {best:.2?}");
    }
}
