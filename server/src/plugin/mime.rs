//! MIME handlers (the `mime-handler` export): after the data hooks, each plugin whose manifest
//! lists `mime-types` is called for every leaf part whose type matches, on the session's
//! instance. Plugins run in order, one after the other, and each sees the message as the ones
//! before it left it: after a plugin changed something the message is written out and parsed
//! again.
//!
//! A failure (trap, timeout, memory, an invalid answer) follows the plugin's policy: `open`
//! drops that plugin's answers for this message and goes on with the next plugin, `closed`
//! refuses the message with 451 4.3.0.

use wasmail_mime::{self as mime, transfer, Action, Leaf, Limits, Message};
use wasmail_proto::reply::Reply;

use super::bindings::{mime_types as m, types as wit};
use super::session::{Call, Output, Reach, SessionPlugins};
use super::validate::{self, Decision};

/// A removal note longer than this is an invalid answer.
const MAX_NOTE: usize = 10_000;
/// Header fields one answer may add.
const MAX_ADD_HEADERS: usize = 50;

/// What the MIME handlers decided.
#[derive(Debug)]
pub enum MimeOutcome {
    /// Store the message: the rewritten content if some handler changed it.
    Pass(Option<Vec<u8>>),
    /// Refuse it with this reply.
    Refuse(Reply),
}

/// The bounds the handlers work within.
pub struct MimeLimits {
    /// The parser's limits (the message already passed them once).
    pub parse: Limits,
    /// Decoded bodies above this are not passed.
    pub body: usize,
    /// A replacement body above this is an invalid answer.
    pub max_message: usize,
}

impl SessionPlugins {
    /// Whether any plugin handles MIME parts now.
    pub fn wants_mime(&self) -> bool {
        !self.reached(Reach::Mime).is_empty()
    }

    /// Runs the MIME handlers over `content`.
    pub async fn on_mime(&mut self, content: &[u8], limits: &MimeLimits) -> MimeOutcome {
        let mut current: Option<Vec<u8>> = None;
        for index in self.reached(Reach::Mime) {
            let text = current.as_deref().unwrap_or(content);
            let message = match mime::parse(text, &limits.parse) {
                Ok(message) => message,
                Err(e) => {
                    // Only a handler's own changes (added header fields) can get here.
                    tracing::warn!(
                        plugin = self.registry.plugins[index].name(),
                        "message no longer within MIME limits ({e}); later handlers skipped"
                    );
                    break;
                }
            };
            match self.handle_parts(index, &message, limits).await {
                Ok(None) => {}
                Ok(Some((actions, headers))) => {
                    let changed = actions.iter().filter(|(_, a)| *a != Action::Keep).count();
                    self.record(index, &format!("{changed} part(s) changed"));
                    current = Some(mime::rewrite(&message, &actions, &headers));
                }
                Err(Some(reply)) => return MimeOutcome::Refuse(reply),
                Err(None) => {}
            }
        }
        MimeOutcome::Pass(current)
    }

    /// Calls plugin `index` for each matching part. Ok(None): nothing to change;
    /// Err(Some(reply)): refuse the message; Err(None): the plugin failed under `open`.
    #[allow(clippy::type_complexity)]
    async fn handle_parts(
        &mut self,
        index: usize,
        message: &Message<'_>,
        limits: &MimeLimits,
    ) -> Result<Option<(Vec<(usize, Action)>, Vec<(String, String)>)>, Option<Reply>> {
        let patterns = self.registry.plugins[index].manifest.mime_types.clone();
        let mut actions = Vec::new();
        let mut headers = Vec::new();
        for (leaf_index, leaf) in message.leaves().iter().enumerate() {
            if !patterns.iter().any(|p| leaf.part.content_type.matches(p)) {
                continue;
            }
            // A body the plugin's memory could not take is left out, as one over the limit.
            let info = part_info(message, leaf, limits.body.min(self.registry.plugins[index].argument_room()));
            let answer = self
                .ask(index, &Call::Part(&info), |output| {
                    let Output::Part(result) = output else { unreachable!("on-part returns a part result") };
                    check(result, limits.max_message)
                })
                .await;
            match answer? {
                Checked::Refuse(reply) => {
                    self.record(index, if reply.code >= 500 { "reject" } else { "tempfail" });
                    return Err(Some(reply));
                }
                Checked::Part(action, add) => {
                    if action != Action::Keep {
                        actions.push((leaf_index, action));
                    }
                    headers.extend(add);
                }
            }
        }
        Ok((!actions.is_empty() || !headers.is_empty()).then_some((actions, headers)))
    }
}

