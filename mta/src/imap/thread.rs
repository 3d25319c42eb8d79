//! THREAD (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES, the latter with all
//! six steps (reply links, root set, pruning, merging roots by base subject,
//! sorting siblings by sent date). The tree lives in an arena and is walked
//! without recursion, so a long reply chain cannot exhaust the stack.

use super::subject::BaseSubject;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    OrderedSubject,
    References,
}

/// What threading needs of one message.
#[derive(Debug, Clone)]
pub struct Item {
    /// The number reported (sequence number or UID).
    pub number: u32,
    /// Sent date (or INTERNALDATE), seconds since the epoch.
    pub date: i64,
    pub subject: BaseSubject,
    pub message_id: Option<String>,
    /// References, or In-Reply-To when there are none; oldest first.
    pub references: Vec<String>,
}

#[derive(Debug, Default)]
struct Node {
    item: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Arena {
    nodes: Vec<Node>,
}

impl Arena {
    fn add(&mut self, item: Option<usize>) -> usize {
        self.nodes.push(Node {
            item,
            ..Node::default()
        });
        self.nodes.len() - 1
    }

    fn is_ancestor(&self, maybe: usize, of: usize) -> bool {
        // A leaf is nobody's ancestor: the common case, answered without walking up.
        if self.nodes[maybe].children.is_empty() {
            return maybe == of;
        }
        let mut cur = Some(of);
        while let Some(c) = cur {
            if c == maybe {
                return true;
            }
            cur = self.nodes[c].parent;
        }
        false
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }
}

/// Thread `items` (in mailbox order) and render the THREAD response data.
pub fn thread(algorithm: Algorithm, items: &[Item]) -> String {
    let (arena, roots) = build(algorithm, items);
    render(&arena, items, &roots)
}

/// Thread `items` for display: each message's number and depth (0 for a
/// thread's first message), threads and replies in order. A placeholder
/// parent (a message not present) adds no level.
pub fn threaded(algorithm: Algorithm, items: &[Item]) -> Vec<(u32, usize)> {
    let (arena, roots) = build(algorithm, items);
    let mut out = Vec::with_capacity(items.len());
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    while let Some((n, depth)) = stack.pop() {
        let node = &arena.nodes[n];
        let below = match node.item {
            Some(i) => {
                out.push((items[i].number, depth));
                depth + 1
            }
            None => depth,
        };
        stack.extend(node.children.iter().rev().map(|&c| (c, below)));
    }
    out
}

fn build(algorithm: Algorithm, items: &[Item]) -> (Arena, Vec<usize>) {
    let mut arena = Arena { nodes: Vec::new() };
    let roots = match algorithm {
        Algorithm::OrderedSubject => ordered_subject(&mut arena, items),
        Algorithm::References => references(&mut arena, items),
    };
    let roots = sort_siblings(&mut arena, items, roots);
    (arena, roots)
}

fn ordered_subject(arena: &mut Arena, items: &[Item]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        (&items[a].subject.text, items[a].date, items[a].number).cmp(&(
            &items[b].subject.text,
            items[b].date,
            items[b].number,
        ))
    });
    let mut roots: Vec<usize> = Vec::new();
    let mut current: Option<(usize, &str)> = None;
    for i in order {
        let node = arena.add(Some(i));
        match current {
            Some((root, subject)) if subject == items[i].subject.text => arena.link(root, node),
            _ => {
                roots.push(node);
                current = Some((node, &items[i].subject.text));
            }
        }
    }
    roots
}

fn references(arena: &mut Arena, items: &[Item]) -> Vec<usize> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let node = match item.message_id.as_deref() {
            Some(id) => match by_id.get(id) {
                Some(&n) if arena.nodes[n].item.is_none() => {
                    arena.nodes[n].item = Some(i);
                    n
                }
                // A duplicate Message-ID gets a container of its own.
                Some(_) => arena.add(Some(i)),
                None => {
                    let n = arena.add(Some(i));
                    by_id.insert(id, n);
                    n
                }
            },
            None => arena.add(Some(i)),
        };
        let mut prev: Option<usize> = None;
        for r in &item.references {
            let c = match by_id.get(r.as_str()) {
                Some(&c) => c,
                None => {
                    let c = arena.add(None);
                    by_id.insert(r, c);
                    c
                }
            };
            if let Some(p) = prev
                && arena.nodes[c].parent.is_none()
                && !arena.is_ancestor(c, p)
            {
                arena.link(p, c);
            }
            prev = Some(c);
        }
        match prev {
            Some(p) if p != node && !arena.is_ancestor(node, p) => arena.link(p, node),
            _ => arena.unlink(node),
        }
    }
    let roots: Vec<usize> = (0..arena.nodes.len())
        .filter(|&n| arena.nodes[n].parent.is_none())
        .collect();
    let roots = prune(arena, roots);
    merge_by_subject(arena, items, roots)
}

