//! SPF evaluation with RFC 7208 §4.6.4's limit of two void lookups (an
//! answer with no records, or NXDOMAIN), which mail-auth 0.13 does not
//! enforce: more than two make the result `permerror`.
//!
//! mail-auth asks its caches before every lookup and fills them after every
//! answered one, so caches that never answer see each lookup the evaluation
//! makes and which ones came back with records. The ones that did not (a
//! void, or a failure) are asked again through the same resolver, whose own
//! cache answers, to tell a void from a failure. The address lookups of one
//! name in a row (A then AAAA, as `exists` asks) are one term. `ptr`
//! lookups are not counted (RFC 7208 §5.5: do not use `ptr`).

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RecordType;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{MessageAuthenticator, Parameters, ResolverCache, SpfOutput, SpfResult};
use std::borrow::Borrow;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::sync::Mutex;

/// RFC 7208 §4.6.4: the recommended limit.
pub const MAX_VOID_LOOKUPS: usize = 2;

/// One lookup mail-auth made: its type, name, and whether it was answered
/// with records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    pub kind: RecordType,
    pub name: String,
    pub answered: bool,
}

/// The lookups of one evaluation, in order.
#[derive(Default)]
struct Log(Mutex<Vec<Lookup>>);

impl Log {
    fn asked(&self, kind: RecordType, name: String) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        log.push(Lookup {
            kind,
            name,
            answered: false,
        });
    }

    fn answered(&self, kind: RecordType, name: &str) {
        let mut log = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = log.iter_mut().rev().find(|l| l.kind == kind && l.name == name) {
            l.answered = true;
        }
    }

    fn take(&self) -> Vec<Lookup> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// A hasher that keeps the bytes it is fed: how a cache learns the name it
/// is asked for, since `ResolverCache::get` hands over only `Q: Hash`. A
/// `str` hashes as its bytes and a 0xff terminator.
#[derive(Default)]
struct NameOf(Vec<u8>);

impl Hasher for NameOf {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

fn name_of<Q: Hash + ?Sized>(q: &Q) -> Option<String> {
    let mut h = NameOf::default();
    q.hash(&mut h);
    let bytes = h.0.strip_suffix(&[0xff])?;
    String::from_utf8(bytes.to_vec()).ok()
}

/// A cache that answers nothing and writes down what it is asked and told.
struct Watch<'a, V> {
    kind: RecordType,
    log: &'a Log,
    _values: PhantomData<V>,
}

impl<'a, V> Watch<'a, V> {
    fn new(kind: RecordType, log: &'a Log) -> Self {
        Watch {
            kind,
            log,
            _values: PhantomData,
        }
    }
}

impl<V> ResolverCache<Box<str>, V> for Watch<'_, V> {
    fn get<Q>(&self, name: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(name) = name_of(name) {
            self.log.asked(self.kind, name);
        }
        None
    }

    fn remove<Q>(&self, _: &Q) -> Option<V>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    fn insert(&self, key: Box<str>, _: V, _: std::time::Instant) {
        self.log.answered(self.kind, &key);
    }
}

fn is_address(kind: RecordType) -> bool {
    matches!(kind, RecordType::A | RecordType::AAAA)
}

/// The terms among `lookups` that need asking again: unanswered lookups,
/// with the address lookups of one name in a row taken together. A term
/// with any answered lookup is not void.
pub fn unanswered_terms(lookups: &[Lookup]) -> Vec<Vec<&Lookup>> {
    let mut terms: Vec<(Vec<&Lookup>, bool)> = Vec::new();
    for l in lookups {
        match terms.last_mut() {
            Some((term, answered))
                if is_address(l.kind)
                    && term.len() == 1
                    && term
                        .last()
                        .is_some_and(|p| is_address(p.kind) && p.name == l.name && p.kind != l.kind) =>
            {
                term.push(l);
                *answered |= l.answered;
            }
            _ => terms.push((vec![l], l.answered)),
        }
    }
    terms
        .into_iter()
        .filter(|(_, answered)| !answered)
        .map(|(term, _)| term)
        .collect()
}

/// Whether `name` has no `kind` records (NOERROR with none, or NXDOMAIN);
/// false for a failure.
async fn is_void(resolver: &TokioResolver, kind: RecordType, name: &str) -> bool {
    match resolver.lookup(name, kind).await {
        Ok(lookup) => !lookup.answers().iter().any(|r| r.record_type() == kind),
        Err(e) => e.is_nx_domain() || e.is_no_records_found(),
    }
}

