//! The IMAP command layer on arbitrary bytes: the receiver takes them in the chunk size the
//! first byte picks and must frame them exactly as when given whole, never buffer beyond its
//! limits (the whole command included), and the parser must answer every framed command (or the raw input) without
//! panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmail_proto::imap::{self as proto, Framed, Receiver};

const MAX_LINE: usize = 1024;
const MAX_LITERAL: u64 = 4096;
/// The whole command, as before login: well under MAX_LINE + many literals.
const MAX_COMMAND: u64 = 8192;

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else { return };
    let mut whole = Vec::new();
    Receiver::new(MAX_LINE, MAX_LITERAL, MAX_COMMAND).push(input, &mut whole);
    let mut receiver = Receiver::new(MAX_LINE, MAX_LITERAL, MAX_COMMAND);
    let mut chunked = Vec::new();
    for piece in input.chunks(usize::from(chunk).max(1)) {
        receiver.push(piece, &mut chunked);
    }
    assert_eq!(whole, chunked, "framing depends on chunk sizes");
    for frame in &whole {
        if let Framed::Command(command) = frame {
            // Text and literals together within the command limit.
            assert!(command.len() as u64 <= MAX_COMMAND);
            let _ = proto::parse(command);
        }
    }
    let _ = proto::parse(input);
});
