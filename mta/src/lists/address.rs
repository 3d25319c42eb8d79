//! The addresses of a list: which role a local part names (posting,
//! -request, -join/-subscribe, -leave/-unsubscribe, -confirm+TOKEN,
//! -owner/-admin, -bounces with an optional VERP member), and the VERP
//! encoding of a member's address. Pure: local parts come from the network.

/// What mail to one of a list's addresses asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// NAME: a post to the members.
    Post,
    /// NAME-request: commands in the subject or body.
    Request,
    /// NAME-join, NAME-subscribe.
    Join,
    /// NAME-leave, NAME-unsubscribe.
    Leave,
    /// NAME-confirm+TOKEN: the reply to a confirmation request.
    Confirm(String),
    /// NAME-owner, NAME-admin: forwarded to the owners.
    Owner,
    /// NAME-bounces, NAME-bounces+user=domain: a bounce, for that member if VERP says.
    Bounces(Option<String>),
}

/// A local part split into the list name it belongs to and the role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListAddress {
    /// Lowercase list name (the local part of the posting address).
    pub name: String,
    pub role: Role,
}

/// Suffixes without a `+` argument, and what they mean.
const PLAIN: [(&str, Role); 7] = [
    ("-request", Role::Request),
    ("-join", Role::Join),
    ("-subscribe", Role::Join),
    ("-leave", Role::Leave),
    ("-unsubscribe", Role::Leave),
    ("-owner", Role::Owner),
    ("-admin", Role::Owner),
];

/// Longest token or VERP part we take (the SMTP local part limit is 64).
const MAX_LOCAL: usize = 256;

/// Split `local` (as received, any case) into list name and role. A local
/// part without a known suffix is a post to the list of that name; the
/// caller checks the name is a list. `None` for what cannot be one of ours
/// (empty name, a malformed confirm token or VERP part).
pub fn parse(local: &str) -> Option<ListAddress> {
    if local.is_empty() || local.len() > MAX_LOCAL {
        return None;
    }
    let lower = local.to_ascii_lowercase();
    let (base, detail) = match lower.split_once('+') {
        Some((b, d)) => (b, Some(d)),
        None => (lower.as_str(), None),
    };
    let named = |name: &str, role: Role| {
        (!name.is_empty() && valid_name(name)).then(|| ListAddress {
            name: name.to_string(),
            role,
        })
    };
    if let Some(name) = base.strip_suffix("-confirm") {
        let token = detail.filter(|t| valid_token(t))?;
        return named(name, Role::Confirm(token.to_string()));
    }
    if let Some(name) = base.strip_suffix("-bounces") {
        let member = match detail {
            None => None,
            Some(d) => Some(verp_decode(d)?),
        };
        return named(name, Role::Bounces(member));
    }
    if detail.is_some() {
        return None;
    }
    for (suffix, role) in PLAIN {
        if let Some(name) = base.strip_suffix(suffix) {
            return named(name, role);
        }
    }
    named(base, Role::Post)
}

/// List names: letters, digits, `.`, `_` and `-`, not starting or ending with `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.'])
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Whether `name` may be given to a new list: a valid name that reads
/// back as a posting address (not `x-request`, `x-bounces`, ...).
pub fn creatable(name: &str) -> bool {
    valid_name(name) && parse(name).is_some_and(|a| a.role == Role::Post && a.name == name)
}

/// Tokens we hand out are lowercase hex.
fn valid_token(t: &str) -> bool {
    (8..=64).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `user@example.org` as the VERP detail `user=example.org`.
pub fn verp_encode(member: &str) -> String {
    match member.rsplit_once('@') {
        Some((local, domain)) => format!("{local}={domain}"),
        None => member.to_string(),
    }
}

/// `user=example.org` back to `user@example.org` (the last `=` is the `@`).
pub fn verp_decode(detail: &str) -> Option<String> {
    let (local, domain) = detail.rsplit_once('=')?;
    let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'@');
    (ok(local) && ok(domain)).then(|| format!("{local}@{domain}"))
}

/// The local part of `role`'s address for list `name` (inverse of `parse`).
pub fn local_part(name: &str, role: &Role) -> String {
    match role {
        Role::Post => name.to_string(),
        Role::Request => format!("{name}-request"),
        Role::Join => format!("{name}-join"),
        Role::Leave => format!("{name}-leave"),
        Role::Confirm(t) => format!("{name}-confirm+{t}"),
        Role::Owner => format!("{name}-owner"),
        Role::Bounces(None) => format!("{name}-bounces"),
        Role::Bounces(Some(m)) => format!("{name}-bounces+{}", verp_encode(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(local: &str) -> Option<(String, Role)> {
        parse(local).map(|a| (a.name, a.role))
    }

    #[test]
    fn every_address_of_a_list() {
        let dev = |r| Some(("dev".to_string(), r));
        assert_eq!(p("dev"), dev(Role::Post));
        assert_eq!(p("Dev-Request"), dev(Role::Request));
        assert_eq!(p("dev-join"), dev(Role::Join));
        assert_eq!(p("dev-subscribe"), dev(Role::Join));
        assert_eq!(p("dev-leave"), dev(Role::Leave));
        assert_eq!(p("dev-unsubscribe"), dev(Role::Leave));
        assert_eq!(p("dev-owner"), dev(Role::Owner));
        assert_eq!(p("dev-admin"), dev(Role::Owner));
        assert_eq!(p("dev-confirm+0123abcdef"), dev(Role::Confirm("0123abcdef".into())));
        assert_eq!(p("dev-bounces"), dev(Role::Bounces(None)));
        assert_eq!(
            p("dev-bounces+bob=example.org"),
            dev(Role::Bounces(Some("bob@example.org".into())))
        );
        assert_eq!(p("my-list-request"), Some(("my-list".to_string(), Role::Request)));
    }

    #[test]
    fn malformed_addresses_are_none() {
        for bad in [
            "",
            "-request",
            "dev-confirm",
            "dev-confirm+",
            "dev-confirm+xyz!",
            "dev-bounces+nobody",
            "dev-bounces+=x",
            "dev+folder",
            "-dev",
            "de/v",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    proptest! {
        #[test]
        fn parse_never_panics(local in "\\PC{0,80}") {
            let _ = parse(&local);
        }

        #[test]
        fn local_part_roundtrips(name in "[a-z0-9][a-z0-9._-]{0,20}[a-z0-9]", which in 0usize..9,
                                 token in "[0-9a-f]{8,40}", user in "[a-z0-9.+_-]{1,20}", domain in "[a-z0-9.-]{1,20}") {
            let role = match which {
                0 => Role::Post, 1 => Role::Request, 2 => Role::Join, 3 => Role::Leave,
                4 => Role::Confirm(token), 5 => Role::Owner, 6 => Role::Bounces(None),
                _ => Role::Bounces(Some(format!("{user}@{domain}"))),
            };
            let local = local_part(&name, &role);
            // A name that itself ends in a role suffix is read as that role: names are checked at create.
            prop_assume!(PLAIN.iter().all(|(s, _)| !name.ends_with(s)) && !name.ends_with("-confirm") && !name.ends_with("-bounces"));
            prop_assert_eq!(parse(&local), Some(ListAddress { name, role }));
        }

        #[test]
        fn verp_roundtrips(user in "[a-z0-9.=_-]{1,20}", domain in "[a-z0-9.-]{1,20}") {
            let member = format!("{user}@{domain}");
            prop_assert_eq!(verp_decode(&verp_encode(&member)), Some(member));
        }
    }
}
