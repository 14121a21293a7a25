//! THREAD (RFC 5256 4): ORDEREDSUBJECT, and REFERENCES — the algorithm of Jamie Zawinski's
//! threader as the RFC pins it down step by step — over the keys `fields` reads, and the
//! thread list written as the RFC's grammar wants it.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt::Write as _;

use wasmail_proto::imap::{SearchKey, ThreadAlgorithm};

use super::fields::Fields;
use super::session::{Outcome, Session};

/// A message as threading sees it.
pub struct Item<'a> {
    /// What the answer names it by: its message number, or its UID for UID THREAD.
    pub id: u32,
    /// Its message number, the last tie-breaker (RFC 5256 2.2).
    pub seq: u32,
    /// The sent date, or INTERNALDATE when the message has none (RFC 5256 2.2).
    pub date: i64,
    pub fields: &'a Fields,
}

/// A thread: a message (None for a dummy that only holds its children together) and the
/// messages below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: Option<u32>,
    pub children: Vec<Node>,
}

impl Session {
    /// THREAD and UID THREAD.
    pub(super) async fn thread(&mut self, uid: bool, algorithm: ThreadAlgorithm, key: &SearchKey) -> Outcome {
        let found = match self.matching(key).await {
            Ok(found) => found,
            Err(e) => return super::session::store_error(&e, "THREAD"),
        };
        let fielded = match self.sort_fields(found).await {
            Ok(fielded) => fielded,
            Err(e) => return super::session::store_error(&e, "THREAD"),
        };
        let items: Vec<Item<'_>> = fielded
            .keyed()
            .into_iter()
            .map(|k| Item {
                id: if uid { k.message.uid } else { k.seq },
                seq: k.seq,
                date: k.rendered.fields.sent.unwrap_or(k.message.internal_date),
                fields: &k.rendered.fields,
            })
            .collect();
        let threads = match algorithm {
            ThreadAlgorithm::OrderedSubject => ordered_subject(&items),
            ThreadAlgorithm::References => references(&items),
        };
        let mut line = String::from("THREAD");
        if !threads.is_empty() {
            line.push(' ');
            write_into(&mut line, &threads);
        }
        self.untagged(&line);
        Outcome::ok("THREAD completed")
    }
}

/// The thread list: `(1 2 (3)(4))(5)`, a dummy as `((6)(7))`.
#[cfg(test)]
pub fn write(threads: &[Node]) -> String {
    let mut out = String::new();
    write_into(&mut out, threads);
    out
}

/// The thread list into `out` (one buffer for the whole list): `(1 2 (3)(4))(5)`, a dummy
/// as `((6)(7))`.
fn write_into(out: &mut String, threads: &[Node]) {
    for thread in threads {
        out.push('(');
        chain(out, thread);
        out.push(')');
    }
}

fn chain(out: &mut String, node: &Node) {
    if let Some(id) = node.id {
        let _ = write!(out, "{id}");
    }
    match (node.id, node.children.as_slice()) {
        (_, []) => {}
        (Some(_), [only]) => {
            out.push(' ');
            chain(out, only);
        }
        (id, children) => {
            if id.is_some() {
                out.push(' ');
            }
            write_into(out, children);
        }
    }
}

/// ORDEREDSUBJECT: messages grouped by base subject, each group a thread whose first message
/// (by sent date) is the parent of the others; threads by the sent date of their first.
pub fn ordered_subject(items: &[Item<'_>]) -> Vec<Node> {
    let mut order: Vec<&Item<'_>> = items.iter().collect();
    order.sort_by(|a, b| a.fields.subject.cmp(&b.fields.subject).then(a.date.cmp(&b.date)).then(a.seq.cmp(&b.seq)));
    let mut threads: Vec<(i64, u32, Node)> = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let first = order[i];
        let mut node = Node { id: Some(first.id), children: Vec::new() };
        i += 1;
        while i < order.len() && order[i].fields.subject == first.fields.subject {
            node.children.push(Node { id: Some(order[i].id), children: Vec::new() });
            i += 1;
        }
        threads.push((first.date, first.seq, node));
    }
    threads.sort_by_key(|(date, seq, _)| (*date, *seq));
    threads.into_iter().map(|(_, _, node)| node).collect()
}

