//! The IMAP extensions beyond RFC 3501 that Dovecot's imaptest exercises, over a raw IMAP
//! connection: BINARY (RFC 3516).

use wasmail_tests::imap::Imap;
use wasmail_tests::{Server, Setup};

fn server() -> Server {
    Server::start_with(Setup { users: vec!["tyler".into()], ..Setup::default() })
}

/// The bytes after the first `{n}\r\n` (or `~{n}\r\n`) of a response, and whether it was a
/// literal8.
fn literal_of(response: &[u8]) -> (Vec<u8>, bool) {
    let open = response.iter().position(|&b| b == b'{').expect("a literal");
    let at = response[open..].windows(2).position(|w| w == b"\r\n").unwrap() + open + 2;
    (response[at..response.len() - 1].to_vec(), open > 0 && response[open - 1] == b'~')
}

#[test]
fn binary_parts_survive_the_store_and_come_back_decoded() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    assert!(imap.cmd("c", "CAPABILITY").lines()[0].split(' ').any(|c| c == "BINARY"));
    // A literal8 with a binary part: NUL, an 8-bit octet, a bare LF and a CRLF.
    let binary: &[u8] = b"\0-\xe4\n\r\n\n";
    let mut message = b"From: a@b.c\r\nMime-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\
Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        .to_vec();
    message.extend_from_slice(binary);
    message.extend_from_slice(b"\r\n--x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n  aGVs  \r\n bG8gd29y\r\nbGQ=\r\n--x\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-unknown\r\n\r\nzzz\r\n--x--\r\n");
    let mut command = format!("a1 APPEND INBOX ~{{{}+}}\r\n", message.len()).into_bytes();
    command.extend_from_slice(&message);
    command.extend_from_slice(b"\r\n");
    imap.send(&command);
    assert!(imap.until("a1").ok());
    assert!(imap.cmd("a2", "SELECT INBOX").ok());
    // Stored re-encoded, so that BODY[1] is text that every reader can carry ...
    let body = imap.cmd("a3", "FETCH 1 (BODY.PEEK[1])");
    let (stored, literal8) = literal_of(&body.untagged[0]);
    assert!(!literal8 && stored.is_ascii() && !stored.contains(&0), "{:?}", String::from_utf8_lossy(&stored));
    // ... and BINARY gives the octets back, as a literal8 since they hold a NUL.
    let fetched = imap.cmd("a4", "FETCH 1 (BINARY.SIZE[1] BINARY.PEEK[1])");
    let response = &fetched.untagged[0];
    assert!(response.starts_with(b"* 1 FETCH (BINARY.SIZE[1] 7 BINARY[1] ~{7}\r\n"), "{:?}", String::from_utf8_lossy(response));
    assert_eq!(literal_of(response), (binary.to_vec(), true));
    // Base64 with spaces decodes; a partial is cut from the decoded octets.
    let text = imap.cmd("a5", "FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2]<6.5>)");
    assert!(text.untagged[0].starts_with(b"* 1 FETCH (BINARY.SIZE[2] 11 BINARY[2]<6> {5}\r\nworld"), "{text:?}");
    assert!(!imap.cmd("a6", "FETCH 1 (FLAGS)").lines()[0].contains("\\Seen"), "PEEK leaves \\Seen alone");
    // An encoding this server cannot decode: NO [UNKNOWN-CTE] (RFC 3516 4.3).
    let unknown = imap.cmd("a7", "FETCH 1 (BINARY.PEEK[3])");
    assert!(unknown.tagged.starts_with("a7 NO [UNKNOWN-CTE]"), "{unknown:?}");
    // BINARY without PEEK sets \Seen, as BODY[] does.
    assert!(imap.cmd("a8", "FETCH 1 (BINARY[1])").lines().iter().any(|l| l.contains("\\Seen")));
}
