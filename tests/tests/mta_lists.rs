//! Mailing lists end to end, with the real daemon and `mtactl list`: mail
//! sent with Python's smtplib, read from the virtual users' Maildirs.
//! Double opt-in by mail, distribution with the list headers, a
//! non-member's post held and approved by the owner's reply, bounce
//! scoring to removal (delivery reports injected to the VERP address),
//! DMARC From-munging decided by a loopback DNS server, digests, the life
//! of a held post (notice, reminder, expiry), private archives and
//! moderation on the web, and a kill -9 in the middle of a distribution.

use greyd_tests::dns::DnsServer;
use greyd_tests::free_port;
use greyd_tests::greyd::eventually;
use greyd_tests::mta::{
    MtaSetup, curl, curl_session, form_token, python, run_ok, send_transaction, wait_messages, web_login,
};
use std::time::Duration;

const LIST: &str = "dev@example.test";
const WEB: &str = "https://lists.example.test";

/// A configured server (not started) with a loopback DNS server, the list
/// dev@example.test owned by carol, and users alice, bob, carol and dave.
fn setup() -> (MtaSetup, DnsServer) {
    let setup = MtaSetup::new();
    let dns = DnsServer::start();
    setup.use_dns(dns.addr, free_port());
    setup.edit("web_url = \"\"", &format!("web_url = \"{WEB}\""));
    for user in ["alice", "bob", "carol", "dave"] {
        setup.add_user(&format!("{user}@example.test"), "pw");
    }
    mtactl(&setup, &["create", LIST, "--owner", "carol@example.test"]);
    (setup, dns)
}

fn mtactl(setup: &MtaSetup, args: &[&str]) -> String {
    run_ok(setup.command("mtactl").arg("list").args(args))
}

fn members(setup: &MtaSetup) -> String {
    mtactl(setup, &["members", LIST])
}

/// Send `message` (headers and body, `\n` lines) with smtplib to port 25.
fn smtplib(setup: &MtaSetup, from: &str, to: &str, message: &str) {
    let script = "import smtplib, sys\n\
        s = smtplib.SMTP('127.0.0.1', int(sys.argv[1]))\n\
        s.sendmail(sys.argv[2], [sys.argv[3]], sys.argv[4].replace('\\n', '\\r\\n').encode())\n\
        s.quit()\n";
    let (ok, _, err) = python(script, &[&setup.smtp.port().to_string(), from, to, message]);
    assert!(ok, "smtplib: {err}");
}

fn text(msg: &[u8]) -> String {
    String::from_utf8_lossy(msg).into_owned()
}

/// The unfolded value of header `name` in a delivered message.
fn header(msg: &[u8], name: &str) -> String {
    let text = text(msg).replace("\n\t", " ").replace("\n ", " ");
    let prefix = format!("{}:", name.to_ascii_lowercase());
    text.lines()
        .take_while(|l| !l.is_empty())
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim().to_string())
        .unwrap_or_else(|| panic!("no {name} in {}", text))
}

fn maildir(setup: &MtaSetup, user: &str) -> std::path::PathBuf {
    setup.maildir(&format!("{user}@example.test"))
}

