//! Sieve (RFC 5228), our own implementation: lexer, generic grammar,
//! checker (require and extensions), and an interpreter returning typed
//! actions. Pure (but for [`scripts`], where a user's scripts live): the
//! delivery code acts on the result. Supported extensions are listed in
//! [`compile::EXTENSIONS`].

pub mod ast;
pub mod compile;
pub mod date;
pub mod grammar;
pub mod interp;
pub mod lexer;
pub mod matcher;
pub mod message;
pub mod scripts;
pub mod vacation;

pub use ast::Script;
pub use interp::{Action, Input, Outcome, RunError, Tracked, run, run_all};

/// Largest script we accept.
pub const MAX_SCRIPT: usize = 1 << 20;

/// A script that does not compile, with the line the problem is on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct CompileError {
    pub line: usize,
    pub message: String,
}

impl CompileError {
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        CompileError {
            line,
            message: message.into(),
        }
    }
}

/// The hex SHA-256 of `parts` joined by NULs: a key naming what delivery
/// remembers for scripts (vacation replies, `duplicate` ids), safe as a
/// file name.
pub fn state_key(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(parts.join("\0"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Check `src` and turn it into a script ready to run.
pub fn parse(src: &[u8]) -> Result<Script, CompileError> {
    if src.len() > MAX_SCRIPT {
        return Err(CompileError::new(
            1,
            format!("script over the limit of {MAX_SCRIPT} bytes"),
        ));
    }
    let text = std::str::from_utf8(src).map_err(|e| {
        let line = 1 + src[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        CompileError::new(line, "script is not UTF-8")
    })?;
    compile::compile(&grammar::parse(&lexer::tokenize(text)?)?)
}

#[cfg(test)]
mod tests;
