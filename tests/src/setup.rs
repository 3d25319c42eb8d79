//! Helpers for the greyd-setup tests: a tiny HTTP/1.1 server on loopback
//! that serves fixed bodies (plain, gzipped, truncated) or an endless one.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;

/// What the server sends for a path.
#[derive(Clone)]
pub enum Body {
    /// These bytes, with a Content-Length.
    Fixed(Vec<u8>),
    /// The same chunk again and again until the client goes away.
    Endless(Vec<u8>),
}

/// A loopback HTTP server; its thread ends with the test process.
pub struct HttpServer {
    addr: SocketAddr,
}

impl HttpServer {
    /// Serve `routes` (path -> body); other paths get 404.
    pub fn start(routes: Vec<(&str, Body)>) -> HttpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let routes: Arc<HashMap<String, Body>> =
            Arc::new(routes.into_iter().map(|(p, b)| (p.to_string(), b)).collect());
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let routes = Arc::clone(&routes);
                std::thread::spawn(move || serve(stream, &routes));
            }
        });
        HttpServer { addr }
    }

    /// `host:port/path`, the form spamd.conf's `:file=` takes for http.
    pub fn file(&self, path: &str) -> String {
        format!("{}{path}", self.addr)
    }
}

fn serve(stream: TcpStream, routes: &HashMap<String, Body>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request_line.split(' ').nth(1).unwrap_or("/");
    let mut out = stream;
    let _ = match routes.get(path) {
        Some(Body::Fixed(bytes)) => out
            .write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    bytes.len()
                )
                .as_bytes(),
            )
            .and_then(|()| out.write_all(bytes)),
        Some(Body::Endless(chunk)) => out
            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            .and_then(|()| {
                loop {
                    out.write_all(chunk)?;
                }
            }),
        None => out.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
    };
}

/// Gzip `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// What one greyd-setup run showed the user.
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run `greyd-setup -f conf` with `args`; stdin is closed, so no progress bars.
pub fn greyd_setup(conf: &std::path::Path, args: &[&str]) -> Run {
    let out = std::process::Command::new(crate::bin("greyd-setup"))
        .arg("-f")
        .arg(conf)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run greyd-setup");
    let run = Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    eprintln!("greyd-setup stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    run
}
