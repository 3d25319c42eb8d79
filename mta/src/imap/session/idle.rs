//! IDLE: report changes to the selected mailbox as they happen (woken by
//! this process's own changes, polling for other processes') until DONE.

use super::{End, Flow, Session};
use crate::imap::framer::Frame;
use crate::imap::response::{Response, Status};
use crate::net::ReadError;
use std::time::Duration;

/// How often IDLE looks at the Maildir for changes made by other processes.
const IDLE_POLL: Duration = Duration::from_secs(2);

impl Session {
    pub(super) async fn idle(&mut self, tag: &str) -> Flow {
        self.send(Response::Continue("idling".into()));
        if self.selected.is_some() {
            self.update(true).await;
        }
        self.flush().await?;
        let mut changes = self.selected.as_ref().map(|s| s.mailbox.changes());
        let idle_timeout = self.shared.config.imap.idle_timeout;
        let deadline = tokio::time::Instant::now() + idle_timeout;
        let mut poll = tokio::time::interval(IDLE_POLL);
        enum Event {
            Input,
            Change,
            Timeout,
        }
        loop {
            let event = tokio::select! {
                r = self.conn.fill(idle_timeout) => match r {
                    Ok(()) => Event::Input,
                    Err(ReadError::Closed) => return Err(End::Closed),
                    Err(ReadError::Timeout) => Event::Timeout,
                },
                Some(_) = async { match &mut changes { Some(c) => c.changed().await.ok(), None => std::future::pending().await } } => Event::Change,
                _ = poll.tick() => Event::Change,
                _ = tokio::time::sleep_until(deadline) => Event::Timeout,
            };
            match event {
                Event::Input => {
                    if let Some(frame) = self.conn.input.next_frame() {
                        match frame {
                            Frame::Command(line) if line.eq_ignore_ascii_case(b"DONE") => {
                                self.ok(tag, "IDLE terminated");
                            }
                            _ => {
                                self.bad(Some(tag), "Expected DONE")?;
                            }
                        }
                        return Ok(());
                    }
                }
                Event::Change => {
                    if self.selected.is_some() {
                        self.update(true).await;
                    }
                }
                Event::Timeout => {
                    self.send(Status::bye("Autologout; idle for too long"));
                    return Err(End::Closed);
                }
            }
            self.flush().await?;
        }
    }
}
