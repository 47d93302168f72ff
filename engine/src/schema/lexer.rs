//! The schema lexer: turns source text into [`Token`]s with 1-based line/column [`Span`]s.
//!
//! Tokens are identifiers (`[A-Za-z_][A-Za-z0-9_]*`), the keywords `entity`, `relation`,
//! `permission`, `action`, `attribute`, `rule`, `and`, `or`, `not`, and the punctuation
//! `{ } ( ) = @ # . , [ ]`. Whitespace (newlines included) separates tokens and is otherwise
//! insignificant; `//` comments run to the end of the line and `/* */` comments must be closed.
//! Columns count Unicode scalar values, so a tab or an `é` is one column.
//!
//! The body of a rule is CEL, not schema tokens: after the parser has consumed a rule's opening
//! `{`, it calls [`Lexer::rule_body`], which returns the raw text up to the matching `}`. That
//! scan understands CEL strings (quoted, triple-quoted, raw) and `//` comments, so braces inside
//! them do not count.
//!
//! The lexer is pull-based (the parser asks for one token at a time), so errors come in source
//! order and the rule-body switch needs no lexer state.

use super::error::{SchemaError, SchemaErrorKind};
use super::ir::Span;

/// How deeply brackets (`(`, `[`, `{`) may nest inside a rule body. The CEL parser uses about
/// 100 KiB of stack per level in debug builds, so this is kept well below its own limit (96).
pub const MAX_RULE_BODY_NESTING: usize = 32;

/// How long a rule body may be, in bytes. Long operator chains make the CEL parser recurse once
/// per operator, so the length bounds its stack use.
pub const MAX_RULE_BODY_LEN: usize = 32 * 1024;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// A name that is not a keyword.
    Ident(String),
    Entity,
    Relation,
    Permission,
    Action,
    Attribute,
    Rule,
    And,
    Or,
    Not,
    LBrace,
    RBrace,
    LParen,
    RParen,
    Eq,
    At,
    Hash,
    Dot,
    Comma,
    LBracket,
    RBracket,
    /// The end of the source.
    Eof,
}

impl TokenKind {
    /// The keyword spelled `word`, if it is one.
    pub fn keyword(word: &str) -> Option<TokenKind> {
        Some(match word {
            "entity" => TokenKind::Entity,
            "relation" => TokenKind::Relation,
            "permission" => TokenKind::Permission,
            "action" => TokenKind::Action,
            "attribute" => TokenKind::Attribute,
            "rule" => TokenKind::Rule,
            "and" => TokenKind::And,
            "or" => TokenKind::Or,
            "not" => TokenKind::Not,
            _ => return None,
        })
    }

    /// How the token is written in source; `None` for identifiers and the end of input.
    pub fn spelling(&self) -> Option<&'static str> {
        Some(match self {
            TokenKind::Ident(_) | TokenKind::Eof => return None,
            TokenKind::Entity => "entity",
            TokenKind::Relation => "relation",
            TokenKind::Permission => "permission",
            TokenKind::Action => "action",
            TokenKind::Attribute => "attribute",
            TokenKind::Rule => "rule",
            TokenKind::And => "and",
            TokenKind::Or => "or",
            TokenKind::Not => "not",
            TokenKind::LBrace => "{",
            TokenKind::RBrace => "}",
            TokenKind::LParen => "(",
            TokenKind::RParen => ")",
            TokenKind::Eq => "=",
            TokenKind::At => "@",
            TokenKind::Hash => "#",
            TokenKind::Dot => ".",
            TokenKind::Comma => ",",
            TokenKind::LBracket => "[",
            TokenKind::RBracket => "]",
        })
    }

    /// A description for error messages: `` `foo` ``, `` `{` ``, `end of input`.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Ident(name) => format!("`{name}`"),
            TokenKind::Eof => "end of input".to_string(),
            other => format!("`{}`", other.spelling().unwrap_or_default()),
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// The raw text of a rule body, as returned by [`Lexer::rule_body`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawBody {
    /// Everything between the braces, verbatim.
    pub text: String,
    /// Where the text starts: the character right after the opening `{`.
    pub start: Span,
    /// Where the closing `}` is.
    pub close: Span,
}

