//! Talking to greyd's control socket: one JSON request line, one answer
//! line, within a few seconds (greyd's protocol: `greyd::control`).

use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// How long greyd has to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Send `request` and return greyd's answer line, trimmed.
pub async fn request(socket: &Path, request: &serde_json::Value) -> std::io::Result<String> {
    let talk = async {
        let mut stream = tokio::net::UnixStream::connect(socket).await?;
        stream.write_all(format!("{request}\n").as_bytes()).await?;
        let mut answer = String::new();
        tokio::io::BufReader::new(stream).read_line(&mut answer).await?;
        Ok(answer.trim().to_string())
    };
    tokio::time::timeout(TIMEOUT, talk)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer")))
}