#[test]
fn subscribe_by_mail_confirm_by_reply_then_posts_reach_every_member_with_the_list_headers() {
    let (setup, _dns) = setup();
    let _mta = setup.start();
    smtplib(
        &setup,
        "bob@example.test",
        "dev-join@example.test",
        "From: Bob <bob@example.test>\nSubject: join\n\nplease\n",
    );
    let confirmation = wait_messages(&maildir(&setup, "bob"), 1).remove(0);
    let subject = header(&confirmation, "Subject");
    let token = subject.strip_prefix("confirm ").expect(&subject).to_string();
    assert_eq!(
        header(&confirmation, "Reply-To"),
        format!("<dev-confirm+{token}@example.test>")
    );
    assert!(text(&confirmation).contains(&format!("{WEB}/lists/dev%40example.test/confirm?token={token}")));
    assert_eq!(members(&setup), "", "not a member before confirming");

    smtplib(
        &setup,
        "bob@example.test",
        &format!("dev-confirm+{token}@example.test"),
        &format!("From: bob@example.test\nSubject: Re: {subject}\n\n> quoted\n"),
    );
    let welcome = wait_messages(&maildir(&setup, "bob"), 2).remove(1);
    assert_eq!(header(&welcome, "Subject"), "Welcome to dev@example.test");
    assert_eq!(members(&setup), "bob@example.test\n");

    mtactl(&setup, &["add", LIST, "alice@example.test"]);
    smtplib(
        &setup,
        "alice@example.test",
        LIST,
        "From: Alice <alice@example.test>\nTo: dev@example.test\nSubject: hello list\n\nfirst post\n",
    );
    let to_alice = wait_messages(&maildir(&setup, "alice"), 1).remove(0);
    let to_bob = wait_messages(&maildir(&setup, "bob"), 3).remove(2);
    assert!(text(&to_alice).contains("first post"));
    assert!(
        text(&to_bob).starts_with("Return-Path: <dev-bounces+bob=example.test@example.test>\n"),
        "{}",
        text(&to_bob)
    );
    let bob_token = {
        let u = header(&to_bob, "List-Unsubscribe");
        u.split("token=")
            .nth(1)
            .and_then(|t| t.split('>').next())
            .expect(&u)
            .to_string()
    };
    for (name, want) in [
        ("List-Id", "<dev.example.test>".to_string()),
        ("List-Post", "<mailto:dev@example.test>".into()),
        ("List-Help", "<mailto:dev-request@example.test?subject=help>".into()),
        (
            "List-Subscribe",
            format!("<{WEB}/lists/dev%40example.test>, <mailto:dev-join@example.test>"),
        ),
        (
            "List-Unsubscribe",
            format!(
                "<{WEB}/lists/dev%40example.test/unsubscribe?member=bob%40example.test&token={bob_token}>, <mailto:dev-leave@example.test>"
            ),
        ),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".into()),
        ("List-Archive", format!("<{WEB}/lists/dev%40example.test/archive>")),
        ("List-Owner", "<mailto:dev-owner@example.test>".into()),
        ("Precedence", "list".into()),
        ("X-BeenThere", LIST.into()),
        ("From", "Alice <alice@example.test>".into()),
        ("Subject", "hello list".into()),
    ] {
        assert_eq!(header(&to_bob, name), want, "{name}");
    }
    assert_ne!(
        header(&to_alice, "List-Unsubscribe"),
        header(&to_bob, "List-Unsubscribe"),
        "each member has their own one-click link"
    );
    let archive = std::fs::read_to_string(setup.root().join("lists/dev@example.test/archive.mbox")).unwrap();
    assert!(
        archive.starts_with("From alice@example.test ") && archive.contains("first post"),
        "{archive}"
    );

    // A copy that comes back to the list is dropped, not sent again.
    let looped = format!("From: Bob <bob@example.test>\nX-BeenThere: {LIST}\nSubject: again\n\nloop\n");
    smtplib(&setup, "bob@example.test", LIST, &looped);
    std::thread::sleep(Duration::from_secs(2));
    wait_messages(&maildir(&setup, "alice"), 1);
}