/// The WIT record for one part.
fn part_info(message: &Message, leaf: &Leaf, body_limit: usize) -> m::PartInfo {
    let part = leaf.part;
    let raw = &message.content[part.body.clone()];
    let body = transfer::decode(&part.encoding, raw);
    let size = body.len() as u64;
    m::PartInfo {
        section: leaf.section.clone(),
        content_type: part.content_type.kind.clone(),
        content_subtype: part.content_type.subtype.clone(),
        params: part.content_type.params.iter().map(|p| m::ParamValue { name: p.name.clone(), value: p.value.clone() }).collect(),
        disposition: part.disposition.as_ref().map(|d| d.kind.clone()),
        filename: part.filename().map(str::to_string),
        transfer_encoding: part.encoding.as_str().to_ascii_lowercase(),
        headers: part.fields.iter().map(|f| wit::Header { name: f.name.clone(), value: mime::header::unfolded_value(message.content, f) }).collect(),
        size,
        body: (body.len() <= body_limit).then_some(body),
        in_attached_message: leaf.in_attached_message,
    }
}

/// A checked answer.
enum Checked {
    Part(Action, Vec<(String, String)>),
    Refuse(Reply),
}

/// Never trust the guest: checks every value of a part result.
fn check(result: m::PartResult, max_body: usize) -> Result<Checked, String> {
    if result.add_headers.len() > MAX_ADD_HEADERS {
        return Err(format!("more than {MAX_ADD_HEADERS} header fields added"));
    }
    for h in &result.add_headers {
        validate::header(h)?;
    }
    let headers = result.add_headers.into_iter().map(|h| (h.name, h.value)).collect();
    let action = match result.action {
        m::PartAction::Keep => Action::Keep,
        m::PartAction::Replace(r) => {
            if r.body.len() > max_body {
                return Err(format!("replacement body larger than {max_body} octets"));
            }
            if let Some(ct) = &r.content_type {
                validate::header(&wit::Header { name: "Content-Type".into(), value: ct.clone() })?;
                if mime::value::content_type(ct).is_none() {
                    return Err(format!("bad content type {ct:?}"));
                }
            }
            Action::Replace { content: r.body, content_type: r.content_type }
        }
        m::PartAction::Remove(note) => {
            if note.len() > MAX_NOTE || note.contains('\0') {
                return Err(format!("removal note longer than {MAX_NOTE} octets or with NUL"));
            }
            Action::Remove { note }
        }
        m::PartAction::Reject(reply) => match validate::verdict(&wit::Verdict::Reject(reply))? {
            Decision::Refuse(reply) => return Ok(Checked::Refuse(reply)),
            _ => unreachable!("a checked reject is a refusal"),
        },
        m::PartAction::Tempfail(reply) => match validate::verdict(&wit::Verdict::Tempfail(reply))? {
            Decision::Refuse(reply) => return Ok(Checked::Refuse(reply)),
            _ => unreachable!("a checked tempfail is a refusal"),
        },
    };
    Ok(Checked::Part(action, headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(action: m::PartAction) -> m::PartResult {
        m::PartResult { action, add_headers: Vec::new() }
    }

    #[test]
    fn answers_are_checked() {
        let bad_ct = m::Replacement { body: b"x".to_vec(), content_type: Some("not a type".into()) };
        assert!(check(result(m::PartAction::Replace(bad_ct)), 100).is_err());
        let injected = m::Replacement { body: b"x".to_vec(), content_type: Some("text/plain\r\nBcc: x".into()) };
        assert!(check(result(m::PartAction::Replace(injected)), 100).is_err());
        let big = m::Replacement { body: vec![b'x'; 101], content_type: None };
        assert!(check(result(m::PartAction::Replace(big)), 100).is_err());
        assert!(check(result(m::PartAction::Remove("x".repeat(MAX_NOTE + 1))), 100).is_err());
        let wrong_class = wit::Reply { code: 451, enhanced: None, lines: vec!["no".into()] };
        assert!(check(result(m::PartAction::Reject(wrong_class)), 100).is_err());
        let ok = wit::Reply { code: 554, enhanced: Some(wit::EnhancedCode { class: 5, subject: 7, detail: 1 }), lines: vec!["no".into()] };
        assert!(matches!(check(result(m::PartAction::Reject(ok)), 100), Ok(Checked::Refuse(r)) if r.code == 554));
        let mut headers = result(m::PartAction::Keep);
        headers.add_headers.push(wit::Header { name: "X-A".into(), value: "1\nX-B: 2".into() });
        assert!(check(headers, 100).is_err());
    }
}
