//! SMTP command lines: an incremental receiver that finds complete lines in whatever bytes
//! have arrived, and the parser that turns one line into a typed [`Command`].

use super::params::{parse_mail_params, parse_rcpt_params, MailParams, ParamError, RcptParams};
use crate::address::{check_domain, parse_path, Address};

/// RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF.
pub const MAX_COMMAND_LINE: usize = 512;
/// RFC 3461 section 5 and RFC 1870 let DSN and SIZE lengthen MAIL and RCPT lines.
const MAIL_ALLOWANCE: usize = 100 + 26;
const RCPT_ALLOWANCE: usize = 500;
/// Bytes held while looking for the end of a line; beyond it the line is discarded unread.
const HARD_LINE_CAP: usize = MAX_COMMAND_LINE + RCPT_ALLOWANCE + 512;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    /// `reverse_path` is None for the null path `<>`.
    Mail {
        reverse_path: Option<Address>,
        params: MailParams,
    },
    Rcpt {
        forward_path: ForwardPath,
        params: RcptParams,
    },
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Expn(String),
    Help(Option<String>),
    Etrn(String),
    /// STARTTLS (RFC 3207).
    StartTls,
    /// AUTH mechanism [initial-response] (RFC 4954).
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    /// SEND, SOML, SAML, TURN: obsolete and refused with 502 5.5.1 (RFC 5321 4.2.4).
    Obsolete(&'static str),
    /// A verb the core does not know; the session may route it to a plugin, else 500 5.5.2.
    Unknown {
        verb: String,
        args: String,
    },
}

/// RCPT's argument: a mailbox, or the bare `<Postmaster>` every server must accept
/// (RFC 5321 4.1.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    Mailbox(Address),
    Postmaster,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No complete line yet: read more and call again.
    NeedsMoreData,
    /// The line was longer than the limit; its bytes are consumed.
    LineTooLong,
    /// A NUL byte, or a bare CR, in a command line.
    InvalidCharacter,
    /// The line is not UTF-8.
    NotUtf8,
    /// The verb exists but its arguments are wrong: 501 5.5.4.
    Syntax(&'static str, String),
    /// A MAIL path that does not parse: 501 5.1.7.
    BadSender(String),
    /// A RCPT path that does not parse: 501 5.1.3.
    BadRecipient(String),
    /// A known parameter with a bad value: 501 5.5.4.
    BadParameter(String),
}

impl From<ParamError> for Error {
    fn from(e: ParamError) -> Self {
        Error::BadParameter(e.0)
    }
}

/// Finds command lines in the input stream. It holds one bit of state: whether it is in the
/// middle of discarding an over-long line, so that the tail of such a line is never taken for
/// a command.
#[derive(Debug, Default)]
pub struct CommandReceiver {
    /// Set after a line exceeded [`HARD_LINE_CAP`] without an end: skip up to the next LF.
    discarding: bool,
}

impl CommandReceiver {
    /// Looks for one command in `buf`. Returns how many bytes were consumed (always > 0
    /// unless the result is `NeedsMoreData`) and the command or the error for that line.
    pub fn receive(&mut self, buf: &[u8]) -> (usize, Result<Command, Error>) {
        let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
            if self.discarding {
                return (buf.len(), Err(Error::NeedsMoreData));
            }
            if buf.len() > HARD_LINE_CAP {
                // Report the overflow once; later chunks of the same line are dropped quietly.
                self.discarding = true;
                return (buf.len(), Err(Error::LineTooLong));
            }
            return (0, Err(Error::NeedsMoreData));
        };
        let consumed = lf + 1;
        if self.discarding {
            self.discarding = false;
            return (consumed, Err(Error::NeedsMoreData));
        }
        // CRLF is the line end; a lone LF is tolerated for commands, as Postfix does. Only
        // DATA content is strict about line ends (that is where smuggling happens).
        let line = &buf[..lf];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (consumed, parse_line(line, consumed))
    }
}

