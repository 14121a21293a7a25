//! POP3 command lines on arbitrary bytes: the receiver must make progress and the parser
//! answer every line without panicking.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmail_proto::pop3::{self as proto, CommandReceiver, Line};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else { return };
    let mut receiver = CommandReceiver::default();
    let mut buf = Vec::new();
    for piece in input.chunks(usize::from(chunk).max(1)) {
        buf.extend_from_slice(piece);
        while let Some((line, used)) = receiver.line(&buf) {
            assert!(used > 0 && used <= buf.len(), "no progress or overrun");
            if let Line::Command(bytes) = line {
                let _ = proto::parse(bytes);
            }
            buf.drain(..used);
        }
    }
    let _ = proto::auth_response(input);
});
