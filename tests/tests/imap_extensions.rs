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

#[test]
fn list_extended_selects_returns_and_gives_status() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    let caps = imap.cmd("c", "CAPABILITY").lines()[0].clone();
    assert!(caps.contains(" LIST-EXTENDED") && caps.contains(" LIST-STATUS"), "{caps}");
    for name in ["box/one", "box/two", "box/two/deep", "box/three/leaf", "box/gone"] {
        assert!(imap.cmd("a", &format!("CREATE {name}")).ok());
    }
    for name in ["box/one", "box/two/deep", "box/gone"] {
        assert!(imap.cmd("b", &format!("SUBSCRIBE {name}")).ok());
    }
    // DELETE keeps the subscription (RFC 3501 6.3.6): it is listed as \NonExistent.
    assert!(imap.cmd("d", "DELETE box/gone").ok());
    let subscribed = imap.cmd("l1", "LIST (SUBSCRIBED) \"\" box/*");
    assert!(subscribed.has("LIST (\\Subscribed) \"/\" \"box/one\""), "{subscribed:?}");
    assert!(subscribed.has("LIST (\\Subscribed) \"/\" \"box/two/deep\""), "{subscribed:?}");
    assert!(subscribed.has("LIST (\\NonExistent \\Subscribed) \"/\" \"box/gone\""), "{subscribed:?}");
    assert_eq!(subscribed.lines().len(), 3, "{subscribed:?}");
    // RECURSIVEMATCH: a parent whose subscribed child the pattern does not reach.
    let recursive = imap.cmd("l2", "LIST (SUBSCRIBED RECURSIVEMATCH) \"\" box/% RETURN (CHILDREN)");
    assert!(recursive.has("LIST (\\HasChildren) \"/\" \"box/two\" (\"CHILDINFO\" (\"SUBSCRIBED\"))"), "{recursive:?}");
    assert!(!recursive.lines().iter().any(|l| l.contains("\"box/two/deep\"")), "{recursive:?}");
    // Several patterns and return options. (CREATE made box/three for box/three/leaf; a level
    // that only holds others, \Noselect, is in the unit tests of imap/list.rs.)
    let returned = imap.cmd("l3", "LIST \"\" (box/% INBOX) RETURN (SUBSCRIBED CHILDREN)");
    assert!(returned.has("LIST (\\Subscribed \\HasNoChildren) \"/\" \"box/one\""), "{returned:?}");
    assert!(returned.has("LIST (\\HasChildren) \"/\" \"box/two\""), "{returned:?}");
    assert!(returned.has("LIST (\\HasChildren) \"/\" \"box/three\""), "{returned:?}");
    assert!(returned.has("LIST (\\HasNoChildren) \"/\" \"INBOX\""), "{returned:?}");
    // LIST-STATUS: STATUS after each selectable mailbox listed.
    let message = "Subject: hi\r\n\r\nhello\r\n";
    imap.send(format!("e APPEND box/one {{{}+}}\r\n{message}\r\n", message.len()).as_bytes());
    assert!(imap.until("e").ok());
    let status = imap.cmd("l4", "LIST \"\" box/% RETURN (STATUS (MESSAGES UNSEEN))");
    let lines = status.lines();
    let at = lines.iter().position(|l| l.ends_with("\"box/one\"")).unwrap_or_else(|| panic!("{status:?}"));
    assert_eq!(lines[at + 1], "STATUS \"box/one\" (MESSAGES 1 UNSEEN 1)", "{status:?}");
    let count = |prefix: &str| lines.iter().filter(|l| l.starts_with(prefix)).count();
    assert_eq!((count("LIST"), count("STATUS")), (3, 3), "one STATUS per mailbox: {status:?}");
    // SPECIAL-USE selection: only the special-use mailboxes.
    let special = imap.cmd("l5", "LIST (SPECIAL-USE) \"\" *");
    assert!(special.has("LIST (\\Sent) \"/\" \"Sent\"") && !special.lines().iter().any(|l| l.contains("INBOX")), "{special:?}");
    for bad in ["LIST (RECURSIVEMATCH) \"\" %", "LIST (FOO) \"\" %", "LIST \"\" % RETURN (FOO)"] {
        assert!(imap.cmd("x", bad).tagged.starts_with("x BAD"), "{bad}");
    }
}

