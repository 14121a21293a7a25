//! Message content: the DATA receiver (dot-stuffed, ended by `<CRLF>.<CRLF>`, RFC 5321
//! 4.1.1.4 and 4.5.2) and the same checks for BDAT chunks (RFC 3030), which carry content
//! without stuffing.
//!
//! SMTP smuggling (CVE-2023-51764/51765/51766): only `<CRLF>.<CRLF>` ends DATA. A bare LF or
//! bare CR never starts a line for the purpose of finding the end, so `<LF>.<LF>`,
//! `<CR>.<CR>` and `<LF>.<CRLF>` stay inside the message; and by default a message that
//! contains a bare LF or bare CR at all is refused, so that no downstream server can be made
//! to read a different end of data than this one did.

/// What the content looked like, for the session to turn into a reply at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentReport {
    /// Octets of content after unstuffing, counted even past the size limit.
    pub size: u64,
    /// The size limit was passed; content past it was discarded, not buffered.
    pub too_big: bool,
    /// Some line was longer than the line limit.
    pub line_too_long: bool,
    /// An LF not preceded by CR.
    pub bare_lf: bool,
    /// A CR not followed by LF.
    pub bare_cr: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after CRLF, or at the start of the content).
    LineStart,
    /// A `.` at the start of a line.
    Dot,
    /// `.` then CR at the start of a line: an LF now ends DATA.
    DotCr,
    /// Inside a line.
    Text,
    /// A CR inside a line, or a CR that started a line.
    Cr,
}

/// Incremental content receiver. Feed it whatever bytes arrived; it appends the content to
/// the output (until the size limit), tracks line lengths and line ends across calls, and for
/// DATA reports where the terminating dot line ends.
#[derive(Debug)]
pub struct ContentReceiver {
    state: State,
    /// DATA (dot-stuffed, with an end marker) or BDAT (raw octets).
    dot_stuffed: bool,
    /// Check line lengths and line ends: off for BODY=BINARYMIME, where lines mean nothing.
    check_lines: bool,
    max_size: u64,
    max_line: usize,
    /// Length of the current line so far, without its CRLF.
    line_len: usize,
    report: ContentReport,
}

impl ContentReceiver {
    /// A receiver for DATA content.
    pub fn data(max_size: u64, max_line: usize) -> Self {
        Self::new(true, true, max_size, max_line)
    }

    /// A receiver for the chunks of one BDAT transaction.
    pub fn chunks(binary: bool, max_size: u64, max_line: usize) -> Self {
        Self::new(false, !binary, max_size, max_line)
    }

    fn new(dot_stuffed: bool, check_lines: bool, max_size: u64, max_line: usize) -> Self {
        ContentReceiver { state: State::LineStart, dot_stuffed, check_lines, max_size, max_line, line_len: 0, report: ContentReport::default() }
    }

    pub fn report(&self) -> &ContentReport {
        &self.report
    }

