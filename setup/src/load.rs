//! Sending the planned lists to greyd over its control socket: each black
//! list replaced in one request (greyd swaps it atomically), then the black
//! lists greyd holds that the configuration no longer names are dropped.

use greyd::control::{Client, ClientError, ListKind, Request, Response};

use crate::plan::Plan;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("greyd refused {what}: {message}")]
    Refused { what: String, message: String },
    #[error("greyd answered {what} with {answer:?}")]
    Unexpected { what: String, answer: Response },
}

/// What changed in greyd.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub loaded: Vec<String>,
    pub dropped: Vec<String>,
}

pub fn load(client: &mut Client, plan: &Plan, hard_block: bool) -> Result<Loaded, LoadError> {
    let mut done = Loaded::default();
    for list in &plan.load {
        let what = format!("list {}", list.name);
        expect_ok(
            client.request(&Request::LoadList {
                name: list.name.clone(),
                kind: ListKind::Black,
                message: list.message.clone(),
                hard_block,
                entries: list.nets.clone(),
            })?,
            &what,
        )?;
        tracing::info!("list {}: {} nets loaded", list.name, list.nets.len());
        done.loaded.push(list.name.clone());
    }
    let lists = match client.request(&Request::ListLists)? {
        Response::Lists { lists } => lists,
        other => return Err(unexpected("the list of lists", other)),
    };
    // Allow lists come from elsewhere (greyd's own configuration); only black lists are ours.
    for stale in lists
        .into_iter()
        .filter(|l| l.kind == ListKind::Black && !plan.configured.contains(&l.name))
    {
        expect_ok(
            client.request(&Request::DropList {
                name: stale.name.clone(),
            })?,
            &format!("dropping list {}", stale.name),
        )?;
        tracing::info!("list {}: no longer configured, dropped", stale.name);
        done.dropped.push(stale.name);
    }
    Ok(done)
}

fn expect_ok(answer: Response, what: &str) -> Result<(), LoadError> {
    match answer {
        Response::Ok { .. } => Ok(()),
        Response::Error { message } => Err(LoadError::Refused {
            what: what.to_string(),
            message,
        }),
        other => Err(unexpected(what, other)),
    }
}

fn unexpected(what: &str, answer: Response) -> LoadError {
    LoadError::Unexpected {
        what: what.to_string(),
        answer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Planned;
    use greyd::control::ListInfo;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;

    fn info(name: &str, kind: ListKind) -> ListInfo {
        ListInfo {
            name: name.into(),
            kind,
            hard_block: false,
            entries: 1,
            loaded: None,
        }
    }

    /// A stand-in greyd that answers each request and records it.
    fn fake_greyd(path: &std::path::Path, lists: Vec<ListInfo>) -> std::thread::JoinHandle<Vec<Request>> {
        let listener = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut seen = Vec::new();
            for line in BufReader::new(stream).split(b'\n') {
                let req = Request::parse(&line.unwrap()).unwrap();
                let answer = match req {
                    Request::ListLists => Response::Lists { lists: lists.clone() },
                    _ => Response::Ok { changed: 1 },
                };
                writer.write_all(&answer.to_line()).unwrap();
                seen.push(req);
            }
            seen
        })
    }

    #[test]
    fn loads_configured_and_drops_only_stale_black_lists() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("ctl");
        let server = fake_greyd(
            &sock,
            vec![
                info("kept", ListKind::Black),
                info("gone", ListKind::Black),
                info("nospamd", ListKind::Allow),
                info("new", ListKind::Black),
            ],
        );
        let plan = Plan {
            load: vec![Planned {
                name: "new".into(),
                message: "go away %A".into(),
                nets: vec!["192.0.2.0/24".parse().unwrap()],
            }],
            configured: vec!["new".into(), "kept".into()],
            ..Plan::default()
        };
        let mut client = Client::connect(&sock).unwrap();
        let done = load(&mut client, &plan, true).unwrap();
        drop(client);
        assert_eq!(
            done,
            Loaded {
                loaded: vec!["new".into()],
                dropped: vec!["gone".into()],
            }
        );
        let seen = server.join().unwrap();
        assert_eq!(
            seen,
            [
                Request::LoadList {
                    name: "new".into(),
                    kind: ListKind::Black,
                    message: "go away %A".into(),
                    hard_block: true,
                    entries: plan.load[0].nets.clone(),
                },
                Request::ListLists,
                Request::DropList { name: "gone".into() },
            ]
        );
    }
}
