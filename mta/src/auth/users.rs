//! The virtual users file: one user a line,
//! `user@domain:ARGON2-PHC:scram-sha-256=ITER,SALT,STOREDKEY,SERVERKEY[:cram-md5=SECRET]`
//! (base64 fields). The SCRAM keys are derived when the password is set;
//! the CRAM-MD5 secret is password-equivalent and only stored when the user
//! was added with `--allow-cram-md5`.

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::path::Path;

pub const SCRAM_ITERATIONS: u32 = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramSecret {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualUser {
    /// `user@domain`, lower case.
    pub name: String,
    pub argon2: String,
    pub scram: ScramSecret,
    pub cram_md5: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("{0}: {1}")]
    Io(std::path::PathBuf, std::io::Error),
    #[error("users file line {0}: malformed entry")]
    Malformed(usize),
    #[error("hashing password: {0}")]
    Hash(String),
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

impl ScramSecret {
    pub fn derive(password: &str, salt: &[u8], iterations: u32) -> ScramSecret {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
        let client_key = hmac256(&salted, b"Client Key");
        ScramSecret {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(&client_key).to_vec(),
            server_key: hmac256(&salted, b"Server Key"),
        }
    }
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).expect("the OS random source works");
    buf
}

impl VirtualUser {
    pub fn new(name: &str, password: &str, allow_cram_md5: bool) -> Result<VirtualUser, UsersError> {
        let argon2 = Argon2::default()
            .hash_password(password.as_bytes())
            .map_err(|e| UsersError::Hash(e.to_string()))?
            .to_string();
        Ok(VirtualUser {
            name: name.to_ascii_lowercase(),
            argon2,
            scram: ScramSecret::derive(password, &random_bytes(16), SCRAM_ITERATIONS),
            cram_md5: allow_cram_md5.then(|| password.to_string()),
        })
    }

    pub fn verify(&self, password: &str) -> bool {
        argon2::PasswordHash::new(&self.argon2)
            .is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    }

    fn to_line(&self) -> String {
        let s = &self.scram;
        let mut line = format!(
            "{}:{}:scram-sha-256={},{},{},{}",
            self.name,
            self.argon2,
            s.iterations,
            B64.encode(&s.salt),
            B64.encode(&s.stored_key),
            B64.encode(&s.server_key)
        );
        if let Some(c) = &self.cram_md5 {
            line.push_str(&format!(":cram-md5={}", B64.encode(c)));
        }
        line
    }

    fn from_line(line: &str) -> Option<VirtualUser> {
        let mut fields = line.split(':');
        let name = fields.next()?.to_ascii_lowercase();
        let argon2 = fields.next()?.to_string();
        let scram = fields.next()?.strip_prefix("scram-sha-256=")?;
        let parts: Vec<&str> = scram.split(',').collect();
        let [iter, salt, stored, server] = parts[..] else {
            return None;
        };
        let scram = ScramSecret {
            iterations: iter.parse().ok()?,
            salt: B64.decode(salt).ok()?,
            stored_key: B64.decode(stored).ok()?,
            server_key: B64.decode(server).ok()?,
        };
        let cram_md5 = match fields.next() {
            Some(f) => Some(String::from_utf8(B64.decode(f.strip_prefix("cram-md5=")?).ok()?).ok()?),
            None => None,
        };
        if fields.next().is_some() || !name.contains('@') {
            return None;
        }
        Some(VirtualUser {
            name,
            argon2,
            scram,
            cram_md5,
        })
    }
}

#[derive(Debug, Clone, Default)]
pub struct Users {
    pub users: Vec<VirtualUser>,
}

impl Users {
    pub fn parse(text: &str) -> Result<Users, UsersError> {
        let mut users = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            users.push(VirtualUser::from_line(line).ok_or(UsersError::Malformed(i + 1))?);
        }
        Ok(Users { users })
    }

    /// A missing file is an empty list (a fresh install has no virtual users).
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Users::parse(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Users::default()),
            Err(e) => Err(UsersError::Io(path.into(), e)),
        }
    }

    /// Write atomically with mode 0600 (the file holds password hashes).
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let tmp = path.with_extension("tmp");
        let err = |e| UsersError::Io(path.into(), e);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        // An edit by root (mtactl) keeps the owner, group and group-read the
        // daemon's user relies on; the hashes are never readable by others.
        if let Ok(old) = std::fs::metadata(path) {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            std::os::unix::fs::fchown(&f, Some(old.uid()), Some(old.gid()))
                .and_then(|_| f.set_permissions(std::fs::Permissions::from_mode(0o600 | (old.mode() & 0o040))))
                .map_err(err)?;
        }
        let mut text = String::from("# mta virtual users: managed by `mtactl user`\n");
        for u in &self.users {
            text.push_str(&u.to_line());
            text.push('\n');
        }
        f.write_all(text.as_bytes()).and_then(|_| f.sync_all()).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }

    pub fn get(&self, name: &str) -> Option<&VirtualUser> {
        let name = name.to_ascii_lowercase();
        self.users.iter().find(|u| u.name == name)
    }

    /// Add or replace a user.
    pub fn set(&mut self, user: VirtualUser) {
        self.users.retain(|u| u.name != user.name);
        self.users.push(user);
    }

    pub fn remove(&mut self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        let before = self.users.len();
        self.users.retain(|u| u.name != name);
        before != self.users.len()
    }

    pub fn has_domain(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        self.users
            .iter()
            .any(|u| u.name.rsplit_once('@').is_some_and(|(_, d)| d == domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_verify() {
        let u = VirtualUser::new("Alice@Example.org", "s3cret", true).unwrap();
        let users = Users::parse(&format!("# c\n{}\n", u.to_line())).unwrap();
        let back = users.get("alice@example.org").unwrap();
        assert_eq!(back, &u);
        assert!(back.verify("s3cret"));
        assert!(!back.verify("wrong"));
        assert!(Users::parse("x@y:bad").is_err());
    }
}
