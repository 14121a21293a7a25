//! HELO and EHLO (RFC 5321 4.1.1.1): greet, reset the transaction, list the extensions.

use wasmail_proto::smtp::{Keyword, Reply};

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

    /// The EHLO keywords. Only what works is listed: each core keyword is decided here, and
    /// the match has no default, so a keyword added to the list must be decided too.
    fn ehlo_lines(&self, first: String) -> Vec<String> {
        let smtp = &self.ctx.config.smtp;
        let mut lines = vec![first];
        for keyword in Keyword::ALL {
            let name = || keyword.name().to_string();
            let line = match keyword {
                Keyword::Size => Some(format!("SIZE {}", smtp.max_message_size.0)),
                // RFC 4954: AUTH only where a password may travel (over TLS, or as [auth]
                // plaintext says).
                Keyword::Auth => self.password_allowed().then(|| "AUTH PLAIN LOGIN".to_string()),
                Keyword::StartTls => self.tls_offered().then(name),
                Keyword::Vrfy => smtp.vrfy.then(name),
                Keyword::Expn => smtp.expn.then(name),
                Keyword::Pipelining
                | Keyword::EightBitMime
                | Keyword::BinaryMime
                | Keyword::Chunking
                | Keyword::EnhancedStatusCodes
                | Keyword::Dsn
                | Keyword::Etrn
                | Keyword::SmtpUtf8
                | Keyword::Help => Some(name()),
            };
            lines.extend(line);
        }
        lines.extend(self.ctx.plugins.ehlo_lines());
        lines
    }
}
