//! System accounts made with useradd for one test (root only), removed with
//! userdel when dropped.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use crate::mta::{run_ok, run_with_input};

/// useradd and userdel lock /etc/passwd and fail rather than wait, so the
/// tests of one binary take turns.
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// Run useradd alone; panics if it fails.
fn change_accounts(cmd: &mut Command) -> String {
    let _turn = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    run_ok(cmd)
}

pub struct SystemUser {
    pub name: String,
    pub home: PathBuf,
    /// Whether useradd made the home (userdel then removes it).
    made_home: bool,
}

impl SystemUser {
    /// A login-less user with its home under /tmp (traversable, so mta can
    /// deliver as that user).
    pub fn create(prefix: &str) -> SystemUser {
        let name = format!("{prefix}{}", std::process::id() % 100_000);
        let home = PathBuf::from(format!("/tmp/{name}-home"));
        change_accounts(
            Command::new("useradd")
                .args(["--create-home", "--shell", "/usr/sbin/nologin", "--home-dir"])
                .arg(&home)
                .arg(&name),
        );
        SystemUser {
            name,
            home,
            made_home: true,
        }
    }

    /// A daemon's account, as an installer makes one: `--system`, no home.
    pub fn daemon(prefix: &str) -> SystemUser {
        let name = format!("{prefix}{}", std::process::id());
        change_accounts(
            Command::new("useradd")
                .args(["--system", "--no-create-home", "--shell", "/usr/sbin/nologin"])
                .arg(&name),
        );
        let home = PathBuf::from(
            run_ok(Command::new("getent").args(["passwd", &name]))
                .split(':')
                .nth(5)
                .unwrap_or("")
                .to_string(),
        );
        SystemUser {
            name,
            home,
            made_home: false,
        }
    }

    /// The user's uid and primary gid, as `id` reports them.
    pub fn ids(&self) -> (u32, u32) {
        let id = |flag: &str| {
            run_ok(Command::new("id").arg(flag).arg(&self.name))
                .trim()
                .parse()
                .unwrap()
        };
        (id("-u"), id("-g"))
    }

    /// Set the password (`chpasswd`, into /etc/shadow).
    pub fn set_password(&self, password: &str) {
        let _turn = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let out = run_with_input(
            &mut Command::new("chpasswd"),
            format!("{}:{password}\n", self.name).as_bytes(),
        );
        assert!(
            out.status.success(),
            "chpasswd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Write a file in the home directory, owned by the user.
    pub fn write(&self, file: &str, text: &str) {
        let path = self.home.join(file);
        std::fs::write(&path, text).unwrap();
        run_ok(Command::new("chown").arg(&self.name).arg(&path));
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let mut userdel = Command::new("userdel");
        if self.made_home {
            userdel.arg("--remove");
        }
        let _turn = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        let _ = userdel.arg(&self.name).output();
    }
}