/// RFC 5256 step 4: drop empty containers without children and promote the
/// children of other empty ones (at the root only when there is one child).
fn prune(arena: &mut Arena, roots: Vec<usize>) -> Vec<usize> {
    // Post-order without recursion: children before their parent.
    let mut order = Vec::new();
    let mut stack = roots.clone();
    while let Some(n) = stack.pop() {
        order.push(n);
        stack.extend(arena.nodes[n].children.iter().copied());
    }
    for &n in order.iter().rev() {
        if arena.nodes[n].item.is_some() {
            continue;
        }
        let Some(parent) = arena.nodes[n].parent else { continue };
        let children = std::mem::take(&mut arena.nodes[n].children);
        arena.unlink(n);
        for c in children {
            arena.nodes[c].parent = None;
            arena.link(parent, c);
        }
    }
    let mut result = Vec::new();
    for r in roots {
        let node = &arena.nodes[r];
        match (node.item, node.children.len()) {
            (None, 0) => {}
            (None, 1) => {
                let c = node.children[0];
                arena.nodes[c].parent = None;
                arena.nodes[r].children.clear();
                result.push(c);
            }
            _ => result.push(r),
        }
    }
    result
}

/// Step 5.B.i: the thread subject of a root (its first child's for a
/// dummy), or None when it is empty.
fn thread_subject<'a>(arena: &Arena, items: &'a [Item], root: usize) -> Option<&'a str> {
    let node = &arena.nodes[root];
    let item = match node.item {
        Some(i) => i,
        None => arena.nodes[*node.children.first()?].item?,
    };
    Some(items[item].subject.text.as_str()).filter(|s| !s.is_empty())
}

/// Step 5: gather roots that share a base subject under one root.
fn merge_by_subject(arena: &mut Arena, items: &[Item], mut roots: Vec<usize>) -> Vec<usize> {
    // Oldest first, so the outcome does not depend on arena order.
    roots.sort_by_key(|&r| sort_key(arena, items, r));
    let is_reply = |arena: &Arena, n: usize| arena.nodes[n].item.is_some_and(|i| items[i].subject.reply_or_forward);
    // (B) One root per subject: a dummy over a message, a non-reply over a reply.
    let mut table: HashMap<&str, usize> = HashMap::new();
    for &r in &roots {
        let Some(subject) = thread_subject(arena, items, r) else {
            continue;
        };
        match table.get(subject) {
            None => {
                table.insert(subject, r);
            }
            Some(&t) => {
                let t_dummy = arena.nodes[t].item.is_none();
                if !t_dummy && (arena.nodes[r].item.is_none() || (is_reply(arena, t) && !is_reply(arena, r))) {
                    table.insert(subject, r);
                }
            }
        }
    }
    // (C) Merge every other root of that subject into the table's.
    let mut new_roots = Vec::new();
    for &r in &roots {
        // A root already put under a new dummy is no longer a root.
        if arena.nodes[r].parent.is_some() {
            continue;
        }
        let Some(subject) = thread_subject(arena, items, r) else {
            continue;
        };
        let t = table[subject];
        if t == r {
            continue;
        }
        let (r_dummy, t_dummy) = (arena.nodes[r].item.is_none(), arena.nodes[t].item.is_none());
        if r_dummy && t_dummy {
            for c in std::mem::take(&mut arena.nodes[r].children) {
                arena.nodes[c].parent = None;
                arena.link(t, c);
            }
        } else if t_dummy || (is_reply(arena, r) && !is_reply(arena, t)) {
            arena.link(t, r);
        } else {
            let dummy = arena.add(None);
            arena.link(dummy, t);
            arena.link(dummy, r);
            table.insert(subject, dummy);
            new_roots.push(dummy);
        }
    }
    roots.extend(new_roots);
    // Roots merged away now have a parent; emptied dummies have no children.
    roots.retain(|&r| {
        arena.nodes[r].parent.is_none() && (arena.nodes[r].item.is_some() || !arena.nodes[r].children.is_empty())
    });
    roots
}

