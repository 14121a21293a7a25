//! Dot-stuffing (RFC 5321 4.5.2, RFC 1939 3): a message sent as a multi-line body, every
//! line-leading `.` doubled and a `.` line at the end. SMTP's DATA receiver undoes it
//! (`smtp::data`); the relay client and POP3's RETR and TOP do it.

/// The other direction of dot transparency, shared by the relay client (RFC 5321 4.5.2) and
/// POP3's multi-line responses (RFC 1939 3): `body` with every line-leading `.` doubled, a
/// final CRLF if it lacks one, and the terminating `.` line, appended to `out`.
pub fn dot_stuff_into(out: &mut Vec<u8>, body: &[u8]) {
    let mut stuffer = DotStuffer::default();
    stuffer.push(out, body);
    stuffer.finish(out);
}

/// Dot-stuffing of a body given in pieces, so that a large one can be written out as it is
/// stuffed instead of doubled in memory first.
#[derive(Debug)]
pub struct DotStuffer {
    /// The next octet starts a line.
    at_line_start: bool,
    /// The last two octets seen, to know whether the body ended in CRLF.
    last: [u8; 2],
    /// Whether any octet was seen.
    any: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer { at_line_start: true, last: [0; 2], any: false }
    }
}

impl DotStuffer {
    /// Appends `piece`, stuffed, to `out`.
    pub fn push(&mut self, out: &mut Vec<u8>, piece: &[u8]) {
        let (Some(&first), Some(&end)) = (piece.first(), piece.last()) else { return };
        out.reserve(piece.len() + 8);
        if self.at_line_start && first == b'.' {
            out.push(b'.');
        }
        // Copied a run at a time: only a line break followed by a dot breaks a run.
        let mut start = 0;
        for line_end in memchr::memchr_iter(b'\n', piece) {
            if piece.get(line_end + 1) == Some(&b'.') {
                out.extend_from_slice(&piece[start..=line_end]);
                out.push(b'.');
                start = line_end + 1;
            }
        }
        out.extend_from_slice(&piece[start..]);
        self.at_line_start = end == b'\n';
        self.last = match piece {
            [.., a, b] => [*a, *b],
            _ => [self.last[1], end],
        };
        self.any = true;
    }

    /// Ends the body with CRLF (if it did not) and the terminating `.` line.
    pub fn finish(self, out: &mut Vec<u8>) {
        if self.any && self.last != *b"\r\n" {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_leading_dots_are_doubled_and_the_body_is_ended() {
        let mut out = Vec::new();
        dot_stuff_into(&mut out, b".a\r\nb.\r\n..c");
        assert_eq!(out, b"..a\r\nb.\r\n...c\r\n.\r\n");
        let mut empty = Vec::new();
        dot_stuff_into(&mut empty, b"");
        assert_eq!(empty, b".\r\n");
    }

    #[test]
    fn pieces_stuff_as_the_whole_does() {
        let body = b".one\r\n.two\r\nthree\r\n.";
        let mut whole = Vec::new();
        dot_stuff_into(&mut whole, body);
        for size in 1..body.len() {
            let (mut out, mut stuffer) = (Vec::new(), DotStuffer::default());
            for piece in body.chunks(size) {
                stuffer.push(&mut out, piece);
            }
            stuffer.finish(&mut out);
            assert_eq!(out, whole, "pieces of {size}");
        }
    }
}
