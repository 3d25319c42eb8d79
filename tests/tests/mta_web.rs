//! Webmail over HTTPS against the real daemon: with curl (the login page,
//! a login with the IMAP credentials, the folder page, CSRF refusals,
//! logout ending the session), and in a real browser (Debian's chromium
//! over WebDriver): reading, composing with an attachment, moving,
//! searching, the XSS corpus, the status page, logout; Python's imaplib
//! checks what IMAP clients see.

use fantoccini::Locator;
use greyd_tests::browser::{Browser, Canary};
use greyd_tests::mta::*;
use greyd_tests::wait_port;
use std::time::Duration;

const USER: &str = "alice@example.test";
const PASS: &str = "alice-pw";

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

    let (code, headers, _) = curl_session(Some(&jar), &format!("{base}/"), &[]);
    assert_eq!(code, 303, "{headers}");
    assert_eq!(header(&headers, "location"), ["/login"]);

    let (code, headers, page) = curl_session(Some(&jar), &format!("{base}/login"), &[]);
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
    let (code, _, _) = curl_session(Some(&jar), &format!("{base}/login"), &["--data", &creds]);
    assert_eq!(code, 403);
    let (code, _, page) = curl_session(
        Some(&jar),
        &format!("{base}/login?csrf={token}"),
        &["--data", &format!("user={USER}&password=wrong")],
    );
    assert_eq!(code, 401);
    assert!(page.contains("Wrong user name or password."), "{page}");
    let token = form_token(&page);
    let (code, headers, _) = curl_session(Some(&jar), &format!("{base}/login?csrf={token}"), &["--data", &creds]);
    assert_eq!(code, 303, "{headers}");
    let session = header(&headers, "set-cookie")
        .into_iter()
        .find(|c| c.starts_with("__Host-mta-session="))
        .expect("a session cookie");
    assert!(
        session.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax"),
        "{session}"
    );

    let (code, _, page) = curl_session(Some(&jar), &format!("{base}/"), &[]);
    assert_eq!(code, 200);
    assert!(page.contains(USER), "{page}");
    assert!(
        page.contains(r#"<a href="/mail?f=INBOX">INBOX</a></td><td class="num">1</td><td class="num">1</td>"#),
        "{page}"
    );
    for folder in ["Sent", "Drafts", "Trash", "Junk"] {
        assert!(
            page.contains(&format!(">{folder}</a></td>")),
            "{folder} missing: {page}"
        );
    }

    // Logged in, a POST without the session's token is refused, and so is a wrong one.
    let (code, _, _) = curl_session(Some(&jar), &format!("{base}/logout"), &["-X", "POST"]);
    assert_eq!(code, 403);
    let (code, _, _) = curl_session(
        Some(&jar),
        &format!("{base}/logout?csrf=00{}", &token[2..]),
        &["-X", "POST"],
    );
    assert_eq!(code, 403);
    let token = form_token(&page);
    let (code, headers, _) = curl_session(Some(&jar), &format!("{base}/logout?csrf={token}"), &["-X", "POST"]);
    assert_eq!(code, 303);
    assert_eq!(header(&headers, "location"), ["/login"]);
    // Not just the cookie: the session itself is gone.
    let old = format!("Cookie: {}", session.split(';').next().unwrap());
    let (code, _, _) = curl_session(Some(&dir.path().join("fresh")), &format!("{base}/"), &["-H", &old]);
    assert_eq!(code, 303, "the session outlived logout");

    // Failed logins are throttled per address, as IMAP's are (auth.max_failures = 5).
    let wrong = format!("user={USER}&password=wrong");
    let (_, _, mut page) = curl_session(Some(&jar), &format!("{base}/login"), &[]);
    for _ in 0..5 {
        let token = form_token(&page);
        let (code, _, next) = curl_session(Some(&jar), &format!("{base}/login?csrf={token}"), &["--data", &wrong]);
        assert_eq!(code, 401);
        page = next;
    }
    let token = form_token(&page);
    let (code, _, page) = curl_session(Some(&jar), &format!("{base}/login?csrf={token}"), &["--data", &creds]);
    assert_eq!(code, 429, "{page}");
    assert!(page.contains("Too many failed logins"), "{page}");
}

const BOB: &str = "bob@example.test";
const BOB_PASS: &str = "bob-pw";