/// A pull-based lexer over one schema source.
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next character; always on a character boundary.
    pos: usize,
    line: u32,
    column: u32,
}

impl<'a> Lexer<'a> {
    /// A lexer at the start of `src`. A leading byte-order mark is skipped.
    pub fn new(src: &'a str) -> Lexer<'a> {
        let pos = if src.starts_with('\u{feff}') {
            '\u{feff}'.len_utf8()
        } else {
            0
        };
        Lexer {
            src,
            pos,
            line: 1,
            column: 1,
        }
    }

    /// Where the next character is.
    pub fn position(&self) -> Span {
        Span {
            line: self.line,
            column: self.column,
        }
    }

    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or_default()
    }

    fn peek_char(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_nth(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
        } else {
            self.column = self.column.saturating_add(1);
        }
        Some(c)
    }

    /// Skips up to (not including) the next newline.
    fn skip_line(&mut self) {
        while let Some(c) = self.peek_char() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    /// Consumes `[A-Za-z0-9_]*` and returns it.
    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while self
            .peek_char()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.bump();
        }
        self.src.get(start..self.pos).unwrap_or_default()
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) -> Result<(), SchemaError> {
        loop {
            match self.peek_char() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('/') if self.peek_nth(1) == Some('/') => self.skip_line(),
                Some('/') if self.peek_nth(1) == Some('*') => {
                    let start = self.position();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            None => {
                                return Err(SchemaError::syntax(
                                    start,
                                    "unterminated block comment",
                                ));
                            }
                            Some('*') if self.peek_char() == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// The next token; [`TokenKind::Eof`] (repeatedly) at the end of the source.
    pub fn next_token(&mut self) -> Result<Token, SchemaError> {
        self.skip_trivia()?;
        let span = self.position();
        let Some(c) = self.peek_char() else {
            return Ok(Token {
                kind: TokenKind::Eof,
                span,
            });
        };
        if c.is_ascii_alphabetic() || c == '_' {
            let word = self.word();
            let kind =
                TokenKind::keyword(word).unwrap_or_else(|| TokenKind::Ident(word.to_string()));
            return Ok(Token { kind, span });
        }
        let kind = match c {
            '{' => TokenKind::LBrace,
            '}' => TokenKind::RBrace,
            '(' => TokenKind::LParen,
            ')' => TokenKind::RParen,
            '=' => TokenKind::Eq,
            '@' => TokenKind::At,
            '#' => TokenKind::Hash,
            '.' => TokenKind::Dot,
            ',' => TokenKind::Comma,
            '[' => TokenKind::LBracket,
            ']' => TokenKind::RBracket,
            other => {
                return Err(SchemaError::syntax(
                    span,
                    format!("unexpected character `{}`", other.escape_debug()),
                ));
            }
        };
        self.bump();
        Ok(Token { kind, span })
    }

    /// Reads a rule body: call it right after the rule's opening `{` has been returned by
    /// [`Lexer::next_token`] (`open` is that brace's span). Returns the text up to the matching
    /// `}` and moves past that brace. Braces inside CEL strings and `//` comments don't count.
    pub fn rule_body(&mut self, open: Span) -> Result<RawBody, SchemaError> {
        let start_pos = self.pos;
        let start = self.position();
        let mut braces = 1usize;
        // Brackets open inside the body (the rule's own braces excluded).
        let mut nesting = 0usize;
        loop {
            let Some(c) = self.peek_char() else {
                return Err(SchemaError::syntax(
                    open,
                    "unterminated rule body: missing `}`",
                ));
            };
            match c {
                '}' => {
                    braces -= 1;
                    nesting = nesting.saturating_sub(1);
                    if braces == 0 {
                        let close = self.position();
                        let text = self.src.get(start_pos..self.pos).unwrap_or_default();
                        if text.len() > MAX_RULE_BODY_LEN {
                            return Err(SchemaError::new(
                                SchemaErrorKind::TooDeep,
                                start,
                                format!("rule body longer than {MAX_RULE_BODY_LEN} bytes"),
                            ));
                        }
                        self.bump();
                        return Ok(RawBody {
                            text: text.to_string(),
                            start,
                            close,
                        });
                    }
                    self.bump();
                }
                '{' | '(' | '[' => {
                    nesting += 1;
                    if nesting > MAX_RULE_BODY_NESTING {
                        return Err(SchemaError::new(
                            SchemaErrorKind::TooDeep,
                            self.position(),
                            format!(
                                "rule body nests brackets deeper than {MAX_RULE_BODY_NESTING} levels"
                            ),
                        ));
                    }
                    if c == '{' {
                        braces += 1;
                    }
                    self.bump();
                }
                ')' | ']' => {
                    nesting = nesting.saturating_sub(1);
                    self.bump();
                }
                '"' | '\'' => self.skip_cel_string(false)?,
                '/' if self.peek_nth(1) == Some('/') => self.skip_line(),
                c if c.is_ascii_alphanumeric() || c == '_' => {
                    let word = self.word();
                    let is_prefix = !word.is_empty()
                        && word.len() <= 2
                        && word.chars().all(|c| matches!(c, 'r' | 'R' | 'b' | 'B'));
                    if is_prefix && matches!(self.peek_char(), Some('"' | '\'')) {
                        let raw = word.contains(['r', 'R']);
                        self.skip_cel_string(raw)?;
                    }
                }
                _ => {
                    self.bump();
                }
            }
        }
    }

    /// Skips a CEL string literal starting at the current quote. A single-quoted string stops at
    /// the end of its line even when unterminated (the CEL parser reports that); a triple-quoted
    /// one must be closed before the end of the source.
    fn skip_cel_string(&mut self, raw: bool) -> Result<(), SchemaError> {
        let start = self.position();
        let Some(quote) = self.bump() else {
            return Ok(());
        };
        let triple = self.peek_char() == Some(quote) && self.peek_nth(1) == Some(quote);
        if triple {
            self.bump();
            self.bump();
        }
        loop {
            match self.peek_char() {
                None => {
                    if triple {
                        return Err(SchemaError::syntax(
                            start,
                            "unterminated string in rule body",
                        ));
                    }
                    return Ok(());
                }
                Some('\n') if !triple => return Ok(()),
                Some('\\') if !raw => {
                    self.bump();
                    // An escaped newline in a one-line string is still the end of its line.
                    if triple || self.peek_char() != Some('\n') {
                        self.bump();
                    }
                }
                Some(c) if c == quote => {
                    self.bump();
                    if !triple {
                        return Ok(());
                    }
                    if self.peek_char() == Some(quote) && self.peek_nth(1) == Some(quote) {
                        self.bump();
                        self.bump();
                        return Ok(());
                    }
                }
                Some(_) => {
                    self.bump();
                }
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<(TokenKind, u32, u32)> {
        let mut lexer = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let token = lexer.next_token().unwrap();
            let done = token.kind == TokenKind::Eof;
            out.push((token.kind, token.span.line, token.span.column));
            if done {
                return out;
            }
        }
    }

    fn ident(s: &str) -> TokenKind {
        TokenKind::Ident(s.to_string())
    }

    #[test]
    fn tokens_and_spans() {
        let toks = kinds("entity doc {\n  relation owner @user @group#member_2\n}");
        assert_eq!(
            toks,
            vec![
                (TokenKind::Entity, 1, 1),
                (ident("doc"), 1, 8),
                (TokenKind::LBrace, 1, 12),
                (TokenKind::Relation, 2, 3),
                (ident("owner"), 2, 12),
                (TokenKind::At, 2, 18),
                (ident("user"), 2, 19),
                (TokenKind::At, 2, 24),
                (ident("group"), 2, 25),
                (TokenKind::Hash, 2, 30),
                (ident("member_2"), 2, 31),
                (TokenKind::RBrace, 3, 1),
                (TokenKind::Eof, 3, 2),
            ]
        );
    }

    #[test]
    fn keywords_and_punctuation() {
        let toks: Vec<TokenKind> =
            kinds("permission action attribute rule and or not = . , [ ] ( ) _x")
                .into_iter()
                .map(|t| t.0)
                .collect();
        assert_eq!(
            toks,
            vec![
                TokenKind::Permission,
                TokenKind::Action,
                TokenKind::Attribute,
                TokenKind::Rule,
                TokenKind::And,
                TokenKind::Or,
                TokenKind::Not,
                TokenKind::Eq,
                TokenKind::Dot,
                TokenKind::Comma,
                TokenKind::LBracket,
                TokenKind::RBracket,
                TokenKind::LParen,
                TokenKind::RParen,
                ident("_x"),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn comments_are_skipped() {
        let toks = kinds("// line { comment\nentity /* block\n } */ a // tail\n/**/");
        assert_eq!(
            toks,
            vec![
                (TokenKind::Entity, 2, 1),
                (ident("a"), 3, 7),
                (TokenKind::Eof, 4, 5),
            ]
        );
    }

    #[test]
    fn unterminated_block_comment() {
        let mut lexer = Lexer::new("entity\n  /* never closed");
        assert_eq!(lexer.next_token().unwrap().kind, TokenKind::Entity);
        let err = lexer.next_token().unwrap_err();
        assert_eq!(err.kind, SchemaErrorKind::Syntax);
        assert_eq!(err.to_string(), "2:3: unterminated block comment");
    }

    #[test]
    fn unexpected_character() {
        let mut lexer = Lexer::new("\n\t é");
        let err = lexer.next_token().unwrap_err();
        assert_eq!(err.to_string(), "2:3: unexpected character `é`");
        let mut lexer = Lexer::new("a/b");
        assert_eq!(lexer.next_token().unwrap().kind, ident("a"));
        let err = lexer.next_token().unwrap_err();
        assert_eq!(err.to_string(), "1:2: unexpected character `/`");
    }

    fn body(src: &str) -> Result<RawBody, SchemaError> {
        let mut lexer = Lexer::new(src);
        let open = lexer.next_token()?;
        assert_eq!(open.kind, TokenKind::LBrace);
        let body = lexer.rule_body(open.span)?;
        assert_eq!(lexer.next_token()?.kind, TokenKind::Eof);
        Ok(body)
    }

    #[test]
    fn rule_body_is_verbatim() {
        let b = body("{ a > 1 && {'k': \"}\"}['k'] == '}' }").unwrap();
        assert_eq!(b.text, " a > 1 && {'k': \"}\"}['k'] == '}' ");
        assert_eq!(b.start, Span { line: 1, column: 2 });
        assert_eq!(
            b.close,
            Span {
                line: 1,
                column: 35
            }
        );
    }

    #[test]
    fn rule_body_strings_and_comments() {
        let src = "{\n  r'\\' + \"\\\"}\" + '''}\n''' + b\"}\" // }\n}";
        let b = body(src).unwrap();
        assert_eq!(b.text, "\n  r'\\' + \"\\\"}\" + '''}\n''' + b\"}\" // }\n");
        assert_eq!(b.close, Span { line: 4, column: 1 });
    }

    #[test]
    fn rule_body_errors() {
        let err = body("{ a > 1").unwrap_err();
        assert_eq!(err.to_string(), "1:1: unterminated rule body: missing `}`");
        let err = body("{ '''abc }").unwrap_err();
        assert_eq!(err.to_string(), "1:3: unterminated string in rule body");
        let deep = format!("{{{}1{}}}", "(".repeat(100_000), ")".repeat(100_000));
        let err = body(&deep).unwrap_err();
        assert_eq!(err.kind, SchemaErrorKind::TooDeep);
    }

    #[test]
    fn one_line_string_ends_at_newline() {
        // The CEL parser reports the unterminated string; the scan still finds the brace.
        let b = body("{ 'abc\n }").unwrap();
        assert_eq!(b.text, " 'abc\n ");
    }
}