fn parse_line(line: &[u8], wire_len: usize) -> Result<Command, Error> {
    // The length first, so that an over-long line is reported as such whatever else is wrong
    // with it, and whether it arrived whole or in pieces (the receiver reports a line that
    // outgrows the hard cap before its end arrives).
    let verb_bytes = &line[..line.iter().position(|&b| b == b' ').unwrap_or(line.len())];
    let allowance = if verb_bytes.eq_ignore_ascii_case(b"MAIL") {
        MAIL_ALLOWANCE
    } else if verb_bytes.eq_ignore_ascii_case(b"RCPT") {
        RCPT_ALLOWANCE
    } else {
        0
    };
    if wire_len > MAX_COMMAND_LINE + allowance {
        return Err(Error::LineTooLong);
    }
    if line.iter().any(|&b| b == 0 || b == b'\r') {
        return Err(Error::InvalidCharacter);
    }
    let line = std::str::from_utf8(line).map_err(|_| Error::NotUtf8)?;
    let (verb, args) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    parse_command(&verb, args)
}

fn parse_command(verb: &str, args: &str) -> Result<Command, Error> {
    let arg = args.trim();
    Ok(match verb {
        "HELO" | "EHLO" => {
            // Postfix-like tolerance: any single printable token. RFC 5321 asks for a domain
            // or address literal, but many real clients send less and refusing them helps
            // nobody; the value is only recorded.
            if arg.is_empty() || arg.contains(' ') {
                return Err(Error::Syntax(if verb == "HELO" { "HELO" } else { "EHLO" }, "domain name".into()));
            }
            if verb == "HELO" {
                Command::Helo(arg.to_string())
            } else {
                Command::Ehlo(arg.to_string())
            }
        }
        "MAIL" => {
            let rest = strip_keyword(args, "FROM:").ok_or(Error::Syntax("MAIL", "FROM:<address>".into()))?;
            let (reverse_path, params) = parse_path(rest.trim_start()).map_err(|e| Error::BadSender(e.0.to_string()))?;
            Command::Mail { reverse_path, params: parse_mail_params(params_part(params)?)? }
        }
        "RCPT" => {
            let rest = strip_keyword(args, "TO:").ok_or(Error::Syntax("RCPT", "TO:<address>".into()))?;
            let rest = rest.trim_start();
            let (forward_path, params) = match postmaster_path(rest) {
                Some(after) => (ForwardPath::Postmaster, after),
                None => match parse_path(rest).map_err(|e| Error::BadRecipient(e.0.to_string()))? {
                    (Some(address), after) => (ForwardPath::Mailbox(address), after),
                    (None, _) => return Err(Error::BadRecipient("the null path is not a recipient".into())),
                },
            };
            Command::Rcpt { forward_path, params: parse_rcpt_params(params_part(params)?)? }
        }
        "DATA" => no_args(verb, arg, Command::Data)?,
        "BDAT" => {
            let mut words = arg.split(' ').filter(|w| !w.is_empty());
            let size = words
                .next()
                .filter(|w| w.len() <= 20 && w.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|w| w.parse().ok())
                .ok_or(Error::Syntax("BDAT", "chunk-size [LAST]".into()))?;
            let last = match words.next() {
                None => false,
                Some(w) if w.eq_ignore_ascii_case("LAST") => true,
                Some(_) => return Err(Error::Syntax("BDAT", "chunk-size [LAST]".into())),
            };
            if words.next().is_some() {
                return Err(Error::Syntax("BDAT", "chunk-size [LAST]".into()));
            }
            Command::Bdat { size, last }
        }
        "RSET" => no_args(verb, arg, Command::Rset)?,
        // RFC 5321 4.1.1.9: NOOP may carry a string, which is ignored.
        "NOOP" => Command::Noop,
        "QUIT" => no_args(verb, arg, Command::Quit)?,
        "STARTTLS" => no_args(verb, arg, Command::StartTls)?,
        "AUTH" => {
            let mut words = arg.split(' ').filter(|w| !w.is_empty());
            let mechanism = words.next().ok_or(Error::Syntax("AUTH", "mechanism [initial-response]".into()))?.to_ascii_uppercase();
            let initial = words.next().map(str::to_string);
            if words.next().is_some() {
                return Err(Error::Syntax("AUTH", "mechanism [initial-response]".into()));
            }
            Command::Auth { mechanism, initial }
        }
        "VRFY" | "EXPN" => {
            if arg.is_empty() {
                return Err(Error::Syntax(if verb == "VRFY" { "VRFY" } else { "EXPN" }, "a name or address".into()));
            }
            if verb == "VRFY" {
                Command::Vrfy(arg.to_string())
            } else {
                Command::Expn(arg.to_string())
            }
        }
        "HELP" => Command::Help(if arg.is_empty() { None } else { Some(arg.to_string()) }),
        "ETRN" => {
            // RFC 1985 section 5: `ETRN [@|#]node`.
            let node = arg.strip_prefix('@').or_else(|| arg.strip_prefix('#')).unwrap_or(arg);
            if node.is_empty() || (!arg.starts_with('#') && check_domain(node).is_err()) {
                return Err(Error::Syntax("ETRN", "a domain name".into()));
            }
            Command::Etrn(arg.to_string())
        }
        "SEND" => Command::Obsolete("SEND"),
        "SOML" => Command::Obsolete("SOML"),
        "SAML" => Command::Obsolete("SAML"),
        "TURN" => Command::Obsolete("TURN"),
        _ => Command::Unknown { verb: verb.to_string(), args: args.to_string() },
    })
}