/// Python imaplib over IMAPS as `user`; the script's stdout.
fn imap(setup: &MtaSetup, user: &str, password: &str, body: &str) -> String {
    let script = format!(
        "import imaplib, ssl, sys, email\nctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\nc = imaplib.IMAP4_SSL('127.0.0.1', int(sys.argv[1]), ssl_context=ctx, timeout=15)\nc.login(sys.argv[2], sys.argv[3])\n{body}"
    );
    let (ok, out, err) = python(&script, &[&setup.imaps.port().to_string(), user, password]);
    assert!(ok, "python failed:\n{out}\n{err}");
    out
}

/// Messages whose HTML tries to run script or reach the canary; each also
/// shows a marker paragraph, so the test knows the frame rendered.
fn xss_corpus(canary: &str) -> Vec<(&'static str, String)> {
    let hook = format!("fetch('http://{canary}/script');top.document.title='XSS'");
    vec![
        ("script", format!("<script>{hook}</script>")),
        ("onerror", format!("<img src=x onerror=\"{hook}\">")),
        (
            "javascript",
            format!("<a id=js href=\"javascript:{hook}\">click me</a>"),
        ),
        (
            "animate",
            format!("<svg><animate onbegin=\"{hook}\" attributeName=x dur=1s /></svg>"),
        ),
        (
            "feimage",
            format!(
                "<svg><filter id=f><feImage href=\"http://{canary}/feimage\"/></filter><rect filter=\"url(#f)\" width=9 height=9 /></svg>"
            ),
        ),
        (
            "import",
            format!("<style>@import url(http://{canary}/import.css);</style>"),
        ),
        (
            "base",
            format!("<base href=\"http://{canary}/base/\"><img src=\"relative.png\">"),
        ),
        (
            "refresh",
            format!("<meta http-equiv=\"refresh\" content=\"0;url=http://{canary}/refresh\">"),
        ),
        (
            "form",
            format!("<form action=\"http://{canary}/form\"><input name=a value=1><button id=go>go</button></form>"),
        ),
        ("remote-image", format!("<img src=\"https://{canary}/remote.png\">")),
    ]
}

/// How many pixels of a PNG screenshot differ from its first pixel, counted
/// by the browser itself (a canvas on about:blank).
async fn painted_pixels(b: &Browser, png: &[u8]) -> u64 {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(png);
    b.client.goto("about:blank").await.unwrap();
    let script = r#"
        const done = arguments[arguments.length - 1];
        const img = new Image();
        img.onload = () => {
            const c = document.createElement('canvas');
            c.width = img.width; c.height = img.height;
            const g = c.getContext('2d'); g.drawImage(img, 0, 0);
            const d = g.getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (d[i] !== d[0] || d[i + 1] !== d[1] || d[i + 2] !== d[2]) n++;
            }
            done(n);
        };
        img.onerror = () => done(-1);
        img.src = 'data:image/png;base64,' + arguments[0];
    "#;
    let n = b.client.execute_async(script, vec![data.into()]).await.unwrap();
    n.as_i64().unwrap().try_into().expect("the screenshot decodes")
}

