//! Cuts the client's byte stream into whole commands (RFC 3501 2.2, 4.3): a command is a line,
//! and a line that ends in a literal announcement `{n}` (or `{n+}`, RFC 7888) goes on after n
//! octets with another line. The receiver takes input in any chunk sizes and checks both
//! limits — the command text and each literal — before it buffers anything beyond them: an
//! over-long line is discarded as it arrives, and a literal over the limit is refused before
//! the client sends it (synchronizing) or skipped unbuffered (non-synchronizing). A third
//! limit bounds the whole command, text and literals together, so that many literals in one
//! unfinished command cannot add up (the session sets it far lower before login).

/// What the receiver found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framed {
    /// A whole command: its lines with their CRLFs, each literal inline after its `{n}\r\n`.
    Command(Vec<u8>),
    /// A synchronizing literal was announced and fits: the client waits for `+` before it
    /// sends the octets (RFC 3501 7.5).
    Continue,
    /// The command text went over the line limit; the rest of it was discarded.
    /// `tag` is the command's tag if it could be read.
    TooLong { tag: Option<String> },
    /// A literal over the limit (`size` octets): the command is dropped. For a synchronizing
    /// literal the client sends nothing more of it once it sees the tagged reply; a
    /// non-synchronizing literal's octets, and the rest of its command, are skipped unread.
    LiteralTooBig { tag: Option<String>, size: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading command text.
    Line,
    /// Copying this many more literal octets into the command.
    Literal(u64),
    /// Skipping this many more octets of a refused non-synchronizing literal.
    Skip(u64),
    /// Discarding up to the next line end; a line that ends in a non-synchronizing literal
    /// announcement goes on discarding after its octets (the command is not over).
    DiscardLine,
}

/// The longest literal announcement, ` {4294967295+}\r\n`, that ends a discarded line.
const ANNOUNCEMENT_TAIL: usize = 16;

/// The command assembler, one per connection.
#[derive(Debug)]
pub struct Receiver {
    /// The longest command text (literal octets not counted), line ends included.
    max_line: usize,
    /// The largest literal.
    max_literal: u64,
    /// The largest command, text and literals together.
    max_command: u64,
    /// The command so far.
    command: Vec<u8>,
    /// Text octets in `command` (literals not counted), for the line limit.
    text: usize,
    /// Where the text after the last literal starts in `command`: where an announcement is looked for.
    line_start: usize,
    /// The last octets of a line being discarded, to see whether a literal follows it.
    discarded_tail: Vec<u8>,
    state: State,
}

impl Receiver {
    /// A receiver whose commands hold at most `max_line` octets of text, literals of at most
    /// `max_literal` octets, and at most `max_command` octets in all.
    pub fn new(max_line: usize, max_literal: u64, max_command: u64) -> Receiver {
        Receiver { max_line, max_literal, max_command, command: Vec::new(), text: 0, line_start: 0, discarded_tail: Vec::new(), state: State::Line }
    }

    /// Changes the literal and command limits (at login); the command being read keeps what
    /// it has.
    pub fn set_limits(&mut self, max_literal: u64, max_command: u64) {
        self.max_literal = max_literal;
        self.max_command = max_command;
    }

    /// Whether the receiver is between commands (nothing of a next one buffered).
    pub fn is_idle(&self) -> bool {
        self.state == State::Line && self.command.is_empty()
    }

    /// Forgets any partial command (after STARTTLS, nothing sent before may count).
    pub fn reset(&mut self) {
        self.command.clear();
        self.text = 0;
        self.line_start = 0;
        self.state = State::Line;
        self.discarded_tail.clear();
    }