#[test]
fn catenate_joins_text_and_parts_of_stored_messages() {
    let server = Server::start_with(Setup { users: vec!["tyler".into()], imap: "max_literal = 4096\n".into(), ..Setup::default() });
    let mut imap = Imap::login(&server, "tyler");
    assert!(imap.cmd("c", "CAPABILITY").lines()[0].split(' ').any(|c| c == "CATENATE"));
    let original = "From: a@b.c\r\nSubject: draft\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\nfirst part\r\n--x--\r\n";
    imap.send(format!("a1 APPEND Drafts {{{}+}}\r\n{original}\r\n", original.len()).as_bytes());
    let appended = imap.until("a1");
    let validity = appended.tagged.split(' ').nth(3).unwrap().to_string();
    // The header of the stored message, new text, and a range of its first part.
    let command = format!(
        "a2 APPEND Drafts (\\Seen) CATENATE (URL \"/Drafts;UIDVALIDITY={validity}/;UID=1/;section=HEADER\" TEXT {{5+}}\r\nnew\r\n URL \"/Drafts/;UID=1/;SECTION=1/;PARTIAL=6.4\")\r\n"
    );
    imap.send(command.as_bytes());
    let joined = imap.until("a2");
    assert!(joined.ok() && joined.tagged.contains("APPENDUID"), "{joined:?}");
    assert!(imap.cmd("a3", "SELECT Drafts").ok());
    let body = imap.cmd("a4", "FETCH 2 (FLAGS BODY.PEEK[])");
    let expected = "From: a@b.c\r\nSubject: draft\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\nnew\r\npart";
    assert!(body.lines()[0].ends_with(&format!("{{{}}}\r\n{expected})", expected.len())), "{body:?}");
    assert!(body.lines()[0].contains("\\Seen"));
    // A URL that names nothing, or another UIDVALIDITY: NO [BADURL "url"], nothing stored.
    let stale = imap.cmd("a5", "APPEND Drafts CATENATE (TEXT {2+}\r\nx\n URL \"/Drafts;UIDVALIDITY=1/;UID=1\")");
    assert!(stale.tagged.starts_with("a5 NO [BADURL \"/Drafts;UIDVALIDITY=1/;UID=1\"]"), "{stale:?}");
    let absolute = imap.cmd("a6", "APPEND Drafts CATENATE (URL \"imap://host/Drafts/;UID=1\")");
    assert!(absolute.tagged.starts_with("a6 NO [BADURL"), "{absolute:?}");
    // A mailbox that is not there comes first; a result over max_literal is refused.
    let missing = imap.cmd("a7", "APPEND Nowhere CATENATE (URL \"/Drafts;UIDVALIDITY=1/;UID=1\")");
    assert!(missing.tagged.starts_with("a7 NO [TRYCREATE]"), "{missing:?}");
    let parts = vec!["URL \"/Drafts/;UID=1\""; 60].join(" ");
    let big = imap.cmd("a8", &format!("APPEND Drafts CATENATE ({parts})"));
    assert!(big.tagged.starts_with("a8 NO [TOOBIG]"), "{big:?}");
    assert!(imap.cmd("a9", "NOOP").lines().iter().all(|l| !l.ends_with("EXISTS")), "nothing was stored");
}

/// Appends `count` messages with subjects m1, m2, ... and selects INBOX.
fn filled(imap: &mut Imap, count: usize) {
    for i in 1..=count {
        let message = format!("Subject: m{i}\r\nFrom: a@b.c\r\n\r\nbody {i}\r\n");
        imap.send(format!("f APPEND INBOX {{{}+}}\r\n{message}\r\n", message.len()).as_bytes());
        assert!(imap.until("f").ok());
    }
    assert!(imap.cmd("s", "SELECT INBOX").ok());
}

