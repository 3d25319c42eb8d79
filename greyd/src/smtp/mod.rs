//! The tarpit/greylist SMTP dialogue, without I/O: [`LineReader`] frames the
//! bytes a client sends into bounded lines, [`Command::parse`] turns a line
//! into a command, and [`Dialogue`] answers commands the way spamd does and
//! reports the greylisting tuple at each RCPT.

mod command;
mod dialogue;
mod line;

pub use command::Command;
pub use dialogue::{Dialogue, DialogueConfig, Mode, Step, black_reply, message_reply};
pub use line::{LineError, LineReader, MAX_LINE};
