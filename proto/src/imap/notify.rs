//! NOTIFY (RFC 5465): which events a client wants to hear of, for which mailboxes, without
//! asking. `NOTIFY NONE` turns them off; `NOTIFY SET` replaces what was set before.
//!
//! ```text
//! notify          = "NOTIFY" SP (notify-set / "NONE")
//! notify-set      = "SET" [SP "STATUS"] SP event-groups
//! event-group     = "(" filter-mailboxes SP events ")"
//! filter-mailboxes = "selected" / "selected-delayed" / "inboxes" / "personal" / "subscribed"
//!                  / ("subtree" / "mailboxes") SP one-or-more-mailbox
//! events          = ("(" event *(SP event) ")") / "NONE"
//! ```

use super::command::mailbox;
use super::fetch::{self, FetchAttr};
use super::parse::Parser;
use super::Error;

/// What `NOTIFY SET` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySet {
    /// `SET STATUS`: the STATUS of every mailbox the groups name, before the tagged reply.
    pub status: bool,
    /// The events of the selected mailbox (a `selected` or `selected-delayed` group).
    pub selected: Option<SelectedEvents>,
    /// The groups for the other mailboxes, in the client's order: a mailbox takes the events
    /// of the first group that names it, so `(mailboxes Spam NONE)` ahead of `(personal
    /// ...)` leaves Spam out.
    pub groups: Vec<EventGroup>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelectedEvents {
    /// `selected-delayed`: expunges wait for a command that allows them (RFC 5465 5.1).
    pub delayed: bool,
    pub events: Events,
    /// What to FETCH of each new message (`MessageNew (UID FLAGS ...)`), if anything.
    pub fetch: Option<Vec<FetchAttr>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventGroup {
    pub filter: Filter,
    pub events: Events,
}

/// Which mailboxes an event group is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Mailboxes mail may be delivered to.
    Inboxes,
    /// All of the user's mailboxes.
    Personal,
    Subscribed,
    /// These mailboxes and all their inferiors.
    Subtree(Vec<String>),
    /// Exactly these mailboxes.
    Mailboxes(Vec<String>),
}

/// A set of event types; names this module does not know are kept as [`Events::OTHER`], so
/// that the server can answer BADEVENT rather than BAD (the grammar allows any atom).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Events(pub u16);

impl Events {
    pub const MESSAGE_NEW: u16 = 1;
    pub const MESSAGE_EXPUNGE: u16 = 1 << 1;
    pub const FLAG_CHANGE: u16 = 1 << 2;
    pub const ANNOTATION_CHANGE: u16 = 1 << 3;
    pub const MAILBOX_NAME: u16 = 1 << 4;
    pub const SUBSCRIPTION_CHANGE: u16 = 1 << 5;
    pub const MAILBOX_METADATA_CHANGE: u16 = 1 << 6;
    pub const SERVER_METADATA_CHANGE: u16 = 1 << 7;
    /// An event name RFC 5465 does not define (an extension's).
    pub const OTHER: u16 = 1 << 15;

    /// The event names of RFC 5465, as written in BADEVENT.
    pub const NAMES: [(u16, &'static str); 8] = [
        (Self::MESSAGE_NEW, "MessageNew"),
        (Self::MESSAGE_EXPUNGE, "MessageExpunge"),
        (Self::FLAG_CHANGE, "FlagChange"),
        (Self::ANNOTATION_CHANGE, "AnnotationChange"),
        (Self::MAILBOX_NAME, "MailboxName"),
        (Self::SUBSCRIPTION_CHANGE, "SubscriptionChange"),
        (Self::MAILBOX_METADATA_CHANGE, "MailboxMetadataChange"),
        (Self::SERVER_METADATA_CHANGE, "ServerMetadataChange"),
    ];

    pub fn has(self, event: u16) -> bool {
        self.0 & event != 0
    }

    /// The names of the events of `mask` (for BADEVENT).
    pub fn names(mask: u16) -> Vec<&'static str> {
        Self::NAMES.iter().filter(|(bit, _)| mask & bit != 0).map(|(_, name)| *name).collect()
    }
}

/// Parses what follows `NOTIFY`: None for `NONE`.
pub(super) fn parse(p: &mut Parser<'_>) -> Result<Option<NotifySet>, Error> {
    p.space()?;
    let word = p.atom()?.to_ascii_uppercase();
    match word.as_str() {
        "NONE" => Ok(None),
        "SET" => set(p).map(Some),
        other => Err(Error::Syntax(format!("NOTIFY takes SET or NONE, not {other}"))),
    }
}

fn set(p: &mut Parser<'_>) -> Result<NotifySet, Error> {
    p.space()?;
    let status = p.keyword("STATUS");
    if status {
        p.space()?;
    }
    let mut out = NotifySet { status, selected: None, groups: Vec::new() };
    loop {
        p.open()?;
        let filter = p.atom()?.to_ascii_lowercase();
        p.space()?;
        match filter.as_str() {
            "selected" | "selected-delayed" => {
                if out.selected.is_some() {
                    return Err(Error::Syntax("NOTIFY names the selected mailbox twice".into()));
                }
                out.selected = Some(selected_events(p, filter == "selected-delayed")?);
            }
            _ => {
                let filter = match filter.as_str() {
                    "inboxes" => Filter::Inboxes,
                    "personal" => Filter::Personal,
                    "subscribed" => Filter::Subscribed,
                    "subtree" | "mailboxes" => {
                        let list = mailboxes(p)?;
                        p.space()?;
                        if filter == "subtree" {
                            Filter::Subtree(list)
                        } else {
                            Filter::Mailboxes(list)
                        }
                    }
                    other => return Err(Error::Syntax(format!("unknown NOTIFY mailbox filter {other}"))),
                };
                let events = events(p, None)?;
                out.groups.push(EventGroup { filter, events });
            }
        }
        p.close()?;
        if !p.eat(b' ') {
            break;
        }
    }
    Ok(out)
}