#[test]
fn searchres_saves_a_result_for_later_commands() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    assert!(imap.cmd("c", "CAPABILITY").lines()[0].contains(" SEARCHRES"));
    filled(&mut imap, 5);
    // SAVE alone answers nothing but OK (RFC 5182 2.1); `$` is then the result.
    let saved = imap.cmd("a1", "SEARCH RETURN (SAVE) OR SUBJECT m2 SUBJECT m4");
    assert!(saved.ok() && saved.untagged.is_empty(), "{saved:?}");
    assert_eq!(imap.cmd("a2", "FETCH $ (UID)").lines(), ["2 FETCH (UID 2)", "4 FETCH (UID 4)"]);
    assert!(imap.cmd("a3", "STORE $ +FLAGS.SILENT (\\Flagged)").ok());
    assert!(imap.cmd("a4", "SEARCH FLAGGED").has("SEARCH 2 4"));
    assert!(imap.cmd("a5", "UID SEARCH $ SUBJECT m4").has("SEARCH 4"));
    // With MIN alone, only the lowest is saved; other options answer as ESEARCH.
    let min = imap.cmd("a6", "SEARCH RETURN (SAVE MIN) ALL");
    assert!(min.has("ESEARCH (TAG \"a6\") MIN 1"), "{min:?}");
    assert_eq!(imap.cmd("a7", "FETCH $ (UID)").lines(), ["1 FETCH (UID 1)"]);
    // `$` follows messages, not numbers: after an expunge it still names the same one.
    assert!(imap.cmd("a8", "SEARCH RETURN (SAVE) SUBJECT m5").ok());
    assert!(imap.cmd("a9", "STORE 1 +FLAGS.SILENT (\\Deleted)").ok() && imap.cmd("a10", "EXPUNGE").ok());
    assert_eq!(imap.cmd("a11", "FETCH $ (UID)").lines(), ["4 FETCH (UID 5)"]);
    // A new mailbox starts without one.
    assert!(imap.cmd("a12", "SELECT INBOX").ok());
    assert!(imap.cmd("a13", "FETCH $ (UID)").lines().is_empty());
}

#[test]
fn context_search_partial_results_and_updates() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    let caps = imap.cmd("c", "CAPABILITY").lines()[0].clone();
    assert!(caps.contains(" CONTEXT=SEARCH") && caps.contains(" CONTEXT=SORT"), "{caps}");
    filled(&mut imap, 5);
    assert!(imap.cmd("p1", "SEARCH RETURN (PARTIAL 4:2) ALL").has("ESEARCH (TAG \"p1\") PARTIAL (2:4 2:4)"));
    assert!(imap.cmd("p2", "SEARCH RETURN (PARTIAL 6:9) ALL").has("ESEARCH (TAG \"p2\") PARTIAL (6:9 NIL)"));
    assert!(imap.cmd("p3", "SORT RETURN (PARTIAL 1:2) (REVERSE SUBJECT) UTF-8 ALL").has("ESEARCH (TAG \"p3\") PARTIAL (1:2 5,4)"));
    assert!(imap.cmd("p4", "SEARCH RETURN (PARTIAL 1) ALL").tagged.starts_with("p4 BAD"));
    // A kept search hears of what joins and leaves its result, after any command.
    let kept = imap.cmd("u1", "SEARCH RETURN (UPDATE ALL) SEEN");
    assert!(kept.has("ESEARCH (TAG \"u1\")"), "{kept:?}");
    let joined = imap.cmd("u2", "STORE 1,2,4 +FLAGS.SILENT (\\Seen)");
    assert!(joined.has("ESEARCH (TAG \"u1\") ADDTO (0 1:2,4)"), "{joined:?}");
    let left = imap.cmd("u3", "STORE 2 -FLAGS.SILENT (\\Seen)");
    assert!(left.has("ESEARCH (TAG \"u1\") REMOVEFROM (0 2)"), "{left:?}");
    // An expunge: REMOVEFROM with the number the client had, before the EXPUNGE.
    assert!(imap.cmd("u4", "STORE 4 +FLAGS.SILENT (\\Deleted)").ok());
    let expunged = imap.cmd("u5", "EXPUNGE");
    assert_eq!(expunged.lines()[..2], ["ESEARCH (TAG \"u1\") REMOVEFROM (0 4)", "4 EXPUNGE"], "{expunged:?}");
    // Another session's change, and new mail, are news too.
    let mut other = Imap::login(&server, "tyler");
    assert!(other.cmd("o1", "SELECT INBOX").ok() && other.cmd("o2", "STORE 3 +FLAGS (\\Seen)").ok());
    assert!(imap.cmd("u6", "NOOP").has("ESEARCH (TAG \"u1\") ADDTO (0 3)"));
    // A kept SORT says where in its order.
    let sorted = imap.cmd("u7", "UID SORT RETURN (UPDATE) (REVERSE SUBJECT) UTF-8 SEEN");
    assert!(sorted.has("ESEARCH (TAG \"u7\") UID"), "{sorted:?}");
    let placed = imap.cmd("u8", "UID STORE 2 +FLAGS.SILENT (\\Seen)");
    assert!(placed.has("ESEARCH (TAG \"u7\") UID ADDTO (2 2)"), "m3, m2, m1 by reverse subject: {placed:?}");
    // CANCELUPDATE stops one; an unknown tag is BAD.
    assert!(imap.cmd("u9", "CANCELUPDATE \"u1\"").ok());
    assert!(imap.cmd("u10", "CANCELUPDATE \"nope\"").tagged.starts_with("u10 BAD"));
    let quiet = imap.cmd("u11", "STORE 1 -FLAGS.SILENT (\\Seen)");
    assert!(!quiet.lines().iter().any(|l| l.contains("\"u1\"")), "{quiet:?}");
    assert!(quiet.has("ESEARCH (TAG \"u7\") UID REMOVEFROM (3 1)"), "{quiet:?}");
}

