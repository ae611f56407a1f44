//! The Python literals barman writes into `backup.info` with `repr()` (barman-restic-format.md A3.1):
//! strings (single or double quoted, backslash escapes), ints, floats, `None`/`True`/`False`, tuples,
//! lists and dicts. Written here rather than taken from a crate because it is this small subset of
//! Python's grammar, and a general Python parser would accept far more than `backup.info` may hold.

/// A parsed literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits (signed).
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A tuple or a list.
    List(Vec<Value>),
    /// A dict, in the written order.
    Dict(Vec<(Value, Value)>),
}

/// Why a literal does not parse: where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {at}: {what}")]
pub struct ParseError {
    /// Byte offset.
    pub at: usize,
    /// What is wrong.
    pub what: String,
}

/// Nesting deeper than this is refused (a damaged file must not overflow the stack).
const MAX_DEPTH: usize = 32;

/// Parses one literal; nothing but whitespace may follow it.
///
/// # Errors
/// The text is not one of the literals above.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("text after the value"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> ParseError {
        ParseError {
            at: self.i,
            what: what.to_owned(),
        }
    }

    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.ws();
        match self.peek() {
            Some(b'\'' | b'"') => self.string().map(Value::Str),
            Some(b'[') => self.seq(b']', depth).map(Value::List),
            Some(b'(') => self.seq(b')', depth).map(Value::List),
            Some(b'{') => self.dict(depth),
            Some(b'-' | b'+' | b'0'..=b'9' | b'.') => self.number(),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.i += 1;
                }
                match &self.s[start..self.i] {
                    b"None" => Ok(Value::None),
                    b"True" => Ok(Value::Bool(true)),
                    b"False" => Ok(Value::Bool(false)),
                    _ => {
                        self.i = start;
                        Err(self.err("expected None, True, False, a number, a string, [ ( or {"))
                    }
                }
            }
            Some(_) => Err(self.err("expected a value")),
            None => Err(self.err("expected a value, found the end")),
        }
    }

    fn seq(&mut self, close: u8, depth: usize) -> Result<Vec<Value>, ParseError> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(out);
            }
            out.push(self.value(depth + 1)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {}
                _ => return Err(self.err("expected , or the closing bracket")),
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Value, ParseError> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            self.ws();
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(Value::Dict(out));
            }
            let k = self.value(depth + 1)?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected : after a dict key"));
            }
            self.i += 1;
            let v = self.value(depth + 1)?;
            out.push((k, v));
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(self.err("expected , or }")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.i += 1;
        }
        let t = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
        if let Ok(n) = t.parse::<i64>() {
            return Ok(Value::Int(n));
        }
        match t.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Value::Float(f)),
            _ => {
                self.i = start;
                Err(self.err("not a number"))
            }
        }
    }

    /// A quoted string with Python's escapes (`\\n \\t \\r \\\\ \\' \\" \\xNN \\uNNNN \\UNNNNNNNN`).
    fn string(&mut self) -> Result<String, ParseError> {
        let quote = self.s[self.i];
        self.i += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.err("unterminated string"));
            };
            self.i += 1;
            match c {
                c if c == quote => break,
                b'\n' => return Err(self.err("line break inside a string")),
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.err("unterminated escape"));
                    };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'\\' | b'\'' | b'"' => out.push(e),
                        b'x' | b'u' | b'U' => {
                            let n = match e {
                                b'x' => 2,
                                b'u' => 4,
                                _ => 8,
                            };
                            let hex = self
                                .s
                                .get(self.i..self.i + n)
                                .and_then(|h| std::str::from_utf8(h).ok())
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .and_then(char::from_u32)
                                .ok_or_else(|| self.err("bad \\x/\\u escape"))?;
                            self.i += n;
                            let mut b = [0u8; 4];
                            out.extend_from_slice(hex.encode_utf8(&mut b).as_bytes());
                        }
                        _ => return Err(self.err("unknown escape")),
                    }
                }
                c => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("string is not UTF-8"))
    }
}

#[cfg(test)]
mod tests;
