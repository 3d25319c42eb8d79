//! DMARC aggregate reports (RFC 7489 §7.2), off unless
//! `auth_checks.dmarc_reports`: a row for every checked message whose
//! domain's DMARC record asks for reports (`rua=`), kept as JSON lines in
//! `queue.dir/dmarc/DOMAIN.jsonl`; once per `dmarc_report_interval` each
//! domain's rows are taken, counted into one gzipped XML report and
//! queued to the `rua` addresses that take it. An address outside the
//! domain must authorise it with a `DOMAIN._report._dmarc.THEIRS` record
//! (§7.1), so the reports cannot be aimed at a third party.

use super::policy::Action;
use mail_auth::report::{ActionDisposition, PolicyPublished, Record, Report};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A domain's rows stop growing past this size until its next report, so a
/// flood of mail cannot fill the disk with report rows.
const MAX_FILE: u64 = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One checked message, as kept until its report goes out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Unix time it was checked.
    pub at: u64,
    /// The `rua` addresses and their size limits; 0 is none.
    pub rua: Vec<(String, usize)>,
    pub policy: PolicyPublished,
    pub record: Record,
}

/// The rows of one domain and period, ready to become a report.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    pub domain: String,
    pub rows: Vec<Row>,
}

/// Who sends the reports, as they name themselves in each one.
pub struct Reporter<'a> {
    pub org_name: &'a str,
    pub email: &'a str,
}

impl Period {
    /// The aggregate report: identical rows counted once, the policy and
    /// addresses as last seen, the dates those of the first and last row.
    pub fn report(&self, reporter: &Reporter<'_>, report_id: &str) -> Report {
        let mut counts: Vec<(Record, u32)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for row in &self.rows {
            let key = serde_json::to_string(&row.record).unwrap_or_default();
            match index.get(&key) {
                Some(&i) => counts[i].1 += 1,
                None => {
                    index.insert(key, counts.len());
                    counts.push((row.record.clone(), 1));
                }
            }
        }
        let begin = self.rows.iter().map(|r| r.at).min().unwrap_or_default();
        let end = self.rows.iter().map(|r| r.at).max().unwrap_or_default();
        let mut report = Report::new()
            .with_version(1.0)
            .with_org_name(reporter.org_name)
            .with_email(reporter.email)
            .with_report_id(report_id)
            .with_date_range_begin(begin)
            .with_date_range_end(end)
            .with_generator(concat!("mta ", env!("CARGO_PKG_VERSION")));
        if let Some(last) = self.rows.last() {
            report = report.with_policy_published(last.policy.clone());
        }
        for (record, count) in counts {
            report.add_record(record.with_count(count));
        }
        report
    }

    /// Every distinct `rua` address with the smallest size limit given for it.
    pub fn destinations(&self) -> Vec<(String, usize)> {
        let mut out: Vec<(String, usize)> = Vec::new();
        for (address, limit) in self.rows.iter().flat_map(|r| &r.rua) {
            match out.iter_mut().find(|(a, _)| a.eq_ignore_ascii_case(address)) {
                Some((_, l)) if *limit != 0 && (*l == 0 || *limit < *l) => *l = *limit,
                Some(_) => {}
                None => out.push((address.clone(), *limit)),
            }
        }
        out
    }
}

/// The disposition we applied, as a report names it; none for a deferral,
/// since the retry is the message's row.
pub fn disposition(action: Action, dmarc_passed: bool) -> Option<ActionDisposition> {
    match action {
        Action::Refuse(reply) if reply.starts_with('4') => None,
        Action::Refuse(_) => Some(ActionDisposition::Reject),
        Action::Junk => Some(ActionDisposition::Quarantine),
        Action::Accept if dmarc_passed => Some(ActionDisposition::Pass),
        Action::Accept => Some(ActionDisposition::None),
    }
}

/// The rows on disk, one file per domain.
pub struct Reports {
    dir: PathBuf,
    /// Appends of two sessions to one file must not interleave.
    writing: Mutex<()>,
}

impl Reports {
    pub fn new(dir: PathBuf) -> Reports {
        Reports {
            dir,
            writing: Mutex::new(()),
        }
    }

    fn file(&self, domain: &str) -> PathBuf {
        self.dir.join(format!("{domain}.jsonl"))
    }