async fn wait_text(b: &Browser, text: &str) -> String {
    for _ in 0..100 {
        let src = b.client.source().await.unwrap();
        if src.contains(text) {
            return src;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{text:?} never showed: {}", b.client.source().await.unwrap());
}

#[test]
fn webmail_in_a_real_browser() {
    let setup = MtaSetup::new();
    setup.add_user(USER, PASS);
    setup.add_user(BOB, BOB_PASS);
    setup.edit("admins = []", &format!("admins = [\"{USER}\"]"));
    let _mta = setup.start();
    wait_port(setup.web, Duration::from_secs(10));
    wait_port(setup.imaps, Duration::from_secs(10));
    deliver_notes(&setup, USER, 3);
    let canary = Canary::start();
    // The canary sees what reaches it: checked once, so silence later means something.
    drop(std::net::TcpStream::connect(canary.addr).unwrap());
    greyd_tests::greyd::eventually("canary hit", Duration::from_secs(5), || canary.hits().len() == 1);
    let corpus = xss_corpus(&canary.addr.to_string());
    for (name, html) in &corpus {
        let msg = format!(
            "From: Mallory <mallory@remote.test>\r\nSubject: xss {name}\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>visible {name}</p>{html}\r\n"
        );
        send_transaction(setup.smtp, "<mallory@remote.test>", &[&format!("<{USER}>")], &msg);
    }
    wait_messages(&setup.maildir(USER), 3 + corpus.len());
    let base = format!("https://{}", setup.web);
    let attachment: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.bin");
    std::fs::write(&file, &attachment).unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let b = Browser::start().await;
        let c = &b.client;
        // Log in.
        c.goto(&format!("{base}/")).await.unwrap();
        assert!(c.current_url().await.unwrap().path().ends_with("/login"));
        c.find(Locator::Css("input[name=user]")).await.unwrap().send_keys(USER).await.unwrap();
        c.find(Locator::Css("input[name=password]")).await.unwrap().send_keys(PASS).await.unwrap();
        c.find(Locator::Css("main button[type=submit]")).await.unwrap().click().await.unwrap();
        wait_text(&b, "<h1>Folders</h1>").await;

        // The message SMTP delivered is listed, and opens.
        c.goto(&format!("{base}/mail?f=INBOX")).await.unwrap();
        c.find(Locator::LinkText("note 1")).await.unwrap().click().await.unwrap();
        let page = wait_text(&b, "Hello number 1.").await;
        assert!(page.contains("Bob &lt;bob@remote.test&gt;"), "{page}");

        // Search through the body.
        c.goto(&format!("{base}/mail?f=INBOX")).await.unwrap();
        c.find(Locator::Css("input[name=q]")).await.unwrap().send_keys("number 2").await.unwrap();
        c.find(Locator::Css("form.search button")).await.unwrap().click().await.unwrap();
        let page = wait_text(&b, "1 messages").await;
        assert!(page.contains(">note 2</a>") && !page.contains(">note 0</a>"), "{page}");

        // Move note 0 to Archive; IMAP sees it there at once.
        c.goto(&format!("{base}/mail?f=INBOX")).await.unwrap();
        c.find(Locator::XPath("//tr[.//a[text()='note 0']]//input[@type='checkbox']"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        c.find(Locator::Css("select[name=action]")).await.unwrap().select_by_value("move").await.unwrap();
        c.find(Locator::Css("select[name=target]")).await.unwrap().select_by_value("Archive").await.unwrap();
        c.find(Locator::Css("button[name=go]")).await.unwrap().click().await.unwrap();
        wait_text(&b, "<h1>INBOX</h1>").await;
        let out = imap(
            &setup,
            USER,
            PASS,
            "c.select('Archive')\ntyp, d = c.search(None, 'ALL')\nprint(len(d[0].split()))\ntyp, d = c.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')\nprint(d[0][1].decode().strip())\n",
        );
        assert_eq!(out, "1\nSubject: note 0\n");

        // Compose to bob with an attachment; bob reads it over IMAP.
        c.goto(&format!("{base}/compose")).await.unwrap();
        c.find(Locator::Css("input[name=to]")).await.unwrap().send_keys(BOB).await.unwrap();
        c.find(Locator::Css("input[name=subject]")).await.unwrap().send_keys("hello bob").await.unwrap();
        c.find(Locator::Css("textarea[name=body]")).await.unwrap().send_keys("Lunch on Friday?").await.unwrap();
        c.find(Locator::Css("input[name=attach]")).await.unwrap().send_keys(&file.display().to_string()).await.unwrap();
        c.find(Locator::Css("button[value=send]")).await.unwrap().click().await.unwrap();
        wait_text(&b, "<h1>Sent</h1>").await;
        wait_messages(&setup.maildir(BOB), 1);
        let out = imap(
            &setup,
            BOB,
            BOB_PASS,
            "c.select('INBOX')\ntyp, d = c.fetch('1', '(BODY.PEEK[])')\nm = email.message_from_bytes(d[0][1])\nprint(m['Subject'], m['From'])\nfor p in m.walk():\n    if p.get_filename(): print(p.get_filename(), p.get_payload(decode=True).hex())\n    elif p.get_content_type() == 'text/plain': print(p.get_payload(decode=True).decode().strip())\n",
        );
        assert_eq!(
            out,
            format!("hello bob {USER}\nLunch on Friday?\nreport.bin {}\n", attachment.iter().map(|b| format!("{b:02x}")).collect::<String>())
        );

        // The Sent copy's attachment downloads back byte for byte.
        c.find(Locator::LinkText("hello bob")).await.unwrap().click().await.unwrap();
        c.find(Locator::LinkText("report.bin")).await.unwrap().click().await.unwrap();
        let downloaded = b.downloads.join("report.bin");
        greyd_tests::greyd::eventually("download", Duration::from_secs(20), || downloaded.exists());
        assert_eq!(std::fs::read(&downloaded).unwrap(), attachment);

        // The XSS corpus: each message renders its marker, runs nothing, requests nothing.
        c.goto(&format!("{base}/mail?f=INBOX")).await.unwrap();
        for (name, _) in &corpus {
            c.goto(&format!("{base}/mail?f=INBOX&q=xss%20{name}")).await.unwrap();
            c.find(Locator::LinkText(&format!("xss {name}"))).await.unwrap().click().await.unwrap();
            let frame = c.wait().for_element(Locator::Css("iframe.body")).await.unwrap();
            frame.enter_frame().await.unwrap();
            let text = c.wait().for_element(Locator::Css("body")).await.unwrap().text().await.unwrap();
            assert!(text.contains(&format!("visible {name}")), "{name}: frame shows {text:?}");
            if let Ok(link) = c.find(Locator::Css("a")).await {
                let _ = link.click().await;
            }
            if let Ok(button) = c.find(Locator::Css("button")).await {
                let _ = button.click().await;
            }
            c.enter_parent_frame().await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_ne!(c.title().await.unwrap(), "XSS", "{name} ran script");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(canary.hits().len(), 1, "the corpus reached the canary: {:?}", canary.hits());

        // The status page, with its charts, in a screenshot that is not blank.
        c.goto(&format!("{base}/admin")).await.unwrap();
        let page = wait_text(&b, "<h1>Status</h1>").await;
        assert!(c.find_all(Locator::Css("svg.chart")).await.unwrap().len() >= 4, "{page}");
        // 3 notes, the corpus and bob's copy were delivered this hour.
        let delivered = format!("Deliveries per hour (max {})", 3 + corpus.len() + 1);
        assert!(page.contains(&delivered), "{page}");
        let queue = c.find(Locator::Id("queue-size")).await.unwrap().text().await.unwrap();
        assert!(queue.parse::<u32>().is_ok(), "{queue}");
        let png = c.screenshot().await.unwrap();
        let shot = std::env::temp_dir().join("mta-web-status.png");
        std::fs::write(&shot, &png).unwrap();
        eprintln!("status page screenshot: {}", shot.display());
        let session = c.get_named_cookie("__Host-mta-session").await.unwrap().value().to_string();
        let painted = painted_pixels(&b, &png).await;
        assert!(painted > 5000, "the status page screenshot is blank ({painted} pixels painted)");

        // Logout: the browser is back at the login page and the session is gone.
        c.goto(&format!("{base}/")).await.unwrap();
        c.find(Locator::Css("header.bar button")).await.unwrap().click().await.unwrap();
        wait_text(&b, "<h1>Log in</h1>").await;
        c.goto(&format!("{base}/mail?f=INBOX")).await.unwrap();
        assert!(c.current_url().await.unwrap().path().ends_with("/login"));
        let (code, _, _) = curl_session(Some(&dir.path().join("jar")),
            &format!("{base}/"),
            &["-H", &format!("Cookie: __Host-mta-session={session}")],
        );
        assert_eq!(code, 303, "the session outlived logout");
        b.quit().await;
    });
}

/// The messages in a Maildir's `new` and `cur`, read now (no waiting).
fn maildir_messages(dir: &std::path::Path) -> Vec<String> {
    ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
        .flatten()
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.unwrap().path()).unwrap()).into_owned())
        .collect()
}

