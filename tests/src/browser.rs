//! A real browser for the webmail tests: Debian's chromium, driven over
//! WebDriver by fantoccini through chromedriver on a loopback port (ended
//! by PID), and a canary HTTP server on loopback that records every
//! connection made to it. Nothing is downloaded: a missing chromium is a
//! loud failure, in CI and out of it.

use crate::{Daemon, free_port, wait_port};
use fantoccini::{Client, ClientBuilder};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless chromium session with its own profile and download folder.
pub struct Browser {
    pub client: Client,
    pub downloads: PathBuf,
    _profile: tempfile::TempDir,
    _driver: Daemon,
}

impl Browser {
    pub async fn start() -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: install Debian's chromium and chromium-driver (cargo xtask deps)"
            );
        }
        let port = free_port();
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"));
        let driver = Daemon::spawn(cmd);
        wait_port(SocketAddr::from(([127, 0, 0, 1], port)), Duration::from_secs(20));
        let profile = tempfile::tempdir().unwrap();
        let downloads = profile.path().join("downloads");
        std::fs::create_dir(&downloads).unwrap();
        let caps = serde_json::json!({
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    format!("--user-data-dir={}", profile.path().join("data").display()),
                    "--window-size=1024,900",
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                },
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("chromedriver session: {e}\n{}", driver.log()));
        Browser {
            client,
            downloads,
            _profile: profile,
            _driver: driver,
        }
    }

    /// End the browser (WebDriver quit closes chromium), then chromedriver by PID.
    pub async fn quit(self) {
        let _ = self.client.close().await;
    }
}

/// An HTTP server on loopback that answers 200 to anything and records
/// each connection (its request line, or `-` when none came): a page that
/// makes any request to it is caught.
pub struct Canary {
    pub addr: SocketAddr,
    hits: Arc<Mutex<Vec<String>>>,
}

impl Canary {
    pub fn start() -> Canary {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&hits);
        std::thread::spawn(move || {
            for mut conn in listener.incoming().map_while(Result::ok) {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                let _ = BufReader::new(&conn).read_line(&mut line);
                let line = line.trim();
                sink.lock()
                    .unwrap()
                    .push(if line.is_empty() { "-".into() } else { line.to_string() });
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        Canary { addr, hits }
    }

    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().unwrap().clone()
    }
}
