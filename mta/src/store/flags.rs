//! Message flags and their Maildir spelling: the `:2,` info suffix of a
//! file name (`D F R S T` for the system flags, lowercase letters for
//! keywords) and the `dovecot-keywords` file that maps those letters to
//! keyword names. The file name is Dovecot's, so Maildirs move between the
//! two servers with their keywords intact.

use std::collections::BTreeSet;

/// The flags of one message. IMAP's `\Recent` is per session, not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Flags {
    pub seen: bool,
    pub answered: bool,
    pub flagged: bool,
    pub deleted: bool,
    pub draft: bool,
    /// IMAP keywords (`$Forwarded`, `$Junk`, ...), spelled as first seen.
    pub keywords: BTreeSet<String>,
}

/// How STORE combines the given flags with the current ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// Keyword letters: Maildir has room for 26 (`a`–`z`).
pub const MAX_KEYWORDS: usize = 26;

impl Flags {
    /// `self` changed by `op` with `given`.
    pub fn apply(&self, op: FlagOp, given: &Flags) -> Flags {
        let pick = |cur: bool, new: bool| match op {
            FlagOp::Add => cur || new,
            FlagOp::Remove => cur && !new,
            FlagOp::Replace => new,
        };
        let keywords = match op {
            FlagOp::Add => self.keywords.union(&given.keywords).cloned().collect(),
            FlagOp::Remove => self
                .keywords
                .iter()
                .filter(|k| !given.keywords.iter().any(|g| g.eq_ignore_ascii_case(k)))
                .cloned()
                .collect(),
            FlagOp::Replace => given.keywords.clone(),
        };
        Flags {
            seen: pick(self.seen, given.seen),
            answered: pick(self.answered, given.answered),
            flagged: pick(self.flagged, given.flagged),
            deleted: pick(self.deleted, given.deleted),
            draft: pick(self.draft, given.draft),
            keywords,
        }
    }
}

/// The keyword ↔ letter table of one Maildir folder (`dovecot-keywords`:
/// lines `N name`, letter `a` + N).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeywordTable {
    names: Vec<Option<String>>,
}

impl KeywordTable {
    pub fn parse(text: &str) -> KeywordTable {
        let mut names = vec![None; MAX_KEYWORDS];
        for line in text.lines() {
            if let Some((n, name)) = line.split_once(' ')
                && let Ok(n) = n.parse::<usize>()
                && n < MAX_KEYWORDS
                && !name.is_empty()
            {
                names[n] = Some(name.to_string());
            }
        }
        while names.last() == Some(&None) {
            names.pop();
        }
        KeywordTable { names }
    }

    pub fn render(&self) -> String {
        self.names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_ref().map(|n| format!("{i} {n}\n")))
            .collect()
    }

    fn letter_of(&self, keyword: &str) -> Option<char> {
        self.names
            .iter()
            .position(|n| n.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(keyword)))
            .map(|i| (b'a' + i as u8) as char)
    }

    /// Give every keyword of `flags` a letter. Returns whether the table
    /// grew (and must be saved), or `None`, with the table unchanged, when
    /// the 26 letters would not do.
    pub fn assign(&mut self, flags: &Flags) -> Option<bool> {
        let before = self.names.clone();
        let mut grew = false;
        for k in &flags.keywords {
            if self.letter_of(k).is_some() {
                continue;
            }
            match self.names.iter().position(Option::is_none) {
                Some(free) => self.names[free] = Some(k.clone()),
                None if self.names.len() < MAX_KEYWORDS => self.names.push(Some(k.clone())),
                None => {
                    self.names = before;
                    return None;
                }
            }
            grew = true;
        }
        Some(grew)
    }

    /// The keywords that have a letter, sorted: what SELECT's FLAGS lists.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names.iter().flatten().cloned().collect();
        names.sort();
        names
    }

    /// The Maildir info letters for `flags` (ASCII order, as the spec asks).
    /// Keywords without a letter are left out: call `assign` first.
    pub fn info(&self, flags: &Flags) -> String {
        let mut letters: Vec<char> = [
            (flags.draft, 'D'),
            (flags.flagged, 'F'),
            (flags.answered, 'R'),
            (flags.seen, 'S'),
            (flags.deleted, 'T'),
        ]
        .into_iter()
        .filter_map(|(on, c)| on.then_some(c))
        .collect();
        letters.extend(flags.keywords.iter().filter_map(|k| self.letter_of(k)));
        letters.sort_unstable();
        letters.into_iter().collect()
    }

    /// Flags from Maildir info letters; unknown letters (`P` passed, unmapped
    /// keyword letters) are ignored.
    pub fn flags(&self, info: &str) -> Flags {
        let mut f = Flags::default();
        for c in info.chars() {
            match c {
                'D' => f.draft = true,
                'F' => f.flagged = true,
                'R' => f.answered = true,
                'S' => f.seen = true,
                'T' => f.deleted = true,
                'a'..='z' => {
                    if let Some(Some(name)) = self.names.get((c as u8 - b'a') as usize) {
                        f.keywords.insert(name.clone());
                    }
                }
                _ => {}
            }
        }
        f
    }
}

