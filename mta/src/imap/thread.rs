//! THREAD (RFC 5256): ORDEREDSUBJECT, and REFERENCES without the subject
//! merging step (threads whose roots only share a subject stay apart). The
//! tree lives in an arena and is walked without recursion, so a long reply
//! chain cannot exhaust the stack.

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
    pub base_subject: String,
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
    let mut arena = Arena { nodes: Vec::new() };
    let roots = match algorithm {
        Algorithm::OrderedSubject => ordered_subject(&mut arena, items),
        Algorithm::References => references(&mut arena, items),
    };
    render(&arena, items, &roots)
}

fn ordered_subject(arena: &mut Arena, items: &[Item]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        (&items[a].base_subject, items[a].date, items[a].number).cmp(&(
            &items[b].base_subject,
            items[b].date,
            items[b].number,
        ))
    });
    let mut roots: Vec<usize> = Vec::new();
    let mut current: Option<(usize, &str)> = None;
    for i in order {
        let node = arena.add(Some(i));
        match current {
            Some((root, subject)) if subject == items[i].base_subject => arena.link(root, node),
            _ => {
                roots.push(node);
                current = Some((node, &items[i].base_subject));
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
    prune(arena, roots)
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

/// A node's date: its message's, or for an empty container its first child's.
fn date_of(arena: &Arena, items: &[Item], mut n: usize) -> (i64, u32) {
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

fn render(arena: &Arena, items: &[Item], roots: &[usize]) -> String {
    let sorted = |list: &[usize]| {
        let mut v = list.to_vec();
        v.sort_by_key(|&c| date_of(arena, items, c));
        v
    };
    enum Token {
        Node(usize),
        Text(&'static str),
    }
    let mut out = String::new();
    for root in sorted(roots) {
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
            let children = sorted(&node.children);
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

    fn item(number: u32, date: i64, subject: &str, id: &str, refs: &[&str]) -> Item {
        Item {
            number,
            date,
            base_subject: subject.into(),
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

    #[test]
    fn loops_and_long_chains_are_safe() {
        let looped = [item(1, 1, "a", "<1>", &["<2>"]), item(2, 2, "a", "<2>", &["<1>"])];
        assert!(thread(Algorithm::References, &looped).starts_with('('));
        let chain: Vec<Item> = (1..=100_000u32)
            .map(|i| Item {
                number: i,
                date: i as i64,
                base_subject: "s".into(),
                message_id: Some(format!("<{i}>")),
                references: if i > 1 { vec![format!("<{}>", i - 1)] } else { vec![] },
            })
            .collect();
        let out = thread(Algorithm::References, &chain);
        assert!(out.starts_with("(1 2 3 ") && out.ends_with(" 100000)"));
    }
}
