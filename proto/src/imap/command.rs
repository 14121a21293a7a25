//! Commands (RFC 3501 6 and the extensions Wasmail offers), parsed from one whole command.

use super::fetch::{self, FetchAttr};
use super::parse::Parser;
use super::search::{self, SearchKey};
use super::sequence::SequenceSet;
use super::{Error, Flag};

/// A tagged command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub tag: String,
    pub command: Command,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreMode {
    Replace,
    Add,
    Remove,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    /// The mailbox's size in octets, the sum of its messages' RFC822.SIZE (RFC 8438).
    Size,
    /// RFC 7162 3.1.2.
    HighestModSeq,
    /// Messages with \Deleted (RFC 9051 6.3.11).
    Deleted,
    /// The octets they hold (RFC 9208 4.3).
    DeletedStorage,
}

/// What SELECT and EXAMINE may ask beyond the mailbox (RFC 7162 3.1.8, 3.2.5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelectParams {
    /// `(CONDSTORE)`: mod-sequences from now on.
    pub condstore: bool,
    /// `(QRESYNC (...))`: what changed since the client's last visit, at once.
    pub qresync: Option<Qresync>,
}

/// The client's memory of a mailbox, for QRESYNC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    /// The UIDVALIDITY the client knew: if it changed, the client must start over, and the
    /// rest is ignored.
    pub uid_validity: u32,
    /// The last HIGHESTMODSEQ the client saw.
    pub modseq: u64,
    /// The UIDs the client knows (all, if None).
    pub known_uids: Option<SequenceSet>,
    /// Message numbers and the UIDs the client has for them, to help a server that forgot
    /// its expunges (this one keeps them, so it reads them and needs them not).
    pub seq_match: Option<(SequenceSet, SequenceSet)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Capability,
    Noop,
    Logout,
    StartTls,
    /// AUTHENTICATE mechanism, with the SASL-IR initial response (RFC 4959) if given.
    Authenticate {
        mechanism: String,
        initial: Option<String>,
    },
    Login {
        user: String,
        password: String,
    },
    /// SELECT (`read_only` false) and EXAMINE (true). Mailbox names are UTF-8 here, decoded
    /// from modified UTF-7, with INBOX in any case made `INBOX`.
    Select {
        mailbox: String,
        read_only: bool,
        params: SelectParams,
    },
    Create(String),
    Delete(String),
    Rename {
        from: String,
        to: String,
    },
    Subscribe(String),
    Unsubscribe(String),
    /// LIST and (with `subscribed`) LSUB; the pattern is UTF-8 like names.
    List {
        reference: String,
        pattern: String,
        subscribed: bool,
    },
    /// LIST with selection options, several patterns or return options (RFC 5258
    /// LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE).
    ListExtended {
        selection: ListSelection,
        reference: String,
        patterns: Vec<String>,
        returns: ListReturn,
    },
    Status {
        mailbox: String,
        items: Vec<StatusItem>,
    },
    /// APPEND of one message, or several at once (RFC 3502 MULTIAPPEND).
    Append {
        mailbox: String,
        messages: Vec<AppendMessage>,
    },
    Check,
    Close,
    Unselect,
    Expunge,
    /// UID EXPUNGE (RFC 4315).
    UidExpunge(SequenceSet),
    /// SEARCH with its CHARSET, if one was named (the session refuses those it lacks), and
    /// its RETURN options (RFC 4731 ESEARCH), if any were given: then the answer is ESEARCH.
    Search {
        uid: bool,
        ret: Option<Vec<SearchReturn>>,
        charset: Option<String>,
        key: SearchKey,
    },
    /// FETCH, with the modifiers of RFC 7162: only messages changed since a mod-sequence,
    /// and (UID FETCH only) VANISHED (EARLIER) for those expunged since.
    Fetch {
        uid: bool,
        set: SequenceSet,
        items: Vec<FetchAttr>,
        changed_since: Option<u64>,
        vanished: bool,
    },
    /// SORT (RFC 5256, with SORT=DISPLAY's keys, RFC 5957); with RETURN options, answered
    /// with ESEARCH (ESORT, RFC 5267).
    Sort {
        uid: bool,
        ret: Option<Vec<SearchReturn>>,
        criteria: Vec<SortCriterion>,
        charset: String,
        key: SearchKey,
    },
    /// THREAD (RFC 5256).
    Thread {
        uid: bool,
        algorithm: ThreadAlgorithm,
        charset: String,
        key: SearchKey,
    },
    /// STORE, with UNCHANGEDSINCE (RFC 7162 3.1.3) if given.
    Store {
        uid: bool,
        set: SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: Vec<Flag>,
        unchanged_since: Option<u64>,
    },
    /// COPY and (with `remove`) MOVE (RFC 6851).
    Copy {
        uid: bool,
        set: SequenceSet,
        mailbox: String,
        remove: bool,
    },
    Idle,
    Namespace,
    /// ID (RFC 2971): the client's fields, or None for NIL.
    Id(Option<Vec<(String, Option<String>)>>),
    Enable(Vec<String>),
    /// NOTIFY SET (RFC 5465), or NOTIFY NONE (None).
    Notify(Option<super::notify::NotifySet>),
    /// CANCELUPDATE (RFC 5267): stop the updates of these searches, by tag.
    CancelUpdate(Vec<String>),
    /// COMPRESS DEFLATE (RFC 4978).
    Compress,
    /// GETQUOTA root (RFC 9208 4.2).
    GetQuota(String),
    /// GETQUOTAROOT mailbox (RFC 9208 4.3).
    GetQuotaRoot(String),
    /// SETQUOTA (RFC 9208 4.1): read, and refused here (limits come from the configuration).
    SetQuota(String),
}

/// Parses one whole command as [`super::framing`] delivers it. `Err(_, tag)` carries the tag
/// when there was one, for the BAD reply.
pub fn parse(input: &[u8]) -> Result<Request, (Error, Option<String>)> {
    parse_with(input, false)
}

