//! The TRANSACTION and UPDATE states (RFC 1939 5, 6): the logged-in user's maildrop, listed
//! once at login and locked for the session (a second login gets `-ERR [IN-USE]`, RFC 2449
//! 8.1.1). Deletions are only marked until QUIT; a dropped connection deletes nothing.

use std::sync::Arc;

use wasmail_proto::dot::DotStuffer;
use wasmail_proto::pop3::Command;

use super::session::{ok_line, Flow, Maildrop, Session, State};
use crate::store::Listed;

impl Session {
    /// RETR and TOP: reads the message (on the blocking pool unless it is small and in
    /// memory) and sends it.
    pub(super) async fn send_message(&mut self, user: &str, read: Read) -> std::io::Result<()> {
        let store = Arc::clone(&self.ctx.store);
        let read_now = store.read_cached(user, &read.message);
        let (name, listed) = (user.to_string(), read.message.clone());
        let result = match read_now {
            Some(message) => Ok(Ok(message)),
            None => tokio::task::spawn_blocking(move || store.read(&name, &listed)).await,
        };
        match result {
            Ok(Ok(message)) => {
                let body = match read.lines {
                    None => message.as_slice(),
                    Some(lines) => top(&message, lines),
                };
                let octets = if read.lines.is_none() { read.message.size } else { body.len() as u64 };
                self.ok(&format!("{octets} octets"));
                // Stuffed and written a block at a time: the output never holds more than
                // FLUSH_AT and a block.
                let mut stuffer = DotStuffer::default();
                for block in body.chunks(64 * 1024) {
                    stuffer.push(self.conn.output(), block);
                    self.conn.flush_if_full().await?;
                }
                stuffer.finish(self.conn.output());
            }
            result => {
                let error = match result {
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                    Ok(Ok(_)) => unreachable!("matched above"),
                };
                tracing::warn!(user, id = read.message.id, error, "cannot read a message");
                self.err("[SYS/TEMP] cannot read the message");
            }
        }
        Ok(())
    }

    /// QUIT in TRANSACTION: the deletions happen now, durably, then the lock goes.
    pub(super) async fn update(&mut self) -> Flow {
        let State::Transaction(drop) = &self.state else { unreachable!("checked by the caller") };
        let user = drop.user.clone();
        let ids: Vec<Listed> = drop.messages.iter().zip(&drop.deleted).filter(|(_, d)| **d).map(|(m, _)| m.clone()).collect();
        let left = drop.messages.len() - ids.len();
        let store = Arc::clone(&self.ctx.store);
        let name = user.clone();
        let removed = tokio::task::spawn_blocking(move || store.remove(&name, &ids)).await;
        let hostname = self.ctx.config.hostname.clone();
        match removed {
            Ok(Ok(())) => self.ok(&format!("{hostname} POP3 server signing off ({left} messages left)")),
            _ => {
                tracing::error!(user, "POP3 deletions failed");
                self.err("[SYS/TEMP] Some deleted messages were not removed");
            }
        }
        self.locks.release(&user);
        self.state = State::Authorization(None);
        Flow::Close
    }
}

/// A message RETR or TOP is to send: `lines` of the body for TOP, all of it for RETR.
pub(super) struct Read {
    message: Listed,
    lines: Option<usize>,
}

impl Maildrop {
    /// The commands of the TRANSACTION state, which work on the listing; RETR and TOP return
    /// the message to read, which the session reads off the async task.
    pub(super) fn command(&mut self, command: Command, out: &mut Vec<u8>) -> Option<Read> {
        transaction(self, command, out)
    }
}

