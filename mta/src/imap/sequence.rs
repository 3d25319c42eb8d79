//! Sequence sets (`1:4,7,9:*`): parsed with a cap on their size, resolved
//! against the highest message number or UID of a mailbox into sorted,
//! merged ranges for membership tests.

/// Most ranges one set may hold; more is a BAD command.
pub const MAX_RANGES: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Number(u32),
    /// `*`: the largest number in use.
    Star,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<(Bound, Bound)>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error("invalid sequence set")]
    Syntax,
    #[error("sequence set too large")]
    TooLarge,
}

fn bound(s: &str) -> Result<Bound, SequenceError> {
    if s == "*" {
        return Ok(Bound::Star);
    }
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SequenceError::Syntax);
    }
    match s.parse() {
        Ok(0) | Err(_) => Err(SequenceError::Syntax),
        Ok(n) => Ok(Bound::Number(n)),
    }
}

impl SequenceSet {
    pub fn parse(s: &str) -> Result<SequenceSet, SequenceError> {
        let mut ranges = Vec::new();
        for item in s.split(',') {
            if ranges.len() == MAX_RANGES {
                return Err(SequenceError::TooLarge);
            }
            let range = match item.split_once(':') {
                Some((a, b)) => (bound(a)?, bound(b)?),
                None => {
                    let b = bound(item)?;
                    (b, b)
                }
            };
            ranges.push(range);
        }
        Ok(SequenceSet(ranges))
    }

    /// The set naming exactly `numbers` (ascending), with runs as ranges;
    /// empty when `numbers` is, which then matches nothing.
    pub fn from_numbers(numbers: &[u32]) -> SequenceSet {
        let mut ranges: Vec<(Bound, Bound)> = Vec::new();
        for &n in numbers {
            match ranges.last_mut() {
                Some((_, Bound::Number(end))) if end.checked_add(1) == Some(n) => *end = n,
                _ => ranges.push((Bound::Number(n), Bound::Number(n))),
            }
        }
        SequenceSet(ranges)
    }

    /// Sorted, merged inclusive ranges, with `*` read as `largest`. In an
    /// empty mailbox (`largest` 0) `*` matches nothing.
    pub fn resolve(&self, largest: u32) -> Resolved {
        let value = |b: Bound| match b {
            Bound::Number(n) => n,
            Bound::Star => largest,
        };
        let mut ranges: Vec<(u32, u32)> = self
            .0
            .iter()
            .map(|&(a, b)| {
                let (a, b) = (value(a), value(b));
                (a.min(b), a.max(b))
            })
            .filter(|&(a, _)| a > 0)
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        Resolved(merged)
    }
}

/// A sequence set resolved against one mailbox state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved(Vec<(u32, u32)>);

impl Resolved {
    pub fn contains(&self, n: u32) -> bool {
        let i = self.0.partition_point(|&(_, b)| b < n);
        self.0.get(i).is_some_and(|&(a, _)| a <= n)
    }
}

/// Render ascending numbers compactly: `1:3,5,9:10`.
pub fn render(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end + 1 {
            i += 1;
            end = numbers[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_and_resolve() {
        let s = SequenceSet::parse("2:4,7,*,10:9").unwrap();
        let r = s.resolve(12);
        let members: Vec<u32> = (0..20).filter(|&n| r.contains(n)).collect();
        assert_eq!(members, [2, 3, 4, 7, 9, 10, 12]);
        assert!(!SequenceSet::parse("*").unwrap().resolve(0).contains(0));
        assert_eq!(SequenceSet::parse("5:*").unwrap().resolve(3), Resolved(vec![(3, 5)]));
        for bad in ["", "0", "1,", ":", "1:", "a", "-1", "1:2:3", "99999999999"] {
            assert_eq!(SequenceSet::parse(bad), Err(SequenceError::Syntax), "{bad}");
        }
        let huge = vec!["1"; MAX_RANGES + 1].join(",");
        assert_eq!(SequenceSet::parse(&huge), Err(SequenceError::TooLarge));
    }

    #[test]
    fn renders_runs() {
        assert_eq!(render(&[1, 2, 3, 5, 9, 10]), "1:3,5,9:10");
        assert_eq!(render(&[]), "");
    }

    proptest! {
        #[test]
        fn resolve_matches_naive(ranges in proptest::collection::vec((1u32..50, 1u32..50), 1..10), largest in 0u32..60) {
            let text: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}:{b}")).collect();
            let r = SequenceSet::parse(&text.join(",")).unwrap().resolve(largest);
            for n in 0..60 {
                let naive = ranges.iter().any(|&(a, b)| a.min(b) <= n && n <= a.max(b));
                prop_assert_eq!(r.contains(n), naive);
            }
        }

        #[test]
        fn from_numbers_names_exactly_them(v in proptest::collection::btree_set(1u32..200, 0..40)) {
            let v: Vec<u32> = v.into_iter().collect();
            let r = SequenceSet::from_numbers(&v).resolve(1000);
            for n in 0..210 {
                prop_assert_eq!(r.contains(n), v.contains(&n));
            }
        }

        #[test]
        fn render_parses_back(mut v in proptest::collection::btree_set(1u32..200, 1..40)) {
            let v: Vec<u32> = std::mem::take(&mut v).into_iter().collect();
            let r = SequenceSet::parse(&render(&v)).unwrap().resolve(1000);
            for n in 0..210 {
                prop_assert_eq!(r.contains(n), v.contains(&n));
            }
        }
    }
}
