//! What the benchmarks measure besides a rate, and how they summarise a
//! series of runs:
//!
//! - the CPU (user + system) of a server's whole process tree, from /proc,
//!   so Postfix's many processes count as well as mta's one;
//! - its fsyncs, counted by running the server under `strace --seccomp-bpf`
//!   (only the sync calls stop the tracee, so the cost is small and the same
//!   for both servers) and reading the calls made inside the measured window;
//! - alternating runs (A B A B …) summarised as median and spread, the ratio
//!   of the medians, and one final `ratio: X (goal Y)` line for scripts.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};

/// The system calls that make data durable.
const SYNC_CALLS: [&str; 4] = ["fsync", "fdatasync", "sync_file_range", "syncfs"];

/// (parent PID, utime + stime + cutime + cstime in ticks) from /proc/PID/stat.
fn stat(pid: u32) -> Result<(u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = text.rsplit_once(')').context("stat")?.1.split_whitespace().collect();
    let ticks = fields[11..15]
        .iter()
        .map(|f| f.parse::<u64>())
        .sum::<Result<u64, _>>()?;
    Ok((fields[1].parse()?, ticks))
}

/// `root` and every process below it.
pub fn process_tree(root: u32) -> Vec<u32> {
    let all: Vec<(u32, u32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| Some((p, stat(p).ok()?.0)))
                .collect()
        })
        .unwrap_or_default();
    let mut family = vec![root];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        family.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    family
}

/// CPU seconds used so far by `root`'s tree: every live process, with the
/// children each has reaped.
pub fn tree_cpu_seconds(root: u32) -> f64 {
    let ticks: u64 = process_tree(root)
        .into_iter()
        .filter_map(|p| Some(stat(p).ok()?.1))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks as f64 / hz
}

