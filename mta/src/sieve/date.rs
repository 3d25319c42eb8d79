//! RFC 5260 dates: a moment read from a header (RFC 5322 date-time) or the
//! clock, moved into a zone, and the date parts `date`/`currentdate`
//! compare, as strings.

use super::ast::DatePart;
use mail_parser::DateTime;

/// A moment and the zone it is seen in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    /// Seconds since the Unix epoch.
    pub utc: i64,
    /// Offset east of UTC, in seconds.
    pub offset: i64,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
/// Modified Julian Day of 1970-01-01.
const MJD_EPOCH: i64 = 40587;

impl Moment {
    /// An RFC 5322 date-time with its own zone; `None` for one that does not parse.
    pub fn parse(value: &str) -> Option<Moment> {
        let dt = DateTime::parse_rfc822(value).filter(DateTime::is_valid)?;
        let offset =
            (i64::from(dt.tz_hour) * 3600 + i64::from(dt.tz_minute) * 60) * if dt.tz_before_gmt { -1 } else { 1 };
        Some(Moment {
            utc: dt.to_timestamp(),
            offset,
        })
    }

    pub fn in_zone(self, offset: i64) -> Moment {
        Moment { offset, ..self }
    }

    /// The part as RFC 5260 section 4.2 writes it.
    pub fn part(&self, part: DatePart) -> String {
        let local = self.utc.saturating_add(self.offset);
        let dt = DateTime::from_timestamp(local);
        let days = local.div_euclid(86400);
        let zone = zone_string(self.offset);
        let date = format!("{:04}-{:02}-{:02}", dt.year, dt.month, dt.day);
        let time = format!("{:02}:{:02}:{:02}", dt.hour, dt.minute, dt.second);
        let weekday = (days + 4).rem_euclid(7) as usize;
        match part {
            DatePart::Year => format!("{:04}", dt.year),
            DatePart::Month => format!("{:02}", dt.month),
            DatePart::Day => format!("{:02}", dt.day),
            DatePart::Date => date,
            DatePart::Julian => (days + MJD_EPOCH).to_string(),
            DatePart::Hour => format!("{:02}", dt.hour),
            DatePart::Minute => format!("{:02}", dt.minute),
            DatePart::Second => format!("{:02}", dt.second),
            DatePart::Time => time,
            DatePart::Iso8601 => format!("{date}T{time}{}:{}", &zone[..3], &zone[3..]),
            DatePart::Std11 => format!(
                "{}, {:02} {} {:04} {time} {zone}",
                DAYS[weekday],
                dt.day,
                MONTHS[usize::from(dt.month.clamp(1, 12)) - 1],
                dt.year
            ),
            DatePart::Zone => zone,
            DatePart::Weekday => weekday.to_string(),
        }
    }
}

/// `+hhmm` or `-hhmm` (RFC 5260 `:zone`) as seconds east of UTC.
pub fn parse_zone(s: &str) -> Option<i64> {
    let (sign, digits) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i64 = digits[..2].parse().ok()?;
    let minutes: i64 = digits[2..].parse().ok()?;
    (hours <= 23 && minutes <= 59).then_some(sign * (hours * 3600 + minutes * 60))
}

fn zone_string(offset: i64) -> String {
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    format!("{sign}{:02}{:02}", (abs / 3600) % 100, (abs % 3600) / 60)
}
