//! Comparators (RFC 4790: i;octet, i;ascii-casemap, i;ascii-numeric) and
//! match types (`:is`, `:contains`, `:matches` with its wildcards, and
//! relational `:value`/`:count`, RFC 5231). `:matches` reports what each
//! wildcard matched, for the variables extension's `${1}`...

use super::ast::{Comparator, Match, MatchKind, Relation};
use std::cmp::Ordering;

/// The outcome of matching values against keys.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub matched: bool,
    /// For a `:matches` success: the whole value, then each wildcard's text.
    pub captures: Option<Vec<String>>,
    /// Comparisons made, charged to the script's CPU budget.
    pub steps: u64,
}

/// Does any of `values` match any of `keys`? `:count` counts the values.
pub fn test(how: &Match, values: &[String], keys: &[String]) -> Found {
    let mut found = Found::default();
    if let MatchKind::Count(rel) = how.kind {
        let count = values.len().to_string();
        found.steps = keys.len() as u64;
        found.matched = keys
            .iter()
            .any(|k| relate(compare(Comparator::AsciiNumeric, &count, k), rel));
        return found;
    }
    for v in values {
        for k in keys {
            found.steps += 1 + (v.len() as u64 + k.len() as u64) / 64;
            let hit = match how.kind {
                MatchKind::Is => compare(how.comparator, v, k) == Ordering::Equal,
                MatchKind::Contains => contains(how.comparator, v, k),
                MatchKind::Value(rel) => relate(compare(how.comparator, v, k), rel),
                MatchKind::Matches => match wildcard(how.comparator, v, k) {
                    Some(caps) => {
                        found.captures = Some(std::iter::once(v.clone()).chain(caps).collect());
                        true
                    }
                    None => false,
                },
                MatchKind::Count(_) => unreachable!("handled above"),
            };
            if hit {
                found.matched = true;
                return found;
            }
        }
    }
    found
}

fn relate(o: Ordering, rel: Relation) -> bool {
    match rel {
        Relation::Gt => o == Ordering::Greater,
        Relation::Ge => o != Ordering::Less,
        Relation::Lt => o == Ordering::Less,
        Relation::Le => o != Ordering::Greater,
        Relation::Eq => o == Ordering::Equal,
        Relation::Ne => o != Ordering::Equal,
    }
}

fn fold(c: Comparator, b: u8) -> u8 {
    match c {
        Comparator::Octet => b,
        _ => b.to_ascii_lowercase(),
    }
}

/// i;ascii-numeric: the leading digits as a number; a string not starting
/// with a digit is positive infinity (RFC 4790 section 9.1).
fn numeric(s: &str) -> Option<&str> {
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    (digits > 0).then(|| {
        let d = &s[..digits];
        let trimmed = d.trim_start_matches('0');
        if trimmed.is_empty() { "0" } else { trimmed }
    })
}

pub fn compare(c: Comparator, a: &str, b: &str) -> Ordering {
    match c {
        Comparator::AsciiNumeric => match (numeric(a), numeric(b)) {
            (Some(x), Some(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        },
        _ => a.bytes().map(|x| fold(c, x)).cmp(b.bytes().map(|x| fold(c, x))),
    }
}

fn contains(c: Comparator, hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty()
        || h.windows(n.len())
            .any(|w| w.iter().zip(n).all(|(x, y)| fold(c, *x) == fold(c, *y)))
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Pat {
    Star,
    One,
    Lit(char),
}

fn pattern(key: &str) -> Vec<Pat> {
    let mut out = Vec::new();
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '*' => Pat::Star,
            '?' => Pat::One,
            '\\' => Pat::Lit(chars.next().unwrap_or('\\')),
            c => Pat::Lit(c),
        });
    }
    out
}

fn same_char(c: Comparator, a: char, b: char) -> bool {
    match c {
        Comparator::Octet => a == b,
        _ => a.eq_ignore_ascii_case(&b),
    }
}

