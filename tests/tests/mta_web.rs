//! Webmail over HTTPS against the real daemon, with curl: the login page,
//! a login with the IMAP credentials, the folder page, CSRF refusals, and
//! logout ending the session.

use greyd_tests::mta::*;
use greyd_tests::wait_port;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const USER: &str = "alice@example.test";
const PASS: &str = "alice-pw";

/// One curl request with a cookie jar; returns (status, headers, body).
fn curl(jar: &Path, url: &str, extra: &[&str]) -> (u16, String, String) {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "20", "-D", "-", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--cookie-jar")
        .arg(jar)
        .arg("--cookie")
        .arg(jar)
        .args(extra)
        .arg(url)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (rest, code) = text.rsplit_once('\n').unwrap();
    let (headers, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
    (code.trim().parse().unwrap(), headers.to_string(), body.to_string())
}

/// The CSRF token in the first form action of `html`.
fn form_token(html: &str) -> String {
    let at = html.find("csrf=").expect("a form with a token") + 5;
    html[at..].chars().take_while(char::is_ascii_hexdigit).collect()
}

fn header<'a>(headers: &'a str, name: &str) -> Vec<&'a str> {
    headers
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

#[test]
fn login_folders_csrf_and_logout_over_https() {
    let (setup, _mta) = imap_daemon(USER, PASS, 1);
    wait_port(setup.web, Duration::from_secs(10));
    let base = format!("https://{}", setup.web);
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("cookies");

    let (code, headers, _) = curl(&jar, &format!("{base}/"), &[]);
    assert_eq!(code, 303, "{headers}");
    assert_eq!(header(&headers, "location"), ["/login"]);

    let (code, headers, page) = curl(&jar, &format!("{base}/login"), &[]);
    assert_eq!(code, 200);
    assert!(page.contains("<h1>Log in</h1>"), "{page}");
    assert!(page.contains(r#"name="viewport""#));
    let cookie = header(&headers, "set-cookie")[0];
    assert!(cookie.starts_with("__Host-mta-login="), "{cookie}");
    assert!(cookie.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"), "{cookie}");
    assert!(header(&headers, "content-security-policy")[0].contains("default-src 'none'"));
    assert_eq!(header(&headers, "x-content-type-options"), ["nosniff"]);
    let token = form_token(&page);

    // A login post without the form's token is refused before the password is looked at.
    let creds = format!("user={USER}&password={PASS}");
    let (code, _, _) = curl(&jar, &format!("{base}/login"), &["--data", &creds]);
    assert_eq!(code, 403);
    let (code, _, page) = curl(
        &jar,
        &format!("{base}/login?csrf={token}"),
        &["--data", &format!("user={USER}&password=wrong")],
    );
    assert_eq!(code, 401);
    assert!(page.contains("Wrong user name or password."), "{page}");
    let token = form_token(&page);
    let (code, headers, _) = curl(&jar, &format!("{base}/login?csrf={token}"), &["--data", &creds]);
    assert_eq!(code, 303, "{headers}");
    let session = header(&headers, "set-cookie")
        .into_iter()
        .find(|c| c.starts_with("__Host-mta-session="))
        .expect("a session cookie");
    assert!(
        session.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"),
        "{session}"
    );

    let (code, _, page) = curl(&jar, &format!("{base}/"), &[]);
    assert_eq!(code, 200);
    assert!(page.contains(USER), "{page}");
    let inbox = page.find("<td>INBOX</td>").expect("INBOX listed");
    assert!(
        page[inbox..].starts_with(r#"<td>INBOX</td><td class="num">1</td><td class="num">1</td>"#),
        "{page}"
    );
    for folder in ["Sent", "Drafts", "Trash", "Junk"] {
        assert!(page.contains(&format!("<td>{folder}</td>")), "{folder} missing: {page}");
    }

    // Logged in, a POST without the session's token is refused, and so is a wrong one.
    let (code, _, _) = curl(&jar, &format!("{base}/logout"), &["-X", "POST"]);
    assert_eq!(code, 403);
    let (code, _, _) = curl(&jar, &format!("{base}/logout?csrf=00{}", &token[2..]), &["-X", "POST"]);
    assert_eq!(code, 403);
    let token = form_token(&page);
    let (code, headers, _) = curl(&jar, &format!("{base}/logout?csrf={token}"), &["-X", "POST"]);
    assert_eq!(code, 303);
    assert_eq!(header(&headers, "location"), ["/login"]);
    // Not just the cookie: the session itself is gone.
    let old = format!("Cookie: {}", session.split(';').next().unwrap());
    let (code, _, _) = curl(&dir.path().join("fresh"), &format!("{base}/"), &["-H", &old]);
    assert_eq!(code, 303, "the session outlived logout");
}
