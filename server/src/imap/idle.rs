//! IDLE (RFC 2177): the client waits; the server sends EXISTS, EXPUNGE and FETCH FLAGS as the
//! selected mailbox changes (a delivery over SMTP, another session's STORE), until DONE. The
//! idle timer restarts with each IDLE, as the RFC expects clients to re-issue it. What NOTIFY
//! follows in other mailboxes is told meanwhile too.

use wasmail_proto::imap::Framed;

use super::session::{Next, Outcome, Session};

impl Session {
    pub(super) async fn idle(&mut self) -> std::io::Result<Outcome> {
        self.conn.send(b"+ idling\r\n");
        let timeout = self.ctx.config.imap.idle_timeout.0;
        let deadline = tokio::time::Instant::now() + timeout;
        // Changes that happened since the last command show at once.
        self.refresh(true).await;
        loop {
            self.flush().await?;
            if let Some(frame) = self.take_frame() {
                return Ok(match frame {
                    Framed::Command(line) if line.trim_ascii().eq_ignore_ascii_case(b"DONE") => Outcome::ok("IDLE terminated"),
                    _ => Outcome::bad("Expected DONE"),
                });
            }
            let mut changes = match self.selected.as_ref() {
                Some(selected) => selected.changes.clone(),
                None => {
                    // Authenticated but nothing selected: only DONE can end it.
                    let (_tx, rx) = tokio::sync::watch::channel(0);
                    rx
                }
            };
            let mut stage = self.stage.clone();
            // NOTIFY's events for other mailboxes are told during IDLE too (RFC 5465 4).
            let mut events = self.take_events();
            let woke = tokio::select! {
                read = self.read_more() => Woke::Read(read),
                changed = changes.changed(), if self.selected.is_some() => Woke::Selected(changed.is_ok()),
                event = super::notify::next_event(&mut events) => Woke::Event(event),
                _ = crate::lifecycle::reached(&mut stage, crate::lifecycle::Stage::Closing) => Woke::Closing,
                _ = tokio::time::sleep_until(deadline) => Woke::TimedOut,
            };
            self.restore_events(events);
            match woke {
                Woke::Read(read) => match read? {
                    None => {}
                    Some(Next::ShuttingDown) => {
                        self.untagged("BYE Server shutting down");
                        self.logout = true;
                        return Ok(Outcome::ok("IDLE terminated"));
                    }
                    Some(_) => {
                        self.logout = true;
                        return Ok(Outcome::bad("Connection closed during IDLE"));
                    }
                },
                Woke::Selected(changed) => {
                    if changed {
                        if let Some(selected) = self.selected.as_mut() {
                            selected.changes.borrow_and_update();
                        }
                        self.refresh(true).await;
                    }
                }
                Woke::Event(event) => self.received(event).await,
                Woke::Closing => {
                    self.untagged("BYE Server shutting down");
                    self.logout = true;
                    return Ok(Outcome::ok("IDLE terminated"));
                }
                Woke::TimedOut => {
                    self.untagged("BYE Autologout; idle for too long");
                    self.logout = true;
                    return Ok(Outcome::ok("IDLE terminated by timeout"));
                }
            }
        }
    }
}

/// What woke an idling session.
enum Woke {
    Read(std::io::Result<Option<Next>>),
    /// The selected mailbox changed (false: its channel closed).
    Selected(bool),
    Event(Result<crate::store::MailboxEvent, tokio::sync::broadcast::error::RecvError>),
    Closing,
    TimedOut,
}
