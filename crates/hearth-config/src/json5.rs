//! A JSON5 parser that keeps a byte span on every node.
//!
//! Hand-written rather than borrowed because the config loader needs three things that the
//! general-purpose crates do not give together: a span for every key and value (diagnostics name
//! `file:line:col`), a hard nesting limit (deep input is an error, never a stack overflow), and
//! error messages that say what to do. `json5` (the crate) is the differential oracle in tests.
//!
//! Grammar: <https://spec.json5.org>. Deviations, each pinned by a test: duplicate keys are kept
//! (the decoder warns and the last one wins), and identifiers written with `\u` escapes are
//! rejected with a hint to quote the key.

use crate::source::{FileId, Span};

/// Deepest nesting of arrays and objects accepted.
pub const MAX_DEPTH: usize = 128;

/// A parsed value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Node>),
    Object(Vec<Member>),
}

/// A number literal. Integers that fit in `i64` stay exact.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    Int(i64),
    Float(f64),
}

impl Number {
    pub fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Float(f) => f,
        }
    }
}

/// One `key: value` pair of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub key: String,
    pub key_span: Span,
    pub value: Node,
}

impl Node {
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(Number::Int(_)) => "integer",
            Value::Number(Number::Float(_)) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    /// The last member named `key`, if this node is an object (JSON5: the last duplicate wins).
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Object(members) => members.iter().rev().find(|m| m.key == key).map(|m| &m.value),
            _ => None,
        }
    }

    /// Converts to a `serde_json::Value`. Non-finite numbers become `null` (JSON has no NaN).
    pub fn to_json(&self) -> serde_json::Value {
        match &self.value {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(Number::Int(i)) => serde_json::Value::from(*i),
            Value::Number(Number::Float(f)) => serde_json::Number::from_f64(*f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Node::to_json).collect())
            }
            Value::Object(members) => {
                let mut map = serde_json::Map::new();
                for m in members {
                    map.insert(m.key.clone(), m.value.to_json());
                }
                serde_json::Value::Object(map)
            }
        }
    }
}

/// A syntax error: where, what, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub span: Span,
    pub message: String,
    pub help: Option<String>,
}

/// Parses one JSON5 document.
pub fn parse(text: &str, file: FileId) -> Result<Node, SyntaxError> {
    let mut parser = Parser { text, bytes: text.as_bytes(), pos: 0, file };
    parser.skip_trivia()?;
    if parser.pos >= parser.bytes.len() {
        return Err(parser.error_at(
            parser.pos,
            parser.pos,
            "the file is empty",
            Some("write `{}` for an empty config"),
        ));
    }
    let node = parser.value(0)?;
    parser.skip_trivia()?;
    if parser.pos < parser.bytes.len() {
        let (start, end) = parser.char_range(parser.pos);
        return Err(parser.error_at(
            start,
            end,
            "unexpected text after the end of the document",
            Some("a config file holds one object; check for a missing `{` or an extra `}` above"),
        ));
    }
    Ok(node)
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    file: FileId,
}