/// What siblings sort by: sent date, then mailbox order; a dummy sorts as
/// its first child (which `sort_siblings` has already put first).
fn sort_key(arena: &Arena, items: &[Item], mut n: usize) -> (i64, u32) {
    loop {
        let node = &arena.nodes[n];
        match node.item.and_then(|i| items.get(i)) {
            Some(it) => return (it.date, it.number),
            None => match node.children.first() {
                Some(&c) => n = c,
                None => return (i64::MAX, u32::MAX),
            },
        }
    }
}

/// Step 6: sort every set of siblings, the youngest generation first.
fn sort_siblings(arena: &mut Arena, items: &[Item], mut roots: Vec<usize>) -> Vec<usize> {
    let mut order = Vec::new();
    let mut stack = roots.clone();
    while let Some(n) = stack.pop() {
        order.push(n);
        stack.extend(arena.nodes[n].children.iter().copied());
    }
    for &n in order.iter().rev() {
        let mut children = std::mem::take(&mut arena.nodes[n].children);
        children.sort_by_key(|&c| sort_key(arena, items, c));
        arena.nodes[n].children = children;
    }
    roots.sort_by_key(|&r| sort_key(arena, items, r));
    roots
}

fn render(arena: &Arena, items: &[Item], roots: &[usize]) -> String {
    enum Token {
        Node(usize),
        Text(&'static str),
    }
    let mut out = String::new();
    for &root in roots {
        let mut stack = vec![Token::Text(")"), Token::Node(root)];
        out.push('(');
        while let Some(t) = stack.pop() {
            let n = match t {
                Token::Text(s) => {
                    out.push_str(s);
                    continue;
                }
                Token::Node(n) => n,
            };
            let node = &arena.nodes[n];
            let numbered = node.item.map(|i| items[i].number);
            if let Some(num) = numbered {
                if !out.ends_with('(') {
                    out.push(' ');
                }
                out.push_str(&num.to_string());
            }
            let children = &node.children;
            match children.len() {
                0 => {}
                1 => stack.push(Token::Node(children[0])),
                _ => {
                    if numbered.is_some() {
                        out.push(' ');
                    }
                    for &c in children.iter().rev() {
                        stack.push(Token::Text(")"));
                        stack.push(Token::Node(c));
                        stack.push(Token::Text("("));
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::subject::base_subject;

    fn item(number: u32, date: i64, subject: &str, id: &str, refs: &[&str]) -> Item {
        Item {
            number,
            date,
            subject: base_subject(subject),
            message_id: Some(id.into()),
            references: refs.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn references_builds_reply_trees() {
        let items = [
            item(1, 10, "a", "<1>", &[]),
            item(2, 20, "a", "<2>", &["<1>"]),
            item(3, 30, "b", "<3>", &[]),
            item(4, 40, "a", "<4>", &["<1>", "<2>"]),
            item(5, 50, "a", "<5>", &["<1>"]),
            // Replies to a message we do not have: an empty container with two children.
            item(6, 60, "c", "<6>", &["<gone>"]),
            item(7, 70, "c", "<7>", &["<gone>"]),
            item(8, 80, "d", "<8>", &["<other-gone>"]),
        ];
        assert_eq!(thread(Algorithm::References, &items), "(1 (2 4)(5))(3)((6)(7))(8)");
    }

    #[test]
    fn ordered_subject_groups_by_base_subject() {
        let items = [
            item(1, 30, "x", "<1>", &[]),
            item(2, 10, "y", "<2>", &[]),
            item(3, 20, "x", "<3>", &[]),
            item(4, 40, "y", "<4>", &[]),
            item(5, 50, "x", "<5>", &[]),
        ];
        assert_eq!(thread(Algorithm::OrderedSubject, &items), "(2 4)(3 (1)(5))");
    }

    fn no_id(number: u32, date: i64, subject: &str) -> Item {
        Item {
            number,
            date,
            subject: base_subject(subject),
            message_id: None,
            references: Vec::new(),
        }
    }

    #[test]
    fn step5_replies_join_the_original_by_subject() {
        let items = [
            no_id(1, 10, "plan"),
            no_id(2, 20, "Re: plan"),
            no_id(3, 30, "RE: [list] plan (fwd)"),
            no_id(4, 40, "other"),
        ];
        assert_eq!(thread(Algorithm::References, &items), "(1 (2)(3))(4)");
    }

    #[test]
    fn step5_a_non_reply_becomes_parent_even_when_younger() {
        let items = [no_id(1, 10, "Re: plan"), no_id(2, 20, "plan")];
        assert_eq!(thread(Algorithm::References, &items), "(2 1)");
    }

    #[test]
    fn step5_two_originals_get_a_dummy_parent() {
        let items = [no_id(1, 10, "plan"), no_id(2, 20, "plan"), no_id(3, 30, "Re: plan")];
        assert_eq!(thread(Algorithm::References, &items), "((1)(2)(3))");
        // A message with replies of its own keeps them under the dummy.
        let items = [
            item(1, 10, "plan", "<1>", &[]),
            item(2, 20, "Re: plan", "<2>", &["<1>"]),
            item(3, 5, "plan", "<3>", &[]),
        ];
        assert_eq!(thread(Algorithm::References, &items), "((3)(1 2))");
    }

    #[test]
    fn step5_dummy_roots_absorb_messages_and_other_dummies() {
        // Replies to a missing message form a dummy root; the dummy wins the
        // subject table, and the lone messages become its children.
        let items = [
            item(1, 10, "Re: x", "<1>", &["<gone>"]),
            item(2, 20, "Re: x", "<2>", &["<gone>"]),
            item(3, 30, "x", "<3>", &[]),
            item(4, 5, "Re: x", "<4>", &[]),
        ];
        assert_eq!(thread(Algorithm::References, &items), "((4)(1)(2)(3))");
        // Two dummies: the children of both become siblings, sorted by date.
        let items = [
            item(1, 10, "Re: y", "<1>", &["<g1>"]),
            item(2, 20, "Re: y", "<2>", &["<g1>"]),
            item(3, 15, "Re: y", "<3>", &["<g2>"]),
            item(4, 25, "y", "<4>", &["<g2>"]),
        ];
        assert_eq!(thread(Algorithm::References, &items), "((1)(3)(2)(4))");
    }

    #[test]
    fn step5_empty_subjects_stay_apart() {
        let items = [no_id(1, 10, ""), no_id(2, 20, "Re:"), no_id(3, 30, "  ")];
        assert_eq!(thread(Algorithm::References, &items), "(1)(2)(3)");
    }

    #[test]
    fn step6_siblings_sort_by_date_then_mailbox_order() {
        let items = [
            item(1, 50, "a", "<1>", &[]),
            item(2, 30, "Re: a", "<2>", &["<1>"]),
            item(3, 20, "Re: a", "<3>", &["<1>"]),
            item(4, 30, "Re: a", "<4>", &["<1>"]),
            item(5, 40, "b", "<5>", &[]),
        ];
        assert_eq!(thread(Algorithm::References, &items), "(5)(1 (3)(2)(4))");
    }

    #[test]
    fn ordered_subject_uses_the_full_base_subject() {
        let items = [
            no_id(1, 30, "Re: plan"),
            no_id(2, 10, "[list] plan (fwd)"),
            no_id(3, 20, "other"),
            no_id(4, 20, "[fwd: plan]"),
        ];
        assert_eq!(thread(Algorithm::OrderedSubject, &items), "(2 (4)(1))(3)");
    }

    #[test]
    fn loops_and_long_chains_are_safe() {
        let looped = [item(1, 1, "a", "<1>", &["<2>"]), item(2, 2, "a", "<2>", &["<1>"])];
        assert!(thread(Algorithm::References, &looped).starts_with('('));
        let chain: Vec<Item> = (1..=100_000u32)
            .map(|i| Item {
                number: i,
                date: i as i64,
                subject: base_subject("s"),
                message_id: Some(format!("<{i}>")),
                references: if i > 1 { vec![format!("<{}>", i - 1)] } else { vec![] },
            })
            .collect();
        let out = thread(Algorithm::References, &chain);
        assert!(out.starts_with("(1 2 3 ") && out.ends_with(" 100000)"));
    }
}
