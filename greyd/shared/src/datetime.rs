//! The clock ([`now`]) and the date formats mail needs, in UTC: RFC 5322
//! (`Date:`, `Received:`), asctime (greyd's banner, mbox From_ lines) and
//! IMAP's INTERNALDATE. Shared by greyd and mta; small enough to not pull
//! in a date crate.

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

struct Civil {
    year: i64,
    month: usize,
    day: i64,
    weekday: usize,
    hour: u64,
    min: u64,
    sec: u64,
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil(secs: u64) -> Civil {
    let days = (secs / 86400) as i64;
    let rem = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month: (month - 1) as usize,
        day,
        weekday: (days % 7) as usize,
        hour: rem / 3600,
        min: rem / 60 % 60,
        sec: rem % 60,
    }
}

/// `Sat, 28 Nov 2026 00:45:31 +0000`
pub fn rfc5322(secs: u64) -> String {
    let c = civil(secs);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[c.weekday], c.day, MONTHS[c.month], c.year, c.hour, c.min, c.sec
    )
}

/// `28-Nov-2026 00:45:31 +0000` (IMAP INTERNALDATE)
pub fn imap(secs: u64) -> String {
    let c = civil(secs);
    format!(
        "{:2}-{}-{} {:02}:{:02}:{:02} +0000",
        c.day, MONTHS[c.month], c.year, c.hour, c.min, c.sec
    )
}

/// `Sat Nov 28 00:45:31 2026`
pub fn asctime(secs: u64) -> String {
    let c = civil(secs);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[c.weekday], MONTHS[c.month], c.day, c.hour, c.min, c.sec, c.year
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_dates() {
        assert_eq!(super::rfc5322(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(super::rfc5322(1_795_833_931), "Sat, 28 Nov 2026 02:45:31 +0000");
        assert_eq!(super::asctime(0), "Thu Jan  1 00:00:00 1970");
        assert_eq!(super::asctime(951_782_400), "Tue Feb 29 00:00:00 2000");
        assert_eq!(super::imap(951_782_400), "29-Feb-2000 00:00:00 +0000");
        assert_eq!(super::imap(0), " 1-Jan-1970 00:00:00 +0000");
    }
}
