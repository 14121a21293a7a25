//! POP3 commands (RFC 1939, RFC 2449, RFC 5034), sans IO: bytes in, a [`Command`] or an
//! [`Error`] out, `None` while a line is incomplete. Lines are at most 255 octets with their
//! CRLF (RFC 2449 4); a longer one is discarded whole and reported once.

/// The longest command line, CRLF included (RFC 2449 4).
pub const MAX_LINE: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    User(String),
    Pass(String),
    Apop(String, String),
    Auth(Option<(String, Option<String>)>),
    Stat,
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
    Top(u32, u32),
    Uidl(Option<u32>),
    Capa,
    Stls,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not a POP3 command.
    Unknown(String),
    /// A known command with bad arguments: the text says what is wrong.
    Syntax(&'static str),
    /// Over [`MAX_LINE`].
    TooLong,
}

/// A line continuing an AUTH exchange (RFC 5034 4): the client's response, or `*` to cancel.
pub fn auth_response(line: &[u8]) -> Option<String> {
    let line = line.strip_suffix(b"\r\n").or_else(|| line.strip_suffix(b"\n")).unwrap_or(line);
    std::str::from_utf8(line).ok().map(str::to_string)
}

/// What the receiver found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line, without its line end.
    Command(&'a [u8]),
    /// A line over [`MAX_LINE`]: reported once, the rest of it discarded unread.
    TooLong,
    /// More of a line already reported as too long: nothing to answer.
    Discarded,
}

/// Finds command lines in the input, remembering an over-long line across calls.
#[derive(Debug, Default)]
pub struct CommandReceiver {
    /// Discarding the rest of a line that was too long.
    skipping: bool,
}

impl CommandReceiver {
    /// The next line in `input` and how many octets it used; None until a line is complete.
    /// A bare LF ends a line too, as some clients send it.
    pub fn line<'a>(&mut self, input: &'a [u8]) -> Option<(Line<'a>, usize)> {
        match memchr::memchr(b'\n', input) {
            Some(i) if self.skipping => {
                self.skipping = false;
                Some((Line::Discarded, i + 1))
            }
            Some(i) if i + 1 > MAX_LINE => Some((Line::TooLong, i + 1)),
            Some(i) => {
                let line = &input[..i];
                Some((Line::Command(line.strip_suffix(b"\r").unwrap_or(line)), i + 1))
            }
            None if input.is_empty() => None,
            None if self.skipping => Some((Line::Discarded, input.len())),
            None if input.len() > MAX_LINE => {
                self.skipping = true;
                Some((Line::TooLong, input.len()))
            }
            None => None,
        }
    }
}