impl Parser<'_> {
    fn span(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start, end)
    }

    fn error_at(&self, start: usize, end: usize, message: &str, help: Option<&str>) -> SyntaxError {
        SyntaxError {
            span: self.span(start, end),
            message: message.to_owned(),
            help: help.map(str::to_owned),
        }
    }

    fn peek_char(&self) -> Option<char> {
        self.text.get(self.pos..).and_then(|rest| rest.chars().next())
    }

    /// Byte range of the character at `pos` (empty at the end of input).
    fn char_range(&self, pos: usize) -> (usize, usize) {
        let len = self.text.get(pos..).and_then(|r| r.chars().next()).map_or(0, char::len_utf8);
        (pos, pos + len)
    }

    fn skip_trivia(&mut self) -> Result<(), SyntaxError> {
        loop {
            let Some(c) = self.peek_char() else { return Ok(()) };
            if is_json5_whitespace(c) {
                self.pos += c.len_utf8();
            } else if self.text[self.pos..].starts_with("//") {
                while let Some(c) = self.peek_char() {
                    if is_line_terminator(c) {
                        break;
                    }
                    self.pos += c.len_utf8();
                }
            } else if self.text[self.pos..].starts_with("/*") {
                let start = self.pos;
                match self.text[self.pos + 2..].find("*/") {
                    Some(offset) => self.pos += 2 + offset + 2,
                    None => {
                        return Err(self.error_at(
                            start,
                            start + 2,
                            "unterminated block comment",
                            Some("close the comment with `*/`"),
                        ));
                    }
                }
            } else {
                return Ok(());
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Err(self.error_at(
                start,
                start,
                "unexpected end of file: expected a value",
                Some("the file may be cut short; check that every `{` and `[` is closed"),
            ));
        };
        match c {
            '{' | '[' if depth >= MAX_DEPTH => Err(self.error_at(
                start,
                start + 1,
                &format!("nesting deeper than {MAX_DEPTH} levels"),
                Some("a hearth config is never this deep; check for a generated or corrupted file"),
            )),
            '{' => self.object(depth),
            '[' => self.array(depth),
            '"' | '\'' => {
                let s = self.string()?;
                Ok(Node { value: Value::String(s), span: self.span(start, self.pos) })
            }
            c if c == '-' || c == '+' || c == '.' || c.is_ascii_digit() => self.number(),
            c if is_identifier_start(c) => {
                let word = self.identifier()?;
                let value = match word.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    "null" => Value::Null,
                    "Infinity" => Value::Number(Number::Float(f64::INFINITY)),
                    "NaN" => Value::Number(Number::Float(f64::NAN)),
                    _ => {
                        return Err(self.error_at(
                            start,
                            self.pos,
                            &format!("unexpected word `{word}`: expected a value"),
                            Some("strings must be quoted, e.g. \"text\""),
                        ));
                    }
                };
                Ok(Node { value, span: self.span(start, self.pos) })
            }
            _ => {
                let (s, e) = self.char_range(start);
                Err(self.error_at(
                    s,
                    e,
                    &format!("unexpected character `{}`: expected a value", c.escape_debug()),
                    None,
                ))
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let start = self.pos;
        self.pos += 1; // `{`
        let mut members = Vec::new();
        loop {
            self.skip_trivia()?;
            match self.peek_char() {
                None => {
                    return Err(self.error_at(
                        start,
                        start + 1,
                        "unclosed object: this `{` has no matching `}`",
                        Some("add the missing `}`"),
                    ));
                }
                Some('}') => {
                    self.pos += 1;
                    return Ok(Node {
                        value: Value::Object(members),
                        span: self.span(start, self.pos),
                    });
                }
                Some(_) => {}
            }
            let key_start = self.pos;
            let key = match self.peek_char() {
                Some('"' | '\'') => self.string()?,
                Some(c) if is_identifier_start(c) || c == '\\' => self.identifier()?,
                Some(c) => {
                    let (s, e) = self.char_range(self.pos);
                    return Err(self.error_at(
                        s,
                        e,
                        &format!(
                            "unexpected character `{}`: expected a key or `}}`",
                            c.escape_debug()
                        ),
                        Some(
                            "quote keys that are not plain identifiers, e.g. \"lmstudio/my-model\"",
                        ),
                    ));
                }
                None => {
                    return Err(self.error_at(
                        start,
                        start + 1,
                        "unclosed object: this `{` has no matching `}`",
                        None,
                    ));
                }
            };
            let key_span = self.span(key_start, self.pos);
            self.skip_trivia()?;
            if self.peek_char() != Some(':') {
                let (s, e) = self.char_range(self.pos);
                return Err(self.error_at(
                    s,
                    e,
                    &format!("expected `:` after the key `{key}`"),
                    Some("write `key: value`"),
                ));
            }
            self.pos += 1;
            self.skip_trivia()?;
            let value = self.value(depth + 1)?;
            members.push(Member { key, key_span, value });
            self.skip_trivia()?;
            match self.peek_char() {
                Some(',') => self.pos += 1,
                Some('}') => {}
                None => {}
                Some(_) => {
                    let (s, e) = self.char_range(self.pos);
                    return Err(self.error_at(
                        s,
                        e,
                        "expected `,` or `}` after an object member",
                        Some("a comma is probably missing at the end of the previous line"),
                    ));
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Node, SyntaxError> {
        let start = self.pos;
        self.pos += 1; // `[`
        let mut items = Vec::new();
        loop {
            self.skip_trivia()?;
            match self.peek_char() {
                None => {
                    return Err(self.error_at(
                        start,
                        start + 1,
                        "unclosed array: this `[` has no matching `]`",
                        Some("add the missing `]`"),
                    ));
                }
                Some(']') => {
                    self.pos += 1;
                    return Ok(Node {
                        value: Value::Array(items),
                        span: self.span(start, self.pos),
                    });
                }
                Some(_) => {}
            }
            items.push(self.value(depth + 1)?);
            self.skip_trivia()?;
            match self.peek_char() {
                Some(',') => self.pos += 1,
                Some(']') | None => {}
                Some(_) => {
                    let (s, e) = self.char_range(self.pos);
                    return Err(self.error_at(
                        s,
                        e,
                        "expected `,` or `]` after an array item",
                        Some("a comma is probably missing after the previous item"),
                    ));
                }
            }
        }
    }

    fn identifier(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos;
        while let Some(c) = self.peek_char() {
            if c == '\\' {
                return Err(self.error_at(
                    self.pos,
                    self.pos + 1,
                    "escape sequences in unquoted keys are not supported",
                    Some("quote the key instead"),
                ));
            }
            let ok = if self.pos == start { is_identifier_start(c) } else { is_identifier_part(c) };
            if !ok {
                break;
            }
            self.pos += c.len_utf8();
        }
        Ok(self.text[start..self.pos].to_owned())
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.pos;
        let quote = self.bytes[self.pos];
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek_char() else {
                return Err(self.unterminated(start));
            };
            match c {
                _ if c as u32 == u32::from(quote) => {
                    self.pos += 1;
                    return Ok(out);
                }
                '\n' | '\r' => return Err(self.unterminated(start)),
                '\\' => {
                    let escape_start = self.pos;
                    self.pos += 1;
                    let Some(e) = self.peek_char() else { return Err(self.unterminated(start)) };
                    self.pos += e.len_utf8();
                    match e {
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'v' => out.push('\u{b}'),
                        '0' if !self.peek_char().is_some_and(|c| c.is_ascii_digit()) => {
                            out.push('\0')
                        }
                        '1'..='9' | '0' => {
                            return Err(self.error_at(
                                escape_start,
                                self.pos,
                                "octal escapes are not allowed in JSON5 strings",
                                Some("use `\\u00XX` instead"),
                            ));
                        }
                        'x' => {
                            let code = self.hex_digits(2, escape_start)?;
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        'u' => {
                            let code = self.hex_digits(4, escape_start)?;
                            if (0xD800..0xDC00).contains(&code)
                                && self.text[self.pos..].starts_with("\\u")
                            {
                                let save = self.pos;
                                self.pos += 2;
                                let low = self.hex_digits(4, save)?;
                                if (0xDC00..0xE000).contains(&low) {
                                    let c = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                                    out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                                } else {
                                    out.push('\u{fffd}');
                                    self.pos = save;
                                }
                            } else {
                                out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                            }
                        }
                        '\r' => {
                            if self.peek_char() == Some('\n') {
                                self.pos += 1;
                            }
                        }
                        '\n' | '\u{2028}' | '\u{2029}' => {}
                        other => out.push(other),
                    }
                }
                _ => {
                    out.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    fn unterminated(&self, start: usize) -> SyntaxError {
        self.error_at(
            start,
            start + 1,
            "unterminated string: the closing quote is missing",
            Some("close the string on the same line, or end the line with `\\` to continue it"),
        )
    }

    fn hex_digits(&mut self, count: usize, escape_start: usize) -> Result<u32, SyntaxError> {
        let digits = self
            .text
            .get(self.pos..self.pos + count)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
        match digits.and_then(|d| u32::from_str_radix(d, 16).ok()) {
            Some(code) => {
                self.pos += count;
                Ok(code)
            }
            None => Err(self.error_at(
                escape_start,
                self.pos,
                &format!("invalid escape: expected {count} hex digits"),
                None,
            )),
        }
    }

    fn number(&mut self) -> Result<Node, SyntaxError> {
        let start = self.pos;
        let mut negative = false;
        if let Some(sign @ ('+' | '-')) = self.peek_char() {
            negative = sign == '-';
            self.pos += 1;
        }
        let body_start = self.pos;
        let rest = &self.text[self.pos..];
        let value = if rest.starts_with("Infinity") {
            self.pos += "Infinity".len();
            Number::Float(if negative { f64::NEG_INFINITY } else { f64::INFINITY })
        } else if rest.starts_with("NaN") {
            self.pos += "NaN".len();
            Number::Float(f64::NAN)
        } else if rest.starts_with("0x") || rest.starts_with("0X") {
            self.pos += 2;
            let digits_start = self.pos;
            while self.bytes.get(self.pos).is_some_and(u8::is_ascii_hexdigit) {
                self.pos += 1;
            }
            let digits = &self.text[digits_start..self.pos];
            if digits.is_empty() {
                return Err(self.error_at(
                    start,
                    self.pos,
                    "hexadecimal number without digits",
                    None,
                ));
            }
            match i64::from_str_radix(digits, 16) {
                Ok(v) => Number::Int(if negative { -v } else { v }),
                Err(_) => Number::Float(
                    u128::from_str_radix(digits, 16).map_or(f64::INFINITY, |v| v as f64),
                ),
            }
        } else {
            let mut saw_digit = false;
            let mut is_int = true;
            while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
                self.pos += 1;
                saw_digit = true;
            }
            if self.bytes.get(self.pos) == Some(&b'.') {
                self.pos += 1;
                is_int = false;
                while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                    saw_digit = true;
                }
            }
            if !saw_digit {
                let (s, e) = self.char_range(start);
                return Err(self.error_at(s, e.max(self.pos), "invalid number", None));
            }
            if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
                is_int = false;
                self.pos += 1;
                if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                    self.pos += 1;
                }
                let exp_start = self.pos;
                while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
                    self.pos += 1;
                }
                if self.pos == exp_start {
                    return Err(self.error_at(
                        start,
                        self.pos,
                        "invalid number: the exponent has no digits",
                        None,
                    ));
                }
            }
            let literal = &self.text[body_start..self.pos];
            let int = if is_int { literal.parse::<i64>().ok() } else { None };
            match int {
                Some(v) => Number::Int(if negative { -v } else { v }),
                None => {
                    let v: f64 = literal.parse().unwrap_or(f64::NAN);
                    Number::Float(if negative { -v } else { v })
                }
            }
        };
        if self.peek_char().is_some_and(is_identifier_part) {
            let (s, e) = self.char_range(self.pos);
            return Err(self.error_at(
                start,
                e.max(s),
                "invalid number: letters follow the digits",
                Some("quote the value if it is meant to be a string"),
            ));
        }
        Ok(Node { value: Value::Number(value), span: self.span(start, self.pos) })
    }
}

fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

fn is_json5_whitespace(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n'
            | '\u{b}'
            | '\u{c}'
            | '\r'
            | ' '
            | '\u{a0}'
            | '\u{feff}'
            | '\u{2028}'
            | '\u{2029}'
    ) || (c.is_whitespace() && !c.is_ascii())
}

fn is_identifier_start(c: char) -> bool {
    c == '$' || c == '_' || c.is_alphabetic()
}

fn is_identifier_part(c: char) -> bool {
    is_identifier_start(c) || c.is_alphanumeric() || c == '\u{200c}' || c == '\u{200d}'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<serde_json::Value, SyntaxError> {
        parse(text, FileId(0)).map(|n| n.to_json())
    }

    #[test]
    fn json5_syntax() {
        let v =
            p("// c\n{unquoted: 'single', \"dq\": \"x\", trailing: [1, 2,], /* b */ hex: 0x1F, \
                   lead: .5, trail: 5., plus: +3, neg: -2, exp: 1e3,}")
            .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"unquoted":"single","dq":"x","trailing":[1,2],"hex":31,
                "lead":0.5,"trail":5.0,"plus":3,"neg":-2,"exp":1000.0})
        );
    }

    #[test]
    fn string_escapes() {
        assert_eq!(p(r#"'a\'b\"c\\\n\t\x41\u00e9\uD83D\uDE00\q'"#).unwrap(), "a'b\"c\\\n\tAé😀q");
        assert_eq!(p("'line\\\ncontinued'").unwrap(), "linecontinued");
        assert_eq!(p("'crlf\\\r\ncontinued'").unwrap(), "crlfcontinued");
    }

    #[test]
    fn spans_point_at_keys_and_values() {
        let node = parse("{ a: 1,\n  bb: 'x' }", FileId(3)).unwrap();
        let Value::Object(members) = &node.value else { panic!() };
        assert_eq!(members[1].key_span, Span::new(FileId(3), 10, 12));
        assert_eq!(members[1].value.span, Span::new(FileId(3), 14, 17));
    }

    #[test]
    fn errors_have_positions_and_help() {
        let e = p("{\n  a: 'open\n}").unwrap_err();
        assert!(e.message.contains("unterminated string"), "{e:?}");
        assert_eq!(e.span.start, 7);
        let e = p("{ a: 1\n b: 2 }").unwrap_err();
        assert!(e.help.unwrap().contains("comma"));
        let e = p("{ a: 1").unwrap_err();
        assert!(e.message.contains("unclosed object"));
        assert!(p("").unwrap_err().message.contains("empty"));
        assert!(p("{} }").unwrap_err().message.contains("after the end"));
        assert!(p("{a: yes}").unwrap_err().message.contains("`yes`"));
        assert!(p("{a: 12abc}").unwrap_err().message.contains("letters"));
        assert!(p("/* open").unwrap_err().message.contains("block comment"));
        assert!(p("{a: '\\01'}").unwrap_err().message.contains("octal"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        let e = p(&deep).unwrap_err();
        assert!(e.message.contains("nesting deeper"));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(p(&ok).is_ok());
    }

    #[test]
    fn duplicate_keys_are_kept_and_last_wins() {
        let node = parse("{a: 1, a: 2}", FileId(0)).unwrap();
        assert_eq!(node.get("a").unwrap().value, Value::Number(Number::Int(2)));
    }

    #[test]
    fn large_and_special_numbers() {
        assert_eq!(p("99999999999999999999").unwrap(), serde_json::json!(1e20));
        assert_eq!(p("-Infinity").unwrap(), serde_json::Value::Null);
        let node = parse("NaN", FileId(0)).unwrap();
        assert!(matches!(node.value, Value::Number(Number::Float(f)) if f.is_nan()));
    }
}