/// [`parse`], with mailbox names in UTF-8 when `utf8_names` (a session that enabled
/// IMAP4rev2, RFC 9051 5.1) rather than modified UTF-7.
pub fn parse_with(input: &[u8], utf8_names: bool) -> Result<Request, (Error, Option<String>)> {
    let mut p = Parser::new(input);
    p.utf8_names = utf8_names;
    let tag = p.tag().map_err(|e| (e, None))?.to_string();
    let command = command(&mut p).and_then(|c| p.end().map(|()| c)).map_err(|e| (e, Some(tag.clone())))?;
    Ok(Request { tag, command })
}

fn command(p: &mut Parser<'_>) -> Result<Command, Error> {
    p.space()?;
    let name = p.atom()?.to_ascii_uppercase();
    let mut uid = false;
    let name = if name == "UID" {
        uid = true;
        p.space()?;
        let sub = p.atom()?.to_ascii_uppercase();
        if !matches!(sub.as_str(), "COPY" | "MOVE" | "FETCH" | "SEARCH" | "STORE" | "EXPUNGE" | "SORT" | "THREAD") {
            return Err(Error::Syntax(format!("UID {sub} is not a UID command")));
        }
        sub
    } else {
        name
    };
    Ok(match name.as_str() {
        "CAPABILITY" => Command::Capability,
        "NOOP" => Command::Noop,
        "LOGOUT" => Command::Logout,
        "STARTTLS" => Command::StartTls,
        "CHECK" => Command::Check,
        "CLOSE" => Command::Close,
        "UNSELECT" => Command::Unselect,
        "IDLE" => Command::Idle,
        "NAMESPACE" => Command::Namespace,
        "EXPUNGE" if uid => {
            p.space()?;
            Command::UidExpunge(SequenceSet::parse(p)?)
        }
        "EXPUNGE" => Command::Expunge,
        "AUTHENTICATE" => {
            p.space()?;
            let mechanism = p.atom()?.to_ascii_uppercase();
            let initial = if p.eat(b' ') {
                let text = p.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
                if text.is_empty() {
                    return Err(Error::Syntax("bad initial response".into()));
                }
                Some(String::from_utf8_lossy(text).into_owned())
            } else {
                None
            };
            Command::Authenticate { mechanism, initial }
        }
        "LOGIN" => {
            p.space()?;
            let user = p.astring_text()?;
            p.space()?;
            let password = p.astring_text()?;
            Command::Login { user, password }
        }
        "SELECT" | "EXAMINE" => {
            p.space()?;
            let mailbox = mailbox(p)?;
            let params = if p.eat(b' ') { select_params(p)? } else { SelectParams::default() };
            Command::Select { mailbox, read_only: name == "EXAMINE", params }
        }
        "CREATE" | "DELETE" | "SUBSCRIBE" | "UNSUBSCRIBE" => {
            p.space()?;
            let mailbox = mailbox(p)?;
            match name.as_str() {
                "CREATE" => Command::Create(mailbox),
                "DELETE" => Command::Delete(mailbox),
                "SUBSCRIBE" => Command::Subscribe(mailbox),
                _ => Command::Unsubscribe(mailbox),
            }
        }
        "RENAME" => {
            p.space()?;
            let from = mailbox(p)?;
            p.space()?;
            Command::Rename { from, to: mailbox(p)? }
        }
        "LSUB" => {
            p.space()?;
            let reference = decode_pattern(p.utf8_names, &p.astring()?)?;
            p.space()?;
            let pattern = decode_pattern(p.utf8_names, &p.list_mailbox()?)?;
            Command::List { reference, pattern, subscribed: true }
        }
        "LIST" => list(p)?,
        "STATUS" => {
            p.space()?;
            let mailbox = mailbox(p)?;
            p.space()?;
            Command::Status { mailbox, items: status_items(p)? }
        }
        "APPEND" => {
            p.space()?;
            let mailbox = mailbox(p)?;
            let mut messages = Vec::new();
            // RFC 3502: `1*(SP [flag-list SP] [date-time SP] literal)`.
            while p.eat(b' ') {
                let flags = if p.peek() == Some(b'(') {
                    let flags = flag_list(p)?;
                    p.space()?;
                    flags
                } else {
                    Vec::new()
                };
                let date = if p.peek() == Some(b'"') {
                    let date = p.date_time()?;
                    p.space()?;
                    Some(date)
                } else {
                    None
                };
                // RFC 4469: the message made of text literals and URLs of stored messages.
                if p.keyword("CATENATE") {
                    p.space()?;
                    messages.push(AppendMessage { flags, date, message: Vec::new(), binary: false, catenate: Some(cat_parts(p)?) });
                    continue;
                }
                let (message, binary) = literal_or_literal8(p)?;
                messages.push(AppendMessage { flags, date, message, binary, catenate: None });
            }
            if messages.is_empty() {
                return Err(Error::Syntax("APPEND needs a message".into()));
            }
            Command::Append { mailbox, messages }
        }
        "SEARCH" => {
            p.space()?;
            let mut ret = None;
            if p.keyword("RETURN") {
                p.space()?;
                ret = Some(search_return(p)?);
                p.space()?;
            }
            let mut charset = None;
            if p.keyword("CHARSET") {
                p.space()?;
                charset = Some(p.astring_text()?);
                p.space()?;
            }
            Command::Search { uid, ret, charset, key: search::parse_keys(p)? }
        }
        "SORT" => {
            // SORT [RETURN (...)] (criteria) charset search-key
            p.space()?;
            let mut ret = None;
            if p.keyword("RETURN") {
                p.space()?;
                ret = Some(search_return(p)?);
                p.space()?;
            }
            let criteria = sort_criteria(p)?;
            p.space()?;
            let charset = p.astring_text()?;
            p.space()?;
            Command::Sort { uid, ret, criteria, charset, key: search::parse_keys(p)? }
        }
        "THREAD" => {
            p.space()?;
            let algorithm = match p.atom()?.to_ascii_uppercase().as_str() {
                "ORDEREDSUBJECT" => ThreadAlgorithm::OrderedSubject,
                "REFERENCES" => ThreadAlgorithm::References,
                other => return Err(Error::Syntax(format!("unknown THREAD algorithm {other}"))),
            };
            p.space()?;
            let charset = p.astring_text()?;
            p.space()?;
            Command::Thread { uid, algorithm, charset, key: search::parse_keys(p)? }
        }
        "FETCH" => {
            p.space()?;
            let set = SequenceSet::parse(p)?;
            p.space()?;
            let items = fetch::parse_items(p)?;
            let (mut changed_since, mut vanished) = (None, false);
            if p.eat(b' ') {
                // fetch-modifiers = SP "(" fetch-modifier *(SP fetch-modifier) ")"
                p.open()?;
                loop {
                    match p.atom()?.to_ascii_uppercase().as_str() {
                        "CHANGEDSINCE" if changed_since.is_none() => {
                            p.space()?;
                            changed_since = Some(p.mod_sequence()?);
                        }
                        "VANISHED" if !vanished => vanished = true,
                        other => return Err(Error::Syntax(format!("unknown or repeated FETCH modifier {other}"))),
                    }
                    if !p.eat(b' ') {
                        break;
                    }
                }
                p.close()?;
                // RFC 7162 3.2.6: VANISHED only with CHANGEDSINCE, and only in UID FETCH.
                if vanished && (!uid || changed_since.is_none()) {
                    return Err(Error::Syntax("VANISHED needs UID FETCH and CHANGEDSINCE".into()));
                }
            }
            Command::Fetch { uid, set, items, changed_since, vanished }
        }
        "STORE" => {
            p.space()?;
            let set = SequenceSet::parse(p)?;
            p.space()?;
            let mut unchanged_since = None;
            if p.peek() == Some(b'(') {
                // store-modifiers = SP "(" store-modifier *(SP store-modifier) ")"
                p.open()?;
                loop {
                    match p.atom()?.to_ascii_uppercase().as_str() {
                        "UNCHANGEDSINCE" if unchanged_since.is_none() => {
                            p.space()?;
                            unchanged_since = Some(p.mod_sequence()?);
                        }
                        other => return Err(Error::Syntax(format!("unknown or repeated STORE modifier {other}"))),
                    }
                    if !p.eat(b' ') {
                        break;
                    }
                }
                p.close()?;
                p.space()?;
            }
            let mode = if p.eat(b'+') {
                StoreMode::Add
            } else if p.eat(b'-') {
                StoreMode::Remove
            } else {
                StoreMode::Replace
            };
            let item = p.atom()?.to_ascii_uppercase();
            let silent = match item.as_str() {
                "FLAGS" => false,
                "FLAGS.SILENT" => true,
                other => return Err(Error::Syntax(format!("cannot store {other}"))),
            };
            p.space()?;
            let flags = if p.peek() == Some(b'(') {
                flag_list(p)?
            } else {
                let mut flags = vec![flag(p)?];
                while p.eat(b' ') {
                    flags.push(flag(p)?);
                }
                flags
            };
            Command::Store { uid, set, mode, silent, flags, unchanged_since }
        }
        "COPY" | "MOVE" => {
            p.space()?;
            let set = SequenceSet::parse(p)?;
            p.space()?;
            Command::Copy { uid, set, mailbox: mailbox(p)?, remove: name == "MOVE" }
        }
        "ID" => {
            p.space()?;
            if p.keyword("NIL") {
                Command::Id(None)
            } else {
                p.open()?;
                let mut fields = Vec::new();
                while p.peek() != Some(b')') {
                    if !fields.is_empty() {
                        p.space()?;
                    }
                    let key = String::from_utf8_lossy(&p.string()?).into_owned();
                    p.space()?;
                    let value = p.nstring()?.map(|v| String::from_utf8_lossy(&v).into_owned());
                    fields.push((key, value));
                    if fields.len() > 30 {
                        return Err(Error::Syntax("too many ID fields".into()));
                    }
                }
                p.close()?;
                Command::Id(Some(fields))
            }
        }
        "COMPRESS" => {
            p.space()?;
            match p.atom()?.to_ascii_uppercase().as_str() {
                "DEFLATE" => Command::Compress,
                other => return Err(Error::Syntax(format!("unknown compression {other}"))),
            }
        }
        "GETQUOTA" => {
            p.space()?;
            Command::GetQuota(p.astring_text()?)
        }
        "GETQUOTAROOT" => {
            p.space()?;
            Command::GetQuotaRoot(mailbox(p)?)
        }
        "SETQUOTA" => {
            // SETQUOTA quota-root SP "(" [setquota-resource *(SP setquota-resource)] ")"
            p.space()?;
            let root = p.astring_text()?;
            p.space()?;
            p.open()?;
            while p.peek() != Some(b')') {
                p.atom()?;
                p.space()?;
                p.number64()?;
                p.eat(b' ');
            }
            p.close()?;
            Command::SetQuota(root)
        }
        "CANCELUPDATE" => {
            // RFC 5267 4.3: CANCELUPDATE tag-string *(SP tag-string).
            let mut tags = Vec::new();
            while p.eat(b' ') {
                tags.push(String::from_utf8(p.string()?).map_err(|_| Error::Syntax("a tag is ASCII".into()))?);
                if tags.len() > 100 {
                    return Err(Error::Syntax("too many tags".into()));
                }
            }
            if tags.is_empty() {
                return Err(Error::Syntax("CANCELUPDATE needs a tag".into()));
            }
            Command::CancelUpdate(tags)
        }
        "NOTIFY" => Command::Notify(super::notify::parse(p)?),
        "ENABLE" => {
            let mut caps = Vec::new();
            while p.eat(b' ') {
                caps.push(p.atom()?.to_ascii_uppercase());
            }
            if caps.is_empty() {
                return Err(Error::Syntax("ENABLE needs a capability".into()));
            }
            Command::Enable(caps)
        }
        _ => return Err(Error::Unknown(name)),
    })
}