/// Parses one command line (without its line end).
pub fn parse(line: &[u8]) -> Result<Command, Error> {
    let text = std::str::from_utf8(line).map_err(|_| Error::Syntax("commands are ASCII"))?;
    if text.bytes().any(|b| b == 0 || b == b'\r') {
        return Err(Error::Syntax("NUL or CR in a command"));
    }
    let mut words = text.split(' ');
    let verb = words.next().unwrap_or("").to_ascii_uppercase();
    let args: Vec<&str> = words.collect();
    let number = |s: &str| -> Result<u32, Error> {
        if s.is_empty() || s.len() > 9 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::Syntax("a message number is a positive decimal"));
        }
        s.parse().map_err(|_| Error::Syntax("a message number is a positive decimal"))
    };
    let none = |c: Command| if args.is_empty() { Ok(c) } else { Err(Error::Syntax("no arguments expected")) };
    match verb.as_str() {
        // RFC 1939 7: the name and the password may hold spaces; take the rest of the line.
        "USER" => match text.get(5..) {
            Some(name) if !name.is_empty() => Ok(Command::User(name.to_string())),
            _ => Err(Error::Syntax("USER needs a name")),
        },
        "PASS" => match text.get(5..) {
            Some(pass) => Ok(Command::Pass(pass.to_string())),
            None => Err(Error::Syntax("PASS needs a password")),
        },
        "APOP" => match args.as_slice() {
            [name, digest] => Ok(Command::Apop(name.to_string(), digest.to_string())),
            _ => Err(Error::Syntax("APOP needs a name and a digest")),
        },
        "AUTH" => match args.as_slice() {
            [] => Ok(Command::Auth(None)),
            [mechanism] => Ok(Command::Auth(Some((mechanism.to_ascii_uppercase(), None)))),
            [mechanism, initial] => Ok(Command::Auth(Some((mechanism.to_ascii_uppercase(), Some(initial.to_string()))))),
            _ => Err(Error::Syntax("AUTH mechanism [initial-response]")),
        },
        "STAT" => none(Command::Stat),
        "LIST" => match args.as_slice() {
            [] => Ok(Command::List(None)),
            [n] => Ok(Command::List(Some(number(n)?))),
            _ => Err(Error::Syntax("LIST [message]")),
        },
        "RETR" => match args.as_slice() {
            [n] => Ok(Command::Retr(number(n)?)),
            _ => Err(Error::Syntax("RETR message")),
        },
        "DELE" => match args.as_slice() {
            [n] => Ok(Command::Dele(number(n)?)),
            _ => Err(Error::Syntax("DELE message")),
        },
        "NOOP" => none(Command::Noop),
        "RSET" => none(Command::Rset),
        "QUIT" => none(Command::Quit),
        "TOP" => match args.as_slice() {
            [n, lines] => Ok(Command::Top(number(n)?, number(lines).map_err(|_| Error::Syntax("TOP message lines"))?)),
            _ => Err(Error::Syntax("TOP message lines")),
        },
        "UIDL" => match args.as_slice() {
            [] => Ok(Command::Uidl(None)),
            [n] => Ok(Command::Uidl(Some(number(n)?))),
            _ => Err(Error::Syntax("UIDL [message]")),
        },
        "CAPA" => none(Command::Capa),
        "STLS" => none(Command::Stls),
        _ => Err(Error::Unknown(verb.chars().take(20).collect())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(parse(b"USER hunt"), Ok(Command::User("hunt".into())));
        assert_eq!(parse(b"pass with spaces "), Ok(Command::Pass("with spaces ".into())));
        assert_eq!(parse(b"STAT"), Ok(Command::Stat));
        assert_eq!(parse(b"list 2"), Ok(Command::List(Some(2))));
        assert_eq!(parse(b"TOP 1 10"), Ok(Command::Top(1, 10)));
        assert_eq!(parse(b"UIDL"), Ok(Command::Uidl(None)));
        assert_eq!(parse(b"AUTH PLAIN AGh1bnQAc2VjcmV0"), Ok(Command::Auth(Some(("PLAIN".into(), Some("AGh1bnQAc2VjcmV0".into()))))));
        assert!(matches!(parse(b"RETR x"), Err(Error::Syntax(_))));
        assert!(matches!(parse(b"RETR -1"), Err(Error::Syntax(_))));
        assert!(matches!(parse(b"STAT 1"), Err(Error::Syntax(_))));
        assert!(matches!(parse(b"RETR 99999999999"), Err(Error::Syntax(_))));
        assert_eq!(parse(b"XYZZY"), Err(Error::Unknown("XYZZY".into())));
        assert!(matches!(parse(b"USER a\0b"), Err(Error::Syntax(_))));
    }

    #[test]
    fn lines_in_any_chunks_and_overlong_lines() {
        let input = b"USER hunt\r\nPASS x\nSTAT\r\n";
        for chunk in 1..=input.len() {
            let mut r = CommandReceiver::default();
            let mut buf = Vec::new();
            let mut lines = Vec::new();
            for piece in input.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Some((line, used)) = r.line(&buf) {
                    if let Line::Command(l) = line {
                        lines.push(l.to_vec());
                    }
                    buf.drain(..used);
                }
            }
            assert_eq!(lines, [b"USER hunt".to_vec(), b"PASS x".to_vec(), b"STAT".to_vec()], "chunk {chunk}");
        }
        let mut r = CommandReceiver::default();
        assert_eq!(r.line(&[b'a'; 300]), Some((Line::TooLong, 300)));
        assert_eq!(r.line(b"aaa\r\nNOOP\r\n"), Some((Line::Discarded, 5)));
        assert_eq!(r.line(b"NOOP\r\n"), Some((Line::Command(&b"NOOP"[..]), 6)));
        let mut line = vec![b'b'; 300];
        line.extend_from_slice(b"\r\n");
        assert_eq!(r.line(&line), Some((Line::TooLong, 302)));
    }
}
