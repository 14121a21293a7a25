//! The relay client's reply reader on arbitrary bytes from a next hop: fed in the chunk size
//! the first byte picks it must give exactly what it gives when fed whole, never hold a line
//! or a reply past its bound, and never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmail_proto::smtp::peer::{PeerReply, ReplyReader, MAX_REPLY, MAX_REPLY_LINE};

/// The replies, and the error that ended the reading if one did.
fn read(input: &[u8], chunk: usize) -> (Vec<PeerReply>, Option<String>) {
    let mut reader = ReplyReader::default();
    let mut replies = Vec::new();
    let mut taken_since_reply = 0;
    for piece in input.chunks(chunk) {
        let mut piece = piece;
        while !piece.is_empty() {
            match reader.push(piece) {
                Ok((used, reply)) => {
                    assert!(used > 0 && used <= piece.len(), "no progress or overrun");
                    taken_since_reply += used;
                    assert!(taken_since_reply <= MAX_REPLY, "a reply held past its bound");
                    piece = &piece[used..];
                    if let Some(reply) = reply {
                        assert!(reply.lines.iter().all(|l| l.len() <= 3 * MAX_REPLY_LINE), "a line past its bound");
                        assert!(reply.lines.iter().all(|l| !l.chars().any(char::is_control)), "a control character kept");
                        replies.push(reply);
                        taken_since_reply = 0;
                    }
                }
                Err(e) => return (replies, Some(e)),
            }
        }
    }
    (replies, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else { return };
    let whole = read(input, input.len().max(1));
    let chunked = read(input, usize::from(chunk).max(1));
    assert_eq!(whole, chunked, "reading depends on chunk sizes");
});
