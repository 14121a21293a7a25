//! The other side of SMTP: a next hop's replies, as the relay client reads them. Bytes in,
//! whole replies out, with both bounds — one line, and one whole (multiline) reply — checked
//! on the bytes as they arrive, before they are copied. The relay client (the server's
//! `queue/client.rs`) feeds it from the socket; the fuzz target feeds it arbitrary bytes in
//! arbitrary chunks.

use crate::reply::EnhancedCode;

/// One reply line, CRLF included. RFC 5321 4.5.3.1.5 allows 512 octets; peers that write
/// longer ones exist, so a little more is taken before the reply counts as broken.
pub const MAX_REPLY_LINE: usize = 2048;
/// A whole (multiline) reply: an EHLO reply is the longest a real server sends, a few
/// hundred octets.
pub const MAX_REPLY: usize = 64 * 1024;

/// A reply from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerReply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl PeerReply {
    /// `550 5.1.1 text` on one line, for logs and Diagnostic-Code.
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }

    /// The RFC 3463 code the reply carries, or one made from its class.
    /// A code whose class disagrees with the reply's is not believed (RFC 3463 2).
    pub fn status(&self) -> EnhancedCode {
        let first = self.lines.first().map(String::as_str).unwrap_or("");
        let token = first.split_whitespace().next().unwrap_or("");
        let class = (self.code / 100) as u8;
        match token.parse::<EnhancedCode>() {
            Ok(code) if code.class == class => code,
            _ => EnhancedCode::new(class, 0, 0),
        }
    }
}

/// Assembles one reply at a time. After an error the session is over: the reader is not used
/// again.
#[derive(Debug, Default)]
pub struct ReplyReader {
    /// The line being read.
    line: Vec<u8>,
    /// The lines of the reply so far, their text after the code.
    lines: Vec<String>,
    /// Octets of the reply so far.
    total: usize,
}

impl ReplyReader {
    /// Takes octets of `input` up to the end of a line: returns how many it used, and the
    /// reply once its last line is in. An over-long line or reply, or a line that is not a
    /// reply, is an error.
    pub fn push(&mut self, input: &[u8]) -> Result<(usize, Option<PeerReply>), String> {
        let (take, complete) = match memchr::memchr(b'\n', input) {
            Some(i) => (i + 1, true),
            None => (input.len(), false),
        };
        if self.line.len() + take > MAX_REPLY_LINE {
            return Err(format!("reply line longer than {MAX_REPLY_LINE} octets"));
        }
        if self.total + take > MAX_REPLY {
            return Err(format!("reply longer than {MAX_REPLY} octets"));
        }
        self.line.extend_from_slice(&input[..take]);
        self.total += take;
        if !complete {
            return Ok((take, None));
        }
        let line = std::mem::take(&mut self.line);
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(|| format!("not a reply: {line:?}"))?;
        let more = line.as_bytes().get(3) == Some(&b'-');
        // No control characters go on into logs, notices or the queue listing.
        self.lines.push(line.get(4..).unwrap_or("").chars().map(|c| if c.is_control() { ' ' } else { c }).collect());
        if more {
            return Ok((take, None));
        }
        self.total = 0;
        Ok((take, Some(PeerReply { code, lines: std::mem::take(&mut self.lines) })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reply in `input`, fed in chunks of `size`.
    fn replies(input: &[u8], size: usize) -> Result<Vec<PeerReply>, String> {
        let mut reader = ReplyReader::default();
        let mut out = Vec::new();
        for chunk in input.chunks(size) {
            let mut chunk = chunk;
            while !chunk.is_empty() {
                let (used, reply) = reader.push(chunk)?;
                chunk = &chunk[used..];
                out.extend(reply);
            }
        }
        Ok(out)
    }

    #[test]
    fn multiline_replies_in_any_chunks() {
        let input = b"250-mx.example\r\n250-SIZE 1000\r\n250 PIPELINING\r\n550 5.1.1 no\x07 such user\r\n";
        for size in 1..=input.len() {
            let out = replies(input, size).unwrap();
            assert_eq!(out.len(), 2);
            assert_eq!(out[0].lines, ["mx.example", "SIZE 1000", "PIPELINING"]);
            assert_eq!((out[1].code, out[1].status(), out[1].text()), (550, EnhancedCode::new(5, 1, 1), "550 5.1.1 no  such user".into()));
        }
    }

    #[test]
    fn bounds_hold_as_the_bytes_arrive() {
        let long_line = [b"250 ".as_slice(), &[b'x'; MAX_REPLY_LINE]].concat();
        assert!(replies(&long_line, 100).unwrap_err().contains("reply line longer"));
        let many_lines: Vec<u8> = (0..MAX_REPLY / 10).flat_map(|_| b"250-abcdef\r\n".to_vec()).collect();
        assert!(replies(&many_lines, 7).unwrap_err().contains("reply longer"));
        assert!(replies(b"hello\r\n", 3).unwrap_err().contains("not a reply"));
    }
}