#[test]
fn a_non_members_post_is_held_until_the_owner_approves_it_by_reply() {
    let (setup, _dns) = setup();
    mtactl(&setup, &["add", LIST, "alice@example.test"]);
    mtactl(&setup, &["set", LIST, "subject_prefix", "[dev]"]);
    mtactl(&setup, &["set", LIST, "footer", "The dev list"]);
    let _mta = setup.start();
    smtplib(
        &setup,
        "dave@example.test",
        LIST,
        "From: dave@example.test\nSubject: from outside\n\nlet me in\n",
    );
    let notice = wait_messages(&maildir(&setup, "carol"), 1).remove(0);
    assert_eq!(
        header(&notice, "Subject"),
        "dev@example.test: post from dave@example.test held for approval"
    );
    assert!(
        text(&notice).contains("dave@example.test is not a member"),
        "{}",
        text(&notice)
    );
    assert!(mtactl(&setup, &["show", LIST]).contains("held posts: 1"));
    let approve = header(&notice, "Reply-To");
    let approve = approve.trim_matches(['<', '>']);
    assert!(approve.starts_with("dev-confirm+"), "{approve}");
    wait_messages(&maildir(&setup, "alice"), 0);

    smtplib(
        &setup,
        "carol@example.test",
        approve,
        "From: carol@example.test\nSubject: Re: held\n\nok\n",
    );
    let post = wait_messages(&maildir(&setup, "alice"), 1).remove(0);
    assert_eq!(header(&post, "Subject"), "[dev] from outside");
    assert!(
        text(&post).contains("let me in\n-- \nThe dev list\n"),
        "{}",
        text(&post)
    );
    assert!(mtactl(&setup, &["show", LIST]).contains("held posts: 0"));

    // A moderated list holds members' posts too; the owner discards this one.
    mtactl(&setup, &["set", LIST, "moderated", "true"]);
    smtplib(
        &setup,
        "alice@example.test",
        LIST,
        "From: alice@example.test\nSubject: mine\n\nmember post\n",
    );
    let notice = wait_messages(&maildir(&setup, "carol"), 2).remove(1);
    assert!(text(&notice).contains("the list is moderated"));
    let token = header(&notice, "Reply-To")
        .split('+')
        .nth(1)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    smtplib(
        &setup,
        "carol@example.test",
        "dev-request@example.test",
        &format!("From: carol@example.test\nSubject: commands\n\ndiscard {token}\n"),
    );
    let results = wait_messages(&maildir(&setup, "carol"), 3).remove(2);
    assert!(
        text(&results).contains("the post from alice@example.test was discarded"),
        "{}",
        text(&results)
    );
    // alice has the post she was sent and the notice that hers is held, no more.
    let held = wait_messages(&maildir(&setup, "alice"), 2).remove(1);
    assert_eq!(
        header(&held, "Subject"),
        "Your post to dev@example.test awaits approval"
    );
}

/// An RFC 3464 report of `status` for `member`, as a remote server's bounce.
fn report(member: &str, status: &str) -> String {
    format!(
        "From: MAILER-DAEMON@remote.test\r\nTo: dev-bounces@example.test\r\nSubject: failure\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n\
         --r\r\nContent-Type: text/plain\r\n\r\nundeliverable\r\n\
         --r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; remote.test\r\n\r\n\
         Final-Recipient: rfc822; {member}\r\nAction: failed\r\nStatus: {status}\r\n\r\n--r--\r\n"
    )
}

#[test]
fn bounces_score_disable_warn_three_times_then_remove_the_member() {
    let (setup, _dns) = setup();
    mtactl(&setup, &["add", LIST, "bob@example.test"]);
    mtactl(&setup, &["add", LIST, "alice@example.test"]);
    // Warnings come every interval; none here, so each bounce takes the next step.
    mtactl(&setup, &["set", LIST, "bounce_warning_interval", "0"]);
    let mta = setup.start();
    let bounce = |status: &str| {
        send_transaction(
            setup.smtp,
            "<>",
            &["<dev-bounces+bob=example.test@example.test>"],
            &report("bob@example.test", status),
        );
    };
    let score_is = |want: f64| {
        eventually(&format!("bounce score {want}"), Duration::from_secs(15), || {
            let json = mtactl(&setup, &["members", LIST, "--json"]);
            let v: serde_json::Value = serde_json::from_str(&json).unwrap();
            let bob = v
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["address"] == "bob@example.test");
            bob.is_some_and(|m| m["bounce"]["score"].as_f64() == Some(want))
        });
    };
    for _ in 0..4 {
        bounce("5.1.1");
    }
    bounce("5.7.1");
    score_is(4.0);
    assert!(members(&setup).contains("bob@example.test\n"), "still enabled at 4");
    bounce("4.2.2");
    score_is(4.5);
    bounce("4.2.2");
    let first = wait_messages(&maildir(&setup, "bob"), 1).remove(0);
    assert_eq!(
        header(&first, "Subject"),
        "Your membership of dev@example.test is disabled"
    );
    assert!(text(&first).contains("warning 1 of 3"), "{}", text(&first));
    assert!(
        members(&setup).contains("bob@example.test (disabled, bounce score 5)"),
        "{}",
        members(&setup)
    );

    // Disabled: posts no longer go to bob.
    smtplib(
        &setup,
        "alice@example.test",
        LIST,
        "From: alice@example.test\nSubject: while disabled\n\nx\n",
    );
    wait_messages(&maildir(&setup, "alice"), 1);

    bounce("5.1.1");
    let second = wait_messages(&maildir(&setup, "bob"), 2).remove(1);
    assert!(text(&second).contains("warning 2 of 3"), "{}", text(&second));
    bounce("5.1.1");
    let third = wait_messages(&maildir(&setup, "bob"), 3).remove(2);
    assert!(text(&third).contains("warning 3 of 3"), "{}", text(&third));
    bounce("5.1.1");
    let removed = wait_messages(&maildir(&setup, "bob"), 4).remove(3);
    assert_eq!(
        header(&removed, "Subject"),
        "bob@example.test removed from dev@example.test"
    );
    assert_eq!(members(&setup), "alice@example.test\n");
    wait_messages(&maildir(&setup, "carol"), 1);
    assert!(mta.log().contains("<bob@example.test> removed after bounce warnings"));
}