fn no_args(verb: &str, arg: &str, command: Command) -> Result<Command, Error> {
    if arg.is_empty() {
        Ok(command)
    } else {
        let verb = match verb {
            "DATA" => "DATA",
            "RSET" => "RSET",
            "STARTTLS" => "STARTTLS",
            _ => "QUIT",
        };
        Err(Error::Syntax(verb, "no arguments".into()))
    }
}

/// Case-insensitive `FROM:`/`TO:` prefix, allowing the space some clients put before it.
fn strip_keyword<'a>(args: &'a str, keyword: &str) -> Option<&'a str> {
    let args = args.trim_start();
    let head = args.get(..keyword.len())?;
    head.eq_ignore_ascii_case(keyword).then(|| &args[keyword.len()..])
}

/// Parameters follow the path after one space; anything glued to the `>` is an error.
fn params_part(after_path: &str) -> Result<&str, Error> {
    if after_path.is_empty() || after_path.starts_with(' ') {
        Ok(after_path)
    } else {
        Err(Error::Syntax("MAIL", "a space between the path and its parameters".into()))
    }
}

fn postmaster_path(rest: &str) -> Option<&str> {
    let head = rest.get(..12)?;
    head.eq_ignore_ascii_case("<postmaster>").then(|| &rest[12..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of `chunk` bytes, as a socket might deliver it, and collects
    /// every result the receiver produces.
    fn feed(input: &[u8], chunk: usize) -> Vec<Result<Command, Error>> {
        let mut receiver = CommandReceiver::default();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            loop {
                let (used, result) = receiver.receive(&buf);
                buf.drain(..used);
                match result {
                    Err(Error::NeedsMoreData) if used == 0 => break,
                    Err(Error::NeedsMoreData) => continue,
                    other => out.push(other),
                }
            }
        }
        out
    }

    fn feed_all_chunkings(input: &[u8]) -> Vec<Result<Command, Error>> {
        let whole = feed(input, input.len().max(1));
        for chunk in 1..=64 {
            assert_eq!(feed(input, chunk), whole, "chunk size {chunk}");
        }
        whole
    }

    #[test]
    fn pipelined_transaction_in_any_chunking() {
        let input = b"EHLO client.example\r\nMAIL FROM:<daniel@client.example> SIZE=12\r\nRCPT TO:<tyler@localhost> NOTIFY=NEVER\r\nRCPT TO:<Postmaster>\r\nDATA\r\n";
        let commands = feed_all_chunkings(input);
        assert_eq!(commands.len(), 5);
        assert_eq!(commands[0], Ok(Command::Ehlo("client.example".into())));
        match &commands[1] {
            Ok(Command::Mail { reverse_path: Some(a), params }) => {
                assert_eq!(a.to_string(), "daniel@client.example");
                assert_eq!(params.size, Some(12));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&commands[2], Ok(Command::Rcpt { forward_path: ForwardPath::Mailbox(_), params }) if params.notify.unwrap().never));
        assert!(matches!(&commands[3], Ok(Command::Rcpt { forward_path: ForwardPath::Postmaster, .. })));
        assert_eq!(commands[4], Ok(Command::Data));
    }

    #[test]
    fn verbs_are_case_insensitive_and_tolerate_space_after_colon() {
        let commands = feed_all_chunkings(b"mail from: <>\r\nrset\r\nnoop hello\r\nbdat 100 last\r\nhelp rset\r\n");
        assert!(matches!(&commands[0], Ok(Command::Mail { reverse_path: None, .. })));
        assert_eq!(commands[1], Ok(Command::Rset));
        assert_eq!(commands[2], Ok(Command::Noop));
        assert_eq!(commands[3], Ok(Command::Bdat { size: 100, last: true }));
        assert_eq!(commands[4], Ok(Command::Help(Some("rset".into()))));
    }

    #[test]
    fn obsolete_and_unknown_verbs() {
        let commands = feed_all_chunkings(b"SEND FROM:<a@b>\r\nTURN\r\nVERB\r\nXUSR now\r\n");
        assert_eq!(commands[0], Ok(Command::Obsolete("SEND")));
        assert_eq!(commands[1], Ok(Command::Obsolete("TURN")));
        assert_eq!(commands[2], Ok(Command::Unknown { verb: "VERB".into(), args: "".into() }));
        assert_eq!(commands[3], Ok(Command::Unknown { verb: "XUSR".into(), args: "now".into() }));
    }

    #[test]
    fn syntax_errors() {
        let commands = feed_all_chunkings(
            b"HELO\r\nMAIL TO:<a@b>\r\nMAIL FROM:a@b\r\nRCPT TO:<>\r\nBDAT x\r\nDATA now\r\nRCPT TO:<a@b>NOTIFY=NEVER\r\nMAIL FROM:<a@b> SIZE=x\r\n",
        );
        assert!(matches!(commands[0], Err(Error::Syntax("HELO", _))));
        assert!(matches!(commands[1], Err(Error::Syntax("MAIL", _))));
        assert!(matches!(commands[2], Err(Error::BadSender(_))));
        assert!(matches!(commands[3], Err(Error::BadRecipient(_))));
        assert!(matches!(commands[4], Err(Error::Syntax("BDAT", _))));
        assert!(matches!(commands[5], Err(Error::Syntax("DATA", _))));
        assert!(matches!(commands[6], Err(Error::Syntax(..))));
        assert!(matches!(commands[7], Err(Error::BadParameter(_))));
    }

    #[test]
    fn nul_and_bare_cr_are_rejected() {
        let commands = feed_all_chunkings(b"NOOP\0\r\nNO\rOP\r\nNOOP\r\n");
        assert_eq!(commands, vec![Err(Error::InvalidCharacter), Err(Error::InvalidCharacter), Ok(Command::Noop)]);
    }

    #[test]
    fn over_long_lines_are_reported_once_and_skipped() {
        // Just over the limit, with its end in sight.
        let mut input = format!("NOOP {}\r\n", "x".repeat(MAX_COMMAND_LINE)).into_bytes();
        // Far over any limit: the receiver must not buffer it and must not execute its tail.
        input.extend(format!("NOOP {}QUIT\r\n", "y".repeat(10_000)).into_bytes());
        input.extend_from_slice(b"RSET\r\n");
        let commands = feed_all_chunkings(&input);
        assert_eq!(commands, vec![Err(Error::LineTooLong), Err(Error::LineTooLong), Ok(Command::Rset)]);
        // MAIL and RCPT get the DSN allowance.
        let rcpt = format!("RCPT TO:<a@b> ORCPT=rfc822;{}@b\r\n", "c".repeat(60));
        assert!(feed_all_chunkings(rcpt.as_bytes())[0].is_ok());
    }

    /// A small deterministic generator, so that the garbage test needs no dependency and
    /// fails the same way every time.
    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn garbage_always_makes_progress_and_never_panics() {
        let mut state = 0x9E37_79B9_7F4A_7C15;
        let alphabet = b"MAIL FROM:<>@.RCPT TO BDAT LAST\r\n\0\x80\xff=+\" ";
        for _ in 0..500 {
            let len = (xorshift(&mut state) % 3000) as usize;
            let input: Vec<u8> = (0..len).map(|_| alphabet[(xorshift(&mut state) % alphabet.len() as u64) as usize]).collect();
            let mut receiver = CommandReceiver::default();
            let mut buf = Vec::new();
            for piece in input.chunks(1 + (xorshift(&mut state) % 700) as usize) {
                buf.extend_from_slice(piece);
                loop {
                    let before = buf.len();
                    let (used, result) = receiver.receive(&buf);
                    assert!(used <= before);
                    buf.drain(..used);
                    if used == 0 {
                        assert_eq!(result, Err(Error::NeedsMoreData));
                        break;
                    }
                }
                // Nothing without a line end is held beyond the cap.
                assert!(buf.len() <= HARD_LINE_CAP, "{} bytes held", buf.len());
            }
        }
    }
}
