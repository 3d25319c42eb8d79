//! SASL server mechanisms for SMTP AUTH (RFC 4954): PLAIN, LOGIN, CRAM-MD5
//! and SCRAM-SHA-256 (RFC 5802/7677, no channel binding). Pure state
//! machines over the decoded client responses; password checks are left to
//! the caller (they are slow on purpose), secrets come from a lookup.

use super::Authenticator;
use super::users::{ScramSecret, random_bytes};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::sync::Arc;

pub const MECHANISMS: &[&str] = &["PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"];

/// What the caller must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send `334 base64(challenge)` and feed the client's answer back.
    Challenge(Vec<u8>),
    /// Check this password for this user.
    CheckPassword {
        user: String,
        password: String,
    },
    /// The exchange proved the user: send 235.
    Success {
        user: String,
    },
    Failure,
    /// Client syntax error or `*`: 501.
    Malformed,
}

/// Secrets a mechanism may need.
pub trait SecretLookup {
    fn scram(&self, user: &str) -> Option<ScramSecret>;
    fn cram_md5(&self, user: &str) -> Option<String>;
}

#[derive(Debug)]
enum State {
    Plain,
    LoginUser,
    LoginPass(String),
    Cram(String),
    ScramFirst,
    ScramFinal {
        user: String,
        /// `n,,` or `n,a=user,`: the client echoes it base64-encoded as `c=`.
        gs2_header: String,
        client_first_bare: String,
        server_first: String,
        nonce: String,
        secret: Option<ScramSecret>,
    },
    ScramDone {
        user: String,
    },
}

#[derive(Debug)]
pub struct Exchange {
    state: State,
    hostname: String,
}

/// Decode one client line: base64, or `*` for cancel.
pub fn decode(line: &str) -> Option<Vec<u8>> {
    let line = line.trim();
    if line == "*" {
        return None;
    }
    if line == "=" {
        return Some(Vec::new());
    }
    B64.decode(line).ok()
}

impl Exchange {
    /// Start `mechanism`; `None` if unsupported. The first step follows from
    /// the initial response if one was given, else from an empty challenge.
    pub fn start(mechanism: &str, hostname: &str) -> Option<(Exchange, Option<Vec<u8>>)> {
        let (state, challenge) = match mechanism {
            "PLAIN" => (State::Plain, Some(Vec::new())),
            "LOGIN" => (State::LoginUser, Some(b"Username:".to_vec())),
            "CRAM-MD5" => {
                let hex: String = random_bytes(8).iter().map(|b| format!("{b:02x}")).collect();
                let c = format!("<{hex}.{}@{hostname}>", crate::queue::now());
                (State::Cram(c.clone()), Some(c.into_bytes()))
            }
            "SCRAM-SHA-256" => (State::ScramFirst, Some(Vec::new())),
            _ => return None,
        };
        Some((
            Exchange {
                state,
                hostname: hostname.to_string(),
            },
            challenge,
        ))
    }

    /// Whether an initial response may replace the first challenge.
    pub fn accepts_initial(&self) -> bool {
        matches!(self.state, State::Plain | State::LoginUser | State::ScramFirst)
    }

    pub fn step(&mut self, response: &[u8], secrets: &dyn SecretLookup) -> Step {
        let state = std::mem::replace(&mut self.state, State::Plain);
        match state {
            State::Plain => {
                let mut parts = response.split(|&b| b == 0);
                let (Some(authz), Some(user), Some(pass), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Step::Malformed;
                };
                let (Ok(authz), Ok(user), Ok(pass)) = (
                    std::str::from_utf8(authz),
                    std::str::from_utf8(user),
                    std::str::from_utf8(pass),
                ) else {
                    return Step::Malformed;
                };
                if !authz.is_empty() && authz != user {
                    return Step::Failure;
                }
                Step::CheckPassword {
                    user: user.to_string(),
                    password: pass.to_string(),
                }
            }
            State::LoginUser => match String::from_utf8(response.to_vec()) {
                Ok(user) => {
                    self.state = State::LoginPass(user);
                    Step::Challenge(b"Password:".to_vec())
                }
                Err(_) => Step::Malformed,
            },
            State::LoginPass(user) => match String::from_utf8(response.to_vec()) {
                Ok(password) => Step::CheckPassword { user, password },
                Err(_) => Step::Malformed,
            },
            State::Cram(challenge) => {
                let Ok(text) = std::str::from_utf8(response) else {
                    return Step::Malformed;
                };
                let Some((user, digest)) = text.rsplit_once(' ') else {
                    return Step::Malformed;
                };
                let Some(secret) = secrets.cram_md5(user) else {
                    return Step::Failure;
                };
                let expected = cram_md5_digest(&secret, challenge.as_bytes());
                if constant_eq(expected.as_bytes(), digest.to_ascii_lowercase().as_bytes()) {
                    Step::Success { user: user.to_string() }
                } else {
                    Step::Failure
                }
            }
            State::ScramFirst => self.scram_first(response, secrets),
            State::ScramFinal { gs2_header, .. } if !channel_binding_matches(response, &gs2_header) => Step::Failure,
            State::ScramFinal {
                user,
                client_first_bare,
                server_first,
                nonce,
                secret,
                ..
            } => scram_final(
                response,
                user,
                &client_first_bare,
                &server_first,
                &nonce,
                secret,
                &mut self.state,
            ),
            State::ScramDone { user } => {
                if response.is_empty() {
                    Step::Success { user }
                } else {
                    Step::Malformed
                }
            }
        }
    }