#[test]
fn posts_from_domains_with_strict_dmarc_go_out_from_the_list() {
    let (setup, dns) = setup();
    dns.txt("_dmarc.strict.test", "v=DMARC1; p=reject");
    dns.txt("_dmarc.quarantined.test", "v=DMARC1; p=quarantine; pct=100");
    dns.txt("_dmarc.relaxed.test", "v=DMARC1; p=none");
    for member in [
        "bob@example.test",
        "pat@strict.test",
        "quinn@mail.quarantined.test",
        "ron@relaxed.test",
    ] {
        mtactl(&setup, &["add", LIST, member]);
    }
    let _mta = setup.start();
    smtplib(
        &setup,
        "pat@strict.test",
        LIST,
        "From: Pat <pat@strict.test>\nSubject: strict\n\none\n",
    );
    let munged = wait_messages(&maildir(&setup, "bob"), 1).remove(0);
    assert_eq!(header(&munged, "From"), "\"Pat via Dev\" <dev@example.test>");
    assert_eq!(header(&munged, "Reply-To"), "<pat@strict.test>");
    // The organisational domain's policy covers its subdomains.
    smtplib(
        &setup,
        "quinn@mail.quarantined.test",
        LIST,
        "From: quinn@mail.quarantined.test\nSubject: sub\n\ntwo\n",
    );
    let munged = wait_messages(&maildir(&setup, "bob"), 2).remove(1);
    assert_eq!(header(&munged, "From"), "\"quinn via Dev\" <dev@example.test>");
    smtplib(
        &setup,
        "ron@relaxed.test",
        LIST,
        "From: Ron <ron@relaxed.test>\nSubject: relaxed\n\nthree\n",
    );
    let kept = wait_messages(&maildir(&setup, "bob"), 3).remove(2);
    assert_eq!(header(&kept, "From"), "Ron <ron@relaxed.test>");
}