/// `mailbox` or `(mailbox *(SP mailbox))`.
fn mailboxes(p: &mut Parser<'_>) -> Result<Vec<String>, Error> {
    if p.peek() != Some(b'(') {
        return Ok(vec![mailbox(p)?]);
    }
    p.open()?;
    let mut out = vec![mailbox(p)?];
    while p.eat(b' ') {
        out.push(mailbox(p)?);
    }
    p.close()?;
    Ok(out)
}

fn selected_events(p: &mut Parser<'_>, delayed: bool) -> Result<SelectedEvents, Error> {
    let mut fetch = None;
    let events = events(p, Some(&mut fetch))?;
    // RFC 5465 5.2-5.4: new and expunged messages go together (sequence numbers are only
    // kept right with both), and flag changes need both.
    let both = Events::MESSAGE_NEW | Events::MESSAGE_EXPUNGE;
    if events.0 & both != 0 && events.0 & both != both {
        return Err(Error::Syntax("MessageNew and MessageExpunge go together for the selected mailbox".into()));
    }
    if events.has(Events::FLAG_CHANGE | Events::ANNOTATION_CHANGE) && events.0 & both != both {
        return Err(Error::Syntax("FlagChange needs MessageNew and MessageExpunge for the selected mailbox".into()));
    }
    Ok(SelectedEvents { delayed, events, fetch })
}

/// `NONE` or `(event *(SP event))`; `MessageNew` may be followed by a list of FETCH items
/// where `fetch` is given (the selected mailbox only).
fn events(p: &mut Parser<'_>, mut fetch: Option<&mut Option<Vec<FetchAttr>>>) -> Result<Events, Error> {
    if p.keyword("NONE") {
        return Ok(Events::default());
    }
    p.open()?;
    let mut events = Events::default();
    loop {
        let name = p.atom()?;
        let bit = Events::NAMES.iter().find(|(_, n)| n.eq_ignore_ascii_case(name)).map(|(bit, _)| *bit).unwrap_or(Events::OTHER);
        events.0 |= bit;
        if bit == Events::MESSAGE_NEW && p.peek() == Some(b' ') && p.peek_at(1) == Some(b'(') {
            let Some(slot) = fetch.as_deref_mut() else {
                return Err(Error::Syntax("FETCH items come with MessageNew of the selected mailbox only".into()));
            };
            p.space()?;
            *slot = Some(fetch::parse_items(p)?);
        }
        if !p.eat(b' ') {
            break;
        }
    }
    p.close()?;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::super::command::{parse, Command};
    use super::*;

    fn notify(line: &str) -> Result<Option<NotifySet>, Error> {
        match parse(line.as_bytes()) {
            Ok(request) => match request.command {
                Command::Notify(set) => Ok(set),
                other => panic!("not NOTIFY: {other:?}"),
            },
            Err((error, _)) => Err(error),
        }
    }

    #[test]
    fn none_and_set() {
        assert_eq!(notify("a NOTIFY NONE\r\n"), Ok(None));
        let set = notify("a NOTIFY SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge)) (subtree (Lists \"Other Box\") (MessageNew FlagChange)) (mailboxes Spam NONE) (personal (MailboxName SubscriptionChange))\r\n")
            .unwrap()
            .unwrap();
        assert!(set.status);
        let selected = set.selected.unwrap();
        assert!(!selected.delayed);
        assert_eq!(selected.events.0, Events::MESSAGE_NEW | Events::MESSAGE_EXPUNGE);
        assert_eq!(selected.fetch, Some(vec![FetchAttr::Uid, FetchAttr::Flags]));
        assert_eq!(set.groups.len(), 3);
        assert_eq!(set.groups[0].filter, Filter::Subtree(vec!["Lists".into(), "Other Box".into()]));
        assert_eq!(set.groups[0].events.0, Events::MESSAGE_NEW | Events::FLAG_CHANGE);
        assert_eq!(set.groups[1], EventGroup { filter: Filter::Mailboxes(vec!["Spam".into()]), events: Events::default() });
        assert_eq!(set.groups[2].filter, Filter::Personal);
        let set = notify("a notify set (selected-delayed (messagenew messageexpunge flagchange)) (inboxes (QuotaChange))\r\n").unwrap().unwrap();
        assert!(set.selected.unwrap().delayed);
        assert!(set.groups[0].events.has(Events::OTHER));
    }

    #[test]
    fn bad_sets() {
        for line in [
            "a NOTIFY\r\n",
            "a NOTIFY SET\r\n",
            "a NOTIFY SET (selected (MessageNew))\r\n",
            "a NOTIFY SET (selected (FlagChange))\r\n",
            "a NOTIFY SET (selected NONE) (selected-delayed NONE)\r\n",
            "a NOTIFY SET (personal (MessageNew (UID)))\r\n",
            "a NOTIFY SET (everything (MessageNew))\r\n",
            "a NOTIFY SET (personal ())\r\n",
            "a NOTIFY SET (subtree (MessageNew))\r\n",
        ] {
            assert!(matches!(notify(line), Err(Error::Syntax(_))), "{line}");
        }
    }
}