fn transaction(drop: &mut Maildrop, command: Command, out: &mut Vec<u8>) -> Option<Read> {
    let mut ok = |text: &str| out.extend_from_slice(ok_line(text).as_bytes());
    // Message numbers are 1-based; a deleted message may not be named (RFC 1939 5).
    let find = |drop: &Maildrop, n: u32| -> Result<usize, &'static str> {
        let i = (n as usize).checked_sub(1).filter(|&i| i < drop.messages.len()).ok_or("no such message")?;
        if drop.deleted[i] {
            return Err("message already deleted");
        }
        Ok(i)
    };
    match command {
        Command::Stat => {
            let (count, size) = drop.messages.iter().zip(&drop.deleted).filter(|(_, d)| !**d).fold((0, 0u64), |(c, s), (m, _)| (c + 1, s + m.size));
            ok(&format!("{count} {size}"));
        }
        Command::List(None) => {
            ok("scan listing follows");
            for (i, m) in drop.messages.iter().enumerate().filter(|(i, _)| !drop.deleted[*i]) {
                out.extend_from_slice(format!("{} {}\r\n", i + 1, m.size).as_bytes());
            }
            out.extend_from_slice(b".\r\n");
        }
        Command::List(Some(n)) => match find(drop, n) {
            Ok(i) => ok(&format!("{n} {}", drop.messages[i].size)),
            Err(e) => out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes()),
        },
        Command::Uidl(None) => {
            ok("unique-id listing follows");
            for (i, m) in drop.messages.iter().enumerate().filter(|(i, _)| !drop.deleted[*i]) {
                out.extend_from_slice(format!("{} {}\r\n", i + 1, uidl(&m.id)).as_bytes());
            }
            out.extend_from_slice(b".\r\n");
        }
        Command::Uidl(Some(n)) => match find(drop, n) {
            Ok(i) => ok(&format!("{n} {}", uidl(&drop.messages[i].id))),
            Err(e) => out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes()),
        },
        Command::Dele(n) => match find(drop, n) {
            Ok(i) => {
                drop.deleted[i] = true;
                ok(&format!("message {n} deleted"));
            }
            Err(e) => out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes()),
        },
        Command::Rset => {
            drop.deleted.iter_mut().for_each(|d| *d = false);
            ok(&format!("maildrop has {} messages", drop.messages.len()));
        }
        Command::Retr(n) | Command::Top(n, _) => {
            let lines = match command {
                Command::Top(_, lines) => Some(lines as usize),
                _ => None,
            };
            match find(drop, n) {
                Ok(i) => return Some(Read { message: drop.messages[i].clone(), lines }),
                Err(e) => out.extend_from_slice(format!("-ERR {e}\r\n").as_bytes()),
            }
        }
        Command::Noop => ok(""),
        Command::User(_) | Command::Pass(_) | Command::Apop(..) | Command::Auth(_) => {
            out.extend_from_slice(b"-ERR already logged in\r\n");
        }
        // RFC 2595 4: STLS only in the AUTHORIZATION state.
        Command::Stls => out.extend_from_slice(b"-ERR STLS is only allowed before login\r\n"),
        Command::Capa | Command::Quit => unreachable!("handled by the session"),
    }
    None
}

/// The header and the first `lines` lines of the body (RFC 1939 7, TOP).
fn top(message: &[u8], lines: usize) -> &[u8] {
    let header_end = message.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(message.len());
    let mut end = header_end;
    for _ in 0..lines {
        match memchr::memchr(b'\n', &message[end..]) {
            Some(i) => end += i + 1,
            None => {
                end = message.len();
                break;
            }
        }
    }
    &message[..end]
}

/// A UIDL value: the store's id when it fits RFC 1939's 0x21-0x7E, 1-70 characters; else a
/// stable hash of it.
fn uidl(id: &str) -> String {
    if !id.is_empty() && id.len() <= 70 && id.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return id.to_string();
    }
    // FNV-1a, 64 bits, as hex: stable across runs and versions.
    let mut hash: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x100000001b3);
    }
    format!("{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_stuffing_and_uidl() {
        let msg = b"Subject: a\r\n\r\none\r\n.two\r\nthree\r\n";
        assert_eq!(top(msg, 0), b"Subject: a\r\n\r\n");
        assert_eq!(top(msg, 2), b"Subject: a\r\n\r\none\r\n.two\r\n");
        assert_eq!(top(msg, 10), msg);
        // Stuffed in pieces of every size: the same as whole, CRLF added when missing.
        for size in 1..=msg.len() {
            let mut out = Vec::new();
            let mut stuffer = DotStuffer::default();
            msg.chunks(size).for_each(|piece| stuffer.push(&mut out, piece));
            stuffer.finish(&mut out);
            assert_eq!(out, b"Subject: a\r\n\r\none\r\n..two\r\nthree\r\n.\r\n", "pieces of {size}");
        }
        let mut out = Vec::new();
        let mut stuffer = DotStuffer::default();
        stuffer.push(&mut out, b".x");
        stuffer.finish(&mut out);
        assert_eq!(out, b"..x\r\n.\r\n");
        assert_eq!(uidl("1800000000.Q1-0.mx,S=10,W=12"), "1800000000.Q1-0.mx,S=10,W=12");
        assert_eq!(uidl(&"x".repeat(80)).len(), 16);
    }
}