/// The server strace started: the first process under `parent` that runs
/// another program, waiting for its exec. (strace also forks a short-lived
/// copy of itself to test seccomp filtering, which must not be taken for it.)
pub fn child_of(parent: u32) -> Result<u32> {
    let exe = |p: u32| std::fs::read_link(format!("/proc/{p}/exe")).ok();
    let tracer = exe(parent);
    for _ in 0..200 {
        let started = process_tree(parent)
            .into_iter()
            .skip(1)
            .find(|&p| exe(p).is_some_and(|e| Some(&e) != tracer.as_ref()));
        if let Some(child) = started {
            return Ok(child);
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    anyhow::bail!("process {parent} started no child")
}

/// Seconds since the epoch, the clock strace's `-ttt` timestamps use.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// A log of every sync call a server tree makes.
pub struct SyncLog(pub PathBuf);

impl SyncLog {
    /// `strace` ready to start a program (appended by the caller) with its
    /// sync calls, and those of every process it forks, written to the log.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "--seccomp-bpf", "-qq", "-ttt", "-e", "signal=none", "-e"])
            .arg(format!("trace={}", SYNC_CALLS.join(",")))
            .arg("-o")
            .arg(&self.0);
        cmd
    }

    /// Sync calls started between `from` and `to` (epoch seconds). A call
    /// strace splits over two lines is counted on its first.
    pub fn count(&self, from: f64, to: f64) -> Result<u64> {
        let text = std::fs::read_to_string(&self.0).with_context(|| format!("reading {}", self.0.display()))?;
        Ok(text
            .lines()
            .filter(|line| {
                let mut words = line.split_whitespace().skip(1);
                let at = words.next().and_then(|t| t.parse::<f64>().ok());
                let call = words.next().unwrap_or("");
                at.is_some_and(|t| (from..=to).contains(&t))
                    && SYNC_CALLS
                        .iter()
                        .any(|c| call.strip_prefix(c).is_some_and(|r| r.starts_with('(')))
            })
            .count() as u64)
    }
}

/// A server started under strace's sync log; stopped by its PID (never by
/// killing strace, which would leave the server running untraced).
pub struct Traced {
    strace: Child,
    /// The server's own PID (strace's child).
    pub pid: u32,
    log: PathBuf,
}

impl Traced {
    /// Start the program `add` puts on strace's command line, logging to `log`.
    pub fn spawn(log: PathBuf, add: impl FnOnce(&mut Command)) -> Result<Traced> {
        let mut cmd = SyncLog(log.clone()).command();
        add(&mut cmd);
        let strace = cmd.spawn().context("start strace (apt-get install strace)")?;
        let pid = child_of(strace.id())?;
        Ok(Traced { strace, pid, log })
    }

    /// The server's standard error, where the caller piped it.
    pub fn take_stderr(&mut self) -> Option<std::process::ChildStderr> {
        self.strace.stderr.take()
    }

    /// Let the server end (SIGTERM, SIGKILL after 10 s), wait for strace to
    /// write the rest of its log, and hand the log over.
    pub fn finish(mut self) -> SyncLog {
        self.stop();
        SyncLog(std::mem::take(&mut self.log))
    }

    /// Signal the server only while it is still strace's child: a server
    /// that daemonized (Postfix) is stopped by its own command first, and
    /// its first PID may be gone or reused by then.
    fn signal(&self, signal: i32) {
        if stat(self.pid).is_ok_and(|(parent, _)| parent == self.strace.id()) {
            // SAFETY: kill(2) on the PID of the server we started, still our strace's child.
            unsafe { libc::kill(self.pid as i32, signal) };
        }
    }

    fn stop(&mut self) {
        self.signal(libc::SIGTERM);
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.strace.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal(libc::SIGKILL);
        let _ = self.strace.kill();
        let _ = self.strace.wait();
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Raise this process's descriptor limit (greyd inherits it) towards `want`;
/// returns the limit obtained, which may be lower where the hard limit cannot move.
pub fn raise_nofile(want: u64) -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max.max(want),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
    }
    lim.rlim_cur
}

/// Flush the page cache and let the disk settle, so one run does not pay for the last.
pub fn settle() {
    let _ = Command::new("sync").status();
    std::thread::sleep(Duration::from_secs(3));
}

/// One run of one server: its rate, and CPU seconds and sync calls per unit of work.
#[derive(Debug, Clone, Copy)]
pub struct RunFigures {
    pub rate: f64,
    pub cpu_per_unit: f64,
    /// `None` where the server was not run under strace.
    pub syncs_per_unit: Option<f64>,
}

/// The measured stretch of one run: wall time, the server tree's CPU, and
/// the clock readings that pick its sync calls out of the log.
pub struct Window {
    seconds: f64,
    cpu: f64,
    from: f64,
    to: f64,
}

impl Window {
    /// Run `work` (it returns when the server has done all of it) and
    /// measure the process tree under `root` meanwhile.
    pub fn measure(root: u32, work: impl FnOnce() -> Result<()>) -> Result<Window> {
        let (cpu, from, start) = (tree_cpu_seconds(root), now(), Instant::now());
        work()?;
        Ok(Window {
            seconds: start.elapsed().as_secs_f64(),
            cpu: tree_cpu_seconds(root) - cpu,
            from,
            to: now(),
        })
    }

    /// The figures per unit of work, with the sync calls from `log` (complete
    /// once the server has stopped).
    pub fn figures(&self, log: &SyncLog, units: usize) -> Result<RunFigures> {
        let n = units as f64;
        Ok(RunFigures {
            rate: n / self.seconds,
            cpu_per_unit: self.cpu / n,
            syncs_per_unit: Some(log.count(self.from, self.to)? as f64 / n),
        })
    }
}

/// The median and the spread (lowest, highest) of some figures.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub median: f64,
    pub low: f64,
    pub high: f64,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut v: Vec<f64> = values.into_iter().collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => v[n / 2],
            _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        };
        Spread {
            median,
            low: v.first().copied().unwrap_or(f64::NAN),
            high: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// Print one run as it finishes.
pub fn print_run(who: &str, round: usize, unit: &str, f: &RunFigures) {
    println!(
        "  round {round} {who:8} {:9.1} {unit}/s, CPU {:7.3} ms/{unit}{}",
        f.rate,
        f.cpu_per_unit * 1000.0,
        syncs(f.syncs_per_unit, unit)
    );
}

fn syncs(per_unit: Option<f64>, unit: &str) -> String {
    per_unit.map_or(String::new(), |n| format!(", {n:.2} fsyncs/{unit}"))
}

/// Medians and spreads of both servers, the ratio of the rate medians (ours
/// over theirs), and the closing `ratio:` line with the goal.
pub fn print_summary(ours: (&str, &[RunFigures]), theirs: (&str, &[RunFigures]), unit: &str, goal: f64) {
    let line = |who: &str, runs: &[RunFigures]| {
        let rate = Spread::of(runs.iter().map(|r| r.rate));
        let cpu = Spread::of(runs.iter().map(|r| r.cpu_per_unit * 1000.0));
        let counted: Vec<f64> = runs.iter().filter_map(|r| r.syncs_per_unit).collect();
        let synced = (!counted.is_empty()).then(|| Spread::of(counted).median);
        println!(
            "{who:8} median {:9.1} {unit}/s ({:.1}–{:.1}), CPU {:.3} ms/{unit} ({:.3}–{:.3}){}",
            rate.median,
            rate.low,
            rate.high,
            cpu.median,
            cpu.low,
            cpu.high,
            syncs(synced, unit)
        );
        (rate.median, cpu.median)
    };
    let (our_rate, our_cpu) = line(ours.0, ours.1);
    let (their_rate, their_cpu) = line(theirs.0, theirs.1);
    println!(
        "{}/{}: {:.2}× the rate, {:.2}× the CPU per {unit}",
        ours.0,
        theirs.0,
        our_rate / their_rate,
        our_cpu / their_cpu
    );
    println!("ratio: {:.2} (goal {goal})", our_rate / their_rate);
}

/// A scratch directory for one run, removed when the run is over.
pub fn scratch(parent: &Path, name: &str) -> Result<PathBuf> {
    let dir = parent.join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_takes_the_middle_value_or_the_mean_of_the_two_middle_ones() {
        let odd = Spread::of([5.0, 1.0, 3.0]);
        assert_eq!((odd.median, odd.low, odd.high), (3.0, 1.0, 5.0));
        assert_eq!(Spread::of([4.0, 1.0, 3.0, 2.0]).median, 2.5);
    }

    #[test]
    fn sync_log_counts_calls_started_inside_the_window_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = SyncLog(dir.path().join("log"));
        std::fs::write(
            &log.0,
            "10 100.5 fsync(3) = 0\n\
             11 101.0 fdatasync(4 <unfinished ...>\n\
             10 101.1 fsync(5) = 0\n\
             11 101.2 <... fdatasync resumed>) = 0\n\
             12 101.3 sync_file_range(6, 0, 0, 2) = 0\n\
             10 103.0 fsync(3) = 0\n",
        )
        .unwrap();
        assert_eq!(log.count(101.0, 102.0).unwrap(), 3);
    }
}