    /// Takes all of `input` and appends what it completes to `out`.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<Framed>) {
        while !input.is_empty() {
            match self.state {
                State::Literal(left) => {
                    let take = left.min(input.len() as u64) as usize;
                    self.command.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if left == take as u64 {
                        self.state = State::Line;
                        self.line_start = self.command.len();
                    } else {
                        self.state = State::Literal(left - take as u64);
                    }
                }
                State::Skip(left) => {
                    let take = left.min(input.len() as u64) as usize;
                    input = &input[take..];
                    self.state = if left == take as u64 { State::DiscardLine } else { State::Skip(left - take as u64) };
                }
                State::DiscardLine => {
                    let (piece, complete) = match memchr::memchr(b'\n', input) {
                        Some(i) => (&input[..=i], true),
                        None => (input, false),
                    };
                    input = &input[piece.len()..];
                    self.discarded_tail.extend_from_slice(&piece[piece.len().saturating_sub(ANNOUNCEMENT_TAIL)..]);
                    let excess = self.discarded_tail.len().saturating_sub(ANNOUNCEMENT_TAIL);
                    self.discarded_tail.drain(..excess);
                    if complete {
                        let line = self.discarded_tail.strip_suffix(b"\n").unwrap_or(&self.discarded_tail);
                        let line = line.strip_suffix(b"\r").unwrap_or(line);
                        self.state = match literal_announcement(line) {
                            Some((size, false)) if size > 0 => State::Skip(size),
                            _ => State::Line,
                        };
                        self.discarded_tail.clear();
                    }
                }
                State::Line => {
                    let (piece, rest, complete) = match memchr::memchr(b'\n', input) {
                        Some(i) => (&input[..=i], &input[i + 1..], true),
                        None => (input, &[][..], false),
                    };
                    if self.text + piece.len() > self.max_line || (self.command.len() + piece.len()) as u64 > self.max_command {
                        out.push(Framed::TooLong { tag: self.tag_with(piece) });
                        // The line goes on being discarded from where it is, its buffered
                        // part included, so that a literal announced at its end is seen
                        // (and skipped) however the input was cut into chunks.
                        let line = &self.command[self.line_start..];
                        self.discarded_tail.clear();
                        self.discarded_tail.extend_from_slice(&line[line.len().saturating_sub(ANNOUNCEMENT_TAIL)..]);
                        self.command = Vec::new();
                        self.text = 0;
                        self.line_start = 0;
                        self.state = State::DiscardLine;
                        continue;
                    }
                    input = rest;
                    self.command.extend_from_slice(piece);
                    self.text += piece.len();
                    if complete {
                        self.end_of_line(out);
                    }
                }
            }
        }
    }

    /// A line of the command is complete: either a literal follows, or the command is done.
    fn end_of_line(&mut self, out: &mut Vec<Framed>) {
        let line = &self.command[self.line_start..];
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let body = body.strip_suffix(b"\r").unwrap_or(body);
        let Some((size, synchronizing)) = literal_announcement(body) else {
            let command = std::mem::take(&mut self.command);
            self.text = 0;
            self.line_start = 0;
            if command.iter().all(|b| b.is_ascii_whitespace()) {
                return; // an empty line is not a command
            }
            out.push(Framed::Command(command));
            return;
        };
        // Both checked on the announcement, before a single octet of the literal is taken.
        if size > self.max_literal || self.command.len() as u64 + size > self.max_command {
            let tag = self.tag_with(b"");
            self.command.clear();
            self.text = 0;
            self.line_start = 0;
            out.push(Framed::LiteralTooBig { tag, size });
            self.state = if synchronizing || size == 0 { State::Line } else { State::Skip(size) };
            return;
        }
        if synchronizing {
            out.push(Framed::Continue);
        }
        self.line_start = self.command.len();
        self.state = if size == 0 { State::Line } else { State::Literal(size) };
    }

    /// The tag of the command being read followed by `more`. Only the first octets within
    /// both limits are looked at: that much is always at hand when a limit is passed, so the
    /// answer does not depend on how the input was cut into chunks.
    fn tag_with(&self, more: &[u8]) -> Option<String> {
        let window = self.max_line.min(usize::try_from(self.max_command).unwrap_or(usize::MAX));
        let start = || self.command.iter().chain(more).take(window).copied();
        let end = start().position(|b| b == b' ' || b == b'\r' || b == b'\n')?;
        let tag: Vec<u8> = start().take(end).collect();
        (!tag.is_empty() && tag.iter().all(|&b| super::parse::is_tag_char(b))).then(|| String::from_utf8_lossy(&tag).into_owned())
    }
}