#[test]
fn one_click_unsubscribe_web_subscription_and_archive_pages_over_https() {
    let (setup, _dns) = setup();
    mtactl(&setup, &["add", LIST, "alice@example.test"]);
    mtactl(&setup, &["add", LIST, "bob@example.test"]);
    let _mta = setup.start();
    greyd_tests::wait_port(setup.web, Duration::from_secs(10));
    let base = format!("https://{}", setup.web);
    smtplib(
        &setup,
        "alice@example.test",
        LIST,
        "From: alice@example.test\nSubject: <b>bold</b> & co\nDate: Sun, 1 Feb 2026 10:00:00 +0000\n\n<script>alert(1)</script> findme\n",
    );
    let copy = wait_messages(&maildir(&setup, "bob"), 1).remove(0);
    let unsubscribe = header(&copy, "List-Unsubscribe");
    let link = unsubscribe.split(['<', '>']).nth(1).unwrap().replace(WEB, &base);

    // GET only shows the page (link scanners must not unsubscribe anyone).
    let (code, page) = curl(&link, &[]);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains("Remove bob@example.test from dev@example.test?"),
        "{page}"
    );
    assert!(members(&setup).contains("bob@example.test"));
    let (code, _) = curl(
        &link.replace("token=", "token=0"),
        &["--data", "List-Unsubscribe=One-Click"],
    );
    assert_eq!(code, 403, "a wrong token removes nobody");
    let (code, page) = curl(&link, &["--data", "List-Unsubscribe=One-Click"]);
    assert_eq!(code, 200, "{page}");
    assert_eq!(members(&setup), "alice@example.test\n");

    let list_page = format!("{base}/lists/dev%40example.test");
    let (code, page) = curl(&format!("{list_page}/archive"), &[]);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.contains(r#"href="/lists/dev%40example.test/archive/2026-02""#),
        "{page}"
    );
    let (_, month) = curl(&format!("{list_page}/archive/2026-02"), &[]);
    assert!(
        month.contains("&lt;b&gt;bold&lt;/b&gt; &amp; co") && !month.contains("<b>bold"),
        "{month}"
    );
    let (_, post) = curl(&format!("{list_page}/archive/msg/0"), &[]);
    assert!(post.contains("&lt;script&gt;alert(1)&lt;/script&gt; findme"), "{post}");
    assert!(!post.contains("<script>"), "{post}");
    let (_, found) = curl(&format!("{list_page}/archive?q=FINDME"), &[]);
    assert!(
        found.contains(r#"href="/lists/dev%40example.test/archive/msg/0""#),
        "{found}"
    );
    let (code, mbox) = curl(&format!("{list_page}/archive.mbox"), &[]);
    assert_eq!(code, 200);
    assert!(
        mbox.starts_with("From alice@example.test ") && mbox.contains("<script>alert(1)</script> findme"),
        "{mbox}"
    );

    // Subscribing on the web: the form, the mail, the confirm page, its POST.
    let (_, info) = curl(&list_page, &[]);
    assert!(
        info.contains(r#"action="/lists/dev%40example.test/subscribe""#),
        "{info}"
    );
    let (code, page) = curl(
        &format!("{list_page}/subscribe"),
        &["--data", "address=dave@example.test"],
    );
    assert_eq!(code, 200, "{page}");
    let confirmation = wait_messages(&maildir(&setup, "dave"), 1).remove(0);
    let token = header(&confirmation, "Subject")
        .strip_prefix("confirm ")
        .unwrap()
        .to_string();
    let confirm = format!("{list_page}/confirm?token={token}");
    let (_, page) = curl(&confirm, &[]);
    assert!(
        page.contains("Subscribe dave@example.test to dev@example.test?"),
        "{page}"
    );
    assert!(!members(&setup).contains("dave"), "GET confirms nothing");
    let (code, page) = curl(&confirm, &["-X", "POST"]);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("subscribe dave@example.test: done"), "{page}");
    assert!(members(&setup).contains("dave@example.test"));
}

/// The messages in `user`'s Maildir whose Subject contains `needle`, once
/// there are `n` of them (within `timeout`).
fn wait_subject(setup: &MtaSetup, user: &str, needle: &str, n: usize, timeout: Duration) -> Vec<Vec<u8>> {
    let dir = maildir(setup, user).join("new");
    let matching = || -> Vec<Vec<u8>> {
        std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| std::fs::read(e.ok()?.path()).ok()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter(|m| header(m, "Subject").contains(needle))
            .collect()
    };
    eventually(&format!("{n} messages {needle:?} for {user}"), timeout, || {
        matching().len() >= n
    });
    matching()
}