/// One message of an APPEND: its flags, internal date and octets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<Flag>,
    pub date: Option<chrono::DateTime<chrono::FixedOffset>>,
    pub message: Vec<u8>,
    /// Sent as a literal8 (RFC 3516): it may hold binary parts.
    pub binary: bool,
    /// CATENATE (RFC 4469): the message is these parts joined (and `message` is empty).
    pub catenate: Option<Vec<CatPart>>,
}

/// A part of a CATENATE: text as given, or (a part of) a stored message named by an IMAP URL
/// (RFC 5092), relative to this server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatPart {
    Text(Vec<u8>),
    Url(String),
}

/// The most parts one CATENATE may have.
pub const MAX_CAT_PARTS: usize = 64;

/// `"(" cat-part *(SP cat-part) ")"`, `cat-part = "TEXT" SP literal / "URL" SP astring`.
fn cat_parts(p: &mut Parser<'_>) -> Result<Vec<CatPart>, Error> {
    p.open()?;
    let mut parts = Vec::new();
    loop {
        if p.keyword("TEXT") {
            p.space()?;
            parts.push(CatPart::Text(literal_or_literal8(p)?.0));
        } else if p.keyword("URL") {
            p.space()?;
            let url = String::from_utf8(p.astring()?).map_err(|_| Error::Syntax("a URL is ASCII".into()))?;
            parts.push(CatPart::Url(url));
        } else {
            return Err(Error::Syntax("CATENATE takes TEXT and URL parts".into()));
        }
        if parts.len() > MAX_CAT_PARTS {
            return Err(Error::Syntax(format!("more than {MAX_CAT_PARTS} CATENATE parts")));
        }
        if !p.eat(b' ') {
            break;
        }
    }
    p.close()?;
    Ok(parts)
}

