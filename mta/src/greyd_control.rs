//! Talking to greyd's control socket: one JSON request line, one answer
//! line, within a few seconds (greyd's protocol: `greyd::control`), and the
//! parts of greyd's `stats` answer mta reads. mta does not link greyd, so
//! those are declared here; fields greyd adds later are ignored.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::stats::Funnel;

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

/// Why greyd's numbers could not be had.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("not configured (outbound.greyd_control is not set)")]
    NotConfigured,
    #[error("{0}: {1}")]
    Socket(PathBuf, std::io::Error),
    #[error("greyd answered {0}")]
    Answer(String),
}

/// greyd's answer to `{"op":"stats"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct GreydStats {
    /// When greyd started (seconds since the epoch).
    pub started: i64,
    pub numbers: Numbers,
    pub lists: Vec<ListInfo>,
    pub peers: Vec<SyncPeer>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Numbers {
    /// Connections open now, by class (`grey`, `black`, `trapped`, `white`, `allowed`).
    pub open: BTreeMap<String, u64>,
    pub today: Today,
    pub since_start: Funnel,
    pub top_trapped: Vec<TrappedSource>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct Today {
    pub connections: BTreeMap<String, u64>,
    pub funnel: Funnel,
    pub trap_hits: u64,
    pub tarpit_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TrappedSource {
    pub ip: IpAddr,
    pub connections: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListInfo {
    pub name: String,
    pub kind: String,
    pub entries: u64,
    #[serde(default)]
    pub loaded: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SyncPeer {
    pub addr: String,
    pub last_out: Option<i64>,
    pub last_in: Option<i64>,
}

/// Read greyd's answer line to a `stats` request.
fn parse_stats(answer: &str) -> Result<GreydStats, StatsError> {
    let value: serde_json::Value =
        serde_json::from_str(answer).map_err(|_| StatsError::Answer(answer.chars().take(200).collect()))?;
    match value["status"].as_str() {
        Some("stats") => serde_json::from_value(value).map_err(|e| StatsError::Answer(e.to_string())),
        Some("error") => Err(StatsError::Answer(value["message"].as_str().unwrap_or("").to_string())),
        _ => Err(StatsError::Answer(answer.chars().take(200).collect())),
    }
}

/// Ask the greyd on `socket` for its numbers.
pub async fn stats(socket: &Path) -> Result<GreydStats, StatsError> {
    let answer = request(socket, &serde_json::json!({"op": "stats"}))
        .await
        .map_err(|e| StatsError::Socket(socket.to_path_buf(), e))?;
    parse_stats(&answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_answer_line_is_read_or_refused(line in ".{0,300}") {
            let _ = parse_stats(&line);
        }

        #[test]
        fn stats_answers_with_any_counts_are_read(greylisted: u64, open: u64, started: i64) {
            let line = serde_json::json!({"status": "stats", "started": started,
                "numbers": {"open": {"grey": open}, "since_start": {"greylisted": greylisted, "promoted": 0, "passed": 0}}});
            let s = parse_stats(&line.to_string()).unwrap();
            prop_assert_eq!((s.started, s.numbers.open["grey"], s.numbers.since_start.greylisted), (started, open, greylisted));
        }
    }

    #[test]
    fn a_stats_answer_is_read_and_other_answers_are_errors() {
        let answer = r#"{"status":"stats","started":1700000000,"numbers":{"open":{"grey":2},
            "today":{"connections":{"grey":3},"funnel":{"greylisted":3,"promoted":1,"passed":1},"trap_hits":1,"tarpit_seconds":7200},
            "since_start":{"greylisted":9,"promoted":2,"passed":4},"top_trapped":[{"ip":"192.0.2.9","connections":5}]},
            "lists":[{"name":"uatraps","kind":"black","hard_block":false,"entries":12,"loaded":1700000100}],
            "peers":[{"addr":"127.0.0.1:8025","last_out":1700000200,"last_in":null}],"later":"ignored"}"#
            .replace('\n', "");
        let s = parse_stats(&answer).unwrap();
        assert_eq!(s.numbers.open["grey"], 2);
        assert_eq!(s.numbers.since_start.passed, 4);
        assert_eq!(s.numbers.top_trapped[0].connections, 5);
        assert_eq!(s.lists[0].loaded, Some(1_700_000_100));
        assert_eq!(s.peers[0].last_in, None);
        assert!(matches!(
            parse_stats(r#"{"status":"error","message":"bad request"}"#),
            Err(StatsError::Answer(m)) if m == "bad request"
        ));
        assert!(parse_stats("garbage").is_err());
        assert!(parse_stats(r#"{"status":"ok","changed":1}"#).is_err());
    }
}
