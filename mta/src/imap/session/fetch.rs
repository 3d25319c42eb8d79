//! FETCH: which of each message to read, setting \Seen, and rendering the
//! `* n FETCH (...)` responses (with BINARY and literal8).

use super::{FLUSH_AT, Flow, Session, blocking, epoch_secs};
use crate::imap::binary::{self, UnknownCte};
use crate::imap::command::{FetchAttr, Section, SectionText};
use crate::imap::message;
use crate::imap::response::{Code, FetchItem, Response, Status, Untagged};
use crate::imap::sequence::SequenceSet;
use crate::imap::view::flag_names;
use crate::store::{FlagOp, Flags, Mailbox, MessageMeta, StoreError};
use std::sync::Arc;

/// How much of each message a command reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Need {
    Nothing,
    /// The header block, from the folder's header cache.
    Header,
    Whole,
}

impl Need {
    fn of_fetch(attr: &FetchAttr) -> Need {
        match attr {
            FetchAttr::Envelope | FetchAttr::Rfc822Header => Need::Header,
            FetchAttr::Section { section, .. }
                if section.part.is_empty()
                    && matches!(
                        section.text,
                        Some(SectionText::Header | SectionText::HeaderFields { .. })
                    ) =>
            {
                Need::Header
            }
            FetchAttr::Body
            | FetchAttr::BodyStructure
            | FetchAttr::Section { .. }
            | FetchAttr::Binary { .. }
            | FetchAttr::BinarySize { .. }
            | FetchAttr::Rfc822
            | FetchAttr::Rfc822Text => Need::Whole,
            FetchAttr::Flags | FetchAttr::InternalDate | FetchAttr::Rfc822Size | FetchAttr::Uid | FetchAttr::ModSeq => {
                Need::Nothing
            }
        }
    }

    /// Read what is needed of `uid` (wire form).
    pub(crate) fn load(self, mailbox: &Mailbox, uid: u32) -> Result<Option<Loaded>, StoreError> {
        Ok(match self {
            Need::Nothing => None,
            Need::Header => Some(Loaded::Header(mailbox.header(uid)?)),
            Need::Whole => Some(Loaded::Whole(mailbox.read(uid)?)),
        })
    }
}

/// A message or its header, as [`Need::load`] read it.
pub(crate) enum Loaded {
    Header(Arc<[u8]>),
    Whole(Vec<u8>),
}

impl std::ops::Deref for Loaded {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Loaded::Header(h) => h,
            Loaded::Whole(w) => w,
        }
    }
}

impl Session {
    pub(super) async fn fetch(
        &mut self,
        tag: &str,
        uid: bool,
        set: SequenceSet,
        mut attrs: Vec<FetchAttr>,
        changed_since: Option<u64>,
    ) -> Flow {
        self.update(uid).await;
        if uid && !attrs.contains(&FetchAttr::Uid) {
            attrs.insert(0, FetchAttr::Uid);
        }
        // CHANGEDSINCE and the MODSEQ item enable CONDSTORE (RFC 7162 §3.1).
        if changed_since.is_some() || attrs.contains(&FetchAttr::ModSeq) {
            self.condstore = true;
        }
        self.binary |= attrs
            .iter()
            .any(|a| matches!(a, FetchAttr::Binary { .. } | FetchAttr::BinarySize { .. }));
        if changed_since.is_some() && !attrs.contains(&FetchAttr::ModSeq) {
            attrs.push(FetchAttr::ModSeq);
        }
        let sel = self.selected();
        // Every message the client knows has its metadata here, even one
        // another session expunged (held back until EXPUNGE may be sent).
        let targets: Vec<(u32, MessageMeta, bool)> = sel
            .resolve(&set, uid)
            .into_iter()
            .filter_map(|(seq, u)| sel.meta(u).map(|m| (seq, m.clone(), sel.is_recent(u))))
            .filter(|(_, m, _)| changed_since.is_none_or(|c| m.modseq > c))
            .collect();
        let sets_seen = !sel.read_only
            && attrs.iter().any(|a| {
                matches!(
                    a,
                    FetchAttr::Section { peek: false, .. }
                        | FetchAttr::Binary { peek: false, .. }
                        | FetchAttr::Rfc822
                        | FetchAttr::Rfc822Text
                )
            });
        let mailbox = Arc::clone(&sel.mailbox);
        let mut targets = targets;
        if sets_seen {
            let unseen: Vec<u32> = targets.iter().filter(|t| !t.1.flags.seen).map(|t| t.1.uid).collect();
            if !unseen.is_empty() {
                let seen = Flags {
                    seen: true,
                    ..Flags::default()
                };
                let mb = Arc::clone(&mailbox);
                match blocking(move || mb.store_flags(&unseen, FlagOp::Add, &seen, None)).await {
                    Ok(outcome) => {
                        for (u, flags, modseq) in outcome.changed {
                            if let Some(t) = targets.iter_mut().find(|t| t.1.uid == u) {
                                t.1.flags = flags;
                                t.1.modseq = modseq;
                            }
                        }
                        if !attrs.contains(&FetchAttr::Flags) {
                            attrs.push(FetchAttr::Flags);
                        }
                    }
                    Err(e) => tracing::warn!("imap: setting \\Seen: {e}"),
                }
            }
        }
        let need = attrs.iter().map(Need::of_fetch).max().unwrap_or(Need::Nothing);
        let mut undecodable = None;
        let mut expunged = false;
        let attrs = Arc::new(attrs);
        let literal8 = self.binary;
        for (seq, meta, recent) in targets {
            let mb = Arc::clone(&mailbox);
            let a = Arc::clone(&attrs);
            let u = meta.uid;
            let modseq = meta.modseq;
            let reports_flags = a.contains(&FetchAttr::Flags);
            let rendered = blocking(move || {
                let (raw, gone) = match need.load(&mb, meta.uid) {
                    Ok(raw) => (raw, false),
                    // Expunged by another session: what is known still goes out, the contents as NIL.
                    Err(StoreError::NoSuchMessage(_)) => (None, need != Need::Nothing),
                    Err(e) => return Err(e),
                };
                let fetch = render_fetch(seq, &meta, recent, raw.as_deref(), &a, literal8);
                Ok((fetch.map(|f| Response::from(f).to_bytes()), gone))
            })
            .await;
            match rendered {
                Ok((Err(e), _)) => undecodable = Some(e),
                Ok((Ok(bytes), gone)) => {
                    expunged |= gone;
                    self.conn.out.extend_from_slice(&bytes);
                    if reports_flags && let Some(sel) = &mut self.selected {
                        sel.shown(u, modseq);
                    }
                }
                Err(e) => {
                    tracing::warn!("imap: FETCH UID {u}: {e}");
                }
            }
            if self.conn.out.len() > FLUSH_AT {
                self.flush().await?;
            }
        }
        match undecodable {
            Some(e) => self.send(Status::no(tag, e.to_string()).with(Code::UnknownCte)),
            None if expunged => {
                self.send(Status::ok(tag, "Some messages were expunged meanwhile").with(Code::ExpungeIssued))
            }
            None => self.ok(tag, "FETCH completed"),
        }
        Ok(())
    }
}

