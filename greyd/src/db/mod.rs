//! The greylisting database: GREY, WHITE, TRAPPED and SPAMTRAP records as in
//! spamd(8), plus the named lists loaded through the control socket, in one
//! embedded file.
//!
//! Engine: SQLite (rusqlite, bundled). In WAL mode with `synchronous=FULL`
//! every committed transaction is on disk before `commit` returns, and a
//! kill -9 at any moment leaves a database that opens with every completed
//! update kept. Updates that arrive while a commit is on its way to disk
//! share the next one ([`Db::commit_group`]): one fsync serves them all,
//! and none is answered before its commit. Unlike redb or fjall, several processes may open the file at
//! once (greyd, greydb, greyd-setup), and `sqlite3` can inspect it.

mod entry;

pub use entry::{Entry, GreyEntry, GreyTuple, TrappedEntry, WhiteEntry};

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use ipnet::IpNet;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database holds a bad value: {0}")]
    Corrupt(String),
    /// The group commit this update was part of failed.
    #[error("database commit failed: {0}")]
    Commit(String),
}

/// One update in a group commit: it runs in its own savepoint (so its
/// failure undoes only itself) and returns what to do once the commit of
/// the whole group is known.
pub type Job = Box<dyn FnOnce(&Tx<'_>) -> Settle + Send>;
/// Told whether the group's commit succeeded; answers the job's caller.
pub type Settle = Box<dyn FnOnce(Result<(), &DbError>) + Send>;

/// What a named list does to the sources it contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    /// Tarpitted with the list's message (spamd's black lists).
    Black,
    /// Never tarpitted nor greylisted: passed straight on (spamd's `<nospamd>`).
    Allow,
}

/// Summary of one stored list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListInfo {
    pub name: String,
    pub kind: ListKind,
    pub hard_block: bool,
    pub entries: usize,
    /// When the list was last loaded (seconds since the epoch); None for lists
    /// loaded before greyd recorded it.
    #[serde(default)]
    pub loaded: Option<i64>,
}

/// A named list as stored (see [`crate::lists`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredList {
    pub name: String,
    pub kind: ListKind,
    pub message: String,
    pub hard_block: bool,
    pub entries: Vec<IpNet>,
}

/// What an expiry sweep removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Expired {
    pub grey: usize,
    pub white: Vec<IpAddr>,
    pub trapped: Vec<IpAddr>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS grey (
    ip TEXT NOT NULL, helo TEXT NOT NULL, sender TEXT NOT NULL, rcpt TEXT NOT NULL,
    first INTEGER NOT NULL, pass INTEGER NOT NULL, expire INTEGER NOT NULL,
    bcount INTEGER NOT NULL, pcount INTEGER NOT NULL,
    PRIMARY KEY (ip, helo, sender, rcpt)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS grey_pair ON grey (sender, rcpt);
CREATE TABLE IF NOT EXISTS white (
    ip TEXT PRIMARY KEY, first INTEGER NOT NULL, pass INTEGER NOT NULL, expire INTEGER NOT NULL,
    bcount INTEGER NOT NULL, pcount INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS trapped (ip TEXT PRIMARY KEY, expire INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spamtrap (address TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS list (
    name TEXT PRIMARY KEY, kind TEXT NOT NULL, message TEXT NOT NULL,
    hard_block INTEGER NOT NULL, entries TEXT NOT NULL) WITHOUT ROWID;
";

/// The layout version kept in SQLite's `user_version`.
///
/// 1: GREY senders and recipients are stored as the client sent them, angle
/// brackets included, as spamd stores them; files of version 0 held them
/// without brackets and get them on open.
/// 2: lists record when they were last loaded (`list.loaded`, NULL before).
const SCHEMA_VERSION: i64 = 2;

/// Bring a file of an older layout up to [`SCHEMA_VERSION`], once: the check
/// and the change are one write transaction, so two processes opening the
/// file together do not both convert it.
fn migrate(conn: &mut Connection) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version < 1 {
        tx.execute_batch(
            "UPDATE OR REPLACE grey SET sender = '<' || sender || '>' WHERE substr(sender, 1, 1) <> '<';
             UPDATE OR REPLACE grey SET rcpt = '<' || rcpt || '>' WHERE substr(rcpt, 1, 1) <> '<';",
        )?;
    }
    if version < 2 {
        tx.execute_batch("ALTER TABLE list ADD COLUMN loaded INTEGER")?;
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()
}

/// An open database.
pub struct Db {
    conn: Connection,
}

impl Db {
    /// Open (creating if needed) the database file.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        let open = || -> Result<Connection, rusqlite::Error> {
            let mut conn = Connection::open(path)?;
            // Another process (greydb) may hold the write lock for a moment.
            conn.busy_timeout(Duration::from_secs(10))?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.execute_batch(SCHEMA)?;
            migrate(&mut conn)?;
            Ok(conn)
        };
        let conn = open().map_err(|source| DbError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Db { conn })
    }

    /// Run `f` in one transaction, committed (and fsynced) when it returns Ok.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> Result<T, DbError>) -> Result<T, DbError> {
        let tx = Tx(self.conn.transaction()?);
        let out = f(&tx)?;
        tx.0.commit()?;
        Ok(out)
    }

    /// Every entry, or those whose IP or address is one of `keys`, in spamdb's order.
    /// Run `jobs` in order in one transaction and commit it once; then tell
    /// each job the outcome. Jobs not run (the transaction did not begin)
    /// are dropped, which their callers see as a failed commit.
    pub fn commit_group(&mut self, jobs: Vec<Job>) {
        let tx = match self.conn.transaction() {
            Ok(tx) => Tx(tx),
            Err(_) => return,
        };
        let settles: Vec<Settle> = jobs.into_iter().map(|job| job(&tx)).collect();
        let committed = tx.0.commit().map_err(DbError::from);
        for settle in settles {
            settle(committed.as_ref().map(|_| ()));
        }
    }

    pub fn dump(&mut self, keys: &[String]) -> Result<Vec<Entry>, DbError> {
        self.transaction(|tx| tx.dump(keys))
    }
}

/// A transaction over the database; all reads and writes go through it.
pub struct Tx<'a>(Transaction<'a>);

