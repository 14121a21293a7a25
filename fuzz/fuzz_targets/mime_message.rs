//! The MIME parser on arbitrary messages: within the limits it must not panic, must finish,
//! and writing a message out with no changes must give back the same bytes (the rewriter
//! splices only what changed); decoding every part must not panic either.

#![no_main]

use libfuzzer_sys::fuzz_target;
use wasmail_mime as mime;

fuzz_target!(|data: &[u8]| {
    let limits = mime::Limits { max_depth: 8, max_parts: 64, max_header_fields: 64, max_header_size: 4096 };
    let Ok(message) = mime::parse(data, &limits) else { return };
    assert_eq!(mime::rewrite(&message, &[], &[]), data, "an unchanged message changed");
    for leaf in message.leaves() {
        let body = &data[leaf.part.body.clone()];
        let decoded = mime::transfer::decode(&leaf.part.encoding, body);
        if let Some(charset) = leaf.part.content_type.param("charset") {
            let _ = mime::words::decode_charset(charset, &decoded);
        }
        let _ = leaf.part.filename();
    }
    let _ = mime::rewrite::downgrade_8bit(data);
});
