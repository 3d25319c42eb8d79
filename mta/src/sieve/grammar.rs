//! The generic Sieve grammar (RFC 5228 section 8.2): commands with
//! arguments, tests and blocks, before any command is known. Nesting of
//! blocks and tests is bounded so hostile scripts cannot exhaust the stack.

use super::CompileError;
use super::lexer::{Spanned, Token};

/// Deepest nesting of blocks and tests taken together.
pub const MAX_NESTING: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Argument {
    Tag(String),
    Number(u64),
    Strings(Vec<String>),
}

/// A command or a test: `name arguments [tests] [block]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub line: usize,
    pub args: Vec<Argument>,
    pub tests: Vec<Node>,
    /// Only commands have one; `None` for `cmd ...;`.
    pub block: Option<Vec<Node>>,
}

pub fn parse(tokens: &[Spanned]) -> Result<Vec<Node>, CompileError> {
    let mut p = Parser { tokens, pos: 0 };
    let commands = p.commands(0)?;
    match p.peek() {
        None => Ok(commands),
        Some(t) => Err(CompileError::new(t.line, format!("unexpected {}", describe(&t.token)))),
    }
}

struct Parser<'a> {
    tokens: &'a [Spanned],
    pos: usize,
}

fn describe(t: &Token) -> String {
    match t {
        Token::Identifier(s) => format!("identifier {s:?}"),
        Token::Tag(s) => format!("tag :{s}"),
        Token::Number(n) => format!("number {n}"),
        Token::String(_) => "string".into(),
        Token::Punct(c) => format!("'{c}'"),
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.pos)
    }

    fn last_line(&self) -> usize {
        self.tokens.last().map_or(1, |t| t.line)
    }

    fn is_punct(&self, c: char) -> bool {
        matches!(self.peek(), Some(Spanned { token: Token::Punct(p), .. }) if *p == c)
    }

    fn expect(&mut self, c: char) -> Result<(), CompileError> {
        if self.is_punct(c) {
            self.pos += 1;
            return Ok(());
        }
        Err(match self.peek() {
            Some(t) => CompileError::new(t.line, format!("expected '{c}', found {}", describe(&t.token))),
            None => CompileError::new(self.last_line(), format!("expected '{c}' before the end of the script")),
        })
    }

    fn commands(&mut self, depth: usize) -> Result<Vec<Node>, CompileError> {
        let mut out = Vec::new();
        while let Some(t) = self.peek() {
            if matches!(t.token, Token::Punct('}')) {
                break;
            }
            out.push(self.command(depth)?);
        }
        Ok(out)
    }

    fn command(&mut self, depth: usize) -> Result<Node, CompileError> {
        let mut node = self.node(depth)?;
        if self.is_punct('{') {
            if depth >= MAX_NESTING {
                return Err(CompileError::new(node.line, "blocks nested too deeply"));
            }
            self.pos += 1;
            node.block = Some(self.commands(depth + 1)?);
            self.expect('}')?;
        } else {
            self.expect(';')?;
        }
        Ok(node)
    }

    /// `identifier arguments [test / test-list]`, shared by commands and tests.
    fn node(&mut self, depth: usize) -> Result<Node, CompileError> {
        let (name, line) = match self.peek() {
            Some(Spanned {
                token: Token::Identifier(n),
                line,
            }) => (n.clone(), *line),
            Some(t) => {
                return Err(CompileError::new(
                    t.line,
                    format!("expected a command, found {}", describe(&t.token)),
                ));
            }
            None => return Err(CompileError::new(self.last_line(), "expected a command")),
        };
        self.pos += 1;
        let mut node = Node {
            name,
            line,
            args: Vec::new(),
            tests: Vec::new(),
            block: None,
        };
        while let Some(t) = self.peek() {
            match &t.token {
                Token::Tag(s) => node.args.push(Argument::Tag(s.clone())),
                Token::Number(n) => node.args.push(Argument::Number(*n)),
                Token::String(s) => node.args.push(Argument::Strings(vec![s.clone()])),
                Token::Punct('[') => {
                    self.pos += 1;
                    let list = self.string_list()?;
                    node.args.push(Argument::Strings(list));
                    continue;
                }
                _ => break,
            }
            self.pos += 1;
        }
        let nested = depth + 1;
        if self.is_punct('(')
            || matches!(
                self.peek(),
                Some(Spanned {
                    token: Token::Identifier(_),
                    ..
                })
            )
        {
            if nested >= MAX_NESTING {
                return Err(CompileError::new(line, "tests nested too deeply"));
            }
            if self.is_punct('(') {
                self.pos += 1;
                node.tests.push(self.node(nested)?);
                while self.is_punct(',') {
                    self.pos += 1;
                    node.tests.push(self.node(nested)?);
                }
                self.expect(')')?;
            } else {
                node.tests.push(self.node(nested)?);
            }
        }
        Ok(node)
    }

    /// The rest of `[ "a", "b" ]` after the bracket.
    fn string_list(&mut self) -> Result<Vec<String>, CompileError> {
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(Spanned {
                    token: Token::String(s),
                    ..
                }) => {
                    out.push(s.clone());
                    self.pos += 1;
                }
                Some(t) => {
                    return Err(CompileError::new(
                        t.line,
                        format!("expected a string, found {}", describe(&t.token)),
                    ));
                }
                None => return Err(CompileError::new(self.last_line(), "unterminated string list")),
            }
            if self.is_punct(',') {
                self.pos += 1;
            } else {
                self.expect(']')?;
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lexer::tokenize;
    use super::*;

    fn parse_src(src: &str) -> Result<Vec<Node>, CompileError> {
        parse(&tokenize(src)?)
    }

    #[test]
    fn nested_tests_and_blocks() {
        let n = parse_src("if anyof (not exists \"x\", header :is [\"a\",\"b\"] \"c\") {\n keep;\n}").unwrap();
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].tests[0].name, "anyof");
        assert_eq!(n[0].tests[0].tests.len(), 2);
        assert_eq!(n[0].tests[0].tests[0].tests[0].name, "exists");
        assert_eq!(
            n[0].tests[0].tests[1].args,
            vec![
                Argument::Tag("is".into()),
                Argument::Strings(vec!["a".into(), "b".into()]),
                Argument::Strings(vec!["c".into()])
            ]
        );
        assert_eq!(n[0].block.as_ref().unwrap()[0].line, 2);
    }

    #[test]
    fn syntax_errors_have_lines() {
        assert_eq!(parse_src("keep;\nstop").unwrap_err().line, 2);
        assert_eq!(parse_src("keep;\n}").unwrap_err().line, 2);
        assert_eq!(parse_src("if true {\nkeep;\n").unwrap_err().line, 2);
        let deep = "if not ".repeat(40) + "true { keep; }";
        assert!(parse_src(&deep).unwrap_err().message.contains("deeply"));
        let blocks = "if true {".repeat(40) + &"}".repeat(40);
        assert!(parse_src(&blocks).unwrap_err().message.contains("deeply"));
    }
}
