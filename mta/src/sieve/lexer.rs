//! Sieve tokens (RFC 5228 section 8.1): identifiers, tags, numbers with
//! K/M/G quantifiers, quoted and `text:` multi-line strings, punctuation;
//! comments skipped. Every token carries the line it starts on.

use super::CompileError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Identifier(String),
    /// `:name`, without the colon, lowercased (tags are case-insensitive).
    Tag(String),
    Number(u64),
    String(String),
    Punct(char),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned {
    pub token: Token,
    pub line: usize,
}

/// Split `src` into tokens.
pub fn tokenize(src: &str) -> Result<Vec<Spanned>, CompileError> {
    let b = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < b.len() {
        let c = b[i];
        let start = line;
        match c {
            b'\n' => {
                line += 1;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let end = src[i + 2..]
                    .find("*/")
                    .ok_or_else(|| CompileError::new(start, "unterminated /* comment"))?;
                line += src[i..i + 2 + end].matches('\n').count();
                i += end + 4;
            }
            b'[' | b']' | b',' | b'(' | b')' | b'{' | b'}' | b';' => {
                out.push(Spanned {
                    token: Token::Punct(c as char),
                    line,
                });
                i += 1;
            }
            b'"' => {
                let (s, next, lines) =
                    quoted(b, i + 1).ok_or_else(|| CompileError::new(start, "unterminated string"))?;
                out.push(Spanned {
                    token: Token::String(s),
                    line,
                });
                line += lines;
                i = next;
            }
            b':' => {
                let end = ident_end(b, i + 1);
                if end == i + 1 {
                    return Err(CompileError::new(line, "expected a tag name after ':'"));
                }
                out.push(Spanned {
                    token: Token::Tag(src[i + 1..end].to_ascii_lowercase()),
                    line,
                });
                i = end;
            }
            b'0'..=b'9' => {
                let mut end = i;
                while end < b.len() && b[end].is_ascii_digit() {
                    end += 1;
                }
                let digits: u64 = src[i..end]
                    .parse()
                    .map_err(|_| CompileError::new(line, "number too large"))?;
                let shift = match b.get(end).map(u8::to_ascii_uppercase) {
                    Some(b'K') => 10,
                    Some(b'M') => 20,
                    Some(b'G') => 30,
                    _ => 0,
                };
                if shift > 0 {
                    end += 1;
                }
                let n = digits
                    .checked_mul(1 << shift)
                    .ok_or_else(|| CompileError::new(line, "number too large"))?;
                out.push(Spanned {
                    token: Token::Number(n),
                    line,
                });
                i = end;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let end = ident_end(b, i);
                let word = &src[i..end];
                if word.eq_ignore_ascii_case("text") && b.get(end) == Some(&b':') {
                    let (s, next, lines) = multiline(src, end + 1, line)?;
                    out.push(Spanned {
                        token: Token::String(s),
                        line,
                    });
                    line += lines;
                    i = next;
                } else {
                    out.push(Spanned {
                        token: Token::Identifier(word.to_ascii_lowercase()),
                        line,
                    });
                    i = end;
                }
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(CompileError::new(line, format!("unexpected character {ch:?}")));
            }
        }
    }
    Ok(out)
}

fn ident_end(b: &[u8], mut i: usize) -> usize {
    if i < b.len() && (b[i].is_ascii_alphabetic() || b[i] == b'_') {
        i += 1;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
    }
    i
}

/// A quoted string from just after its opening quote: (value, index after
/// the closing quote, newlines inside). `\x` stands for `x`.
fn quoted(b: &[u8], mut i: usize) -> Option<(String, usize, usize)> {
    let mut out = Vec::new();
    let mut lines = 0;
    loop {
        match *b.get(i)? {
            b'"' => return Some((String::from_utf8_lossy(&out).into_owned(), i + 1, lines)),
            b'\\' => {
                out.push(*b.get(i + 1)?);
                i += 2;
            }
            c => {
                if c == b'\n' {
                    lines += 1;
                }
                out.push(c);
                i += 1;
            }
        }
    }
}

/// A `text:` string from just after the colon: the rest of that line may
/// hold blanks and a `#` comment; lines follow up to one holding only `.`;
/// a leading `..` stands for `.`.
fn multiline(src: &str, i: usize, line: usize) -> Result<(String, usize, usize), CompileError> {
    let rest = &src[i..];
    let eol = rest
        .find('\n')
        .ok_or_else(|| CompileError::new(line, "text: must be followed by a new line"))?;
    let head = rest[..eol].trim_end_matches('\r');
    let head = head.split_once('#').map_or(head, |(h, _)| h);
    if !head.trim_matches([' ', '\t']).is_empty() {
        return Err(CompileError::new(line, "unexpected text after text:"));
    }
    let mut pos = i + eol + 1;
    let mut out = String::new();
    let mut lines = 1;
    loop {
        let rest = &src[pos..];
        let (raw, next) = match rest.find('\n') {
            Some(n) => (&rest[..n], pos + n + 1),
            None => {
                return Err(CompileError::new(
                    line,
                    "unterminated text: string (no line with a single '.')",
                ));
            }
        };
        let text = raw.strip_suffix('\r').unwrap_or(raw);
        lines += 1;
        if text == "." {
            return Ok((out, next, lines));
        }
        out.push_str(
            text.strip_prefix('.')
                .filter(|_| text.starts_with(".."))
                .unwrap_or(text),
        );
        out.push_str("\r\n");
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(src: &str) -> Vec<Token> {
        tokenize(src).unwrap().into_iter().map(|s| s.token).collect()
    }

    #[test]
    fn tokens_of_a_script() {
        assert_eq!(
            tokens("if size :OVER 10K { fileinto \"a\\\"b\"; } # c\n/* x\n*/ [ \"1\" ,2M]"),
            vec![
                Token::Identifier("if".into()),
                Token::Identifier("size".into()),
                Token::Tag("over".into()),
                Token::Number(10240),
                Token::Punct('{'),
                Token::Identifier("fileinto".into()),
                Token::String("a\"b".into()),
                Token::Punct(';'),
                Token::Punct('}'),
                Token::Punct('['),
                Token::String("1".into()),
                Token::Punct(','),
                Token::Number(2 << 20),
                Token::Punct(']'),
            ]
        );
    }

    #[test]
    fn multiline_strings_unstuff_dots_and_count_lines() {
        let t = tokenize("reject text: # why\r\n..hi\r\nthere\r\n.\r\n;\nstop").unwrap();
        assert_eq!(t[1].token, Token::String(".hi\r\nthere\r\n".into()));
        assert_eq!(t[2].line, 5);
        assert_eq!(t[3].line, 6);
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(tokenize("\n\n\"open").unwrap_err().line, 3);
        assert_eq!(tokenize("keep;\n$").unwrap_err().line, 2);
        assert_eq!(tokenize("a 99999999999999999999G").unwrap_err().line, 1);
    }
}