fn list_kind(text: &str) -> Result<ListKind, DbError> {
    match text {
        "black" => Ok(ListKind::Black),
        "allow" => Ok(ListKind::Allow),
        other => Err(DbError::Corrupt(format!("bad list kind {other:?}"))),
    }
}

fn ip_of(text: String) -> Result<IpAddr, DbError> {
    text.parse().map_err(|_| DbError::Corrupt(format!("bad IP {text:?}")))
}

impl Tx<'_> {
    /// Run `f` in a savepoint: if it fails, what it wrote is undone and the
    /// rest of the transaction stands.
    pub fn savepoint<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, DbError>) -> Result<T, DbError> {
        self.0.execute_batch("SAVEPOINT job")?;
        let out = f(self);
        if out.is_err() {
            self.0.execute_batch("ROLLBACK TO job")?;
        }
        self.0.execute_batch("RELEASE job")?;
        out
    }

    pub fn grey(&self, t: &GreyTuple) -> Result<Option<GreyEntry>, DbError> {
        self.0
            .query_row(
                "SELECT first, pass, expire, bcount, pcount FROM grey
                 WHERE ip = ?1 AND helo = ?2 AND sender = ?3 AND rcpt = ?4",
                params![t.ip.to_string(), t.helo, t.from, t.to],
                |r| {
                    Ok(GreyEntry {
                        tuple: t.clone(),
                        first: r.get(0)?,
                        pass: r.get(1)?,
                        expire: r.get(2)?,
                        bcount: r.get(3)?,
                        pcount: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(Into::into)
    }

    /// Every grey entry for this sender and recipient, from any address and HELO.
    pub fn greys_for(&self, from: &str, to: &str) -> Result<Vec<GreyEntry>, DbError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT ip, helo, first, pass, expire, bcount, pcount FROM grey
             WHERE sender = ?1 AND rcpt = ?2 ORDER BY first",
        )?;
        let mut rows = stmt.query(params![from, to])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(GreyEntry {
                tuple: GreyTuple {
                    ip: ip_of(r.get(0)?)?,
                    helo: r.get(1)?,
                    from: from.to_string(),
                    to: to.to_string(),
                },
                first: r.get(2)?,
                pass: r.get(3)?,
                expire: r.get(4)?,
                bcount: r.get(5)?,
                pcount: r.get(6)?,
            });
        }
        Ok(out)
    }

    pub fn put_grey(&self, e: &GreyEntry) -> Result<(), DbError> {
        let t = &e.tuple;
        self.0.execute(
            "INSERT OR REPLACE INTO grey VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                t.ip.to_string(),
                t.helo,
                t.from,
                t.to,
                e.first,
                e.pass,
                e.expire,
                e.bcount,
                e.pcount
            ],
        )?;
        Ok(())
    }

    /// Delete one tuple, or all tuples of its IP when `tuple` is None.
    pub fn delete_grey(&self, ip: IpAddr, tuple: Option<&GreyTuple>) -> Result<usize, DbError> {
        Ok(match tuple {
            Some(t) => self.0.execute(
                "DELETE FROM grey WHERE ip = ?1 AND helo = ?2 AND sender = ?3 AND rcpt = ?4",
                params![ip.to_string(), t.helo, t.from, t.to],
            )?,
            None => self
                .0
                .execute("DELETE FROM grey WHERE ip = ?1", params![ip.to_string()])?,
        })
    }

    pub fn white(&self, ip: IpAddr) -> Result<Option<WhiteEntry>, DbError> {
        self.0
            .query_row(
                "SELECT first, pass, expire, bcount, pcount FROM white WHERE ip = ?1",
                params![ip.to_string()],
                |r| {
                    Ok(WhiteEntry {
                        ip,
                        first: r.get(0)?,
                        pass: r.get(1)?,
                        expire: r.get(2)?,
                        bcount: r.get(3)?,
                        pcount: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(Into::into)
    }

    pub fn put_white(&self, e: &WhiteEntry) -> Result<(), DbError> {
        self.0.execute(
            "INSERT OR REPLACE INTO white VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![e.ip.to_string(), e.first, e.pass, e.expire, e.bcount, e.pcount],
        )?;
        Ok(())
    }

    pub fn delete_white(&self, ip: IpAddr) -> Result<usize, DbError> {
        Ok(self
            .0
            .execute("DELETE FROM white WHERE ip = ?1", params![ip.to_string()])?)
    }

    pub fn trapped(&self, ip: IpAddr) -> Result<Option<TrappedEntry>, DbError> {
        self.0
            .query_row(
                "SELECT expire FROM trapped WHERE ip = ?1",
                params![ip.to_string()],
                |r| Ok(TrappedEntry { ip, expire: r.get(0)? }),
            )
            .optional()
            .map_err(Into::into)
    }

    pub fn put_trapped(&self, e: &TrappedEntry) -> Result<(), DbError> {
        self.0.execute(
            "INSERT OR REPLACE INTO trapped VALUES (?1, ?2)",
            params![e.ip.to_string(), e.expire],
        )?;
        Ok(())
    }

    pub fn delete_trapped(&self, ip: IpAddr) -> Result<usize, DbError> {
        Ok(self
            .0
            .execute("DELETE FROM trapped WHERE ip = ?1", params![ip.to_string()])?)
    }

    pub fn is_spamtrap(&self, address: &str) -> Result<bool, DbError> {
        Ok(self
            .0
            .query_row(
                "SELECT 1 FROM spamtrap WHERE address = ?1",
                params![address],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    pub fn add_spamtrap(&self, address: &str) -> Result<usize, DbError> {
        Ok(self
            .0
            .execute("INSERT OR IGNORE INTO spamtrap VALUES (?1)", params![address])?)
    }

    pub fn delete_spamtrap(&self, address: &str) -> Result<usize, DbError> {
        Ok(self
            .0
            .execute("DELETE FROM spamtrap WHERE address = ?1", params![address])?)
    }

    pub fn whites(&self) -> Result<Vec<WhiteEntry>, DbError> {
        self.select_entries(
            "SELECT ip, first, pass, expire, bcount, pcount FROM white ORDER BY ip",
            |r| {
                Ok(WhiteEntry {
                    ip: ip_of(r.get(0)?)?,
                    first: r.get(1)?,
                    pass: r.get(2)?,
                    expire: r.get(3)?,
                    bcount: r.get(4)?,
                    pcount: r.get(5)?,
                })
            },
        )
    }

    pub fn trappeds(&self) -> Result<Vec<TrappedEntry>, DbError> {
        self.select_entries("SELECT ip, expire FROM trapped ORDER BY ip", |r| {
            Ok(TrappedEntry {
                ip: ip_of(r.get(0)?)?,
                expire: r.get(1)?,
            })
        })
    }

    fn greys(&self) -> Result<Vec<GreyEntry>, DbError> {
        self.select_entries(
            "SELECT ip, helo, sender, rcpt, first, pass, expire, bcount, pcount FROM grey ORDER BY ip, first",
            |r| {
                Ok(GreyEntry {
                    tuple: GreyTuple {
                        ip: ip_of(r.get(0)?)?,
                        helo: r.get(1)?,
                        from: r.get(2)?,
                        to: r.get(3)?,
                    },
                    first: r.get(4)?,
                    pass: r.get(5)?,
                    expire: r.get(6)?,
                    bcount: r.get(7)?,
                    pcount: r.get(8)?,
                })
            },
        )
    }

    fn spamtraps(&self) -> Result<Vec<String>, DbError> {
        self.select_entries("SELECT address FROM spamtrap ORDER BY address", |r| Ok(r.get(0)?))
    }

    fn select_entries<T>(
        &self,
        sql: &str,
        row: impl Fn(&rusqlite::Row<'_>) -> Result<T, DbError>,
    ) -> Result<Vec<T>, DbError> {
        let mut stmt = self.0.prepare_cached(sql)?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(row(r)?);
        }
        Ok(out)
    }

    /// Every entry (or those matching `keys`), ordered as spamdb prints them.
    pub fn dump(&self, keys: &[String]) -> Result<Vec<Entry>, DbError> {
        let mut out: Vec<Entry> = Vec::new();
        out.extend(self.whites()?.into_iter().map(Entry::White));
        out.extend(self.greys()?.into_iter().map(Entry::Grey));
        out.extend(self.trappeds()?.into_iter().map(Entry::Trapped));
        out.extend(self.spamtraps()?.into_iter().map(|address| Entry::Spamtrap { address }));
        if !keys.is_empty() {
            out.retain(|e| keys.iter().any(|k| e.key_matches(k)));
        }
        Ok(out)
    }

    /// Delete every record whose expiry time has passed.
    pub fn expire(&self, now: i64) -> Result<Expired, DbError> {
        let grab = |table: &str| -> Result<Vec<IpAddr>, DbError> {
            let sql = format!("DELETE FROM {table} WHERE expire <= ?1 RETURNING ip");
            let mut stmt = self.0.prepare(&sql)?;
            let ips = stmt.query_map(params![now], |r| r.get::<_, String>(0))?;
            ips.map(|ip| ip_of(ip?)).collect()
        };
        Ok(Expired {
            grey: self.0.execute("DELETE FROM grey WHERE expire <= ?1", params![now])?,
            white: grab("white")?,
            trapped: grab("trapped")?,
        })
    }

    pub fn lists(&self) -> Result<Vec<StoredList>, DbError> {
        self.select_entries(
            "SELECT name, kind, message, hard_block, entries FROM list ORDER BY name",
            |r| {
                let kind: String = r.get(1)?;
                let text: String = r.get(4)?;
                let entries = text
                    .split_ascii_whitespace()
                    .map(|n| n.parse().map_err(|_| DbError::Corrupt(format!("bad net {n:?}"))))
                    .collect::<Result<_, _>>()?;
                Ok(StoredList {
                    name: r.get(0)?,
                    kind: match kind.as_str() {
                        "black" => ListKind::Black,
                        "allow" => ListKind::Allow,
                        other => return Err(DbError::Corrupt(format!("bad list kind {other:?}"))),
                    },
                    message: r.get(2)?,
                    hard_block: r.get(3)?,
                    entries,
                })
            },
        )
    }

    /// Names, kinds and sizes of the stored lists, without parsing their entries.
    pub fn list_infos(&self) -> Result<Vec<ListInfo>, DbError> {
        self.select_entries(
            "SELECT name, kind, hard_block, length(entries) - length(replace(entries, char(10), '')), loaded
             FROM list ORDER BY name",
            |r| {
                Ok(ListInfo {
                    name: r.get(0)?,
                    kind: list_kind(&r.get::<_, String>(1)?)?,
                    hard_block: r.get(2)?,
                    entries: usize::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
                    loaded: r.get(4)?,
                })
            },
        )
    }

    /// Store `l`, replacing a list of its name, loaded at `now`.
    pub fn put_list(&self, l: &StoredList, now: i64) -> Result<(), DbError> {
        let kind = match l.kind {
            ListKind::Black => "black",
            ListKind::Allow => "allow",
        };
        let mut text = String::with_capacity(l.entries.len() * 20);
        for net in &l.entries {
            text.push_str(&net.to_string());
            text.push('\n');
        }
        self.0.execute(
            "INSERT OR REPLACE INTO list (name, kind, message, hard_block, entries, loaded)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![l.name, kind, l.message, l.hard_block, text, now],
        )?;
        Ok(())
    }

    pub fn delete_list(&self, name: &str) -> Result<usize, DbError> {
        Ok(self.0.execute("DELETE FROM list WHERE name = ?1", params![name])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file as greyd wrote it before version 1: tuples without brackets.
    fn old_file(path: &Path) {
        let conn = Connection::open(path).unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        conn.execute_batch(
            "INSERT INTO grey VALUES ('192.0.2.1', 'mx.example', 'a@example.org', 'b@example.net', 10, 20, 30, 1, 0);
             INSERT INTO grey VALUES ('192.0.2.2', 'mx.example', '', 'c@example.net', 10, 20, 30, 2, 0);",
        )
        .unwrap();
    }

    fn grey_lines(db: &mut Db) -> Vec<String> {
        db.dump(&[]).unwrap().iter().map(ToString::to_string).collect()
    }

    #[test]
    fn old_files_get_bracketed_tuples_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        old_file(&path);
        let expected = [
            "GREY|192.0.2.1|mx.example|<a@example.org>|<b@example.net>|10|20|30|1|0",
            "GREY|192.0.2.2|mx.example|<>|<c@example.net>|10|20|30|2|0",
        ];
        assert_eq!(grey_lines(&mut Db::open(&path).unwrap()), expected);
        // Opened again: already converted, nothing doubled.
        let mut db = Db::open(&path).unwrap();
        assert_eq!(grey_lines(&mut db), expected);
        // A tuple from a client that sent no brackets is kept so from now on.
        let bare = GreyTuple {
            ip: "192.0.2.3".parse().unwrap(),
            helo: "h".into(),
            from: "x@y".into(),
            to: "z@w".into(),
        };
        db.transaction(|tx| {
            tx.put_grey(&GreyEntry {
                tuple: bare.clone(),
                first: 1,
                pass: 2,
                expire: 3,
                bcount: 1,
                pcount: 0,
            })
        })
        .unwrap();
        drop(db);
        assert!(
            Db::open(&path)
                .unwrap()
                .transaction(|tx| tx.grey(&bare))
                .unwrap()
                .is_some()
        );
    }

    fn white_at(ip: &str) -> WhiteEntry {
        WhiteEntry {
            ip: ip.parse().unwrap(),
            first: 1,
            pass: 2,
            expire: 3,
            bcount: 1,
            pcount: 1,
        }
    }

    #[test]
    fn a_group_commits_once_and_a_failed_job_undoes_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&dir.path().join("g.db")).unwrap();
        let answers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let job = |ip: &'static str, fail: bool| -> Job {
            let answers = std::sync::Arc::clone(&answers);
            Box::new(move |tx: &Tx<'_>| {
                let result = tx.savepoint(|tx| {
                    tx.put_white(&white_at(ip))?;
                    if fail {
                        return Err(DbError::Corrupt("refused".into()));
                    }
                    Ok(())
                });
                Box::new(move |committed: Result<(), &DbError>| {
                    answers.lock().unwrap().push((ip, committed.is_ok() && result.is_ok()));
                })
            })
        };
        db.commit_group(vec![
            job("192.0.2.1", false),
            job("192.0.2.2", true),
            job("192.0.2.3", false),
        ]);
        assert_eq!(
            *answers.lock().unwrap(),
            [("192.0.2.1", true), ("192.0.2.2", false), ("192.0.2.3", true)]
        );
        let whites: Vec<String> = db
            .transaction(|tx| tx.whites())
            .unwrap()
            .iter()
            .map(|w| w.ip.to_string())
            .collect();
        assert_eq!(whites, ["192.0.2.1", "192.0.2.3"]);
    }

    #[test]
    fn lists_record_when_they_were_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        old_file(&path);
        Connection::open(&path)
            .unwrap()
            .execute_batch(
                "INSERT INTO list VALUES ('old', 'black', '', 0, '192.0.2.0/24
')",
            )
            .unwrap();
        let mut db = Db::open(&path).unwrap();
        let list = StoredList {
            name: "new".into(),
            kind: ListKind::Black,
            message: String::new(),
            hard_block: false,
            entries: vec!["198.51.100.0/24".parse().unwrap()],
        };
        db.transaction(|tx| tx.put_list(&list, 1_700_000_000)).unwrap();
        let infos = db.transaction(|tx| tx.list_infos()).unwrap();
        let loaded: Vec<(&str, Option<i64>)> = infos.iter().map(|l| (l.name.as_str(), l.loaded)).collect();
        assert_eq!(loaded, [("new", Some(1_700_000_000)), ("old", None)]);
    }
}