    fn scram_first(&mut self, response: &[u8], secrets: &dyn SecretLookup) -> Step {
        let Ok(text) = std::str::from_utf8(response) else {
            return Step::Malformed;
        };
        // gs2 header: we offer no channel binding, so "n" or "y"; authzid ignored unless it differs.
        let mut it = text.splitn(3, ',');
        let (Some(cb), Some(authz), Some(bare)) = (it.next(), it.next(), it.next()) else {
            return Step::Malformed;
        };
        if cb != "n" && cb != "y" {
            return Step::Malformed;
        }
        let attrs = attributes(bare);
        let (Some(user), Some(cnonce)) = (attrs.get("n"), attrs.get("r")) else {
            return Step::Malformed;
        };
        let user = user.replace("=2C", ",").replace("=3D", "=");
        if let Some(a) = authz.strip_prefix("a=")
            && a != user
        {
            return Step::Failure;
        }
        let secret = secrets.scram(&user);
        // Unknown users get a stable fake salt so the exchange does not reveal them.
        let (salt, iterations) = match &secret {
            Some(s) => (s.salt.clone(), s.iterations),
            None => (
                Sha256::digest(format!("{}{user}", self.hostname)).to_vec()[..16].to_vec(),
                super::users::SCRAM_ITERATIONS,
            ),
        };
        let snonce = B64.encode(random_bytes(18));
        let nonce = format!("{cnonce}{snonce}");
        let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(&salt));
        self.state = State::ScramFinal {
            user,
            gs2_header: format!("{cb},{authz},"),
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
            secret,
        };
        Step::Challenge(server_first.into_bytes())
    }
}

fn attributes(s: &str) -> std::collections::HashMap<&str, &str> {
    s.split(',').filter_map(|kv| kv.split_once('=')).collect()
}

/// RFC 2195: lower-case hex of HMAC-MD5(secret, challenge).
pub fn cram_md5_digest(secret: &str, challenge: &[u8]) -> String {
    let mut mac = Hmac::<Md5>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(challenge);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Whether the client-final message echoes the GS2 header of the client-first (`c=`).
fn channel_binding_matches(response: &[u8], gs2_header: &str) -> bool {
    let text = String::from_utf8_lossy(response);
    attributes(&text).get("c") == Some(&B64.encode(gs2_header).as_str())
}

fn scram_final(
    response: &[u8],
    user: String,
    client_first_bare: &str,
    server_first: &str,
    nonce: &str,
    secret: Option<ScramSecret>,
    state: &mut State,
) -> Step {
    let Ok(text) = std::str::from_utf8(response) else {
        return Step::Malformed;
    };
    let Some((without_proof, proof)) = text.rsplit_once(",p=") else {
        return Step::Malformed;
    };
    let attrs = attributes(without_proof);
    if attrs.get("r") != Some(&nonce) {
        return Step::Failure;
    }
    let (Some(secret), Ok(proof)) = (secret, B64.decode(proof)) else {
        return Step::Failure;
    };
    let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
    let signature = hmac256(&secret.stored_key, auth_message.as_bytes());
    if proof.len() != signature.len() {
        return Step::Failure;
    }
    let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
    if !constant_eq(&Sha256::digest(&client_key), &secret.stored_key) {
        return Step::Failure;
    }
    let server_signature = hmac256(&secret.server_key, auth_message.as_bytes());
    *state = State::ScramDone { user };
    Step::Challenge(format!("v={}", B64.encode(server_signature)).into_bytes())
}

/// How an exchange run to its end came out; each protocol words its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The client proved this identity.
    Proved(String),
    /// Wrong credentials, a refused authorization identity, or a client
    /// throttled while it was typing.
    Refused,
    /// `*` or an answer that is not base64.
    Cancelled,
    /// Decoded, but not what the mechanism expects.
    Malformed,
    /// An initial response for a mechanism that starts with a challenge.
    InitialNotAllowed,
    Unsupported,
}