#[test]
fn digest_members_get_one_multipart_digest_of_the_posts_instead_of_each_post() {
    let (setup, _dns) = setup();
    setup.edit("digest_interval = \"1d\"", "digest_interval = \"4s\"");
    mtactl(&setup, &["set", LIST, "digest", "on"]);
    mtactl(
        &setup,
        &[
            "add",
            LIST,
            "alice@example.test",
            "bob@example.test",
            "dave@example.test",
        ],
    );
    mtactl(&setup, &["digest", LIST, "bob@example.test", "on"]);
    let mta = setup.start();
    // dave asks for the digest by mail.
    smtplib(
        &setup,
        "dave@example.test",
        "dev-request@example.test",
        "From: dave@example.test\nSubject: set digest on\n\n",
    );
    let reply = wait_messages(&maildir(&setup, "dave"), 1).remove(0);
    assert!(
        text(&reply).contains("set digest on: done for dave@example.test"),
        "{}",
        text(&reply)
    );
    assert_eq!(
        members(&setup),
        "alice@example.test\nbob@example.test (digest)\ndave@example.test (digest)\n"
    );
    for subject in ["first of the day", "second of the day"] {
        smtplib(
            &setup,
            "alice@example.test",
            LIST,
            &format!("From: alice@example.test\nSubject: {subject}\n\nbody of {subject}\n"),
        );
    }
    wait_messages(&maildir(&setup, "alice"), 2);
    let digest = wait_messages(&maildir(&setup, "bob"), 1).remove(0);
    assert!(
        text(&digest).starts_with("Return-Path: <dev-bounces+bob=example.test@example.test>\n"),
        "{}",
        text(&digest)
    );
    assert_eq!(header(&digest, "List-Id"), "<dev.example.test>");
    let parsed = mail_parser::MessageParser::new()
        .parse(&digest)
        .expect("the digest parses");
    assert_eq!(parsed.subject(), Some("Dev Digest, Issue 1"));
    use mail_parser::MimeHeaders;
    let digest_part = parsed
        .parts
        .iter()
        .find(|p| {
            p.content_type()
                .is_some_and(|c| c.ctype() == "multipart" && c.subtype() == Some("digest"))
        })
        .expect("a multipart/digest part");
    let mail_parser::PartType::Multipart(ids) = &digest_part.body else {
        panic!("multipart/digest without parts")
    };
    let posts: Vec<(String, String)> = ids
        .iter()
        .map(|&i| match &parsed.parts[i as usize].body {
            mail_parser::PartType::Message(m) => (
                m.subject().unwrap_or("").to_string(),
                m.body_text(0).unwrap_or_default().trim().to_string(),
            ),
            other => panic!("a digest part that is no message: {other:?}"),
        })
        .collect();
    assert_eq!(
        posts,
        [
            ("first of the day".to_string(), "body of first of the day".to_string()),
            ("second of the day".into(), "body of second of the day".into())
        ]
    );
    assert!(text(&digest).contains("1. first of the day (alice@example.test)"));
    wait_messages(&maildir(&setup, "dave"), 2);
    // The posts went with that digest: the next interval sends none.
    std::thread::sleep(Duration::from_secs(6));
    wait_messages(&maildir(&setup, "bob"), 1);
    assert!(mta.log().contains("digest issue 1 with 2 posts sent to 2 members"));
    assert!(!mta.log().contains("digest issue 2"));
}

#[test]
fn a_held_post_is_announced_to_its_poster_reminded_to_the_owners_and_expires() {
    let (setup, _dns) = setup();
    // The periodic list work runs every data timeout (at most a minute).
    setup.edit("data_timeout = \"10m\"", "data_timeout = \"1s\"");
    mtactl(&setup, &["set", LIST, "held_lifetime", "8s"]);
    mtactl(&setup, &["set", LIST, "held_reminder_interval", "3s"]);
    mtactl(&setup, &["add", LIST, "alice@example.test"]);
    let _mta = setup.start();
    smtplib(
        &setup,
        "dave@example.test",
        LIST,
        "From: dave@example.test\nSubject: may I\n\nlet me in\n",
    );
    let notice = wait_messages(&maildir(&setup, "dave"), 1).remove(0);
    assert_eq!(
        header(&notice, "Subject"),
        "Your post to dev@example.test awaits approval"
    );
    let notice = text(&notice);
    assert!(
        notice.contains("Subject: may I\n") && notice.contains("dave@example.test is not a member"),
        "{notice}"
    );
    assert!(notice.contains("approved within 8 seconds"), "{notice}");
    wait_subject(&setup, "carol", "held for approval", 1, Duration::from_secs(10));
    let reminder = wait_subject(
        &setup,
        "carol",
        "1 posts wait for a moderator",
        1,
        Duration::from_secs(10),
    )
    .remove(0);
    assert!(text(&reminder).contains("Subject: may I"), "{}", text(&reminder));
    let expired = wait_subject(&setup, "carol", "1 held posts expired", 1, Duration::from_secs(15)).remove(0);
    let expired = text(&expired);
    assert!(
        expired.contains("From:    dave@example.test") && expired.contains("Subject: may I"),
        "{expired}"
    );
    assert!(mtactl(&setup, &["show", LIST]).contains("held posts: 0"));
    let held = std::fs::read_dir(setup.root().join("lists/dev@example.test/held")).unwrap();
    assert_eq!(held.count(), 0, "the held copy is gone");
    wait_messages(&maildir(&setup, "alice"), 0);
}

