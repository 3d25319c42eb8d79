//! QRESYNC's message sequence match data (RFC 7162 §3.2.5.2): pairs of
//! message numbers and the UIDs the client last saw at them. A pair that
//! still holds shows the client knows every expunge up to that UID, so
//! SELECT's `VANISHED (EARLIER)` can leave those UIDs out.

use super::sequence::{Bound, SequenceSet};

/// Why sequence match data cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceMatchError {
    #[error("no * in sequence match data")]
    Star,
    #[error("sequence match sets differ in length")]
    Lengths,
}

/// Both sets as ascending inclusive ranges, in the order the client gave them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceMatch {
    seqs: Vec<(u32, u32)>,
    uids: Vec<(u32, u32)>,
}

/// The ranges of a set with no `*`.
fn explicit(set: &SequenceSet) -> Option<Vec<(u32, u32)>> {
    set.0
        .iter()
        .map(|&(a, b)| match (a, b) {
            (Bound::Number(a), Bound::Number(b)) => Some((a.min(b), a.max(b))),
            _ => None,
        })
        .collect()
}

fn count(ranges: &[(u32, u32)]) -> u64 {
    ranges.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
}

fn numbers(ranges: &[(u32, u32)]) -> impl Iterator<Item = u32> + '_ {
    ranges.iter().flat_map(|&(a, b)| a..=b)
}

impl SequenceMatch {
    /// Both sets must be explicit (no `*`) and name as many numbers each.
    pub fn new(seqs: SequenceSet, uids: SequenceSet) -> Result<SequenceMatch, SequenceMatchError> {
        let (Some(seqs), Some(uids)) = (explicit(&seqs), explicit(&uids)) else {
            return Err(SequenceMatchError::Star);
        };
        if count(&seqs) != count(&uids) {
            return Err(SequenceMatchError::Lengths);
        }
        Ok(SequenceMatch { seqs, uids })
    }

    /// The highest UID through which the client knows every expunge: the
    /// pairs are checked in order against `uid_at` (message number to UID
    /// now) up to the first that no longer holds. 0 if the first fails.
    pub fn known_through(&self, uid_at: impl Fn(u32) -> Option<u32>) -> u32 {
        let mut known = 0;
        for (seq, uid) in numbers(&self.seqs).zip(numbers(&self.uids)) {
            if uid_at(seq) != Some(uid) {
                break;
            }
            known = known.max(uid);
        }
        known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(seqs: &str, uids: &str) -> Result<SequenceMatch, SequenceMatchError> {
        SequenceMatch::new(SequenceSet::parse(seqs).unwrap(), SequenceSet::parse(uids).unwrap())
    }

    #[test]
    fn sets_must_pair_up() {
        assert!(matcher("1:3,7", "4,8,12,20").is_ok());
        assert!(matcher("1:3", "4,8").is_err());
        assert!(matcher("1:*", "1:3").is_err());
    }

    #[test]
    fn rfc_example_stops_at_the_first_mismatch() {
        // RFC 7162 §3.2.5.2: message 4 is UID 8 as the client thinks, message
        // 12 is not UID 24 any more, so expunges through UID 8 are known.
        let mut mailbox = std::collections::HashMap::new();
        mailbox.insert(4, 8);
        mailbox.insert(12, 25);
        mailbox.insert(20, 40);
        let m = matcher("4,12,20", "8,24,40").unwrap();
        assert_eq!(m.known_through(|s| mailbox.get(&s).copied()), 8);
        let m = matcher("12", "24").unwrap();
        assert_eq!(m.known_through(|s| mailbox.get(&s).copied()), 0);
    }

    #[test]
    fn huge_ranges_stop_at_the_end_of_the_mailbox() {
        let m = matcher("1:4294967295", "1:4294967295").unwrap();
        assert_eq!(m.known_through(|s| (s <= 3).then_some(s)), 3);
    }
}