/// `{n}` or `{n+}` at the end of a line: the size and whether the client waits for `+`.
pub fn literal_announcement(line: &[u8]) -> Option<(u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let synchronizing = match digits.strip_suffix(b"+") {
        Some(d) => {
            digits = d;
            false
        }
        None => true,
    };
    if digits.is_empty() || digits.len() > 10 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let size = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((size, synchronizing))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in chunks of every size from 1 to 64 and checks each gives `expected`.
    fn frames_in_any_chunks(input: &[u8], max_line: usize, max_literal: u64) -> Vec<Framed> {
        let mut whole = Vec::new();
        Receiver::new(max_line, max_literal, u64::MAX).push(input, &mut whole);
        for size in 1..=64 {
            let mut receiver = Receiver::new(max_line, max_literal, u64::MAX);
            let mut out = Vec::new();
            for chunk in input.chunks(size) {
                receiver.push(chunk, &mut out);
            }
            assert_eq!(out, whole, "chunk size {size}");
        }
        whole
    }

    #[test]
    fn lines_and_literals_make_commands() {
        let out = frames_in_any_chunks(b"a1 NOOP\r\na2 LOGIN {5}\r\ncraig {4+}\r\npass\r\n\r\na3 LOGOUT\n", 1000, 100);
        assert_eq!(
            out,
            vec![
                Framed::Command(b"a1 NOOP\r\n".to_vec()),
                Framed::Continue,
                Framed::Command(b"a2 LOGIN {5}\r\ncraig {4+}\r\npass\r\n".to_vec()),
                Framed::Command(b"a3 LOGOUT\n".to_vec()),
            ]
        );
    }

    #[test]
    fn a_literal_may_hold_line_ends_and_braces() {
        let out = frames_in_any_chunks(b"A APPEND x {13}\r\nab\r\n{3}\r\ncd\r\n\r\n", 1000, 100);
        assert_eq!(out, vec![Framed::Continue, Framed::Command(b"A APPEND x {13}\r\nab\r\n{3}\r\ncd\r\n\r\n".to_vec())]);
    }

    #[test]
    fn an_over_long_line_is_reported_once_and_discarded() {
        let mut input = b"t7 SEARCH ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b"\r\nt8 NOOP\r\n");
        let out = frames_in_any_chunks(&input, 100, 100);
        assert_eq!(out, vec![Framed::TooLong { tag: Some("t7".into()) }, Framed::Command(b"t8 NOOP\r\n".to_vec())]);
    }

    #[test]
    fn a_big_synchronizing_literal_is_refused_before_it_is_sent() {
        let out = frames_in_any_chunks(b"A1 APPEND INBOX {999999999}\r\nA2 NOOP\r\n", 1000, 1000);
        assert_eq!(out, vec![Framed::LiteralTooBig { tag: Some("A1".into()), size: 999999999 }, Framed::Command(b"A2 NOOP\r\n".to_vec())]);
    }

    #[test]
    fn a_big_non_synchronizing_literal_is_skipped_unbuffered() {
        let mut input = b"A1 APPEND INBOX {2000+}\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'm', 2000));
        input.extend_from_slice(b" rest of it\r\nA2 NOOP\r\n");
        let out = frames_in_any_chunks(&input, 1000, 1000);
        assert_eq!(out, vec![Framed::LiteralTooBig { tag: Some("A1".into()), size: 2000 }, Framed::Command(b"A2 NOOP\r\n".to_vec())]);
        let mut receiver = Receiver::new(1000, 1000, u64::MAX);
        let mut out = Vec::new();
        receiver.push(&input[..1500], &mut out);
        assert!(receiver.command.capacity() < 1000, "nothing of the literal is buffered");
    }

    #[test]
    fn literals_add_up_to_the_command_limit() {
        // Before login: many small LITERAL+ literals in one unfinished command, each under
        // the literal limit, are refused once they add up past the command limit.
        let mut input = Vec::new();
        input.extend_from_slice(b"A1 LOGIN {600+}\r\n");
        input.extend(std::iter::repeat_n(b'u', 600));
        for _ in 0..100 {
            input.extend_from_slice(b" {600+}\r\n");
            input.extend(std::iter::repeat_n(b'p', 600));
        }
        input.extend_from_slice(b"\r\nA2 NOOP\r\n");
        let mut whole = Vec::new();
        let mut receiver = Receiver::new(1000, 1000, 2048);
        for chunk in input.chunks(7) {
            receiver.push(chunk, &mut whole);
            assert!(receiver.command.len() <= 2048, "the command never holds more than its limit");
        }
        assert_eq!(whole, vec![Framed::LiteralTooBig { tag: Some("A1".into()), size: 600 }, Framed::Command(b"A2 NOOP\r\n".to_vec())]);
        // Text counts too: a line that alone fits max_line but not max_command.
        let mut out = Vec::new();
        Receiver::new(1000, 1000, 100).push(&[b"A3 NOOP ".as_slice(), &[b'x'; 200], b"\r\n"].concat(), &mut out);
        assert_eq!(out, vec![Framed::TooLong { tag: Some("A3".into()) }]);
        // After login the limits grow.
        let mut receiver = Receiver::new(1000, 1000, 2048);
        receiver.set_limits(100_000, 200_000);
        let mut out = Vec::new();
        receiver.push(&input, &mut out);
        assert_eq!(out.len(), 2);
        assert!(matches!(&out[0], Framed::Command(c) if c.len() > 60_000));
    }

    #[test]
    fn an_over_long_line_ending_in_a_literal_skips_the_literal_in_any_chunks() {
        // Found by the fuzzer: the line that passes the limit ends in a non-synchronizing
        // literal; its octets are skipped whether the line arrived whole or in pieces.
        let mut input = b"B1 SEARCH ".to_vec();
        input.extend(std::iter::repeat_n(b'x', 200));
        input.extend_from_slice(b" {12+}\r\nB9 LOGOUT\r\n\r\nB2 NOOP\r\n");
        let out = frames_in_any_chunks(&input, 100, 100);
        assert_eq!(out, vec![Framed::TooLong { tag: Some("B1".into()) }, Framed::Command(b"B2 NOOP\r\n".to_vec())]);
        // A tag longer than the limit is not reported, in any chunks.
        let mut input = std::iter::repeat_n(b'T', 150).collect::<Vec<u8>>();
        input.extend_from_slice(b" NOOP\r\nB3 NOOP\r\n");
        let out = frames_in_any_chunks(&input, 100, 100);
        assert_eq!(out, vec![Framed::TooLong { tag: None }, Framed::Command(b"B3 NOOP\r\n".to_vec())]);
    }

    #[test]
    fn literal_announcements() {
        assert_eq!(literal_announcement(b"A LOGIN {5}"), Some((5, true)));
        assert_eq!(literal_announcement(b"A LOGIN {5+}"), Some((5, false)));
        assert_eq!(literal_announcement(b"A LOGIN {}"), None);
        assert_eq!(literal_announcement(b"A LOGIN {x}"), None);
        assert_eq!(literal_announcement(b"A LOGIN {99999999999}"), None);
        assert_eq!(literal_announcement(b"A LOGIN 5}"), None);
    }
}