/// `:matches`: `*` any run, `?` one character, `\` quotes the next. Each
/// wildcard takes as little as it can (leftmost-shortest), found without
/// backtracking beyond the last star, so time is O(value × key).
/// Returns what each wildcard matched.
fn wildcard(c: Comparator, value: &str, key: &str) -> Option<Vec<String>> {
    let v: Vec<char> = value.chars().collect();
    let p = pattern(key);
    // Per pattern element, the start and end in `v` it matched.
    let mut spans = vec![(0usize, 0usize); p.len()];
    let (mut vi, mut pi) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while vi < v.len() {
        match p.get(pi) {
            Some(Pat::Star) => {
                spans[pi] = (vi, vi);
                last_star = Some((pi, vi));
                pi += 1;
            }
            Some(Pat::One) => {
                spans[pi] = (vi, vi + 1);
                vi += 1;
                pi += 1;
            }
            Some(Pat::Lit(l)) if same_char(c, *l, v[vi]) => {
                vi += 1;
                pi += 1;
            }
            _ => {
                let (spi, svi) = last_star?;
                spans[spi] = (spans[spi].0, svi + 1);
                last_star = Some((spi, svi + 1));
                pi = spi + 1;
                vi = svi + 1;
            }
        }
    }
    while p.get(pi) == Some(&Pat::Star) {
        spans[pi] = (vi, vi);
        pi += 1;
    }
    (pi == p.len()).then(|| {
        p.iter()
            .zip(&spans)
            .filter(|(e, _)| !matches!(e, Pat::Lit(_)))
            .map(|(_, (s, e))| v[*s..*e].iter().collect())
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(kind: MatchKind, comparator: Comparator) -> Match {
        Match { comparator, kind }
    }

    fn caps(value: &str, key: &str) -> Option<Vec<String>> {
        wildcard(Comparator::AsciiCasemap, value, key)
    }

    #[test]
    fn wildcards_capture_shortest_first() {
        assert_eq!(caps("a.b.c", "*.*"), Some(vec!["a".into(), "b.c".into()]));
        assert_eq!(
            caps("<list@example.org>", "*<*@*"),
            Some(vec!["".into(), "list".into(), "example.org>".into()])
        );
        assert_eq!(caps("abc", "a?c"), Some(vec!["b".into()]));
        assert_eq!(caps("ABC", "a*"), Some(vec!["BC".into()]));
        assert_eq!(wildcard(Comparator::Octet, "ABC", "a*"), None);
        assert_eq!(caps("a*b", "a\\*b"), Some(vec![]));
        assert_eq!(caps("axb", "a\\*b"), None);
        assert_eq!(caps("", "*"), Some(vec!["".into()]));
        assert_eq!(caps("abc", "*d"), None);
    }

    #[test]
    fn numeric_and_relational() {
        let v = |s: &str| vec![s.to_string()];
        let gt = m(MatchKind::Value(Relation::Gt), Comparator::AsciiNumeric);
        assert!(test(&gt, &v("10"), &v("9")).matched);
        assert!(!test(&gt, &v("09"), &v("9")).matched);
        assert!(test(&gt, &v("x"), &v("99999")).matched, "non-numbers are infinity");
        let count = m(MatchKind::Count(Relation::Ge), Comparator::AsciiNumeric);
        assert!(test(&count, &["a".into(), "b".into()], &v("2")).matched);
        assert!(!test(&count, &["a".into()], &v("2")).matched);
        let contains = m(MatchKind::Contains, Comparator::AsciiCasemap);
        assert!(test(&contains, &v("Hello World"), &v("o w")).matched);
        let is_octet = m(MatchKind::Is, Comparator::Octet);
        assert!(!test(&is_octet, &v("A"), &v("a")).matched);
    }

    /// The same question answered by plain exponential backtracking.
    fn slow(v: &[char], p: &[Pat]) -> bool {
        match p.split_first() {
            None => v.is_empty(),
            Some((Pat::Star, rest)) => (0..=v.len()).any(|i| slow(&v[i..], rest)),
            Some((Pat::One, rest)) => !v.is_empty() && slow(&v[1..], rest),
            Some((Pat::Lit(c), rest)) => v.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && slow(&v[1..], rest),
        }
    }

    proptest! {
        #[test]
        fn wildcard_agrees_with_backtracking(value in "[ab.]{0,10}", key in "[ab.*?]{0,8}") {
            let fast = caps(&value, &key);
            let chars: Vec<char> = value.chars().collect();
            prop_assert_eq!(fast.is_some(), slow(&chars, &pattern(&key)));
            if let Some(c) = fast {
                // Putting the captures back into the key gives the value.
                let mut it = c.into_iter();
                let rebuilt: String = pattern(&key).iter().map(|e| match e {
                    Pat::Lit(l) => l.to_string(),
                    _ => it.next().unwrap(),
                }).collect();
                prop_assert!(rebuilt.eq_ignore_ascii_case(&value));
            }
        }
    }
}
