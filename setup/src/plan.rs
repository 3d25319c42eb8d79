//! One run: fetch every list of the configuration, fall back to the last good
//! copy of a source that fails, and work out what each black list becomes
//! once the white lists that follow it are subtracted.

use std::io::Read;
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ipnet::IpNet;

use crate::cache::Cache;
use crate::conf::{Conf, Kind, ListSpec, Message};
use crate::fetch::{FetchError, Limits, fetch, location};
use crate::merge::Set;
use crate::parse::parse_list;

/// Message files are a few lines of text.
const MAX_MESSAGE: u64 = 64 << 10;
/// Malformed lines reported one by one per list; the rest are counted.
const REPORTED_MALFORMED: usize = 10;

pub struct Options {
    pub limits: Limits,
    pub cache: Cache,
    /// Store fresh copies in the cache (not on a dry run).
    pub update_cache: bool,
    /// Draw progress bars (on a terminal).
    pub progress: bool,
}

/// A black list ready to load into greyd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub name: String,
    pub message: String,
    pub nets: Vec<IpNet>,
}

/// Something that went wrong with one list; the run goes on without it.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("list {list}: {location}: {error}")]
    Fetch {
        list: String,
        location: String,
        error: FetchError,
    },
    #[error("list {list}: message file {}: {error}", path.display())]
    Message {
        list: String,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("list {list}: cache: {error}")]
    Cache { list: String, error: std::io::Error },
}

#[derive(Debug, Default)]
pub struct Plan {
    /// Black lists to load, in configuration order.
    pub load: Vec<Planned>,
    /// Every black list the configuration names, loaded or not: greyd keeps these.
    pub configured: Vec<String>,
    pub failures: Vec<SourceError>,
    /// Lines skipped as malformed, over all lists.
    pub malformed: usize,
}

impl Plan {
    /// Failures are logged as they happen, and make the run exit non-zero.
    fn fail(&mut self, failure: SourceError, outcome: &str) {
        tracing::error!("{failure}{outcome}");
        self.failures.push(failure);
    }
}

/// Fetch, fall back, subtract, collapse.
pub fn plan(conf: &Conf, opts: &Options) -> Plan {
    let mut plan = Plan::default();
    let mut i = 0;
    while i < conf.lists.len() {
        let black = &conf.lists[i];
        // Validation puts a black list first; white lists apply to the one before them.
        let whites: Vec<&ListSpec> = conf.lists[i + 1..]
            .iter()
            .take_while(|l| l.kind == Kind::White)
            .collect();
        i += 1 + whites.len();
        plan.configured.push(black.name.clone());

        let black_set = obtain(black, opts, &mut plan);
        let white_sets: Vec<Option<Set>> = whites.iter().map(|w| obtain(w, opts, &mut plan)).collect();
        let message = match message(black) {
            Ok(m) => Some(m),
            Err(e) => {
                plan.fail(e, "");
                None
            }
        };
        // A missing white list would block hosts it exempts: keep greyd's copy instead.
        let (Some(mut set), Some(message)) = (black_set, message) else {
            continue;
        };
        let Some(white_sets) = white_sets.into_iter().collect::<Option<Vec<Set>>>() else {
            tracing::warn!("list {}: not updated, a white list for it is unavailable", black.name);
            continue;
        };
        for w in &white_sets {
            set = set.subtract(w);
        }
        let nets = set.to_cidrs();
        tracing::debug!("list {}: {} nets after merging", black.name, nets.len());
        plan.load.push(Planned {
            name: black.name.clone(),
            message,
            nets,
        });
    }
    plan
}

/// The list's addresses: fresh from its source, or the cached copy when the source fails.
fn obtain(spec: &ListSpec, opts: &Options, plan: &mut Plan) -> Option<Set> {
    let loc = location(spec);
    let bar = progress_bar(&spec.name, opts.progress);
    let fetched = fetch(spec, &opts.limits, &bar);
    bar.finish_and_clear();
    match fetched {
        Ok(bytes) => {
            tracing::debug!("list {}: {} bytes from {loc}", spec.name, bytes.len());
            let parsed = parse_list(&bytes);
            for m in parsed.malformed.iter().take(REPORTED_MALFORMED) {
                tracing::warn!(
                    "list {}: {loc} line {}: malformed, skipped: {}",
                    spec.name,
                    m.line,
                    m.text
                );
            }
            if parsed.malformed.len() > REPORTED_MALFORMED {
                tracing::warn!(
                    "list {}: {loc}: {} more malformed lines skipped",
                    spec.name,
                    parsed.malformed.len() - REPORTED_MALFORMED
                );
            }
            plan.malformed += parsed.malformed.len();
            let set = Set::from_entries(&parsed.entries);
            tracing::info!("list {}: {} entries from {loc}", spec.name, parsed.entries.len());
            if opts.update_cache
                && let Err(error) = opts.cache.store(&spec.name, &set)
            {
                let list = spec.name.clone();
                plan.fail(SourceError::Cache { list, error }, "");
            }
            Some(set)
        }
        Err(error) => {
            let failure = SourceError::Fetch {
                list: spec.name.clone(),
                location: loc,
                error,
            };
            let cached = opts.cache.load(&spec.name);
            let outcome = match &cached {
                Ok(Some(_)) => "; keeping the last good copy".to_string(),
                Ok(None) => "; no earlier copy to keep".to_string(),
                Err(e) => format!("; earlier copy unreadable: {e}"),
            };
            plan.fail(failure, &outcome);
            cached.unwrap_or(None)
        }
    }
}

/// The reply text: inline, or read from the message file.
fn message(spec: &ListSpec) -> Result<String, SourceError> {
    match &spec.message {
        Some(Message::Text(text)) => Ok(text.clone()),
        None => Ok(String::new()),
        Some(Message::File(path)) => {
            let read = || -> std::io::Result<String> {
                let mut text = String::new();
                std::fs::File::open(path)?.take(MAX_MESSAGE).read_to_string(&mut text)?;
                Ok(text.trim_end().to_string())
            };
            read().map_err(|error| SourceError::Message {
                list: spec.name.clone(),
                path: path.clone(),
                error,
            })
        }
    }
}

fn progress_bar(name: &str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} {bytes:>10} {bar:30} {bytes_per_sec}").expect("valid template"),
    );
    bar.set_prefix(name.to_string());
    bar
}