/// One `* n FETCH (...)` response, or the encoding that kept a BINARY item
/// from being decoded. `raw` is `None` when no contents are asked for or the
/// message is gone: contents are then NIL. With `literal8`, BODY[] contents
/// holding NUL go out as literal8.
fn render_fetch(
    seq: u32,
    meta: &MessageMeta,
    recent: bool,
    raw: Option<&[u8]>,
    attrs: &[FetchAttr],
    literal8: bool,
) -> Result<Untagged, UnknownCte> {
    let parsed = raw.and_then(|r| mail_parser::MessageParser::default().parse(r));
    let gone = raw.is_none();
    let raw = raw.unwrap_or(&[]);
    let mut items = Vec::with_capacity(attrs.len());
    for attr in attrs {
        items.push(match attr {
            FetchAttr::Uid => FetchItem::Uid(meta.uid),
            FetchAttr::Flags => FetchItem::Flags(flag_names(&meta.flags, recent)),
            FetchAttr::ModSeq => FetchItem::ModSeq(meta.modseq),
            FetchAttr::InternalDate => FetchItem::InternalDate(epoch_secs(meta.internal_date).max(0) as u64),
            FetchAttr::Rfc822Size => FetchItem::Rfc822Size(meta.size),
            FetchAttr::Envelope => {
                let mut wire = Vec::new();
                match &parsed {
                    Some(m) => message::envelope(&mut wire, m),
                    None => wire.extend_from_slice(b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"),
                }
                FetchItem::Envelope(wire)
            }
            FetchAttr::Body | FetchAttr::BodyStructure => {
                let extended = *attr == FetchAttr::BodyStructure;
                let mut structure = Vec::new();
                match &parsed {
                    Some(m) => message::body_structure(&mut structure, m, extended),
                    None => structure.extend_from_slice(
                        format!("(\"TEXT\" \"PLAIN\" NIL NIL NIL \"7BIT\" {} 0)", raw.len()).as_bytes(),
                    ),
                }
                FetchItem::Body { extended, structure }
            }
            FetchAttr::Rfc822 | FetchAttr::Rfc822Header | FetchAttr::Rfc822Text => {
                let (name, text) = match attr {
                    FetchAttr::Rfc822 => ("RFC822", None),
                    FetchAttr::Rfc822Header => ("RFC822.HEADER", Some(SectionText::Header)),
                    _ => ("RFC822.TEXT", Some(SectionText::Text)),
                };
                let section = Section { part: Vec::new(), text };
                let data = match message::section(raw, parsed.as_ref(), &section).filter(|_| !gone) {
                    Some(bytes) => Some(bytes),
                    None if gone => None,
                    None => Some(Vec::new()),
                };
                FetchItem::Contents {
                    name: name.into(),
                    data,
                    literal8: false,
                }
            }
            FetchAttr::Section { section, partial, .. } => {
                let bytes = message::section(raw, parsed.as_ref(), section).filter(|_| !gone);
                let mut name = message::section_name(section);
                let data = match (bytes, partial) {
                    (Some(b), Some((origin, length))) => {
                        name.push_str(&format!("<{origin}>"));
                        Some(window(&b, *origin, *length).to_vec())
                    }
                    (b, _) => b,
                };
                FetchItem::Contents { name, data, literal8 }
            }
            FetchAttr::Binary { part, partial, .. } => {
                let mut name = format!("BINARY[{}]", binary::part_name(part));
                let data = binary::part(raw, parsed.as_ref(), part)
                    .transpose()?
                    .filter(|_| !gone)
                    .map(|b| match partial {
                        Some((origin, length)) => {
                            name.push_str(&format!("<{origin}>"));
                            window(&b, *origin, *length).to_vec()
                        }
                        None => b,
                    });
                FetchItem::Contents {
                    name,
                    data,
                    literal8: true,
                }
            }
            FetchAttr::BinarySize { part } => {
                let size = binary::part(raw, parsed.as_ref(), part)
                    .transpose()?
                    .map_or(0, |b| b.len());
                FetchItem::BinarySize {
                    part: binary::part_name(part),
                    size,
                }
            }
        });
    }
    Ok(Untagged::Fetch { seq, items })
}

/// The `<origin.length>` window of a partial FETCH, clipped to `bytes`.
fn window(bytes: &[u8], origin: u32, length: u32) -> &[u8] {
    let start = (origin as usize).min(bytes.len());
    &bytes[start..start.saturating_add(length as usize).min(bytes.len())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imap::command::{self, Command};
    use std::time::UNIX_EPOCH;

    /// Unflagged, MODSEQ 3, dated the epoch.
    fn meta(uid: u32, size: usize) -> MessageMeta {
        MessageMeta {
            uid,
            flags: Flags::default(),
            modseq: 3,
            size: size as u64,
            internal_date: UNIX_EPOCH,
        }
    }

    #[test]
    fn header_attributes_render_the_same_from_the_cached_header() {
        let raw = b"From: A <a@example.org>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nTo: b@example.org\r\n\r\nbody\r\n";
        let header = &raw[..raw.len() - 6];
        let meta = meta(7, raw.len());
        let parsed = command::parse(
            b"1 FETCH 1 (ENVELOPE RFC822.HEADER BODY.PEEK[HEADER] BODY.PEEK[HEADER.FIELDS (SUBJECT)] \
              BODY.PEEK[HEADER.FIELDS.NOT (TO)] RFC822.SIZE)",
        )
        .unwrap();
        let Command::Fetch { attrs, .. } = parsed.command else {
            panic!("not a FETCH")
        };
        assert_eq!(attrs.iter().map(Need::of_fetch).max(), Some(Need::Header));
        assert_eq!(
            render_fetch(1, &meta, false, Some(header), &attrs, false),
            render_fetch(1, &meta, false, Some(raw), &attrs, false)
        );
    }

    #[test]
    fn fetch_rendering() {
        let raw = b"Subject: hi\r\n\r\nbody\r\n";
        let meta = meta(7, raw.len());
        let attrs = [
            FetchAttr::Uid,
            FetchAttr::Rfc822Size,
            FetchAttr::Section {
                peek: true,
                section: Section::default(),
                partial: Some((2, 5)),
            },
            FetchAttr::InternalDate,
        ];
        let out = Response::from(render_fetch(1, &meta, false, Some(raw), &attrs, false).unwrap()).to_bytes();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "* 1 FETCH (UID 7 RFC822.SIZE 21 BODY[]<2> \"bject\" INTERNALDATE \" 1-Jan-1970 00:00:00 +0000\")\r\n"
        );
    }

    #[test]
    fn body_contents_with_nul_go_out_as_literal8_once_binary_is_used() {
        let raw = b"Subject: b\r\n\r\na\0b\r\n";
        let meta = meta(7, raw.len());
        let attrs = [FetchAttr::Section {
            peek: true,
            section: Section {
                part: Vec::new(),
                text: Some(SectionText::Text),
            },
            partial: None,
        }];
        let render =
            |literal8| Response::from(render_fetch(1, &meta, false, Some(raw), &attrs, literal8).unwrap()).to_bytes();
        assert_eq!(render(true), b"* 1 FETCH (BODY[TEXT] ~{5}\r\na\0b\r\n)\r\n");
        assert_eq!(render(false), b"* 1 FETCH (BODY[TEXT] {5}\r\na\0b\r\n)\r\n");
    }
}