/// Message-IDs or subjects to what holds them. The strings come from mail anyone can send:
/// foldhash's per-table random seed keeps colliding keys a guess, at a fraction of SipHash's
/// cost.
type Table<'a> = HashMap<&'a str, usize, foldhash::fast::RandomState>;

/// A message (by index in the items) or a dummy, with its children, while threading.
struct Tree {
    item: Option<usize>,
    children: Vec<Tree>,
}

/// REFERENCES (RFC 5256 4, steps 1 to 6).
pub fn references(items: &[Item<'_>]) -> Vec<Node> {
    let roots = link(items);
    // (3) Dummies without children go; those with children give them to their parent — at
    // the top only if there is one.
    let roots = prune(roots, true);
    // (4) The top by sent date, a dummy by its first child's.
    let mut roots = roots;
    sort_siblings(&mut roots, items, false);
    // (5) Threads whose subjects say they belong together are gathered.
    let roots = gather_by_subject(roots, items);
    // (6) Every set of siblings by sent date, the deepest first.
    let mut roots = roots;
    sort_siblings(&mut roots, items, true);
    roots.into_iter().map(|t| to_node(t, items)).collect()
}

/// (1) and (2): links messages as their References say, in message number order; returns
/// the messages and dummies that have no parent.
fn link(items: &[Item<'_>]) -> Vec<Tree> {
    struct Container {
        item: Option<usize>,
        parent: Option<usize>,
        children: Vec<usize>,
    }
    let mut arena: Vec<Container> = Vec::with_capacity(items.len());
    let mut by_id: Table<'_> = HashMap::with_capacity_and_hasher(items.len(), Default::default());
    let new = |arena: &mut Vec<Container>, item: Option<usize>| {
        arena.push(Container { item, parent: None, children: Vec::new() });
        arena.len() - 1
    };
    // Whether `a` is `b` or below it.
    let within = |arena: &[Container], mut a: usize, b: usize| loop {
        if a == b {
            return true;
        }
        match arena[a].parent {
            Some(up) => a = up,
            None => return false,
        }
    };
    let attach = |arena: &mut Vec<Container>, parent: usize, child: usize| {
        arena[child].parent = Some(parent);
        arena[parent].children.push(child);
    };
    let detach = |arena: &mut Vec<Container>, child: usize| {
        if let Some(parent) = arena[child].parent.take() {
            arena[parent].children.retain(|&c| c != child);
        }
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| items[i].seq);
    for i in order {
        let fields = items[i].fields;
        // A message takes the container its Message-ID names (a dummy an earlier reference
        // made, perhaps); without one, or when an earlier message has it, one of its own.
        let me = match fields.message_id.as_deref() {
            Some(id) => match by_id.entry(id) {
                Entry::Occupied(held) if arena[*held.get()].item.is_none() => {
                    arena[*held.get()].item = Some(i);
                    *held.get()
                }
                Entry::Occupied(_) => new(&mut arena, Some(i)),
                Entry::Vacant(vacant) => *vacant.insert(new(&mut arena, Some(i))),
            },
            None => new(&mut arena, Some(i)),
        };
        let mut chain = Vec::with_capacity(fields.references.len());
        for reference in &fields.references {
            chain.push(*by_id.entry(reference).or_insert_with(|| new(&mut arena, None)));
        }
        // (1A) Each reference the parent of the next, unless the next has a parent already
        // or the link would close a loop.
        for pair in chain.windows(2) {
            let (parent, child) = (pair[0], pair[1]);
            if arena[child].parent.is_none() && !within(&arena, parent, child) {
                attach(&mut arena, parent, child);
            }
        }
        // (1B) The last reference is the message's parent: it replaces any parent an earlier
        // (truncated) References gave, unless the link would close a loop.
        detach(&mut arena, me);
        if let Some(&parent) = chain.last() {
            if !within(&arena, parent, me) {
                attach(&mut arena, parent, me);
            }
        }
    }
    fn build(arena: &[Container], k: usize) -> Tree {
        Tree { item: arena[k].item, children: arena[k].children.iter().map(|&c| build(arena, c)).collect() }
    }
    // (2) Everything without a parent goes under the root.
    (0..arena.len()).filter(|&k| arena[k].parent.is_none()).map(|k| build(&arena, k)).collect()
}

fn prune(trees: Vec<Tree>, top: bool) -> Vec<Tree> {
    let mut out = Vec::with_capacity(trees.len());
    for mut tree in trees {
        tree.children = prune(std::mem::take(&mut tree.children), false);
        match (tree.item, tree.children.len()) {
            (Some(_), _) => out.push(tree),
            (None, 0) => {}
            (None, 1) => out.extend(tree.children),
            (None, _) if !top => out.extend(tree.children),
            (None, _) => out.push(tree),
        }
    }
    out
}

/// The sent date and number a tree sorts by: its message's, or its first child's.
fn sort_key(tree: &Tree, items: &[Item<'_>]) -> (i64, u32) {
    match (tree.item, tree.children.first()) {
        (Some(i), _) => (items[i].date, items[i].seq),
        (None, Some(first)) => sort_key(first, items),
        (None, None) => (i64::MAX, u32::MAX),
    }
}

/// Sorts siblings by sent date; with `deep`, every level below first. A dummy's children are
/// sorted before it is, so that its first child is the one it sorts by.
fn sort_siblings(trees: &mut [Tree], items: &[Item<'_>], deep: bool) {
    for tree in trees.iter_mut() {
        if deep || tree.item.is_none() {
            sort_siblings(&mut tree.children, items, deep);
        }
    }
    // Unstable is enough: the message number in the key makes it total.
    trees.sort_unstable_by_key(|t| sort_key(t, items));
}

/// The subject of a thread: its message's base subject, or its first child's for a dummy.
fn thread_subject<'a>(tree: &Tree, items: &[Item<'a>]) -> &'a str {
    match (tree.item, tree.children.first()) {
        (Some(i), _) => items[i].fields.subject.as_str(),
        (None, Some(first)) => thread_subject(first, items),
        (None, None) => "",
    }
}

fn is_reply(tree: &Tree, items: &[Item<'_>]) -> bool {
    tree.item.is_some_and(|i| items[i].fields.reply)
}

/// (5): threads at the top with the same base subject become one.
fn gather_by_subject(roots: Vec<Tree>, items: &[Item<'_>]) -> Vec<Tree> {
    // (5B) One thread per subject: a dummy over a message, a message over a reply. Each
    // subject is looked up once: `group` gives a root's subject by number, `holders` which
    // root holds each.
    let mut groups: Table<'_> = HashMap::with_capacity_and_hasher(roots.len(), Default::default());
    let mut holders: Vec<usize> = Vec::new();
    let mut group: Vec<Option<usize>> = Vec::with_capacity(roots.len());
    for (k, tree) in roots.iter().enumerate() {
        let subject = thread_subject(tree, items);
        if subject.is_empty() {
            group.push(None);
            continue;
        }
        match groups.entry(subject) {
            Entry::Vacant(vacant) => {
                vacant.insert(holders.len());
                group.push(Some(holders.len()));
                holders.push(k);
            }
            Entry::Occupied(occupied) => {
                let g = *occupied.get();
                group.push(Some(g));
                let held = &roots[holders[g]];
                if held.item.is_some() && (tree.item.is_none() || (is_reply(held, items) && !is_reply(tree, items))) {
                    holders[g] = k;
                }
            }
        }
    }
    // (5C) The others join it.
    let mut slots: Vec<Option<Tree>> = roots.into_iter().map(Some).collect();
    for k in 0..slots.len() {
        let Some(g) = group[k] else { continue };
        let held = holders[g];
        if held == k {
            continue;
        }
        let (Some(mut current), Some(mut holder)) = (slots[k].take(), slots[held].take()) else { continue };
        match (holder.item, current.item) {
            (None, None) => holder.children.append(&mut current.children),
            (None, Some(_)) => holder.children.push(current),
            (Some(_), Some(_)) if is_reply(&current, items) && !is_reply(&holder, items) => holder.children.push(current),
            _ => holder = Tree { item: None, children: vec![holder, current] },
        }
        slots[held] = Some(holder);
    }
    slots.into_iter().flatten().collect()
}

fn to_node(tree: Tree, items: &[Item<'_>]) -> Node {
    Node { id: tree.item.map(|i| items[i].id), children: tree.children.into_iter().map(|t| to_node(t, items)).collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(id: &str, references: &[&str], subject: &str) -> Fields {
        let (subject, reply) = super::super::fields::base_subject(subject);
        Fields {
            message_id: Some(id.to_string()).filter(|i| !i.is_empty()),
            references: references.iter().map(|r| r.to_string()).collect(),
            subject,
            reply,
            ..Fields::default()
        }
    }

    fn items<'a>(fields: &'a [Fields], dates: &[i64]) -> Vec<Item<'a>> {
        fields.iter().zip(dates).enumerate().map(|(i, (f, d))| Item { id: i as u32 + 1, seq: i as u32 + 1, date: *d, fields: f }).collect()
    }

    #[test]
    fn references_break_loops_and_sort_by_date() {
        // imaptest's thread.mbox: b says a > c > b, c says b > c.
        let f = [fields("a@b", &[], ""), fields("b@b", &["a@b", "c@b"], ""), fields("c@b", &["b@b"], "")];
        assert_eq!(write(&references(&items(&f, &[3, 1, 2]))), "(3 2)(1)");
        assert_eq!(write(&references(&items(&f[1..], &[1, 2]))), "(2 1)");
    }

    #[test]
    fn dummies_are_pruned_or_kept_at_the_top() {
        // Two replies to a message that is not there: a dummy holds them at the top.
        let f = [fields("x@h", &["gone@h"], "hello"), fields("y@h", &["gone@h"], "hello")];
        assert_eq!(write(&references(&items(&f, &[1, 2]))), "((1)(2))");
        // A chain through a missing message: the dummy's one child takes its place.
        let f = [fields("a@h", &[], "a"), fields("c@h", &["a@h", "b@h"], "c")];
        assert_eq!(write(&references(&items(&f, &[1, 2]))), "(1 2)");
    }

    #[test]
    fn subjects_gather_threads_and_replies_go_under_the_original() {
        let f = [fields("1@h", &[], "Re: lunch"), fields("2@h", &[], "lunch"), fields("3@h", &[], "other"), fields("4@h", &[], "lunch")];
        // 2 is the original: 1 (a reply) goes under it; 4 (not a reply) makes a dummy with 2.
        assert_eq!(write(&references(&items(&f, &[1, 2, 3, 4]))), "((2 1)(4))(3)");
        assert_eq!(write(&ordered_subject(&items(&f, &[1, 2, 3, 4]))), "(1 (2)(4))(3)");
    }

    #[test]
    fn the_rfc_writes_threads_like_this() {
        let leaf = |id| Node { id: Some(id), children: vec![] };
        let tree = Node {
            id: Some(3),
            children: vec![Node {
                id: Some(6),
                children: vec![
                    Node { id: Some(4), children: vec![leaf(23)] },
                    Node { id: Some(44), children: vec![Node { id: Some(7), children: vec![leaf(96)] }] },
                ],
            }],
        };
        assert_eq!(write(&[tree]), "(3 6 (4 23)(44 7 96))");
    }
}