/// Both directions of a COMPRESS=DEFLATE session, as a client does it with flate2.
struct Deflated {
    stream: std::net::TcpStream,
    out: flate2::Compress,
    inflate: flate2::Decompress,
    plain: Vec<u8>,
}

impl Deflated {
    fn send(&mut self, text: &[u8]) {
        use std::io::Write;
        let mut wire = Vec::with_capacity(text.len() / 100 + 1024);
        let mut rest = text;
        loop {
            if wire.capacity() - wire.len() < 1024 {
                wire.reserve(wire.capacity().max(4096));
            }
            let before = self.out.total_in();
            self.out.compress_vec(rest, &mut wire, flate2::FlushCompress::Sync).unwrap();
            rest = &rest[(self.out.total_in() - before) as usize..];
            if rest.is_empty() && wire.len() < wire.capacity() {
                break;
            }
        }
        self.stream.write_all(&wire).unwrap();
    }

    /// Inflated input up to and including the line tagged `tag`.
    fn until(&mut self, tag: &str) -> String {
        use std::io::Read;
        loop {
            let text = String::from_utf8_lossy(&self.plain).into_owned();
            let mut at = 0;
            while let Some(end) = text[at..].find("\r\n") {
                let line = &text[at..at + end];
                if line.starts_with(&format!("{tag} ")) {
                    let line = line.to_string();
                    self.plain.drain(..at + end + 2);
                    return line;
                }
                at += end + 2;
            }
            let mut raw = [0u8; 4096];
            let n = self.stream.read(&mut raw).unwrap();
            assert!(n > 0, "closed; so far {text:?}");
            let mut chunk = Vec::with_capacity(1 << 16);
            self.inflate.decompress_vec(&raw[..n], &mut chunk, flate2::FlushDecompress::Sync).unwrap();
            self.plain.extend_from_slice(&chunk);
        }
    }
}

#[test]
fn compress_deflate_both_ways_with_the_limits_still_holding() {
    use std::io::{BufRead, BufReader, Write};
    let server = server();
    let stream = std::net::TcpStream::connect(server.imap.unwrap()).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.contains("COMPRESS=DEFLATE"), "{line}");
    let mut writer = stream.try_clone().unwrap();
    for (command, tag) in [("a LOGIN tyler secret\r\n", "a OK"), ("b COMPRESS DEFLATE\r\n", "b OK")] {
        writer.write_all(command.as_bytes()).unwrap();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line.starts_with(tag) {
                break;
            }
            assert!(!line.starts_with(&tag[..2]), "{line}");
        }
    }
    assert!(reader.buffer().is_empty());
    let mut session = Deflated {
        stream,
        out: flate2::Compress::new(flate2::Compression::fast(), false),
        inflate: flate2::Decompress::new(false),
        plain: Vec::new(),
    };
    session.send(b"c SELECT INBOX\r\nd NOOP\r\n");
    assert!(session.until("c").contains("c OK [READ-WRITE]"));
    assert!(session.until("d").starts_with("d OK"));
    // 64 MiB of command line compress to some 64 KiB: inflated a read at a time, the line
    // limit (64 KiB) refuses it as it arrives, and the server holds none of it.
    let before = server.rss_kib();
    let mut bomb = b"e NOOP ".to_vec();
    bomb.resize(64 << 20, b'a');
    bomb.extend_from_slice(b"\r\n");
    session.send(&bomb);
    drop(bomb);
    assert!(session.until("e").starts_with("e BAD"));
    let grown = server.rss_kib().saturating_sub(before);
    assert!(grown < 16 * 1024, "the server grew by {grown} KiB");
    session.send(b"f COMPRESS DEFLATE\r\n");
    assert!(session.until("f").starts_with("f NO [COMPRESSIONACTIVE]"));
    session.send(b"g LOGOUT\r\n");
    assert!(session.until("g").starts_with("g OK"));
}