/// A literal, or a literal8 (`~{n}`, RFC 3516 4.2, which may carry any octet, NUL included):
/// its octets and whether it was a literal8.
fn literal_or_literal8(p: &mut Parser<'_>) -> Result<(Vec<u8>, bool), Error> {
    let binary = p.eat(b'~');
    if p.peek() != Some(b'{') {
        return Err(Error::Syntax("APPEND needs the message as a literal".into()));
    }
    Ok((p.string()?, binary))
}

/// The most patterns one LIST may give (RFC 5258 sets none): each is matched against every
/// mailbox name, so this bounds the work of one command, with [`MAX_PATTERN`].
pub const MAX_LIST_PATTERNS: usize = 16;

/// The longest LIST reference or pattern, in octets: far beyond any mailbox name (200 octets
/// a level), short enough that matching one against every name stays cheap.
pub const MAX_PATTERN: usize = 1024;

/// LIST's selection options (RFC 5258 3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListSelection {
    /// Subscribed names, whether they exist or not.
    pub subscribed: bool,
    /// Parents of what the other options select, with CHILDINFO.
    pub recursive_match: bool,
    /// Only mailboxes with a special use (RFC 6154).
    pub special_use: bool,
}

/// LIST's return options (RFC 5258 3.2).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListReturn {
    pub subscribed: bool,
    pub children: bool,
    pub special_use: bool,
    /// A STATUS response after each mailbox listed (RFC 5819).
    pub status: Option<Vec<StatusItem>>,
}

/// `LIST [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts]`: a plain
/// LIST when it has none of the extended parts.
fn list(p: &mut Parser<'_>) -> Result<Command, Error> {
    p.space()?;
    let mut extended = false;
    let mut selection = ListSelection::default();
    if p.peek() == Some(b'(') {
        extended = true;
        p.open()?;
        let mut others = false;
        while p.peek() != Some(b')') {
            if selection != ListSelection::default() || others {
                p.space()?;
            }
            match p.atom()?.to_ascii_uppercase().as_str() {
                "SUBSCRIBED" => selection.subscribed = true,
                "RECURSIVEMATCH" => selection.recursive_match = true,
                "SPECIAL-USE" => selection.special_use = true,
                // There are no remote mailboxes: REMOTE changes nothing.
                "REMOTE" => others = true,
                other => return Err(Error::Syntax(format!("unknown LIST selection option {other}"))),
            }
        }
        p.close()?;
        p.space()?;
        // RFC 5258 3.1: RECURSIVEMATCH needs an option whose matches it can follow up.
        if selection.recursive_match && !selection.subscribed && !selection.special_use {
            return Err(Error::Syntax("RECURSIVEMATCH needs another selection option".into()));
        }
    }
    let reference = decode_pattern(p.utf8_names, &p.astring()?)?;
    p.space()?;
    let mut patterns = Vec::new();
    if p.peek() == Some(b'(') {
        extended = true;
        p.open()?;
        loop {
            patterns.push(decode_pattern(p.utf8_names, &p.list_mailbox()?)?);
            if patterns.len() > MAX_LIST_PATTERNS {
                return Err(Error::Syntax(format!("more than {MAX_LIST_PATTERNS} LIST patterns")));
            }
            if !p.eat(b' ') {
                break;
            }
        }
        p.close()?;
    } else {
        patterns.push(decode_pattern(p.utf8_names, &p.list_mailbox()?)?);
    }
    let mut returns = ListReturn::default();
    if p.eat(b' ') {
        extended = true;
        if !p.keyword("RETURN") {
            return Err(Error::Syntax("expected RETURN".into()));
        }
        p.space()?;
        p.open()?;
        let mut first = true;
        while p.peek() != Some(b')') {
            if !first {
                p.space()?;
            }
            first = false;
            match p.atom()?.to_ascii_uppercase().as_str() {
                "SUBSCRIBED" => returns.subscribed = true,
                "CHILDREN" => returns.children = true,
                "SPECIAL-USE" => returns.special_use = true,
                "STATUS" if returns.status.is_none() => {
                    p.space()?;
                    returns.status = Some(status_items(p)?);
                }
                other => return Err(Error::Syntax(format!("unknown LIST return option {other}"))),
            }
        }
        p.close()?;
    }
    if !extended {
        let pattern = patterns.pop().expect("one pattern");
        return Ok(Command::List { reference, pattern, subscribed: false });
    }
    Ok(Command::ListExtended { selection, reference, patterns, returns })
}