#[test]
fn identities_are_addresses_that_reach_the_user_and_the_only_ones_to_send_from() {
    let setup = MtaSetup::new();
    setup.add_user(USER, PASS);
    setup.add_user(BOB, BOB_PASS);
    setup.write("virtusertable", &format!("sales@example.test {USER}\n"));
    let _mta = setup.start();
    wait_port(setup.web, Duration::from_secs(10));
    let order = "From: Bob <bob@remote.test>\r\nTo: Sales <sales@example.test>\r\nSubject: an order\r\n\r\nTwo boxes, please.\r\n";
    send_transaction(setup.smtp, "<bob@remote.test>", &["<sales@example.test>"], order);
    wait_messages(&setup.maildir(USER), 1);
    let base = format!("https://{}", setup.web);
    let dir = tempfile::tempdir().unwrap();
    let jar = dir.path().join("cookies");
    web_login(&jar, &base, USER, PASS);
    let settings = format!("{base}/settings/identities");

    let (code, _, page) = curl_session(Some(&jar), &settings, &[]);
    assert_eq!(code, 200);
    assert!(page.contains(&format!("<td>{USER}</td>")), "{page}");
    let token = form_token(&page);
    let add = |address: &str, name: &str| {
        let form = format!("action=add&address={address}&name={name}");
        curl_session(Some(&jar), &format!("{settings}?csrf={token}"), &["--data", &form])
    };
    // The virtusertable sends sales@ to alice: hers to send from.
    let (code, headers, page) = add("sales%40example.test", "Sales+Desk");
    assert_eq!(code, 303, "{headers}{page}");
    // Bob's address, and one on another domain, do not reach her.
    for other in ["bob%40example.test", "ceo%40elsewhere.test"] {
        let (code, _, page) = add(other, "Boss");
        assert_eq!(code, 400, "{page}");
        assert!(page.contains("does not reach this account"), "{page}");
    }
    let (_, _, page) = curl_session(Some(&jar), &settings, &[]);
    assert!(page.contains("<td>sales@example.test</td>"), "{page}");
    assert!(!page.contains("bob@example.test"), "{page}");
    // Kept in her Maildir, so it outlives the session.
    let file = std::fs::read_to_string(setup.maildir(USER).join("webmail-identities")).unwrap();
    assert_eq!(file, format!("{USER}\t\nsales@example.test\tSales Desk\n"));
    // Her own subaddresses reach her too.
    let (code, _, page) = add("alice%2Bshop%40example.test", "");
    assert_eq!(code, 303, "{page}");

    // A reply to the mail sent to sales@ is from sales@.
    let (code, _, page) = curl_session(Some(&jar), &format!("{base}/compose?f=INBOX&uid=1&mode=reply"), &[]);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains(
            r#"<option value="sales@example.test" selected>&quot;Sales Desk&quot; &lt;sales@example.test&gt;</option>"#
        ),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"<option value="{USER}">{USER}</option>"#)),
        "{page}"
    );

    let token = form_token(&page);
    let send = |from: &str, subject: &str| {
        let fields = [
            format!("from={from}"),
            format!("to={BOB}"),
            format!("subject={subject}"),
            "body=Shipped today.".to_string(),
            "action=send".to_string(),
        ];
        let mut args = Vec::new();
        for f in &fields {
            args.extend(["--form-string", f.as_str()]);
        }
        curl_session(Some(&jar), &format!("{base}/compose?csrf={token}"), &args)
    };
    let (code, headers, page) = send("sales@example.test", "from sales");
    assert_eq!(code, 303, "{headers}{page}");
    let got = wait_messages(&setup.maildir(BOB), 1);
    let got = String::from_utf8_lossy(&got[0]);
    let has = |m: &str, line: &str| m.lines().any(|l| l.trim_end() == line);
    assert!(has(&got, "From: \"Sales Desk\" <sales@example.test>"), "{got}");
    assert!(has(&got, "Return-Path: <sales@example.test>"), "{got}");
    assert!(has(&got, "Subject: from sales"), "{got}");

    // A From the select never offered is refused, and nothing is sent.
    let (code, _, page) = send("bob@example.test", "forged");
    assert_eq!(code, 400, "{page}");
    assert!(page.contains("is not one of your identities"), "{page}");
    let (code, _, _) = send(USER, "from alice");
    assert_eq!(code, 303);
    wait_messages(&setup.maildir(BOB), 2);
    std::thread::sleep(Duration::from_secs(1));
    let bobs = maildir_messages(&setup.maildir(BOB));
    assert_eq!(bobs.len(), 2);
    assert!(bobs.iter().all(|m| !m.contains("forged")), "{bobs:?}");
    assert!(bobs.iter().any(|m| has(m, &format!("From: {USER}"))), "{bobs:?}");
    let sent = maildir_messages(&setup.maildir(USER).join(".Sent"));
    assert_eq!(sent.len(), 2, "{sent:?}");
}
