//! Which names LIST and LSUB return and with which attributes (RFC 3501
//! §6.3.8-9, RFC 5258 selection options, RFC 6154 SPECIAL-USE), computed
//! from the store's folders and the subscription list. Subscribed names
//! need not exist (RFC 3501 §6.3.6), so they and their parents are listed
//! by the subscription-based selections even when no folder backs them.

use super::command::ListOptions;
use crate::store::{FolderInfo, SpecialUse};
use std::collections::BTreeSet;

/// One line of a LIST or LSUB response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub attrs: Vec<&'static str>,
    /// RECURSIVEMATCH: `("CHILDINFO" ("SUBSCRIBED"))` follows the name.
    pub child_info: bool,
    /// A real folder, so LIST-STATUS can report on it.
    pub exists: bool,
}

/// The LIST attribute of a special-use folder (RFC 6154).
pub fn special_use_attribute(u: SpecialUse) -> &'static str {
    match u {
        SpecialUse::Sent => "\\Sent",
        SpecialUse::Drafts => "\\Drafts",
        SpecialUse::Trash => "\\Trash",
        SpecialUse::Junk => "\\Junk",
        SpecialUse::Archive => "\\Archive",
    }
}

/// A name that can be listed: a folder (or a parent implied by folders), or
/// a name known only from the subscriptions (`phantom`).
struct Candidate {
    info: FolderInfo,
    phantom: bool,
}

fn candidates(folders: &[FolderInfo], subscriptions: &[String]) -> Vec<Candidate> {
    let mut known: BTreeSet<&str> = folders.iter().map(|f| f.name.as_str()).collect();
    let mut out: Vec<Candidate> = folders
        .iter()
        .map(|f| Candidate {
            info: f.clone(),
            phantom: false,
        })
        .collect();
    for sub in subscriptions {
        // The name itself, then each parent up the hierarchy.
        let mut name = Some(sub.as_str());
        while let Some(n) = name {
            if known.insert(n) {
                out.push(Candidate {
                    info: FolderInfo {
                        name: n.to_string(),
                        special_use: None,
                        has_children: false,
                        subscribed: subscriptions.iter().any(|s| s == n),
                        exists: false,
                    },
                    phantom: true,
                });
            }
            name = n.rsplit_once('/').map(|(parent, _)| parent);
        }
    }
    // INBOX first, then by name, as the store lists folders.
    out.sort_by(|a, b| (a.info.name != "INBOX", &a.info.name).cmp(&(b.info.name != "INBOX", &b.info.name)));
    out
}