/// `"(" status-att *(SP status-att) ")"`.
fn status_items(p: &mut Parser<'_>) -> Result<Vec<StatusItem>, Error> {
    p.open()?;
    let mut items = Vec::new();
    loop {
        items.push(match p.atom()?.to_ascii_uppercase().as_str() {
            "MESSAGES" => StatusItem::Messages,
            "RECENT" => StatusItem::Recent,
            "UIDNEXT" => StatusItem::UidNext,
            "UIDVALIDITY" => StatusItem::UidValidity,
            "UNSEEN" => StatusItem::Unseen,
            "SIZE" => StatusItem::Size,
            "HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            "DELETED" => StatusItem::Deleted,
            "DELETED-STORAGE" => StatusItem::DeletedStorage,
            other => return Err(Error::Syntax(format!("unknown status item {other}"))),
        });
        if !p.eat(b' ') {
            break;
        }
    }
    p.close()?;
    Ok(items)
}

/// One SORT criterion: a key, perhaps reversed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub reverse: bool,
    pub key: SortKey,
}

/// What SORT orders by (RFC 5256 3; DISPLAYFROM and DISPLAYTO from RFC 5957).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Arrival,
    Cc,
    Date,
    From,
    Size,
    Subject,
    To,
    DisplayFrom,
    DisplayTo,
}

/// THREAD's algorithms (RFC 5256 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

/// `"(" sort-criterion *(SP sort-criterion) ")"`, `sort-criterion = ["REVERSE" SP] sort-key`.
fn sort_criteria(p: &mut Parser<'_>) -> Result<Vec<SortCriterion>, Error> {
    p.open()?;
    let mut criteria = Vec::new();
    loop {
        let mut name = p.atom()?.to_ascii_uppercase();
        let reverse = name == "REVERSE";
        if reverse {
            p.space()?;
            name = p.atom()?.to_ascii_uppercase();
        }
        let key = match name.as_str() {
            "ARRIVAL" => SortKey::Arrival,
            "CC" => SortKey::Cc,
            "DATE" => SortKey::Date,
            "FROM" => SortKey::From,
            "SIZE" => SortKey::Size,
            "SUBJECT" => SortKey::Subject,
            "TO" => SortKey::To,
            "DISPLAYFROM" => SortKey::DisplayFrom,
            "DISPLAYTO" => SortKey::DisplayTo,
            other => return Err(Error::Syntax(format!("unknown sort key {other}"))),
        };
        criteria.push(SortCriterion { reverse, key });
        if criteria.len() > 16 {
            return Err(Error::Syntax("too many sort criteria".into()));
        }
        if !p.eat(b' ') {
            break;
        }
    }
    p.close()?;
    Ok(criteria)
}

/// What an ESEARCH answer gives (RFC 4731 3.1), and what else a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchReturn {
    Min,
    Max,
    All,
    Count,
    /// Keep the result for `$` (RFC 5182 SEARCHRES).
    Save,
    /// The results from this position to that one, 1-based, in order (RFC 5267 4.4).
    Partial(u32, u32),
    /// Keep the search and tell of changes to its result: ADDTO, REMOVEFROM (RFC 5267 4.2).
    Update,
    /// A hint that UPDATE or PARTIAL will follow; nothing to do (RFC 5267 4.1).
    Context,
}

/// `"(" [search-return-opt *(SP search-return-opt)] ")"`; `()` means ALL.
fn search_return(p: &mut Parser<'_>) -> Result<Vec<SearchReturn>, Error> {
    p.open()?;
    let mut options = Vec::new();
    if p.peek() != Some(b')') {
        loop {
            let option = match p.atom()?.to_ascii_uppercase().as_str() {
                "MIN" => SearchReturn::Min,
                "MAX" => SearchReturn::Max,
                "ALL" => SearchReturn::All,
                "COUNT" => SearchReturn::Count,
                "SAVE" => SearchReturn::Save,
                "UPDATE" => SearchReturn::Update,
                "CONTEXT" => SearchReturn::Context,
                "PARTIAL" => {
                    // PARTIAL SP nz-number ":" nz-number, either way round.
                    p.space()?;
                    let first = p.nz_number()?;
                    p.expect(b':')?;
                    let second = p.nz_number()?;
                    SearchReturn::Partial(first.min(second), first.max(second))
                }
                other => return Err(Error::Syntax(format!("unknown SEARCH RETURN option {other}"))),
            };
            if !options.contains(&option) {
                options.push(option);
            }
            if !p.eat(b' ') {
                break;
            }
        }
    }
    p.close()?;
    if options.is_empty() {
        options.push(SearchReturn::All);
    }
    Ok(options)
}

/// select-params = "(" select-param *(SP select-param) ")" (RFC 4466 2.5, RFC 7162 7).
fn select_params(p: &mut Parser<'_>) -> Result<SelectParams, Error> {
    let mut params = SelectParams::default();
    p.open()?;
    loop {
        match p.atom()?.to_ascii_uppercase().as_str() {
            "CONDSTORE" if !params.condstore => params.condstore = true,
            "QRESYNC" if params.qresync.is_none() => {
                // "QRESYNC" SP "(" uidvalidity SP mod-sequence-value [SP known-uids]
                //     [SP seq-match-data] ")"
                p.space()?;
                p.open()?;
                let uid_validity = p.nz_number()?;
                p.space()?;
                let modseq = p.mod_sequence()?;
                let (mut known_uids, mut seq_match) = (None, None);
                if p.eat(b' ') && p.peek() != Some(b'(') {
                    known_uids = Some(SequenceSet::parse(p)?);
                    p.eat(b' ');
                }
                if p.peek() == Some(b'(') {
                    p.open()?;
                    let numbers = SequenceSet::parse(p)?;
                    p.space()?;
                    let uids = SequenceSet::parse(p)?;
                    p.close()?;
                    seq_match = Some((numbers, uids));
                }
                p.close()?;
                params.qresync = Some(Qresync { uid_validity, modseq, known_uids, seq_match });
            }
            other => return Err(Error::Syntax(format!("unknown or repeated SELECT parameter {other}"))),
        }
        if !p.eat(b' ') {
            break;
        }
    }
    p.close()?;
    Ok(params)
}

