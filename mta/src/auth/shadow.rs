//! System users' passwords, checked against /etc/shadow crypt(3) hashes
//! (`$6$` SHA-512, `$5$` SHA-256, `$y$` yescrypt). Readable only as root:
//! after the drop to `user`, the privileged helper calls this.

use sha_crypt::{PasswordVerifier as _, ShaCrypt};
use yescrypt::Yescrypt;

/// Check `password` against a crypt(3) hash string.
pub fn verify_crypt(password: &str, hash: &str) -> bool {
    if hash.starts_with("$6$") || hash.starts_with("$5$") {
        ShaCrypt::default().verify_password(password.as_bytes(), hash).is_ok()
    } else if hash.starts_with("$y$") {
        Yescrypt::default().verify_password(password.as_bytes(), hash).is_ok()
    } else {
        false
    }
}

/// Check a system user's password in /etc/shadow.
pub fn verify(name: &str, password: &str) -> bool {
    let Ok(shadow) = std::fs::read_to_string("/etc/shadow") else {
        return false;
    };
    shadow
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.next()?))
        })
        .find(|(user, _)| *user == name)
        .is_some_and(|(_, hash)| verify_crypt(password, hash))
}

#[cfg(test)]
mod tests {
    #[test]
    fn crypt_formats() {
        // Made with `openssl passwd -6 -salt saltsalt secret`.
        let sha512 =
            "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1";
        assert!(super::verify_crypt("secret", sha512));
        assert!(!super::verify_crypt("wrong", sha512));
        assert!(!super::verify_crypt("secret", "!"));
        // libxcrypt's crypt("secret", "$y$j9T$abcdefghijklmnop$").
        let yes = "$y$j9T$abcdefghijklmnop$3dL1LkYnZM.OVXuVdnnaKVDlLYT92dRwOzDZ5XiVCe.";
        assert!(super::verify_crypt("secret", yes));
        assert!(!super::verify_crypt("wrong", yes));
    }
}
