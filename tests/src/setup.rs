//! Helpers for the greyd-setup tests: a tiny HTTP/1.1 server on loopback
//! (or HTTPS, with a test CA) that serves fixed bodies (plain, gzipped,
//! truncated) or an endless one; also the MTA-STS policy servers of the
//! mta tests.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// What the server sends for a path.
#[derive(Clone)]
pub enum Body {
    /// These bytes as text/plain, with a Content-Length.
    Fixed(Vec<u8>),
    /// These bytes with this Content-Type.
    Typed(&'static str, Vec<u8>),
    /// The same chunk again and again until the client goes away.
    Endless(Vec<u8>),
}

/// A loopback HTTP (or HTTPS) server; its thread ends with the test process.
pub struct HttpServer {
    addr: SocketAddr,
    host: &'static str,
}

impl HttpServer {
    /// Serve `routes` (path -> body); other paths get 404.
    pub fn start(routes: Vec<(&str, Body)>) -> HttpServer {
        HttpServer::listen(routes, None)
    }

    /// The same over TLS, as `localhost`, with a certificate from [`test_tls`].
    pub fn start_tls(routes: Vec<(&str, Body)>, tls: rustls::ServerConfig) -> HttpServer {
        HttpServer::listen(routes, Some(Arc::new(tls)))
    }

    /// Serve `routes` over TLS on `addr` (an MTA-STS policy server on a 127.x address).
    pub fn start_tls_on(addr: SocketAddr, routes: Vec<(&str, Body)>, tls: rustls::ServerConfig) -> HttpServer {
        HttpServer::bind(addr, routes, Some(Arc::new(tls)))
    }

    fn listen(routes: Vec<(&str, Body)>, tls: Option<Arc<rustls::ServerConfig>>) -> HttpServer {
        HttpServer::bind(SocketAddr::from(([127, 0, 0, 1], 0)), routes, tls)
    }

    fn bind(addr: SocketAddr, routes: Vec<(&str, Body)>, tls: Option<Arc<rustls::ServerConfig>>) -> HttpServer {
        let listener = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = listener.local_addr().unwrap();
        let routes: Arc<HashMap<String, Body>> =
            Arc::new(routes.into_iter().map(|(p, b)| (p.to_string(), b)).collect());
        let host = if tls.is_some() { "localhost" } else { "127.0.0.1" };
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let routes = Arc::clone(&routes);
                let tls = tls.clone();
                std::thread::spawn(move || match tls {
                    Some(config) => {
                        let conn = rustls::ServerConnection::new(config).expect("TLS session");
                        serve(rustls::StreamOwned::new(conn, stream), &routes);
                    }
                    None => serve(stream, &routes),
                });
            }
        });
        HttpServer { addr, host }
    }

    /// `host:port/path`, the form spamd.conf's `:file=` takes for http(s).
    pub fn file(&self, path: &str) -> String {
        format!("{}:{}{path}", self.host, self.addr.port())
    }
}

fn serve(mut stream: impl Read + Write, routes: &HashMap<String, Body>) {
    // The request head, byte by byte: it is short, and nothing after it matters.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split(' ').nth(1).unwrap_or("/");
    let out = &mut stream;
    let _ = match routes.get(path) {
        Some(Body::Fixed(bytes)) => respond(out, "text/plain", bytes),
        Some(Body::Typed(media, bytes)) => respond(out, media, bytes),
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

fn respond(out: &mut impl Write, media: &str, bytes: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {media}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bytes.len()
    );
    out.write_all(head.as_bytes())?;
    out.write_all(bytes)?;
    out.flush()
}

/// A CA certificate (PEM, for `SSL_CERT_FILE`) and a server configuration
/// for `localhost` whose certificate that CA signed.
pub fn test_tls() -> (String, rustls::ServerConfig) {
    let ca = crate::tls::TestCa::new();
    (ca.pem().to_string(), ca.server_config(&["localhost"]))
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

/// Run `greyd-setup -f conf` with `args`; stderr is a pipe, so no progress bars.
pub fn greyd_setup(conf: &std::path::Path, args: &[&str]) -> Run {
    greyd_setup_env(conf, args, &[])
}

/// The same with extra environment variables.
pub fn greyd_setup_env(conf: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let out = std::process::Command::new(crate::bin("greyd-setup"))
        .arg("-f")
        .arg(conf)
        .args(args)
        .envs(env.iter().copied())
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