/// mailbox = "INBOX" / astring, in modified UTF-7.
pub(super) fn mailbox(p: &mut Parser<'_>) -> Result<String, Error> {
    let wire = p.astring()?;
    let name = if p.utf8_names {
        String::from_utf8(wire).map_err(|e| Error::BadName(String::from_utf8_lossy(e.as_bytes()).into_owned()))?
    } else {
        decode_name(&wire)?
    };
    Ok(if name.eq_ignore_ascii_case("INBOX") { "INBOX".to_string() } else { name })
}

fn decode_name(wire: &[u8]) -> Result<String, Error> {
    crate::mutf7::decode(wire).ok_or_else(|| Error::BadName(String::from_utf8_lossy(wire).into_owned()))
}

/// A LIST reference or pattern: one that is not modified UTF-7 names no mailbox, so it is
/// taken as it is (and matches nothing a client could have made) rather than refused.
fn decode_pattern(utf8_names: bool, wire: &[u8]) -> Result<String, Error> {
    if wire.len() > MAX_PATTERN {
        return Err(Error::Syntax(format!("a LIST reference or pattern is at most {MAX_PATTERN} octets")));
    }
    if utf8_names {
        return Ok(String::from_utf8_lossy(wire).into_owned());
    }
    Ok(crate::mutf7::decode(wire).unwrap_or_else(|| String::from_utf8_lossy(wire).into_owned()))
}

/// flag-list = "(" [flag *(SP flag)] ")".
fn flag_list(p: &mut Parser<'_>) -> Result<Vec<Flag>, Error> {
    p.open()?;
    let mut flags = Vec::new();
    while p.peek() != Some(b')') {
        if !flags.is_empty() {
            p.space()?;
        }
        flags.push(flag(p)?);
    }
    p.close()?;
    Ok(flags)
}

