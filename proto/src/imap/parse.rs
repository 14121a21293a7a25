//! The lexical layer of RFC 3501 9 over one whole command (as [`super::framing`] assembles it):
//! atoms, quoted strings, literals, numbers, parenthesized lists. Nothing here allocates more
//! than the command already holds, and list nesting is bounded.

use super::Error;

/// Deepest parenthesized nesting accepted in a command (search keys, fetch items).
pub const MAX_NESTING: usize = 32;

/// ATOM-CHAR (RFC 3501 9): any CHAR except atom-specials.
pub fn is_atom_char(b: u8) -> bool {
    b > 0x20 && b < 0x7f && !matches!(b, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']')
}

/// tag = 1*<any ASTRING-CHAR except "+">; ASTRING-CHAR adds `]` to ATOM-CHAR.
pub fn is_tag_char(b: u8) -> bool {
    (is_atom_char(b) || b == b']') && b != b'+'
}

/// A cursor over a command's bytes.
pub struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    /// Current parenthesis depth, for [`MAX_NESTING`].
    pub depth: usize,
    /// Mailbox names are UTF-8 (IMAP4rev2, RFC 9051 5.1), not modified UTF-7.
    pub utf8_names: bool,
}

impl<'a> Parser<'a> {
    pub fn new(input: &'a [u8]) -> Parser<'a> {
        Parser { input, pos: 0, depth: 0, utf8_names: false }
    }

    pub fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// The byte `ahead` places after the next one.
    pub fn peek_at(&self, ahead: usize) -> Option<u8> {
        self.input.get(self.pos + ahead).copied()
    }

    /// Whether only the line end is left.
    pub fn at_end(&self) -> bool {
        matches!(&self.input[self.pos..], b"" | b"\r\n" | b"\n")
    }

    pub fn end(&mut self) -> Result<(), Error> {
        if self.at_end() {
            Ok(())
        } else {
            Err(Error::Syntax(format!("unexpected {:?}", self.rest_preview())))
        }
    }

    fn rest_preview(&self) -> String {
        let rest = &self.input[self.pos..];
        let rest = rest.strip_suffix(b"\r\n").unwrap_or(rest);
        String::from_utf8_lossy(&rest[..rest.len().min(30)]).into_owned()
    }

    /// Takes `b` if it is next.
    pub fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub fn expect(&mut self, b: u8) -> Result<(), Error> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(Error::Syntax(format!("expected {:?}", b as char)))
        }
    }

    pub fn space(&mut self) -> Result<(), Error> {
        self.expect(b' ')
    }

    /// Opens a parenthesized list, counting its depth.
    pub fn open(&mut self) -> Result<(), Error> {
        self.expect(b'(')?;
        self.enter()
    }

    pub fn close(&mut self) -> Result<(), Error> {
        self.expect(b')')?;
        self.leave();
        Ok(())
    }

    /// One level deeper (a list, or a search key inside NOT/OR): bounded by [`MAX_NESTING`].
    pub fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(Error::Syntax("nested too deeply".into()));
        }
        Ok(())
    }

    pub fn leave(&mut self) {
        self.depth -= 1;
    }

    /// A run of bytes for which `accept` holds (at least one).
    pub fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while self.peek().is_some_and(&accept) {
            self.pos += 1;
        }
        &self.input[start..self.pos]
    }

    pub fn atom(&mut self) -> Result<&'a str, Error> {
        let atom = self.take_while(is_atom_char);
        if atom.is_empty() {
            return Err(Error::Syntax(format!("expected an atom at {:?}", self.rest_preview())));
        }
        Ok(std::str::from_utf8(atom).expect("atom chars are ASCII"))
    }

    /// An atom that may hold `]` too (ASTRING-CHAR), as astring allows.
    fn astring_atom(&mut self) -> &'a [u8] {
        self.take_while(|b| is_atom_char(b) || b == b']')
    }

    pub fn tag(&mut self) -> Result<&'a str, Error> {
        let tag = self.take_while(is_tag_char);
        if tag.is_empty() {
            return Err(Error::NoTag);
        }
        Ok(std::str::from_utf8(tag).expect("tag chars are ASCII"))
    }

    pub fn number(&mut self) -> Result<u32, Error> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or_else(|| Error::Syntax("expected a number".into()))
    }

    /// nz-number.
    pub fn nz_number(&mut self) -> Result<u32, Error> {
        match self.number()? {
            0 => Err(Error::Syntax("0 is not a message number".into())),
            n => Ok(n),
        }
    }

    pub fn number64(&mut self) -> Result<u64, Error> {
        let digits = self.take_while(|b| b.is_ascii_digit());
        std::str::from_utf8(digits).ok().and_then(|d| d.parse().ok()).ok_or_else(|| Error::Syntax("expected a number".into()))
    }

    /// mod-sequence-valzer (RFC 7162 7): 0 to 2^63 - 1.
    pub fn mod_sequence(&mut self) -> Result<u64, Error> {
        match self.number64()? {
            n if n <= i64::MAX as u64 => Ok(n),
            _ => Err(Error::Syntax("mod-sequence too large".into())),
        }
    }

    /// string = quoted / literal.
    pub fn string(&mut self) -> Result<Vec<u8>, Error> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => self.literal(),
            _ => Err(Error::Syntax("expected a string".into())),
        }
    }

    /// astring = 1*ASTRING-CHAR / string.
    pub fn astring(&mut self) -> Result<Vec<u8>, Error> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let atom = self.astring_atom();
                if atom.is_empty() {
                    return Err(Error::Syntax(format!("expected a string at {:?}", self.rest_preview())));
                }
                Ok(atom.to_vec())
            }
        }
    }

    /// astring as UTF-8 text (what user names, passwords and search strings must be).
    pub fn astring_text(&mut self) -> Result<String, Error> {
        String::from_utf8(self.astring()?).map_err(|_| Error::Syntax("not UTF-8".into()))
    }

    /// nstring = string / NIL.
    pub fn nstring(&mut self) -> Result<Option<Vec<u8>>, Error> {
        if self.peek_keyword("NIL") {
            self.pos += 3;
            return Ok(None);
        }
        self.string().map(Some)
    }

    /// list-mailbox = 1*list-char / string: like astring, with `%` and `*` allowed.
    pub fn list_mailbox(&mut self) -> Result<Vec<u8>, Error> {
        match self.peek() {
            Some(b'"' | b'{') => self.string(),
            _ => {
                let atom = self.take_while(|b| is_atom_char(b) || matches!(b, b']' | b'%' | b'*'));
                if atom.is_empty() {
                    return Err(Error::Syntax("expected a mailbox pattern".into()));
                }
                Ok(atom.to_vec())
            }
        }
    }

    fn quoted(&mut self) -> Result<Vec<u8>, Error> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b @ (b'"' | b'\\')) => {
                            out.push(b);
                            self.pos += 1;
                        }
                        _ => return Err(Error::Syntax("bad escape in a quoted string".into())),
                    }
                }
                Some(b'\r' | b'\n') | None => return Err(Error::Syntax("unterminated quoted string".into())),
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    fn literal(&mut self) -> Result<Vec<u8>, Error> {
        self.expect(b'{')?;
        let size = self.number64()?;
        self.eat(b'+');
        self.expect(b'}')?;
        if !self.eat(b'\r') && self.peek() != Some(b'\n') {
            return Err(Error::Syntax("a literal announcement ends the line".into()));
        }
        self.expect(b'\n')?;
        let end =
            self.pos.checked_add(size as usize).filter(|&end| end <= self.input.len()).ok_or_else(|| Error::Syntax("literal cut short".into()))?;
        let bytes = self.input[self.pos..end].to_vec();
        self.pos = end;
        Ok(bytes)
    }

    /// Whether the next bytes are `word` (any case) followed by a delimiter.
    pub fn peek_keyword(&self, word: &str) -> bool {
        let rest = &self.input[self.pos..];
        rest.len() >= word.len()
            && rest[..word.len()].eq_ignore_ascii_case(word.as_bytes())
            && rest.get(word.len()).is_none_or(|&b| !is_atom_char(b) || b == b'[' || b == b'<' || b == b'.')
    }

    /// Takes `word` (any case) if it is next as a whole word.
    pub fn keyword(&mut self, word: &str) -> bool {
        if self.peek_keyword(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// The bytes from `start` to the cursor.
    pub fn since(&self, start: usize) -> &'a [u8] {
        &self.input[start..self.pos]
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    /// date = date-text / DQUOTE date-text DQUOTE; date-text = date-day "-" date-month "-" date-year.
    pub fn date(&mut self) -> Result<chrono::NaiveDate, Error> {
        let quoted = self.eat(b'"');
        let text = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'-');
        if quoted {
            self.expect(b'"')?;
        }
        let text = std::str::from_utf8(text).unwrap_or("");
        chrono::NaiveDate::parse_from_str(text, "%d-%b-%Y").map_err(|_| Error::Syntax(format!("bad date {text:?}")))
    }

    /// date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE.
    pub fn date_time(&mut self) -> Result<chrono::DateTime<chrono::FixedOffset>, Error> {
        let text = self.quoted()?;
        let text = String::from_utf8(text).map_err(|_| Error::Syntax("bad date-time".into()))?;
        chrono::DateTime::parse_from_str(text.trim_start(), "%d-%b-%Y %H:%M:%S %z").map_err(|_| Error::Syntax(format!("bad date-time {text:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_of_every_form() {
        let mut p = Parser::new(b"atom \"q \\\"x\\\\\" {3}\r\nl\r\n NIL ]x\r\n");
        assert_eq!(p.astring().unwrap(), b"atom");
        p.space().unwrap();
        assert_eq!(p.astring().unwrap(), b"q \"x\\");
        p.space().unwrap();
        assert_eq!(p.astring().unwrap(), b"l\r\n");
        p.space().unwrap();
        assert_eq!(p.nstring().unwrap(), None);
        p.space().unwrap();
        assert_eq!(p.astring().unwrap(), b"]x");
        p.end().unwrap();
    }

    #[test]
    fn bad_strings_are_errors() {
        assert!(Parser::new(b"\"open\r\n").astring().is_err());
        assert!(Parser::new(b"\"bad \\x\"").astring().is_err());
        assert!(Parser::new(b"{10}\r\nshort").astring().is_err());
        assert!(Parser::new(b"{3} x").astring().is_err());
        assert!(Parser::new(b"(").astring().is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(Parser::new(b"1-Feb-1994").date().unwrap().to_string(), "1994-02-01");
        assert_eq!(Parser::new(b"\"01-feb-1994\"").date().unwrap().to_string(), "1994-02-01");
        let dt = Parser::new(b"\" 7-Jul-1996 02:44:25 -0700\"").date_time().unwrap();
        assert_eq!(dt.to_rfc3339(), "1996-07-07T02:44:25-07:00");
        assert!(Parser::new(b"31-Foo-1994").date().is_err());
    }

    #[test]
    fn nesting_is_bounded() {
        let mut p = Parser::new(&[b'('; 100]);
        let result = (0..100).try_for_each(|_| p.open());
        assert!(result.is_err());
    }
}
