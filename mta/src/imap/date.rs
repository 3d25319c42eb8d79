//! IMAP's date grammar: `date` (`1-Feb-1994`, SEARCH) and `date-time`
//! (`17-Jul-1996 02:44:25 -0700`, APPEND), parsed to days and seconds since
//! the epoch. Rendering lives in `crate::datetime`.

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days-from-civil).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn month(name: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(name))
        .map(|i| i as u32 + 1)
}

fn digits<T: std::str::FromStr>(s: &str, min: usize, max: usize) -> Option<T> {
    (s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `1-Feb-1994` as days since the epoch.
pub fn parse_date(s: &str) -> Option<i64> {
    let mut it = s.trim_start().splitn(3, '-');
    let day: u32 = digits(it.next()?, 1, 2)?;
    let month = month(it.next()?)?;
    let year: i64 = digits(it.next()?, 4, 4)?;
    (1..=31).contains(&day).then(|| days_from_civil(year, month, day))
}

/// `17-Jul-1996 02:44:25 -0700` (day may be space-padded) as seconds since the epoch.
pub fn parse_date_time(s: &str) -> Option<i64> {
    let (date, rest) = s.trim_start().split_once(' ')?;
    let days = parse_date(date)?;
    let (time, zone) = rest.split_once(' ')?;
    let mut t = time.splitn(3, ':');
    let h: i64 = digits(t.next()?, 2, 2)?;
    let m: i64 = digits(t.next()?, 2, 2)?;
    let sec: i64 = digits(t.next()?, 2, 2)?;
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let z: i64 = digits(&zone[1..], 4, 4)?;
    let offset = sign * ((z / 100) * 3600 + (z % 100) * 60);
    Some(days * 86400 + h * 3600 + m * 60 + sec - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1-Jan-1970"), Some(0));
        assert_eq!(parse_date("29-feb-2000"), Some(11016));
        assert_eq!(parse_date_time("17-Jul-1996 02:44:25 -0700"), Some(837_596_665));
        assert_eq!(parse_date_time(" 1-Jan-1970 00:00:00 +0000"), Some(0));
        for bad in ["", "1-Foo-1970", "32-Jan-1970", "1-Jan-70", "1-Jan-1970x"] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
        assert_eq!(parse_date_time("1-Jan-1970 25:00:00 +0000"), None);
        assert_eq!(parse_date_time("1-Jan-1970 00:00:00 0000"), None);
    }
}