    /// Keep `row` for `domain`'s next report; past [`MAX_FILE`] it is dropped.
    pub fn record(&self, domain: &str, row: &Row) -> Result<(), ReportError> {
        // The domain comes from a DNS answer about a From: header: keep it a file name.
        let domain = domain.to_ascii_lowercase();
        if domain.is_empty()
            || !domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Ok(());
        }
        let path = self.file(&domain);
        let mut line = serde_json::to_vec(row).unwrap_or_default();
        line.push(b'\n');
        let _guard = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        std::fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_FILE) {
            return Ok(());
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        file.write_all(&line).map_err(io(&path))
    }

    /// Take every domain's rows: each file is renamed away first, so rows
    /// that arrive meanwhile start the next period. A line that does not
    /// parse (a crash mid-write) is skipped.
    pub fn take(&self) -> Result<Vec<Period>, ReportError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir)(e)),
        };
        let mut periods = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(domain) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jsonl"))
                .map(str::to_string)
            else {
                continue;
            };
            let taken = path.with_extension("sending");
            {
                let _guard = self.writing.lock().unwrap_or_else(|p| p.into_inner());
                std::fs::rename(&path, &taken).map_err(io(&path))?;
            }
            let file = std::fs::File::open(&taken).map_err(io(&taken))?;
            let rows: Vec<Row> = std::io::BufReader::new(file)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| serde_json::from_str(&l).ok())
                .collect();
            std::fs::remove_file(&taken).map_err(io(&taken))?;
            if !rows.is_empty() {
                periods.push(Period { domain, rows });
            }
        }
        periods.sort_by(|a, b| a.domain.cmp(&b.domain));
        Ok(periods)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn row(at: u64, ip: u8, rua: &[(&str, usize)]) -> Row {
        Row {
            at,
            rua: rua.iter().map(|(a, l)| (a.to_string(), *l)).collect(),
            policy: PolicyPublished::default(),
            record: Record::new()
                .with_source_ip(IpAddr::V4(Ipv4Addr::new(127, 0, 0, ip)))
                .with_header_from("sender.test"),
        }
    }

    #[test]
    fn identical_rows_are_counted_once() {
        let period = Period {
            domain: "sender.test".into(),
            rows: vec![row(10, 1, &[]), row(20, 2, &[]), row(30, 1, &[])],
        };
        let reporter = Reporter {
            org_name: "mx.test",
            email: "noreply-dmarc@mx.test",
        };
        let xml = period.report(&reporter, "r1").to_xml();
        assert!(xml.contains("<source_ip>127.0.0.1</source_ip>"), "{xml}");
        assert!(
            xml.contains("<count>2</count>") && xml.contains("<count>1</count>"),
            "{xml}"
        );
        assert!(
            xml.contains("<begin>10</begin>") && xml.contains("<end>30</end>"),
            "{xml}"
        );
        assert!(xml.contains("<report_id>r1</report_id>"), "{xml}");
    }

    #[test]
    fn destinations_merge_and_keep_the_smallest_limit() {
        let period = Period {
            domain: "sender.test".into(),
            rows: vec![
                row(1, 1, &[("a@sender.test", 0), ("b@x.test", 5000)]),
                row(2, 1, &[("A@sender.test", 1000), ("b@x.test", 9000)]),
            ],
        };
        assert_eq!(
            period.destinations(),
            [("a@sender.test".to_string(), 1000), ("b@x.test".to_string(), 5000)]
        );
    }

    #[test]
    fn rows_taken_once_and_new_rows_start_a_new_period() {
        let dir = tempfile::tempdir().unwrap();
        let reports = Reports::new(dir.path().join("dmarc"));
        assert!(reports.take().unwrap().is_empty());
        reports.record("Sender.test", &row(1, 1, &[])).unwrap();
        reports.record("sender.test", &row(2, 2, &[])).unwrap();
        reports.record("../etc", &row(3, 3, &[])).unwrap();
        let taken = reports.take().unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].domain, "sender.test");
        assert_eq!(taken[0].rows, [row(1, 1, &[]), row(2, 2, &[])]);
        assert!(reports.take().unwrap().is_empty());
        reports.record("sender.test", &row(4, 4, &[])).unwrap();
        assert_eq!(reports.take().unwrap()[0].rows, [row(4, 4, &[])]);
    }
}
