//! VERB, sendmail 8's verbose mode, as a plugin: `VERB` answers `250 2.0.0 Verbose mode`, and
//! from then on the replies to MAIL, RCPT and DATA/BDAT carry extra lines that say what the
//! server decided and which plugins ran.

use wasmail_plugin_sdk::{export_plugin, switch_on, CommandResult, Hook, Manifest, Plugin, ReplyContext};

#[derive(Default)]
struct Verb {
    /// Set by the VERB command, for the rest of the session.
    verbose: bool,
}

impl Plugin for Verb {
    fn manifest() -> Manifest {
        Manifest::new("verb", env!("CARGO_PKG_VERSION")).keyword("VERB", None).verb("VERB").hook(Hook::Reply).activated_by_verb()
    }

    fn on_command(&mut self, verb: String, args: String) -> CommandResult {
        switch_on(&verb, &args, &mut self.verbose, "Verbose mode")
    }

    fn on_reply(&mut self, context: ReplyContext) -> Vec<String> {
        if !self.verbose {
            return Vec::new();
        }
        let decided = match context.reply.code {
            200..=399 => "accepted",
            400..=499 => "deferred",
            _ => "refused",
        };
        let plugins = if context.plugins.is_empty() { "none".to_string() } else { context.plugins.join(", ") };
        vec![format!("{}: the server {decided} it ({})", context.verb, context.reply.code), format!("plugins run: {plugins}")]
    }
}

export_plugin!(Verb);