/// Split a Maildir file name into its unique part and its info letters
/// (`None` when it has no `:2,` suffix, as in new/).
pub fn split_name(file: &str) -> (&str, Option<&str>) {
    match file.rsplit_once(":2,") {
        Some((base, info)) => (base, Some(info)),
        None => (file, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kw(names: &[&str]) -> Flags {
        Flags {
            keywords: names.iter().map(|s| s.to_string()).collect(),
            ..Flags::default()
        }
    }

    #[test]
    fn info_letters_are_sorted_and_round_trip() {
        let mut table = KeywordTable::default();
        let mut f = kw(&["$Forwarded", "$Junk"]);
        f.seen = true;
        f.draft = true;
        f.deleted = true;
        assert_eq!(table.assign(&f), Some(true));
        assert_eq!(table.assign(&f), Some(false));
        let info = table.info(&f);
        assert_eq!(info, "DSTab");
        assert_eq!(table.flags(&info), f);
        assert_eq!(table.render(), "0 $Forwarded\n1 $Junk\n");
        assert_eq!(KeywordTable::parse(&table.render()), table);
    }

    #[test]
    fn unknown_letters_are_ignored() {
        let table = KeywordTable::parse("0 $Label1\n");
        let f = table.flags("PSaz");
        assert!(f.seen);
        assert_eq!(f.keywords.into_iter().collect::<Vec<_>>(), ["$Label1"]);
    }

    #[test]
    fn twenty_six_keywords_fit_and_no_more() {
        let mut table = KeywordTable::default();
        let names: Vec<String> = (0..26).map(|i| format!("k{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(table.assign(&kw(&refs)), Some(true));
        assert_eq!(table.assign(&kw(&["one-more"])), None);
        // A refused assignment leaves nothing behind.
        assert_eq!(table.assign(&kw(&["another", "one-more"])), None);
        assert!(!table.names().iter().any(|n| n == "another"));
    }

    #[test]
    fn split_names() {
        assert_eq!(split_name("123.M1P2.host:2,RS"), ("123.M1P2.host", Some("RS")));
        assert_eq!(split_name("123.M1P2.host"), ("123.M1P2.host", None));
    }

    proptest! {
        #[test]
        fn apply_matches_set_semantics(cur in 0u8..32, given in 0u8..32, op in 0usize..3) {
            let from_bits = |b: u8| Flags {
                seen: b & 1 != 0, answered: b & 2 != 0, flagged: b & 4 != 0,
                deleted: b & 8 != 0, draft: b & 16 != 0, keywords: BTreeSet::new(),
            };
            let op = [FlagOp::Add, FlagOp::Remove, FlagOp::Replace][op];
            let expect = match op { FlagOp::Add => cur | given, FlagOp::Remove => cur & !given, FlagOp::Replace => given };
            prop_assert_eq!(from_bits(cur).apply(op, &from_bits(given)), from_bits(expect));
        }

        #[test]
        fn table_parse_never_panics(text in ".{0,200}") {
            let t = KeywordTable::parse(&text);
            let _ = t.flags("abcdefghijklmnopqrstuvwxyzDFRST");
        }
    }
}