#[test]
fn imap4rev2_after_enable_speaks_utf8_names_and_drops_recent() {
    let server = server();
    let mut old = Imap::login(&server, "tyler");
    assert!(old.cmd("c", "CAPABILITY").lines()[0].split(' ').any(|c| c == "IMAP4rev2"));
    let mut imap = Imap::login(&server, "tyler");
    assert!(imap.cmd("e", "ENABLE IMAP4rev2").has("ENABLED IMAP4rev2"));
    // Names in UTF-8 both ways (a literal or quoted string); `&` is just an ampersand.
    let create = "a1 CREATE {9+}\r\nEntwürfe\r\n";
    imap.send(create.as_bytes());
    assert!(imap.until("a1").ok());
    assert!(imap.cmd("a2", "CREATE \"R&D\"").ok());
    let listed = imap.cmd("a3", "LIST \"\" \"*\"");
    assert!(listed.untagged.iter().any(|l| l.ends_with("{9}\r\nEntwürfe".as_bytes())), "{listed:?}");
    assert!(listed.has("LIST (\\HasNoChildren) \"/\" \"R&D\""), "{listed:?}");
    // A session that did not enable it sees the same mailboxes in modified UTF-7.
    let classic = old.cmd("b1", "LIST \"\" \"*\"");
    assert!(classic.has("LIST (\\HasNoChildren) \"/\" \"Entw&APw-rfe\"") && classic.has("LIST (\\HasNoChildren) \"/\" \"R&-D\""), "{classic:?}");
    // SELECT: no RECENT or UNSEEN, the mailbox's LIST instead; no \Recent in FLAGS.
    let message = "Subject: hi\r\n\r\nhello\r\n";
    imap.send(format!("a4 APPEND INBOX {{{}+}}\r\n{message}\r\n", message.len()).as_bytes());
    assert!(imap.until("a4").ok());
    let selected = imap.cmd("a5", "SELECT INBOX");
    assert!(
        selected.has("LIST () \"/\" \"INBOX\"") && !selected.lines().iter().any(|l| l.ends_with("RECENT") || l.contains("UNSEEN")),
        "{selected:?}"
    );
    assert_eq!(imap.cmd("a6", "FETCH 1 FLAGS").lines(), ["1 FETCH (FLAGS ())"]);
    // SEARCH answers with ESEARCH.
    assert_eq!(imap.cmd("a7", "SEARCH ALL").lines(), ["ESEARCH (TAG \"a7\") ALL 1"]);
    assert!(imap.cmd("a8", "STATUS \"Entwürfe\" (MESSAGES)").has("STATUS {9}\r\nEntwürfe (MESSAGES 0)"));
}

#[test]
fn client_text_echoed_in_a_status_line_cannot_start_a_new_response() {
    let server = server();
    let mut imap = Imap::login(&server, "tyler");
    assert!(imap.cmd("s", "SELECT INBOX").ok());
    // A tag-string, a charset and a mailbox name may be literals, and literals may hold line
    // ends: echoed in a status line they must not end it and forge the next response.
    let forged = "q\r\n* BYE forged";
    for (tag, command) in [
        ("x1", format!("x1 CANCELUPDATE {{{}+}}\r\n{forged}\r\n", forged.len())),
        ("x2", format!("x2 SORT (SUBJECT) {{{}+}}\r\n{forged} ALL\r\n", forged.len())),
        ("x3", format!("x3 SELECT {{{}+}}\r\n\u{ff}{forged}\r\n", forged.len() + 2)),
    ] {
        imap.send(command.as_bytes());
        let reply = imap.until(tag);
        assert!(reply.untagged.is_empty(), "{reply:?}");
        assert!(reply.tagged.contains("* BYE forged"), "the text is still there, on one line: {reply:?}");
    }
    assert!(imap.cmd("n", "NOOP").ok(), "the session goes on");
}
