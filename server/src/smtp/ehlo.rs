//! HELO and EHLO (RFC 5321 4.1.1.1): greet, reset the transaction, list the extensions.

use super::proto::Reply;
use super::session::{Flow, Greeting, Session};
use crate::plugin::{Decision, HeloInfo, Hook};

impl Session {
    pub(super) async fn handle_helo(&mut self, name: String, extended: bool) -> Flow {
        // RFC 5321 4.1.4: a later HELO/EHLO resets the session like RSET.
        self.end_transaction().await;
        if self.plugins.wants(Hook::Helo) {
            match self.plugins.on_helo(&HeloInfo { name: name.clone(), extended }).await {
                Decision::Refuse(reply) => {
                    self.reply(reply);
                    return Flow::Continue;
                }
                Decision::Disconnect(reply) => {
                    self.reply(reply);
                    return Flow::Close;
                }
                Decision::Continue | Decision::Accept | Decision::Discard => {}
            }
        }
        let first = format!("{} Hello {} [{}]", self.hostname(), name, self.peer.ip());
        let reply = if extended { Reply::multiline(250, None, self.ehlo_lines(first)) } else { Reply::plain(250, first) };
        self.reply(reply);
        self.greeting = Some(Greeting { name, extended });
        Flow::Continue
    }

    /// The EHLO keywords. Only what works is listed.
    fn ehlo_lines(&self, first: String) -> Vec<String> {
        let smtp = &self.ctx.config.smtp;
        let mut lines = vec![
            first,
            "PIPELINING".into(),
            format!("SIZE {}", smtp.max_message_size.0),
            "8BITMIME".into(),
            "BINARYMIME".into(),
            "CHUNKING".into(),
            "ENHANCEDSTATUSCODES".into(),
            "DSN".into(),
            "ETRN".into(),
            "SMTPUTF8".into(),
            "HELP".into(),
        ];
        if self.tls_offered() {
            lines.push("STARTTLS".into());
        }
        // RFC 4954: AUTH only where a password may travel (over TLS, or as [auth] plaintext says).
        if self.password_allowed() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        if smtp.vrfy {
            lines.push("VRFY".into());
        }
        if smtp.expn {
            lines.push("EXPN".into());
        }
        lines.extend(self.ctx.plugins.ehlo_lines());
        lines
    }
}
