//! A raw IMAP client for the tests: commands go out exactly as written, responses are read
//! whole (literals included), so a test sees what a client library would hide.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::Server;

/// A raw IMAP client: commands out as given, responses read whole (literals included).
pub struct Imap {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

/// A command's responses: the untagged (and continuation) ones, then the tagged status line.
#[derive(Debug)]
pub struct Reply {
    pub untagged: Vec<Vec<u8>>,
    pub tagged: String,
}

impl Reply {
    /// The untagged responses as text (lossy), without the `* `.
    pub fn lines(&self) -> Vec<String> {
        self.untagged.iter().map(|l| String::from_utf8_lossy(l.strip_prefix(b"* ").unwrap_or(l)).into_owned()).collect()
    }

    pub fn has(&self, line: &str) -> bool {
        self.lines().iter().any(|l| l == line)
    }

    pub fn ok(&self) -> bool {
        self.tagged.split(' ').nth(1) == Some("OK")
    }
}

impl Imap {
    pub fn connect(server: &Server) -> Imap {
        let stream = TcpStream::connect(server.imap.expect("an IMAP listener")).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let mut imap = Imap { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream };
        let greeting = imap.response();
        let greeting = String::from_utf8_lossy(&greeting).into_owned();
        assert!(greeting.starts_with("* OK ") && greeting.contains("IMAP4rev1 server ready"), "{greeting}");
        imap
    }

    pub fn login(server: &Server, user: &str) -> Imap {
        let mut imap = Imap::connect(server);
        let reply = imap.cmd("l1", &format!("LOGIN {user} secret"));
        assert!(reply.ok(), "{reply:?}");
        imap
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    /// One response: a line, with any literals it announces read into it.
    pub fn response(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line).unwrap();
            assert!(line.ends_with(b"\r\n"), "response cut short: {:?}", String::from_utf8_lossy(&out));
            let body = &line[..line.len() - 2];
            out.extend_from_slice(body);
            let size = body
                .strip_suffix(b"}")
                .and_then(|b| b.iter().rposition(|&c| c == b'{').map(|i| &b[i + 1..]))
                .and_then(|digits| std::str::from_utf8(digits).ok()?.parse::<usize>().ok());
            match size {
                Some(size) => {
                    out.extend_from_slice(b"\r\n");
                    let mut literal = vec![0u8; size];
                    self.reader.read_exact(&mut literal).unwrap();
                    out.extend_from_slice(&literal);
                }
                None => return out,
            }
        }
    }

    /// Reads responses up to the one tagged `tag`.
    pub fn until(&mut self, tag: &str) -> Reply {
        let mut untagged = Vec::new();
        loop {
            let response = self.response();
            if response.starts_with(format!("{tag} ").as_bytes()) {
                return Reply { untagged, tagged: String::from_utf8_lossy(&response).into_owned() };
            }
            untagged.push(response);
        }
    }

    pub fn cmd(&mut self, tag: &str, command: &str) -> Reply {
        self.send(format!("{tag} {command}\r\n").as_bytes());
        self.until(tag)
    }
}
