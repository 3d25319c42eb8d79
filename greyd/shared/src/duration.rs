//! Durations as the config files and command lines write them: `90`, `90s`,
//! `25m`, `4h`, `36d`; what a bare number means is the caller's (spamd's
//! `-G` counts minutes and hours, the TOML files seconds).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("bad duration {0:?}: expected e.g. 90s, 25m, 4h, 36d")]
    Number(String),
    #[error("bad duration unit in {0:?}: use s, m, h or d")]
    Unit(String),
    #[error("duration {0:?} is too large")]
    TooLarge(String),
}

/// Parse `text`; a bare number counts `bare_unit` seconds.
pub fn parse(text: &str, bare_unit: u64) -> Result<Duration, DurationError> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().map_err(|_| DurationError::Number(text.into()))?;
    let mult = match unit {
        "" => bare_unit,
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(DurationError::Unit(text.into())),
    };
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| DurationError::TooLarge(text.into()))
}

/// Write a duration the way [`parse`] reads it, in the largest whole unit.
pub fn format(d: Duration) -> String {
    match d.as_secs() {
        0 => "0s".into(),
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn units_and_errors() {
        assert_eq!(parse("36d", 1), Ok(Duration::from_secs(36 * 86400)));
        assert_eq!(parse("90", 1), Ok(Duration::from_secs(90)));
        assert_eq!(parse("25", 60), Ok(Duration::from_secs(1500)));
        assert_eq!(parse(" 4h ", 1), Ok(Duration::from_secs(4 * 3600)));
        assert!(matches!(parse("", 1), Err(DurationError::Number(_))));
        assert!(matches!(parse("5w", 1), Err(DurationError::Unit(_))));
        assert!(matches!(
            parse("99999999999999999999d", 1),
            Err(DurationError::Number(_))
        ));
        assert!(matches!(
            parse("999999999999999999d", 1),
            Err(DurationError::TooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn format_reads_back(secs in 0u64..10_000_000_000) {
            let d = Duration::from_secs(secs);
            prop_assert_eq!(parse(&format(d), 1), Ok(d));
        }

        #[test]
        fn never_panics(text in "\\PC{0,24}", unit in 1u64..100_000) {
            let _ = parse(&text, unit);
        }
    }
}
