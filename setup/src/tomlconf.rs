//! The same lists in TOML, as a `[setup]` section of greyd.toml (other
//! sections are left to greyd) or a file of its own:
//!
//! ```toml
//! [setup]
//! control = "/var/run/greyd.sock"   # optional
//! cache = "/var/db/greyd/lists"     # optional
//!
//! [[setup.lists]]                   # in order, like spamd.conf's `all`
//! name = "uatraps"
//! kind = "black"
//! message = "Your address %A has sent mail to a spamtrap"   # or message_file = "/path"
//! method = "https"                  # http, https, file (default) or exec
//! file = "www.openbsd.org/spamd/traplist.gz"
//! ```

use std::path::PathBuf;

use serde::Deserialize;

use crate::conf::{Conf, ConfError, Kind, ListSpec, Message, Method};

/// Settings the TOML file may carry beside the lists; command-line flags win.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub control: Option<PathBuf>,
    pub cache: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TomlError {
    #[error(transparent)]
    Syntax(#[from] toml::de::Error),
    #[error("no [setup] section")]
    NoSection,
    #[error("list {0}: message and message_file both given")]
    TwoMessages(String),
    #[error(transparent)]
    Conf(#[from] ConfError),
}

#[derive(Deserialize)]
struct File {
    setup: Option<Section>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    control: Option<PathBuf>,
    cache: Option<PathBuf>,
    #[serde(default)]
    lists: Vec<TomlList>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlList {
    name: String,
    kind: Kind,
    message: Option<String>,
    message_file: Option<PathBuf>,
    #[serde(default = "file_method")]
    method: Method,
    file: String,
}

fn file_method() -> Method {
    Method::File
}

pub fn parse(text: &str) -> Result<(Conf, Settings), TomlError> {
    let section = toml::from_str::<File>(text)?.setup.ok_or(TomlError::NoSection)?;
    let lists = section
        .lists
        .into_iter()
        .map(|l| {
            let message = match (l.message, l.message_file) {
                (Some(_), Some(_)) => return Err(TomlError::TwoMessages(l.name)),
                (Some(text), None) => Some(Message::Text(text)),
                (None, Some(path)) => Some(Message::File(path)),
                (None, None) => None,
            };
            Ok(ListSpec {
                name: l.name,
                kind: l.kind,
                message,
                method: l.method,
                file: l.file,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let conf = Conf { lists };
    conf.validate()?;
    Ok((
        conf,
        Settings {
            control: section.control,
            cache: section.cache,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_lists_as_spamd_conf() {
        let (from_toml, settings) = parse(
            r#"
            [greyd]
            ignored = true

            [setup]
            cache = "/tmp/lists"

            [[setup.lists]]
            name = "uatraps"
            kind = "black"
            message = "Your address %A has sent mail to a spamtrap"
            method = "https"
            file = "www.openbsd.org/spamd/traplist.gz"

            [[setup.lists]]
            name = "override"
            kind = "white"
            file = "/etc/mail/override.txt"
            "#,
        )
        .unwrap();
        let from_conf = crate::conf::parse(
            "all:uatraps:override:\n\
             uatraps:black:msg=\"Your address %A has sent mail to a spamtrap\":\
             method=https:file=www.openbsd.org/spamd/traplist.gz:\n\
             override:white:file=/etc/mail/override.txt:\n",
        )
        .unwrap();
        assert_eq!(from_toml, from_conf);
        assert_eq!(settings.cache, Some(PathBuf::from("/tmp/lists")));
        assert_eq!(settings.control, None);
    }

    #[test]
    fn mistakes_are_refused() {
        assert!(matches!(parse("[greyd]\n"), Err(TomlError::NoSection)));
        assert!(matches!(parse("[setup]\ncahce = \"/x\"\n"), Err(TomlError::Syntax(_))));
        assert!(matches!(
            parse("[[setup.lists]]\nname = \"b\"\nkind = \"black\"\nfile = \"x\"\n"),
            Err(TomlError::Conf(ConfError::NoMessage(_)))
        ));
        assert!(matches!(
            parse(
                "[[setup.lists]]\nname = \"b\"\nkind = \"black\"\nfile = \"x\"\n\
                 message = \"m\"\nmessage_file = \"/m\"\n"
            ),
            Err(TomlError::TwoMessages(_))
        ));
    }
}