fn flag(p: &mut Parser<'_>) -> Result<Flag, Error> {
    let backslash = p.eat(b'\\');
    let name = p.atom()?;
    let text = if backslash { format!("\\{name}") } else { name.to_string() };
    match Flag::parse(&text) {
        Some(Flag::Recent) => Err(Error::Syntax("\\Recent cannot be stored".into())),
        Some(flag) => Ok(flag),
        None => Err(Error::Syntax(format!("bad flag {text}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> Command {
        parse(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e:?}")).command
    }

    #[test]
    fn the_classic_session_parses() {
        assert_eq!(ok("a0001 LOGIN craig secret\r\n"), Command::Login { user: "craig".into(), password: "secret".into() });
        assert_eq!(ok("a0002 SELECT inbox\r\n"), Command::Select { mailbox: "INBOX".into(), read_only: false, params: SelectParams::default() });
        assert!(matches!(ok("a0003 FETCH 1 BODY[TEXT]\r\n"), Command::Fetch { uid: false, .. }));
        assert_eq!(
            ok("a0004 STORE 1 +FLAGS \\DELETED\r\n"),
            Command::Store {
                uid: false,
                set: SequenceSet(vec![(super::super::sequence::SeqNumber::Value(1), super::super::sequence::SeqNumber::Value(1))]),
                mode: StoreMode::Add,
                silent: false,
                flags: vec![Flag::Deleted],
                unchanged_since: None,
            }
        );
        assert_eq!(ok("a0005 CLOSE\r\n"), Command::Close);
        assert_eq!(ok("a0006 LOGOUT\r\n"), Command::Logout);
    }

    #[test]
    fn arguments_of_every_shape() {
        assert!(matches!(ok("A1 UID FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (DATE FROM)])"), Command::Fetch { uid: true, .. }));
        assert!(matches!(
            ok("A2 UID STORE 5 -FLAGS.SILENT (\\Seen $Forwarded)"),
            Command::Store { uid: true, silent: true, mode: StoreMode::Remove, .. }
        ));
        assert_eq!(
            ok("A3 APPEND Sent (\\Seen) \"05-Jan-2026 10:00:00 +0100\" {3+}\r\nhi\n\r\n"),
            Command::Append {
                mailbox: "Sent".into(),
                messages: vec![AppendMessage {
                    flags: vec![Flag::Seen],
                    date: Some(chrono::DateTime::parse_from_rfc3339("2026-01-05T10:00:00+01:00").unwrap()),
                    message: b"hi\n".to_vec(),
                    binary: false,
                    catenate: None,
                }]
            }
        );
        let Command::Append { messages, .. } = ok("A3 APPEND Sent {2+}\r\nab (\\Draft) {1+}\r\nc") else { panic!() };
        assert_eq!((messages.len(), &messages[1].message[..], &messages[1].flags[..]), (2, &b"c"[..], &[Flag::Draft][..]));
        let Command::Append { messages, .. } = ok("A3 APPEND Sent ~{3+}\r\n\0\x01\n") else { panic!() };
        assert!(messages[0].binary && messages[0].message == b"\0\x01\n");
        assert!(matches!(
            ok("A4 FETCH 1 (BINARY.PEEK[1.2]<0.7> BINARY[] BINARY.SIZE[3])"),
            Command::Fetch { items, .. } if items == [
                FetchAttr::Binary { peek: true, part: vec![1, 2], partial: Some((0, 7)) },
                FetchAttr::Binary { peek: false, part: vec![], partial: None },
                FetchAttr::BinarySize { part: vec![3] },
            ]
        ));
        assert!(parse(b"A5 FETCH 1 BINARY[1.TEXT]").is_err());
        // RFC 4469 5: CATENATE, and a plain message after it (MULTIAPPEND).
        let Command::Append { messages, .. } =
            ok("A003 APPEND Drafts (\\Seen \\Draft $MDNSent) CATENATE (URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=HEADER\" TEXT {42+}\r\n\r\n--------------030308070208000400050907\r\n URL \"/Drafts;UIDVALIDITY=385759045/;UID=20/;section=1.MIME\") {3+}\r\nabc")
        else {
            panic!()
        };
        let parts = messages[0].catenate.as_ref().unwrap();
        assert_eq!(parts.len(), 3);
        assert!(matches!(&parts[1], CatPart::Text(t) if t.len() == 42));
        assert!(matches!(&parts[2], CatPart::Url(u) if u.ends_with("section=1.MIME")));
        assert_eq!((messages[1].catenate.is_none(), &messages[1].message[..]), (true, &b"abc"[..]));
        assert!(parse(b"A6 APPEND x CATENATE ()").is_err());
        assert!(parse(b"A7 APPEND x CATENATE (FOO \"x\")").is_err());
        assert!(parse(b"A3 APPEND Sent").is_err());
        assert_eq!(ok("A4 LIST \"\" \"*\""), Command::List { reference: "".into(), pattern: "*".into(), subscribed: false });
        assert_eq!(ok("A5 LSUB \"\" %"), Command::List { reference: "".into(), pattern: "%".into(), subscribed: true });
        assert_eq!(ok("A6 RENAME \"Entw&APw-rfe\" Old"), Command::Rename { from: "Entwürfe".into(), to: "Old".into() });
        assert_eq!(
            ok("A7 STATUS INBOX (MESSAGES UIDNEXT)"),
            Command::Status { mailbox: "INBOX".into(), items: vec![StatusItem::Messages, StatusItem::UidNext] }
        );
        assert_eq!(
            ok("A8 ID (\"name\" \"mutt\" \"version\" NIL)"),
            Command::Id(Some(vec![("name".into(), Some("mutt".into())), ("version".into(), None)]))
        );
        assert_eq!(ok("A9 ID NIL"), Command::Id(None));
        assert_eq!(ok("B1 ENABLE UTF8=ACCEPT"), Command::Enable(vec!["UTF8=ACCEPT".into()]));
        assert!(matches!(ok("B2 UID MOVE 1:3 Trash"), Command::Copy { uid: true, remove: true, .. }));
        assert!(matches!(ok("B3 SEARCH CHARSET UTF-8 SUBJECT {4}\r\nf\u{fc}r"), Command::Search { ret: None, .. }));
        assert!(
            matches!(ok("B4 SEARCH RETURN (MIN count) ALL"), Command::Search { ret: Some(r), .. } if r == [SearchReturn::Min, SearchReturn::Count])
        );
        assert!(matches!(ok("B5 UID SEARCH RETURN () SEEN"), Command::Search { uid: true, ret: Some(r), .. } if r == [SearchReturn::All]));
        assert!(matches!(ok("B6 SEARCH RETURN (SAVE) ALL"), Command::Search { ret: Some(r), .. } if r == [SearchReturn::Save]));
        assert!(
            matches!(ok("B7 SEARCH RETURN (PARTIAL 4:2 UPDATE) ALL"), Command::Search { ret: Some(r), .. } if r == [SearchReturn::Partial(2, 4), SearchReturn::Update])
        );
        assert!(matches!(ok("B8 FETCH $ FLAGS"), Command::Fetch { set, .. } if set.is_saved()));
        assert_eq!(ok("B9 CANCELUPDATE \"A1\" \"A2\""), Command::CancelUpdate(vec!["A1".into(), "A2".into()]));
        // RFC 9208 4.
        assert_eq!(ok("G0001 GETQUOTA \"!partition/sda4\""), Command::GetQuota("!partition/sda4".into()));
        assert_eq!(ok("G0002 GETQUOTAROOT inbox"), Command::GetQuotaRoot("INBOX".into()));
        assert_eq!(ok("S0000 SETQUOTA \"#user/alice\" (STORAGE 510)"), Command::SetQuota("#user/alice".into()));
        assert!(
            matches!(ok("S1 STATUS INBOX (DELETED DELETED-STORAGE)"), Command::Status { items, .. } if items == [StatusItem::Deleted, StatusItem::DeletedStorage])
        );
        for bad in [
            "x SEARCH RETURN (PARTIAL 1) ALL",
            "x SEARCH RETURN (PARTIAL 1:*) ALL",
            "x SEARCH RETURN (PARTIAL *:1) ALL",
            "x FETCH $,1 FLAGS",
            "x CANCELUPDATE",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            ok("B4 AUTHENTICATE PLAIN AGNyYWlnAHNlY3JldA=="),
            Command::Authenticate { mechanism: "PLAIN".into(), initial: Some("AGNyYWlnAHNlY3JldA==".into()) }
        );
        assert!(matches!(ok("B5 UID EXPUNGE 3:5"), Command::UidExpunge(_)));
    }

    #[test]
    fn condstore_and_qresync_arguments() {
        // The examples of RFC 7162.
        let Command::Select { params, .. } = ok("A142 SELECT INBOX (CONDSTORE)") else { panic!() };
        assert!(params.condstore && params.qresync.is_none());
        let Command::Select { params, .. } = ok("A02 SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541))") else { panic!() };
        let q = params.qresync.unwrap();
        assert_eq!((q.uid_validity, q.modseq, q.seq_match), (67890007, 20050715194045000, None));
        assert!(q.known_uids.unwrap().contains(43, 0));
        let Command::Select { params, .. } =
            ok("B04 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))")
        else {
            panic!()
        };
        let (numbers, uids) = params.qresync.unwrap().seq_match.unwrap();
        assert!(numbers.contains(7500, 0) && uids.contains(22500, 0));
        let Command::Select { params, .. } = ok("B05 EXAMINE INBOX (QRESYNC (1 2 (1 1)))") else { panic!() };
        assert!(params.qresync.unwrap().known_uids.is_none());
        assert!(matches!(
            ok("s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)"),
            Command::Fetch { uid: true, changed_since: Some(12345), vanished: true, .. }
        ));
        assert!(matches!(ok("s101 FETCH 1:* FLAGS (CHANGEDSINCE 1)"), Command::Fetch { changed_since: Some(1), vanished: false, .. }));
        assert!(matches!(
            ok("d105 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted)"),
            Command::Store { unchanged_since: Some(320162338), silent: true, mode: StoreMode::Add, .. }
        ));
        assert!(
            matches!(ok("A1 STATUS blurdybloop (UIDNEXT HIGHESTMODSEQ)"), Command::Status { items, .. } if items[1] == StatusItem::HighestModSeq)
        );
        for bad in [
            "x SELECT INBOX (CONDSTORE CONDSTORE)",
            "x SELECT INBOX (QRESYNC (0 1))",
            "x SELECT INBOX (FOO)",
            "x FETCH 1:* FLAGS (CHANGEDSINCE 1 VANISHED)",
            "x UID FETCH 1:* FLAGS (VANISHED)",
            "x STORE 1 (UNCHANGEDSINCE x) FLAGS \\Seen",
            "x STORE 1 (UNCHANGEDSINCE 9223372036854775808) FLAGS \\Seen",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn sort_and_thread() {
        // RFC 5256 5 and RFC 5267 3.2.
        let Command::Sort { uid, ret, criteria, charset, .. } = ok("A282 SORT (SUBJECT) UTF-8 SINCE 1-Feb-1994") else { panic!() };
        assert_eq!((uid, ret, charset.as_str()), (false, None, "UTF-8"));
        assert_eq!(criteria, [SortCriterion { reverse: false, key: SortKey::Subject }]);
        let Command::Sort { criteria, .. } = ok("A283 SORT (SUBJECT REVERSE DATE) UTF-8 ALL") else { panic!() };
        assert_eq!(criteria[1], SortCriterion { reverse: true, key: SortKey::Date });
        assert!(matches!(ok("A285 UID SORT (displayfrom) us-ascii all"), Command::Sort { uid: true, .. }));
        assert!(matches!(ok("A301 SORT RETURN (MIN COUNT) (DATE) UTF-8 UNDELETED"), Command::Sort { ret: Some(r), .. } if r.len() == 2));
        assert!(matches!(
            ok("A283 THREAD ORDEREDSUBJECT UTF-8 SINCE 5-MAR-2000"),
            Command::Thread { algorithm: ThreadAlgorithm::OrderedSubject, uid: false, .. }
        ));
        assert!(matches!(ok("A284 UID THREAD REFERENCES US-ASCII TEXT \"gewp\""), Command::Thread { uid: true, .. }));
        for bad in ["x SORT SUBJECT UTF-8 ALL", "x SORT () UTF-8 ALL", "x SORT (REVERSE) UTF-8 ALL", "x SORT (SUBJECT) ALL", "x THREAD X UTF-8 ALL"] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn list_extended() {
        // RFC 5258 5 and RFC 5819 3.
        let Command::ListExtended { selection, patterns, returns, .. } =
            ok("A01 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"%\" \"Foo/%\") RETURN (CHILDREN)")
        else {
            panic!()
        };
        assert!(selection.subscribed && selection.recursive_match && returns.children);
        assert_eq!(patterns, ["%", "Foo/%"]);
        let Command::ListExtended { returns, .. } = ok("A02 LIST \"\" % RETURN (STATUS (MESSAGES UNSEEN))") else { panic!() };
        assert_eq!(returns.status, Some(vec![StatusItem::Messages, StatusItem::Unseen]));
        assert!(matches!(ok("A03 LIST (REMOTE) \"\" %"), Command::ListExtended { .. }));
        assert!(matches!(ok("A04 LIST () \"\" %"), Command::ListExtended { .. }));
        assert!(matches!(ok("A05 LIST \"\" %"), Command::List { subscribed: false, .. }));
        for bad in [
            "x LIST (imaptest) \"\" \"\"",
            "x LIST (RECURSIVEMATCH) \"\" %",
            "x LIST (RECURSIVEMATCH REMOTE) \"\" %",
            "x LIST \"\" % RETURN (imaptest)",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn imap4rev2_names_are_utf8() {
        let rev2 = |line: &str| parse_with(line.as_bytes(), true).unwrap().command;
        assert_eq!(rev2("a SELECT \"Entwürfe\""), Command::Select { mailbox: "Entwürfe".into(), read_only: false, params: SelectParams::default() });
        assert_eq!(rev2("a CREATE A&B"), Command::Create("A&B".into()), "& is only an ampersand");
        assert_eq!(ok("a CREATE Entw&APw-rfe"), Command::Create("Entwürfe".into()));
        assert!(matches!(rev2("a LIST \"\" \"Entw*\""), Command::List { pattern, .. } if pattern == "Entw*"));
    }

    #[test]
    fn errors_carry_the_tag() {
        assert_eq!(parse(b"x1 FROB\r\n"), Err((Error::Unknown("FROB".into()), Some("x1".into()))));
        assert!(matches!(parse(b"x2 LOGIN one\r\n"), Err((Error::Syntax(_), Some(t))) if t == "x2"));
        assert!(matches!(parse(b"x3 STORE 1 FLAGS (\\Recent)\r\n"), Err((Error::Syntax(_), _))));
        assert!(matches!(parse(b"x4 SEARCH CHARSET KOI8-R\r\n"), Err((Error::Syntax(_), _))));
        assert!(matches!(parse(b"x5 UID NOOP\r\n"), Err((Error::Syntax(_), _))));
        assert!(matches!(parse(b"x6 NOOP extra\r\n"), Err((Error::Syntax(_), _))));
        assert_eq!(parse(b"\r\n"), Err((Error::NoTag, None)));
        assert_eq!(parse(b"+x NOOP\r\n"), Err((Error::NoTag, None)));
    }

    #[test]
    fn random_input_never_panics() {
        // A small xorshift: the same inputs every run.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let alphabet = b"aA1 ()[]<>{}*%\\\"+-.:,\r\nUIDFETCHSTOREBODYPEEK";
        for _ in 0..20_000 {
            let mut input = b"t ".to_vec();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 40) as usize;
            for i in 0..len {
                input.push(alphabet[((state >> (i % 50)) as usize + i * 7) % alphabet.len()]);
            }
            let _ = parse(&input);
        }
    }
}