#[test]
fn a_private_archive_needs_a_members_login_and_the_owner_moderates_on_the_web() {
    let (setup, _dns) = setup();
    mtactl(&setup, &["set", LIST, "archive", "private"]);
    mtactl(&setup, &["add", LIST, "alice@example.test"]);
    let _mta = setup.start();
    greyd_tests::wait_port(setup.web, Duration::from_secs(10));
    let base = format!("https://{}", setup.web);
    let list_page = format!("{base}/lists/dev%40example.test");
    smtplib(
        &setup,
        "alice@example.test",
        LIST,
        "From: alice@example.test\nSubject: members only\nDate: Sun, 1 Feb 2026 10:00:00 +0000\n\nsecret words\n",
    );
    wait_messages(&maildir(&setup, "alice"), 1);

    let (code, headers, _) = curl_session(None, &format!("{list_page}/archive/msg/0"), &[]);
    assert_eq!(code, 303, "anonymous readers are sent to log in: {headers}");
    assert!(headers.to_ascii_lowercase().contains("location: /login"), "{headers}");
    let (code, mbox) = curl(&format!("{list_page}/archive.mbox"), &[]);
    assert!(code == 303 && !mbox.contains("secret words"), "{code} {mbox}");

    let dir = tempfile::tempdir().unwrap();
    let (bob, alice, carol) = (
        dir.path().join("bob"),
        dir.path().join("alice"),
        dir.path().join("carol"),
    );
    web_login(&bob, &base, "bob@example.test", "pw");
    let (code, _, page) = curl_session(Some(&bob), &format!("{list_page}/archive/msg/0"), &[]);
    assert_eq!(code, 403, "a user who is no member: {page}");
    assert!(
        page.contains("The archive is for members only") && !page.contains("secret words"),
        "{page}"
    );
    web_login(&alice, &base, "alice@example.test", "pw");
    let (code, _, page) = curl_session(Some(&alice), &format!("{list_page}/archive/msg/0"), &[]);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("members only") && page.contains("secret words"), "{page}");

    // Two posts from a non-member wait; the owner approves one and discards the other.
    for subject in ["please approve", "please discard"] {
        smtplib(
            &setup,
            "dave@example.test",
            LIST,
            &format!("From: dave@example.test\nSubject: {subject}\n\n{subject}\n"),
        );
    }
    wait_subject(&setup, "carol", "held for approval", 2, Duration::from_secs(10));
    let (code, _, _) = curl_session(Some(&bob), &format!("{list_page}/moderate"), &[]);
    assert_eq!(code, 403, "only owners moderate");
    web_login(&carol, &base, "carol@example.test", "pw");
    let (code, _, page) = curl_session(Some(&carol), &format!("{list_page}/moderate"), &[]);
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("Held posts (2)"), "{page}");
    let held = std::fs::read_to_string(setup.root().join("lists/dev@example.test/list.json")).unwrap();
    let held: serde_json::Value = serde_json::from_str(&held).unwrap();
    let tokens: Vec<String> = held["pending"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["token"].as_str().unwrap().to_string())
        .collect();
    let (approve, discard) = (&tokens[0], &tokens[1]);
    let csrf = form_token(&page);
    let moderate = format!("{list_page}/moderate");

    let (code, _, _) = curl_session(
        Some(&carol),
        &moderate,
        &["--data", &format!("token={approve}&decision=approve")],
    );
    assert_eq!(code, 403, "a POST without the form's token does nothing");
    let (code, _, _) = curl_session(
        Some(&carol),
        &format!("{moderate}?csrf={csrf}"),
        &["--data", &format!("token={approve}&decision=approve")],
    );
    assert_eq!(code, 303);
    let post = wait_messages(&maildir(&setup, "alice"), 2).remove(1);
    assert_eq!(header(&post, "Subject"), "please approve");
    let (code, _, _) = curl_session(
        Some(&carol),
        &format!("{moderate}?csrf={csrf}"),
        &["--data", &format!("token={discard}&decision=discard")],
    );
    assert_eq!(code, 303);
    let (_, _, page) = curl_session(Some(&carol), &moderate, &[]);
    assert!(page.contains("Held posts (0)"), "{page}");
    std::thread::sleep(Duration::from_secs(2));
    wait_messages(&maildir(&setup, "alice"), 2);
}