/// The entries for LIST (`lsub` false) or LSUB; `matches` says whether a
/// name matches the command's reference and patterns.
pub fn entries(
    folders: &[FolderInfo],
    subscriptions: &[String],
    matches: impl Fn(&str) -> bool,
    lsub: bool,
    options: &ListOptions,
) -> Vec<Entry> {
    let mut out = Vec::new();
    for c in candidates(folders, subscriptions) {
        let f = &c.info;
        if !matches(&f.name) || (options.special_use && f.special_use.is_none()) {
            continue;
        }
        let prefix = format!("{}/", f.name);
        let mut subscribed_children = subscriptions.iter().filter(|s| s.starts_with(&prefix));
        let mut child_info = false;
        let mut noselect = !f.exists;
        if lsub {
            // RFC 3501 §6.3.9: "%" that stops above a subscribed name lists
            // the unsubscribed parent, flagged \Noselect.
            if !f.subscribed {
                if !subscribed_children.any(|s| !matches(s)) {
                    continue;
                }
                noselect = true;
            }
        } else if options.subscribed {
            // CHILDINFO only for a subscribed descendant that is not itself returned (RFC 5258 §3.5).
            child_info = options.recursive && subscribed_children.any(|s| !matches(s));
            if !f.subscribed && !child_info {
                continue;
            }
        } else if c.phantom {
            continue;
        }
        let mut attrs = Vec::new();
        // LIST says \NonExistent alone, which implies \Noselect (RFC 5258 §3.4).
        if noselect {
            attrs.push(if lsub || f.exists {
                "\\Noselect"
            } else {
                "\\NonExistent"
            });
        }
        if f.has_children {
            attrs.push("\\HasChildren");
        } else if !c.phantom {
            attrs.push("\\HasNoChildren");
        }
        if f.subscribed && !lsub && (options.subscribed || options.return_subscribed) {
            attrs.push("\\Subscribed");
        }
        attrs.extend(f.special_use.map(special_use_attribute));
        out.push(Entry {
            name: f.name.clone(),
            attrs,
            child_info,
            exists: f.exists,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str, subscribed: bool, exists: bool, has_children: bool) -> FolderInfo {
        FolderInfo {
            name: name.into(),
            special_use: (name == "Sent").then_some(SpecialUse::Sent),
            has_children,
            subscribed,
            exists,
        }
    }

    /// INBOX; Sent (subscribed); Lists (implied) / rust (subscribed); Work
    /// (exists, unsubscribed); subscriptions also name the missing "Old" and
    /// "Gone/deep".
    fn setup() -> (Vec<FolderInfo>, Vec<String>) {
        let folders = vec![
            folder("INBOX", false, true, false),
            folder("Lists", false, false, true),
            folder("Lists/rust", true, true, false),
            folder("Sent", true, true, false),
            folder("Work", false, true, false),
        ];
        let subs = ["Sent", "Lists/rust", "Old", "Gone/deep"].map(String::from).to_vec();
        (folders, subs)
    }

    fn render(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| {
                format!(
                    "{} ({}){}",
                    e.name,
                    e.attrs.join(" "),
                    if e.child_info { " CHILDINFO" } else { "" }
                )
            })
            .collect()
    }

    fn pattern(p: &'static str) -> impl Fn(&str) -> bool {
        move |name: &str| match p {
            "*" => true,
            "%" => !name.contains('/'),
            _ => name == p,
        }
    }

    #[test]
    fn lsub_lists_missing_subscriptions_as_noselect() {
        let (folders, subs) = setup();
        let got = render(&entries(&folders, &subs, pattern("*"), true, &ListOptions::default()));
        assert_eq!(
            got,
            [
                "Gone/deep (\\Noselect)",
                "Lists/rust (\\HasNoChildren)",
                "Old (\\Noselect)",
                "Sent (\\HasNoChildren \\Sent)",
            ]
        );
    }

    #[test]
    fn lsub_percent_lists_the_parent_of_a_deeper_subscription() {
        let (folders, subs) = setup();
        let got = render(&entries(&folders, &subs, pattern("%"), true, &ListOptions::default()));
        assert_eq!(
            got,
            [
                "Gone (\\Noselect)",
                "Lists (\\Noselect \\HasChildren)",
                "Old (\\Noselect)",
                "Sent (\\HasNoChildren \\Sent)",
            ]
        );
    }

    #[test]
    fn list_subscribed_marks_missing_names_nonexistent() {
        let (folders, subs) = setup();
        let opts = ListOptions {
            subscribed: true,
            ..ListOptions::default()
        };
        let got = render(&entries(&folders, &subs, pattern("*"), false, &opts));
        assert_eq!(
            got,
            [
                "Gone/deep (\\NonExistent \\Subscribed)",
                "Lists/rust (\\HasNoChildren \\Subscribed)",
                "Old (\\NonExistent \\Subscribed)",
                "Sent (\\HasNoChildren \\Subscribed \\Sent)",
            ]
        );
    }

    #[test]
    fn recursivematch_reports_childinfo_for_parents_of_children_not_returned() {
        let (folders, subs) = setup();
        let opts = ListOptions {
            subscribed: true,
            recursive: true,
            ..ListOptions::default()
        };
        let children = [
            "Gone/deep (\\NonExistent \\Subscribed)",
            "Lists/rust (\\HasNoChildren \\Subscribed)",
        ];
        let parents = [
            "Gone (\\NonExistent) CHILDINFO",
            "Lists (\\NonExistent \\HasChildren) CHILDINFO",
        ];
        for (p, first) in [("%", parents), ("*", children)] {
            let got = render(&entries(&folders, &subs, pattern(p), false, &opts));
            let mut want = first.to_vec();
            want.extend([
                "Old (\\NonExistent \\Subscribed)",
                "Sent (\\HasNoChildren \\Subscribed \\Sent)",
            ]);
            assert_eq!(got, want, "{p}");
        }
    }

    #[test]
    fn plain_list_shows_folders_only() {
        let (folders, subs) = setup();
        let opts = ListOptions {
            return_subscribed: true,
            ..ListOptions::default()
        };
        let got = render(&entries(&folders, &subs, pattern("*"), false, &opts));
        assert_eq!(
            got,
            [
                "INBOX (\\HasNoChildren)",
                "Lists (\\NonExistent \\HasChildren)",
                "Lists/rust (\\HasNoChildren \\Subscribed)",
                "Sent (\\HasNoChildren \\Subscribed \\Sent)",
                "Work (\\HasNoChildren)",
            ]
        );
        let special = ListOptions {
            special_use: true,
            ..ListOptions::default()
        };
        assert_eq!(
            render(&entries(&folders, &subs, pattern("*"), false, &special)),
            ["Sent (\\HasNoChildren \\Sent)"]
        );
    }
}
