//! Authentication: virtual users (the users file), system users
//! (/etc/shadow, through the privileged helper after the drop), the SASL mechanisms, and per-address throttling of
//! failed logins.

pub mod sasl;
pub mod shadow;
pub mod users;

use crate::config::AuthConfig;
use crate::reload::Reloading;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;
use users::{ScramSecret, Users, UsersError};

impl sasl::SecretLookup for Users {
    fn scram(&self, user: &str) -> Option<ScramSecret> {
        self.get(user).map(|u| u.scram.clone())
    }

    fn cram_md5(&self, user: &str) -> Option<String> {
        self.get(user).and_then(|u| u.cram_md5.clone())
    }
}

pub struct Authenticator {
    config: AuthConfig,
    users: Reloading<Users, UsersError>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
    /// Password checks running at once. An argon2 check takes 19 MiB and a
    /// core: more at once than there are cores only adds memory, which a
    /// burst of logins (or an attacker's wrong passwords) would multiply.
    checks: tokio::sync::Semaphore,
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> Authenticator {
        Authenticator {
            config: config.clone(),
            users: Reloading::new(&config.users_file, Users::load),
            failures: Mutex::new(HashMap::new()),
            checks: tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
        }
    }

    /// [`Authenticator::verify_password`] off the reactor, at most one
    /// check per core at a time; the others wait their turn here.
    pub async fn check_password(self: &Arc<Self>, user: &str, password: String) -> bool {
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        let auth = Arc::clone(self);
        let user = user.to_string();
        tokio::task::spawn_blocking(move || auth.verify_password(&user, &password))
            .await
            .unwrap_or(false)
    }

    /// The current virtual users (empty if the file cannot be read).
    pub fn users(&self) -> Arc<Users> {
        self.users.get().unwrap_or_else(|e| {
            tracing::error!("users file: {e}");
            Arc::new(Users::default())
        })
    }

    /// Check a password: `user@domain` names are virtual users, plain names
    /// system users (when enabled). Slow by design (argon2): call off the reactor.
    pub fn verify_password(&self, user: &str, password: &str) -> bool {
        if user.contains('@') {
            self.users().get(user).is_some_and(|u| u.verify(password))
        } else {
            self.config.system_users
                && match crate::privsep::client::installed() {
                    Some(privsep) => privsep.check_password(user, password),
                    None => shadow::verify(user, password),
                }
        }
    }

    /// Too many recent failures from `ip`: refuse AUTH for now.
    pub fn throttled(&self, ip: IpAddr) -> bool {
        let mut f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        match f.get(&ip) {
            Some((_, since)) if since.elapsed() > self.config.failure_window => {
                f.remove(&ip);
                false
            }
            Some((n, _)) => *n >= self.config.max_failures,
            None => false,
        }
    }

    pub fn record_failure(&self, ip: IpAddr) {
        let mut f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = f.entry(ip).or_insert((0, Instant::now()));
        entry.0 += 1;
    }

    pub fn record_success(&self, ip: IpAddr) {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner).remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_while_throttling_does_not_stop_later_logins() {
        let config = AuthConfig {
            max_failures: 2,
            ..AuthConfig::default()
        };
        let auth = Arc::new(Authenticator::new(&config));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        auth.record_failure(ip);
        let poisoner = Arc::clone(&auth);
        let _ = std::thread::spawn(move || {
            let _held = poisoner.failures.lock().unwrap();
            panic!("a session panics while holding the lock");
        })
        .join();
        assert!(auth.failures.is_poisoned());
        assert!(!auth.throttled(ip));
        auth.record_failure(ip);
        assert!(auth.throttled(ip), "the count kept before the panic still holds");
        auth.record_success(ip);
        assert!(!auth.throttled(ip));
    }
}