/// The recipients of the list copies in the queue (envelope sender
/// `dev-bounces+...`), one entry per queued copy.
fn queued_copies(setup: &MtaSetup) -> Vec<String> {
    let mut to = Vec::new();
    for entry in std::fs::read_dir(setup.root().join("queue")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "env") {
            continue;
        }
        let env: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        if env["sender"].as_str().is_some_and(|s| s.starts_with("dev-bounces+")) {
            to.extend(
                env["recipients"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["address"].as_str().unwrap().to_string()),
            );
        }
    }
    to
}

#[test]
fn a_kill_9_in_the_middle_of_a_distribution_loses_no_member_and_doubles_at_most_one() {
    // No DNS: the copies to remote.test stay in the queue to be counted.
    let setup = MtaSetup::new();
    setup.add_user("alice@example.test", "pw");
    mtactl(&setup, &["create", LIST, "--owner", "alice@example.test"]);
    const MEMBERS: usize = 3000;
    let members: Vec<String> = (0..MEMBERS).map(|i| format!("m{i}@remote.test")).collect();
    let mut args = vec!["add", LIST];
    args.extend(members.iter().map(String::as_str));
    mtactl(&setup, &args);
    let journals = setup.root().join("lists/dev@example.test/distributing");
    let journal_lines = || -> usize {
        std::fs::read_dir(&journals)
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .map(|t| t.lines().count())
                    .sum()
            })
            .unwrap_or(0)
    };
    let mut mta = setup.start();
    smtplib(
        &setup,
        "m0@remote.test",
        LIST,
        "From: m0@remote.test\nSubject: to everyone\n\nonce each\n",
    );
    eventually("a distribution under way", Duration::from_secs(30), || {
        journal_lines() >= 200
    });
    mta.kill9();
    let done_before = journal_lines();
    eprintln!("killed after {done_before} of {MEMBERS} copies");
    assert!(
        done_before < MEMBERS,
        "the kill came after the distribution ({done_before} copies): no crash was tested"
    );

    let mta = setup.start();
    mta.wait_log("relay=list, status=sent", Duration::from_secs(120));
    let copies = queued_copies(&setup);
    let mut counts = std::collections::HashMap::new();
    for to in &copies {
        *counts.entry(to.as_str()).or_insert(0) += 1;
    }
    let missing: Vec<&String> = members.iter().filter(|m| !counts.contains_key(m.as_str())).collect();
    assert!(missing.is_empty(), "members without a copy: {missing:?}");
    let twice: Vec<(&&str, &i32)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        copies.len() <= MEMBERS + 1 && twice.iter().all(|(_, n)| **n == 2),
        "{} copies for {MEMBERS} members (killed after {done_before}); more than one: {twice:?}",
        copies.len()
    );
    let archive = std::fs::read_to_string(setup.root().join("lists/dev@example.test/archive.mbox")).unwrap();
    assert_eq!(archive.matches("once each").count(), 1, "archived once");
}