    /// Consumes `input`, appending content to `out`. For DATA, returns `Some(n)` when the end
    /// marker was found, `n` being the bytes of `input` used up to and including it; the rest
    /// of `input` belongs to the next command. Returns `None` when all of `input` was used.
    pub fn receive(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<usize> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            i += 1;
            match self.state {
                State::Text => {
                    // Fast path: copy the run of ordinary bytes up to the next CR or LF.
                    let start = i - 1;
                    let run = input[start..].iter().position(|&c| c == b'\r' || c == b'\n').unwrap_or(input.len() - start);
                    if run > 0 {
                        self.text(&input[start..start + run], out);
                        i = start + run;
                    } else {
                        self.line_end_byte(b, out);
                    }
                }
                State::LineStart => {
                    if b == b'.' && self.dot_stuffed {
                        self.state = State::Dot;
                    } else if b == b'\r' || b == b'\n' {
                        self.line_end_byte(b, out);
                    } else {
                        self.text(&[b], out);
                    }
                }
                State::Dot => match b {
                    b'\r' => self.state = State::DotCr,
                    // RFC 5321 4.5.2: a line that begins with a dot and has more characters
                    // loses the first dot. `.<LF>` is such a line, with a bare LF in it.
                    _ => {
                        self.state = State::Text;
                        if b == b'\n' {
                            self.line_end_byte(b, out);
                        } else {
                            self.text(&[b], out);
                        }
                    }
                },
                State::DotCr => {
                    if b == b'\n' {
                        self.state = State::LineStart;
                        return Some(i);
                    }
                    // `.<CR>x`: the CR is bare; the dot was stuffing.
                    self.report.bare_cr |= self.check_lines;
                    self.emit(b"\r", out);
                    self.state = State::Text;
                    i -= 1;
                }
                State::Cr => {
                    if b == b'\n' {
                        self.emit(b"\r\n", out);
                        self.line_len = 0;
                        self.state = State::LineStart;
                    } else {
                        self.report.bare_cr |= self.check_lines;
                        self.emit(b"\r", out);
                        self.line_len += 1;
                        self.state = State::Text;
                        i -= 1;
                    }
                }
            }
        }
        None
    }

    /// A CR or LF seen where a line could end.
    fn line_end_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        if b == b'\r' {
            self.state = State::Cr;
        } else {
            // A bare LF: kept as content, and it does not start a new line (that is what keeps
            // `<LF>.<CRLF>` from ending DATA).
            self.report.bare_lf |= self.check_lines;
            self.emit(b"\n", out);
            self.state = State::Text;
        }
    }

    fn text(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.state = State::Text;
        self.line_len += bytes.len();
        if self.check_lines && self.line_len > self.max_line {
            self.report.line_too_long = true;
        }
        self.emit(bytes, out);
    }

    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        self.report.size += bytes.len() as u64;
        if self.report.size > self.max_size {
            self.report.too_big = true;
        } else {
            out.extend_from_slice(bytes);
        }
    }

    /// For BDAT: whether a CR at the very end of the last chunk was left dangling.
    pub fn finish(&mut self) {
        if self.state == State::Cr {
            self.report.bare_cr |= self.check_lines;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Outcome {
        content: Vec<u8>,
        end: Option<usize>,
        report: ContentReport,
    }

    fn run(input: &[u8], chunk: usize, max_size: u64) -> Outcome {
        let mut rx = ContentReceiver::data(max_size, 998);
        let mut content = Vec::new();
        let mut offset = 0;
        for piece in input.chunks(chunk) {
            if let Some(n) = rx.receive(piece, &mut content) {
                return Outcome { content, end: Some(offset + n), report: rx.report().clone() };
            }
            offset += piece.len();
        }
        Outcome { content, end: None, report: rx.report().clone() }
    }

    /// Runs `input` in every chunk size from 1 to 64 and checks they all agree.
    fn run_all(input: &[u8]) -> Outcome {
        let whole = run(input, input.len().max(1), 1 << 20);
        for chunk in 1..=64 {
            let o = run(input, chunk, 1 << 20);
            assert_eq!((&o.content, o.end, &o.report), (&whole.content, whole.end, &whole.report), "chunk {chunk}");
        }
        whole
    }

    #[test]
    fn ends_at_crlf_dot_crlf_and_leaves_the_rest() {
        let o = run_all(b"Hi Tyler!\r\n.\r\nQUIT\r\n");
        assert_eq!(o.content, b"Hi Tyler!\r\n");
        assert_eq!(o.end, Some(14));
        assert_eq!(o.report, ContentReport { size: 11, ..Default::default() });
    }

    #[test]
    fn empty_message_ends_at_first_dot_line() {
        let o = run_all(b".\r\n");
        assert_eq!(o.content, b"");
        assert_eq!(o.end, Some(3));
    }

    #[test]
    fn dot_unstuffing() {
        let o = run_all(b"..leading\r\n...\r\n. \r\nmid.dle\r\n.\r\n");
        assert_eq!(o.content, b".leading\r\n..\r\n \r\nmid.dle\r\n");
    }

    #[test]
    fn smuggling_lf_dot_lf_does_not_end() {
        let o = run_all(b"a\n.\nMAIL FROM:<x@y>\r\n.\r\n");
        assert_eq!(o.end, Some(24));
        assert!(o.report.bare_lf);
        assert!(o.content.starts_with(b"a\n"));
    }

    #[test]
    fn smuggling_cr_dot_cr_does_not_end() {
        let o = run_all(b"a\r.\rMAIL FROM:<x@y>\r\n.\r\n");
        assert_eq!(o.end, Some(24));
        assert!(o.report.bare_cr);
        assert!(!o.report.bare_lf);
    }

    #[test]
    fn smuggling_lf_dot_crlf_does_not_end() {
        let o = run_all(b"a\n.\r\nRCPT TO:<x@y>\r\n.\r\n");
        assert_eq!(o.end, Some(23));
        assert!(o.report.bare_lf);
        assert_eq!(o.content, b"a\n.\r\nRCPT TO:<x@y>\r\n");
    }

    #[test]
    fn smuggling_crlf_dot_lf_does_not_end() {
        let o = run_all(b"a\r\n.\nb\r\n.\r\n");
        assert_eq!(o.end, Some(11));
        assert!(o.report.bare_lf);
    }

    #[test]
    fn dot_cr_without_lf_is_a_bare_cr() {
        let o = run_all(b"a\r\n.\rb\r\n.\r\n");
        assert_eq!(o.end, Some(11));
        assert!(o.report.bare_cr);
        assert_eq!(o.content, b"a\r\n\rb\r\n");
    }

    #[test]
    fn long_lines_are_flagged() {
        let ok = format!("{}\r\n.\r\n", "x".repeat(998));
        assert!(!run_all(ok.as_bytes()).report.line_too_long);
        let long = format!("{}\r\n.\r\n", "x".repeat(999));
        assert!(run_all(long.as_bytes()).report.line_too_long);
    }

    #[test]
    fn oversize_content_is_counted_but_not_kept() {
        let input = format!("{}\r\n.\r\n", "x".repeat(500));
        let o = run(input.as_bytes(), 7, 100);
        assert!(o.report.too_big);
        assert_eq!(o.report.size, 502);
        assert!(o.content.len() <= 100);
        assert!(o.end.is_some());
    }

    #[test]
    fn bdat_chunks_are_raw_and_never_end() {
        let mut rx = ContentReceiver::chunks(false, 1 << 20, 998);
        let mut out = Vec::new();
        assert_eq!(rx.receive(b"a\r\n.\r\n", &mut out), None);
        assert_eq!(rx.receive(b"b\r", &mut out), None);
        assert_eq!(rx.receive(b"\n", &mut out), None);
        rx.finish();
        assert_eq!(out, b"a\r\n.\r\nb\r\n");
        assert!(!rx.report().bare_cr && !rx.report().bare_lf);

        let mut binary = ContentReceiver::chunks(true, 1 << 20, 998);
        binary.receive(b"\x00\n\r\xff", &mut out);
        binary.finish();
        assert_eq!(*binary.report(), ContentReport { size: 4, ..Default::default() });
    }

    #[test]
    fn garbage_always_ends_at_the_first_crlf_dot_crlf() {
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..500 {
            let len = (next() % 400) as usize;
            let alphabet = b"\r\n.a\0";
            let input: Vec<u8> = (0..len).map(|_| alphabet[(next() % 5) as usize]).collect();
            // The reference: the end is right after the first CRLF.CRLF that starts at the
            // beginning or after a CRLF.
            let mut with_start = b"\r\n".to_vec();
            with_start.extend_from_slice(&input);
            let expected = with_start.windows(5).position(|w| w == b"\r\n.\r\n").map(|i| i + 5 - 2);
            let chunk = 1 + (next() % 64) as usize;
            let o = run(&input, chunk, 1 << 20);
            assert_eq!(o.end, expected, "{input:?}");
        }
    }
}
