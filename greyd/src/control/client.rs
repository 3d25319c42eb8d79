//! A blocking client for the control socket, used by greydb and greyd-setup.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{ProtocolError, Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach greyd at {path}: {source}")]
    Connect { path: String, source: std::io::Error },
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("greyd sent a bad response: {0}")]
    Protocol(#[from] ProtocolError),
    #[error("greyd closed the control connection without answering")]
    Closed,
}

/// One connection to greyd's control socket; several requests may be sent on it.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    pub fn connect(path: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| ClientError::Connect {
            path: path.display().to_string(),
            source,
        })?;
        // Loading a million-entry list takes a while; an unanswered request must not hang forever.
        stream.set_read_timeout(Some(Duration::from_secs(300)))?;
        let writer = stream.try_clone()?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
        })
    }

    pub fn request(&mut self, req: &Request) -> Result<Response, ClientError> {
        self.writer.write_all(&req.to_line())?;
        let mut line = Vec::new();
        if self.reader.read_until(b'\n', &mut line)? == 0 {
            return Err(ClientError::Closed);
        }
        Ok(Response::parse(&line)?)
    }
}