/// The protocol's half of an exchange: send one challenge in its framing
/// (`334 …`, `+ …`) and read the answer, decoded (`None`: cancelled).
pub trait Challenger {
    type Error;
    fn challenge(&mut self, challenge: &[u8]) -> impl Future<Output = Result<Option<Vec<u8>>, Self::Error>> + Send;
}

/// What a client asked for: `AUTH mechanism [initial-response]` from `ip`.
pub struct Request<'a> {
    pub mechanism: &'a str,
    pub initial: Option<&'a str>,
    pub ip: Option<IpAddr>,
    /// Our name, for CRAM-MD5's challenge.
    pub hostname: &'a str,
}

/// Run a request from start to end: the one loop SMTP AUTH, POP3 AUTH and
/// IMAP AUTHENTICATE share. Password checks go through
/// [`Authenticator::check_password`] (off the reactor, one per core).
pub async fn drive<C: Challenger>(
    auth: &Arc<Authenticator>,
    request: Request<'_>,
    channel: &mut C,
) -> Result<Outcome, C::Error> {
    let Request {
        mechanism,
        initial,
        ip,
        hostname,
    } = request;
    let Some((mut exchange, challenge)) = Exchange::start(mechanism, hostname) else {
        return Ok(Outcome::Unsupported);
    };
    let mut response = match initial {
        Some(_) if !exchange.accepts_initial() => return Ok(Outcome::InitialNotAllowed),
        Some(init) => decode(init),
        None => channel.challenge(&challenge.unwrap_or_default()).await?,
    };
    let users = auth.users();
    loop {
        let Some(answer) = response else {
            return Ok(Outcome::Cancelled);
        };
        match exchange.step(&answer, users.as_ref()) {
            Step::Challenge(c) => response = channel.challenge(&c).await?,
            Step::CheckPassword { user, password } => {
                // A client may have been throttled while it took its time.
                let throttled = ip.is_some_and(|ip| auth.throttled(ip));
                let ok = !throttled && auth.check_password(&user, password).await;
                return Ok(if ok { Outcome::Proved(user) } else { Outcome::Refused });
            }
            Step::Success { user } => return Ok(Outcome::Proved(user)),
            Step::Failure => return Ok(Outcome::Refused),
            Step::Malformed => return Ok(Outcome::Malformed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that answers each challenge from a script and records them.
    struct Scripted {
        answers: std::vec::IntoIter<Option<&'static [u8]>>,
        challenges: Vec<Vec<u8>>,
    }

    impl Challenger for Scripted {
        type Error = ();
        async fn challenge(&mut self, challenge: &[u8]) -> Result<Option<Vec<u8>>, ()> {
            self.challenges.push(challenge.to_vec());
            self.answers.next().ok_or(()).map(|a| a.map(<[u8]>::to_vec))
        }
    }

    fn authenticator() -> (tempfile::TempDir, Arc<Authenticator>) {
        let dir = tempfile::tempdir().unwrap();
        let users_file = dir.path().join("users");
        let mut users = crate::auth::users::Users::default();
        users.set(crate::auth::users::VirtualUser::new("alice@example.org", "secret", false).unwrap());
        users.save(&users_file).unwrap();
        let config = crate::config::AuthConfig {
            users_file,
            system_users: false,
            ..Default::default()
        };
        (dir, Arc::new(Authenticator::new(&config)))
    }

    fn run(mechanism: &str, initial: Option<&str>, answers: Vec<Option<&'static [u8]>>) -> (Outcome, Vec<Vec<u8>>) {
        let (_dir, auth) = authenticator();
        let mut client = Scripted {
            answers: answers.into_iter(),
            challenges: Vec::new(),
        };
        let request = Request {
            mechanism,
            initial,
            ip: Some("192.0.2.7".parse().unwrap()),
            hostname: "mx.example.org",
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome = runtime.block_on(drive(&auth, request, &mut client)).unwrap();
        (outcome, client.challenges)
    }

    #[test]
    fn driver_runs_each_ending() {
        let plain = B64.encode(b"\0alice@example.org\0secret");
        assert_eq!(
            run("PLAIN", Some(&plain), vec![]),
            (Outcome::Proved("alice@example.org".into()), vec![])
        );
        let wrong = B64.encode(b"\0alice@example.org\0wrong");
        assert_eq!(run("PLAIN", Some(&wrong), vec![]).0, Outcome::Refused);
        let (outcome, challenges) = run("LOGIN", None, vec![Some(b"alice@example.org"), Some(b"secret")]);
        assert_eq!(outcome, Outcome::Proved("alice@example.org".into()));
        assert_eq!(challenges, vec![b"Username:".to_vec(), b"Password:".to_vec()]);
        assert_eq!(run("LOGIN", None, vec![None]).0, Outcome::Cancelled);
        assert_eq!(run("PLAIN", None, vec![Some(b"no nul bytes")]).0, Outcome::Malformed);
        assert_eq!(run("CRAM-MD5", Some("eA=="), vec![]).0, Outcome::InitialNotAllowed);
        assert_eq!(run("GSSAPI", None, vec![]).0, Outcome::Unsupported);
    }

    struct One(ScramSecret, String);
    impl SecretLookup for One {
        fn scram(&self, user: &str) -> Option<ScramSecret> {
            (user == "alice@example.org").then(|| self.0.clone())
        }
        fn cram_md5(&self, user: &str) -> Option<String> {
            (user == "alice@example.org").then(|| self.1.clone())
        }
    }

    fn lookup() -> One {
        One(
            ScramSecret::derive("pencil", b"0123456789abcdef", 4096),
            "pencil".into(),
        )
    }

    #[test]
    fn plain_and_login() {
        let (mut x, _) = Exchange::start("PLAIN", "h").unwrap();
        assert_eq!(
            x.step(b"\0alice@example.org\0pw", &lookup()),
            Step::CheckPassword {
                user: "alice@example.org".into(),
                password: "pw".into()
            }
        );
        let (mut x, _) = Exchange::start("PLAIN", "h").unwrap();
        assert_eq!(x.step(b"nonul", &lookup()), Step::Malformed);
        let (mut x, c) = Exchange::start("LOGIN", "h").unwrap();
        assert_eq!(c.unwrap(), b"Username:");
        assert_eq!(x.step(b"bob", &lookup()), Step::Challenge(b"Password:".to_vec()));
        assert_eq!(
            x.step(b"pw", &lookup()),
            Step::CheckPassword {
                user: "bob".into(),
                password: "pw".into()
            }
        );
    }

    #[test]
    fn cram_md5() {
        let (mut x, c) = Exchange::start("CRAM-MD5", "h").unwrap();
        let hex = cram_md5_digest("pencil", &c.unwrap());
        assert!(matches!(
            x.step(format!("alice@example.org {hex}").as_bytes(), &lookup()),
            Step::Success { .. }
        ));
    }

    /// A client side written from RFC 5802, to check the server against it.
    fn scram_client(password: &str, gs2_header: &str) -> Step {
        let (mut x, _) = Exchange::start("SCRAM-SHA-256", "h").unwrap();
        let first_bare = "n=alice@example.org,r=clientnonce";
        let Step::Challenge(sf) = x.step(format!("{gs2_header}{first_bare}").as_bytes(), &lookup()) else {
            panic!()
        };
        let sf = String::from_utf8(sf).unwrap();
        let a = attributes(&sf);
        let salt = B64.decode(a["s"]).unwrap();
        let s = ScramSecret::derive(password, &salt, a["i"].parse().unwrap());
        let without = format!("c={},r={}", B64.encode(gs2_header), a["r"]);
        let auth = format!("{first_bare},{sf},{without}");
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, 4096, &mut salted);
        let client_key = hmac256(&salted, b"Client Key");
        let sig = hmac256(&s.stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        match x.step(format!("{without},p={}", B64.encode(proof)).as_bytes(), &lookup()) {
            Step::Challenge(v) => {
                let expected = format!("v={}", B64.encode(hmac256(&s.server_key, auth.as_bytes())));
                assert_eq!(String::from_utf8(v).unwrap(), expected);
                x.step(b"", &lookup())
            }
            other => other,
        }
    }

    #[test]
    fn scram_sha256() {
        let alice = Step::Success {
            user: "alice@example.org".into(),
        };
        assert_eq!(scram_client("pencil", "n,,"), alice);
        // Cyrus SASL (mbsync) names the authorization identity too.
        assert_eq!(scram_client("pencil", "n,a=alice@example.org,"), alice);
        assert_eq!(scram_client("wrong", "n,,"), Step::Failure);
    }
}
