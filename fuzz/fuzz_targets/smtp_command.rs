//! The SMTP command receiver and the DATA content receiver on arbitrary bytes: each call must
//! make progress or ask for more, never use more than it was given, and never panic; content
//! never grows past its size limit; the same input in another chunk size gives the same
//! commands. Dot-stuffing (the relay client's DATA, POP3's RETR, which stuffs a message a
//! block at a time) gives the same bytes in pieces as whole, and the DATA receiver gives the
//! body back from them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmail_proto::smtp::{dot_stuff_into, CommandReceiver, ContentReceiver, DotStuffer, Error};

/// Every command (or error) the receiver finds in `input` fed in chunks of `chunk`.
fn commands(input: &[u8], chunk: usize) -> Vec<String> {
    let mut receiver = CommandReceiver::default();
    let mut buf = Vec::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            let (used, result) = receiver.receive(&buf);
            assert!(used <= buf.len(), "used more than it was given");
            buf.drain(..used);
            match result {
                Err(Error::NeedsMoreData) if used == 0 => break,
                Err(Error::NeedsMoreData) => {}
                other => out.push(format!("{other:?}")),
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else { return };
    let chunk = usize::from(chunk).max(1);
    // Whole lines give the same commands whatever the chunk size (an unfinished last line
    // may be reported differently only by being incomplete).
    let cut = input.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
    assert_eq!(commands(&input[..cut], chunk), commands(&input[..cut], input.len().max(1)));
    let mut content = ContentReceiver::data(1000, 100);
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        if let Some(n) = content.receive(piece, &mut out) {
            assert!(n <= piece.len());
            break;
        }
    }
    assert!(out.len() <= 1000 + 2, "content past the size limit was kept: {}", out.len());

    let mut whole = Vec::new();
    dot_stuff_into(&mut whole, input);
    let mut stuffer = DotStuffer::default();
    let mut pieces = Vec::new();
    for piece in input.chunks(chunk) {
        stuffer.push(&mut pieces, piece);
    }
    stuffer.finish(&mut pieces);
    assert_eq!(whole, pieces, "stuffing depends on chunk sizes");
    // With CRLF line ends only (a bare CR or LF is not a line end for the receiver), the
    // round trip gives the body back, with a final CRLF if it had none.
    let crlf_only = input.windows(2).all(|w| (w[0] == b'\r') == (w[1] == b'\n')) && input.first() != Some(&b'\n') && input.last() != Some(&b'\r');
    if crlf_only {
        let mut receiver = ContentReceiver::data(u64::MAX, usize::MAX);
        let mut body = Vec::new();
        assert_eq!(receiver.receive(&whole, &mut body), Some(whole.len()), "the end of data is where the stuffer put it");
        let mut expected = input.to_vec();
        if !expected.is_empty() && !expected.ends_with(b"\r\n") {
            expected.extend_from_slice(b"\r\n");
        }
        assert_eq!(body, expected, "the round trip changed the body");
    }
});