/// How many terms of the evaluation were void.
async fn void_terms(resolver: &TokioResolver, lookups: &[Lookup]) -> usize {
    let mut voids = 0;
    for term in unanswered_terms(lookups) {
        let mut void = true;
        for l in term {
            void &= is_void(resolver, l.kind, &l.name).await;
        }
        voids += usize::from(void);
    }
    voids
}

/// mail-auth's `check_host()` of `params` (one identity), `permerror` when
/// it made more than [`MAX_VOID_LOOKUPS`] void lookups. A `temperror` stays
/// one: a DNS failure is never turned into a verdict.
pub async fn check_host(auth: &MessageAuthenticator, params: SpfParameters<'_>) -> SpfOutput {
    let log = Log::default();
    let txt = Watch::new(RecordType::TXT, &log);
    let mx = Watch::new(RecordType::MX, &log);
    let a = Watch::new(RecordType::A, &log);
    let aaaa = Watch::new(RecordType::AAAA, &log);
    let out = auth
        .verify_spf(
            Parameters::new(params)
                .with_txt_cache(&txt)
                .with_mx_cache(&mx)
                .with_ipv4_cache(&a)
                .with_ipv6_cache(&aaaa),
        )
        .await;
    if matches!(out.result(), SpfResult::TempError | SpfResult::PermError) {
        return out;
    }
    let voids = void_terms(&auth.0, &log.take()).await;
    if voids > MAX_VOID_LOOKUPS {
        tracing::debug!("SPF {}: {voids} void lookups: permerror", out.domain());
        return SpfOutput::new(out.domain().to_string()).with_result(SpfResult::PermError);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lookup(kind: RecordType, name: &str, answered: bool) -> Lookup {
        Lookup {
            kind,
            name: name.into(),
            answered,
        }
    }

    #[test]
    fn a_cache_learns_the_name_it_is_asked_for() {
        assert_eq!(name_of("_spf.example.org.").as_deref(), Some("_spf.example.org."));
        let log = Log::default();
        let watch: Watch<'_, u8> = Watch::new(RecordType::A, &log);
        assert_eq!(watch.get::<str>("a.example."), None);
        watch.get::<str>("b.example.");
        watch.insert("b.example.".into(), 1, std::time::Instant::now());
        assert_eq!(
            log.take(),
            [
                lookup(RecordType::A, "a.example.", false),
                lookup(RecordType::A, "b.example.", true)
            ]
        );
    }

    #[test]
    fn exists_asks_both_families_as_one_term() {
        use RecordType::{A, AAAA, MX, TXT};
        let log = [
            lookup(TXT, "example.org.", true),
            lookup(A, "x.example.", false),
            lookup(AAAA, "x.example.", false),
            lookup(A, "y.example.", false),
            lookup(MX, "y.example.", false),
            lookup(A, "z.example.", true),
            lookup(AAAA, "z.example.", false),
            lookup(A, "y.example.", false),
            lookup(A, "y.example.", false),
        ];
        let names: Vec<Vec<(RecordType, &str)>> = unanswered_terms(&log)
            .iter()
            .map(|t| t.iter().map(|l| (l.kind, l.name.as_str())).collect())
            .collect();
        assert_eq!(
            names,
            vec![
                vec![(A, "x.example."), (AAAA, "x.example.")],
                vec![(A, "y.example.")],
                vec![(MX, "y.example.")],
                vec![(A, "y.example.")],
                vec![(A, "y.example.")],
            ]
        );
    }

    proptest! {
        #[test]
        fn terms_hold_unanswered_lookups_only(
            list in proptest::collection::vec((0u8..4, 0u8..3, any::<bool>()), 0..20)
        ) {
            let kinds = [RecordType::A, RecordType::AAAA, RecordType::MX, RecordType::TXT];
            let log: Vec<Lookup> = list
                .iter()
                .map(|(k, n, answered)| lookup(kinds[*k as usize], &format!("n{n}."), *answered))
                .collect();
            let terms = unanswered_terms(&log);
            let in_terms: usize = terms.iter().map(Vec::len).sum();
            prop_assert!(in_terms <= log.iter().filter(|l| !l.answered).count());
            prop_assert!(terms.iter().all(|t| !t.is_empty() && t.len() <= 2 && t.iter().all(|l| !l.answered)));
            prop_assert!(terms.len() <= log.len());
        }
    }
}
