//! Whole scripts, compiled and run over messages.

use super::*;
use proptest::prelude::*;

/// The clock of every run: Fri, 15 Jan 2027 08:00:00 UTC.
const NOW: i64 = 1_800_000_000;

const MAIL: &[u8] = b"From: \"Ann\" <ann+news@lists.example>\r\n\
To: bob@example.org, carol@example.org\r\n\
Subject: [rust] weekly\r\n\
List-Id: Rust users <rust.lists.example>\r\n\
X-Spam-Score: 7\r\n\
\r\n\
body\r\n";

fn outcome(src: &str) -> Outcome {
    outcome_on(src, MAIL)
}

fn outcome_on(src: &str, mail: &[u8]) -> Outcome {
    let script = parse(src.as_bytes()).unwrap_or_else(|e| panic!("{src}: {e}"));
    let exists = |m: &str| m == "Existing";
    run(
        &script,
        &Input {
            content: mail,
            sender: Some("ann+news@lists.example"),
            recipient: "bob+rust@example.org",
            mailbox_exists: &exists,
            now: NOW,
            scores: &Default::default(),
            seen: &|_| false,
            include: &|_, _| Ok(None),
        },
    )
}

fn actions(src: &str) -> Vec<Action> {
    let o = outcome(src);
    assert_eq!(o.error, None, "{src}");
    o.actions
}

fn keep(flags: &[&str]) -> Action {
    Action::Keep {
        flags: flags.iter().map(|s| s.to_string()).collect(),
    }
}

fn into(mailbox: &str, create: bool, flags: &[&str]) -> Action {
    Action::FileInto {
        mailbox: mailbox.into(),
        create,
        flags: flags.iter().map(|s| s.to_string()).collect(),
    }
}

#[test]
fn empty_script_keeps() {
    assert_eq!(actions(""), vec![keep(&[])]);
    assert_eq!(actions("# nothing\n"), vec![keep(&[])]);
}

#[test]
fn fileinto_by_header_with_elsif_chain() {
    let src = r#"require ["fileinto", "mailbox"];
if header :contains "subject" "[perl]" { fileinto "Perl"; }
elsif header :matches "List-Id" "*<rust.*>" { fileinto :create "Lists/Rust"; }
else { discard; }"#;
    assert_eq!(actions(src), vec![into("Lists/Rust", true, &[])]);
}

#[test]
fn address_envelope_and_subaddress() {
    let src = r#"require ["envelope", "subaddress", "fileinto"];
if allof (address :domain "from" "lists.example",
          address :detail "from" "news",
          envelope :detail "to" "rust",
          envelope :user "to" "bob",
          not envelope :is "from" "") { fileinto "A"; }"#;
    assert_eq!(actions(src), vec![into("A", false, &[])]);
    assert_eq!(
        actions("require \"fileinto\"; if address :all :is \"to\" \"carol@example.org\" { fileinto \"B\"; }"),
        vec![into("B", false, &[])]
    );
}

#[test]
fn copy_keeps_the_implicit_keep() {
    let src = r#"require ["copy", "fileinto"]; fileinto :copy "Archive"; redirect :copy "x@y.example";"#;
    assert_eq!(
        actions(src),
        vec![
            into("Archive", false, &[]),
            Action::Redirect {
                address: "x@y.example".into()
            },
            keep(&[])
        ]
    );
    assert_eq!(
        actions("redirect \"x@y.example\";"),
        vec![Action::Redirect {
            address: "x@y.example".into()
        }]
    );
}

#[test]
fn imap4flags_follow_the_message() {
    let src = r#"require ["imap4flags", "fileinto"];
addflag "\\Flagged";
addflag ["$Work", "\\flagged"];
if hasflag :contains "work" { fileinto :flags "\\Seen" "Seen"; }
removeflag "$Work";
keep;
"#;
    assert_eq!(
        actions(src),
        vec![into("Seen", false, &["\\Seen"]), keep(&["\\Flagged"])]
    );
    assert_eq!(
        actions("require \"imap4flags\"; setflag \"\\\\Seen $a\"; addflag \"$b\";"),
        vec![keep(&["\\Seen", "$a", "$b"])]
    );
}

#[test]
fn variables_and_match_captures() {
    let src = r#"require ["variables", "fileinto"];
if header :matches "List-Id" "*<*.lists.example>" { set :upperfirst "list" "${2}"; }
set "n" "${list}-x";
fileinto "L/${n}";
if string :is "${unknown}" "" { fileinto "Empty"; }"#;
    assert_eq!(
        actions(src),
        vec![into("L/Rust-x", false, &[]), into("Empty", false, &[])]
    );
}

#[test]
fn relational_numeric() {
    let src = r#"require ["relational", "comparator-i;ascii-numeric", "fileinto", "imap4flags"];
if header :value "ge" :comparator "i;ascii-numeric" "x-spam-score" "5" { fileinto "Junk"; }
if address :count "eq" :comparator "i;ascii-numeric" "to" "2" { addflag "x"; }"#;
    assert_eq!(actions(src), vec![into("Junk", false, &[])]);
    let src = src.replace("fileinto \"Junk\";", "");
    assert_eq!(actions(&src), vec![keep(&["x"])]);
    assert_eq!(actions(&src.replace("\"eq\"", "\"ne\"")), vec![keep(&[])]);
}

#[test]
fn reject_size_and_exists() {
    assert_eq!(
        actions("require \"reject\"; if size :over 10 { reject \"too big\"; }"),
        vec![Action::Reject {
            reason: "too big".into()
        }]
    );
    assert_eq!(
        actions("require \"ereject\"; if exists [\"x-nope\"] { ereject \"x\"; }"),
        vec![keep(&[])]
    );
    assert_eq!(
        actions(
            "require [\"mailbox\",\"fileinto\"]; if mailboxexists \"Existing\" { fileinto \"Existing\"; stop; } keep;"
        ),
        vec![into("Existing", false, &[])]
    );
}

#[test]
fn compile_errors_name_the_line() {
    for (src, line, what) in [
        ("keep;\nfileinto \"x\";", 2, "require \"fileinto\""),
        ("require \"vacationx\";", 1, "unsupported"),
        ("keep;\nrequire \"fileinto\";", 2, "before"),
        (
            "if true {\n keep;\n}\n\nelse { stop; }\nelse { stop; }",
            6,
            "without if",
        ),
        ("\n\nfrobnicate;", 3, "unknown command"),
        ("if header :is \"a\" {\n}", 1, "missing keys"),
        ("if size 10 { keep; }", 1, ":over or :under"),
        (
            "require \"fileinto\";\nfileinto :create \"x\";",
            2,
            "require \"mailbox\"",
        ),
        ("keep :flags \"a\";", 1, "imap4flags"),
        ("if header :is :contains \"a\" \"b\" { }", 1, "more than one match type"),
    ] {
        let e = parse(src.as_bytes()).unwrap_err();
        assert_eq!(e.line, line, "{src}: {e}");
        assert!(e.message.contains(what), "{src}: {e}");
    }
    assert!(
        parse(&vec![b' '; MAX_SCRIPT + 1])
            .unwrap_err()
            .message
            .contains("limit")
    );
}

#[test]
fn limits_fall_back_to_keep_with_a_reason() {
    let many: String = (0..40).map(|i| format!("fileinto \"f{i}\";\n")).collect();
    let o = outcome(&format!("require \"fileinto\";\n{many}"));
    assert_eq!(o.actions, vec![keep(&[])]);
    let e = o.error.unwrap();
    assert_eq!(e.line, 34);
    assert!(e.message.contains("32 actions"), "{e}");

    let redirects: String = (0..5).map(|i| format!("redirect \"r{i}@x.example\";\n")).collect();
    let o = outcome(&redirects);
    assert_eq!(o.actions, vec![keep(&[])]);
    assert!(o.error.unwrap().message.contains("4 redirects"));

    // Doubling a variable would grow without end; the steps run out first
    // or the value is cut, and the message is kept.
    let grow = "require \"variables\";\nset \"a\" \"xxxxxxxxxxxxxxxx\";\n".to_string()
        + &"set \"a\" \"${a}${a}\";\n".repeat(3000)
        + "if string :contains \"${a}\" \"y\" { discard; }";
    let o = outcome(&grow);
    assert_eq!(o.actions, vec![keep(&[])]);
    assert!(o.error.is_some());

    let o = outcome("require \"reject\";\nreject \"no\";\nkeep;");
    assert_eq!(o.actions, vec![keep(&[])]);
    assert_eq!(o.error.unwrap().line, 3);
}

/// Whether `test` holds for `mail` (the script files into "Yes" if so).
fn holds(test: &str, require: &str, mail: &[u8]) -> bool {
    let src = format!("require [\"fileinto\", {require}];\nif {test} {{ fileinto \"Yes\"; }}");
    let o = outcome_on(&src, mail);
    assert_eq!(o.error, None, "{src}");
    o.actions == vec![into("Yes", false, &[])]
}

const MULTIPART: &[u8] = b"From: ann@a.example\r\n\
Date: Tue, 01 Mar 2005 23:30:00 -0800\r\n\
Received: from a by b; Wed, 02 Mar 2005 08:00:00 +0100\r\n\
Received: from c by d; Thu, 03 Mar 2005 10:00:00 +0000\r\n\
X-Spam-Score: 7.5 (spam)\r\n\
X-Virus-Score: clean\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b\"\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=C3=A9 at noon\r\n\
--b\r\n\
Content-Type: text/html\r\n\
\r\n\
<p>secret html</p>\r\n\
--b--\r\n";

#[test]
fn body_transforms() {
    let body = |t: &str| holds(t, "\"body\"", MULTIPART);
    assert!(body("body :contains \"café\""), ":text decodes quoted-printable");
    assert!(body("body :text :contains \"secret html\""));
    assert!(!body("body :content \"text/plain\" :contains \"secret\""));
    assert!(body("body :content \"text/html\" :contains \"secret\""));
    assert!(body("body :content \"text\" :contains \"secret\""));
    assert!(body("body :raw :contains \"Caf=C3=A9\""));
    assert!(!body("body :raw :contains \"X-Spam-Score\""), ":raw is only the body");
    assert!(!body("body :contains \"nowhere\""));
    assert!(
        parse(b"if body :contains \"x\" { }")
            .unwrap_err()
            .message
            .contains("require \"body\"")
    );
}

#[test]
fn date_currentdate_zones_and_index() {
    let date = |t: &str| holds(t, "\"date\", \"index\", \"relational\"", MULTIPART);
    // The Date: header seen in UTC, in its own zone and in another.
    assert!(date("date :is \"date\" \"date\" \"2005-03-02\""));
    assert!(date("date :is \"date\" \"time\" \"07:30:00\""));
    assert!(date("date :originalzone :is \"date\" \"date\" \"2005-03-01\""));
    assert!(date("date :originalzone :is \"date\" \"zone\" \"-0800\""));
    assert!(date("date :zone \"+0530\" :is \"date\" \"hour\" \"13\""));
    assert!(date("date :is \"date\" \"weekday\" \"3\""));
    assert!(date("date :is \"date\" \"julian\" \"53431\""));
    assert!(date(
        "date :originalzone :is \"date\" \"iso8601\" \"2005-03-01T23:30:00-08:00\""
    ));
    assert!(date(
        "date :originalzone :is \"date\" \"std11\" \"Tue, 01 Mar 2005 23:30:00 -0800\""
    ));
    // Received: dates follow the last ';'; :index picks one field.
    assert!(date("date :index 1 :is \"received\" \"day\" \"02\""));
    assert!(date("date :index 1 :last :is \"received\" \"day\" \"03\""));
    assert!(!date("date :index 3 :is \"received\" \"day\" \"03\""));
    assert!(date("currentdate :is \"date\" \"2027-01-15\""));
    assert!(date("currentdate :value \"ge\" \"year\" \"2027\""));
    assert!(date("currentdate :zone \"-1000\" :is \"date\" \"2027-01-14\""));
    let o = outcome("require \"date\";\nif currentdate :zone \"Europe/Paris\" :is \"year\" \"1\" { }");
    assert!(o.error.unwrap().message.contains(":zone"));
    assert!(
        parse(b"require \"date\"; if date :index 1 \"date\" \"year\" \"1\" { }").is_err(),
        "needs index"
    );
    assert!(parse(b"require \"date\"; if date :is \"date\" \"century\" \"1\" { }").is_err());
}

#[test]
fn header_index_and_encoded_words() {
    let t = |test: &str| holds(test, "\"index\", \"variables\"", MULTIPART);
    assert!(t("header :is \"subject\" \"Grüße\""), "RFC 2047 decoded");
    assert!(t("header :index 2 :contains \"received\" \"from c\""));
    assert!(t("header :index 1 :last :contains \"received\" \"from c\""));
    assert!(!t("header :index 1 :contains \"received\" \"from c\""));
    assert!(t("address :index 1 :is \"from\" \"ann@a.example\""));
    assert!(
        parse(b"require \"index\"; if header :last :is \"a\" \"b\" { }")
            .unwrap_err()
            .message
            .contains(":last needs :index")
    );
}

#[test]
fn spamtest_and_virustest_read_the_filter_headers() {
    let t = |test: &str, mail: &[u8]| {
        holds(
            test,
            "\"spamtestplus\", \"virustest\", \"relational\", \"comparator-i;ascii-numeric\"",
            mail,
        )
    };
    let ge = |what: &str, n: &str| format!("{what} :value \"ge\" :comparator \"i;ascii-numeric\" \"{n}\"");
    // 7.5 of 10: level 8 of 10, 75 percent.
    assert!(t(&ge("spamtest", "8"), MULTIPART));
    assert!(!t(&ge("spamtest", "9"), MULTIPART));
    assert!(t("spamtest :percent :is \"75\"", MULTIPART));
    assert!(t("virustest :is \"1\"", MULTIPART));
    // Untested mail is 0 for both.
    assert!(t(
        "allof (spamtest :is \"0\", virustest :is \"0\")",
        b"Subject: x\r\n\r\nbody\r\n"
    ));
    assert_eq!(message::spam_score(Some("-3"), 10.0, false), "1");
    assert_eq!(message::spam_score(Some("40"), 10.0, true), "100");
    assert_eq!(message::spam_score(Some("n/a"), 10.0, false), "0");
    assert_eq!(message::virus_score(Some("5 infected")), "5");
    assert_eq!(message::virus_score(Some("Infected: Eicar")), "5");
    assert!(
        parse(b"require \"spamtest\"; if spamtest :percent \"1\" { }").is_err(),
        ":percent needs spamtestplus"
    );
}

#[test]
fn duplicate_tracks_ids_per_handle() {
    let script = parse(
        br#"require ["duplicate", "fileinto"];
if duplicate { fileinto "Dups"; }
if duplicate :handle "h" :header "subject" :seconds 60 :last { discard; }
if duplicate :header "x-missing" { fileinto "Never"; }"#,
    )
    .unwrap();
    let mail = b"Message-ID: <a@x.example>\r\nSubject: s\r\n\r\nbody\r\n";
    let exists = |_: &str| false;
    let scores = Default::default();
    let run_seeing = |seen: &dyn Fn(&str) -> bool| {
        run(
            &script,
            &Input {
                content: mail,
                sender: None,
                recipient: "bob@example.org",
                mailbox_exists: &exists,
                now: NOW,
                scores: &scores,
                seen,
                include: &|_, _| Ok(None),
            },
        )
    };
    let first = run_seeing(&|_| false);
    assert_eq!(first.actions, vec![keep(&[])]);
    let seconds: Vec<u64> = first.tracked.iter().map(|t| t.seconds).collect();
    assert_eq!(seconds, vec![7 * 24 * 3600, 60], "a missing header is not tracked");
    let keys: Vec<String> = first.tracked.iter().map(|t| t.key.clone()).collect();
    assert_ne!(keys[0], keys[1]);
    let second = run_seeing(&|k| keys.iter().any(|s| s == k));
    assert_eq!(second.actions, vec![into("Dups", false, &[])]);
    // Only :last restarts the period of an id seen again.
    assert_eq!(second.tracked, vec![first.tracked[1].clone()]);
    assert!(
        parse(b"if duplicate { }")
            .unwrap_err()
            .message
            .contains("require \"duplicate\"")
    );
}

#[test]
fn editheader_changes_what_tests_and_delivery_see() {
    let mail: &[u8] =
        b"Received: from a by b\r\nX-Spam: yes\r\nSubject: long\r\n folded\r\nX-Spam: maybe\r\n\r\nbody\r\n";
    let src = r#"require ["editheader", "fileinto", "variables"];
addheader "X-Filtered" "by ${x}sieve";
addheader :last "X-Note" "Grüße";
deleteheader :index 1 :last "X-Spam";
deleteheader "received";
if header :is "x-filtered" "by sieve" { if not exists "x-spam" { stop; } fileinto "Seen"; }"#;
    let o = outcome_on(src, mail);
    assert_eq!(o.error, None);
    assert_eq!(o.actions, vec![into("Seen", false, &[])], "tests see the edited header");
    assert_eq!(
        String::from_utf8(o.edited.unwrap()).unwrap(),
        "X-Filtered: by sieve\r\nReceived: from a by b\r\nX-Spam: yes\r\nSubject: long\r\n folded\r\n\
X-Note: =?UTF-8?B?R3LDvMOfZQ==?=\r\n\r\nbody\r\n",
        "Received: is protected; the rest stays as written"
    );
    let o = outcome_on("require \"editheader\"; deleteheader :matches \"x-spam\" \"y*\";", mail);
    let text = String::from_utf8(o.edited.unwrap()).unwrap();
    assert!(
        !text.contains("X-Spam: yes") && text.contains("X-Spam: maybe"),
        "{text}"
    );
    assert_eq!(
        outcome_on("require \"editheader\"; deleteheader \"x-none\";", mail).edited,
        None
    );
    assert_eq!(outcome("keep;").edited, None);
    for (src, what) in [
        ("addheader \"X\" \"y\";", "require \"editheader\""),
        (
            "require \"editheader\"; addheader \"Bad:Name\" \"y\";",
            "bad header field name",
        ),
        ("require \"editheader\"; if deleteheader \"x\" { }", "unknown test"),
    ] {
        assert!(parse(src.as_bytes()).unwrap_err().message.contains(what), "{src}");
    }
}

#[test]
fn include_with_globals_once_optional_return_and_loops() {
    use ast::Location::{Global, Personal};
    let library = [
        (
            Personal,
            "lists",
            r#"require ["include", "variables"]; global "folder";
if header :matches "List-Id" "*<*.lists.example>" { set "folder" "Lists/${2}"; return; }
set "folder" "none";"#,
        ),
        (
            Global,
            "spam",
            r#"require "fileinto"; if header :is "x-spam-score" "7" { fileinto "Junk"; stop; }"#,
        ),
        (Personal, "loop", r#"require "include"; include "loop";"#),
        (
            Personal,
            "count",
            r#"require ["include", "variables"]; set "global.n" "${global.n}x";"#,
        ),
        (Personal, "broken", "fileinto \"x\";"),
    ];
    let exists = |_: &str| false;
    let scores = Default::default();
    let include = |location: ast::Location, name: &str| {
        let found = library.iter().find(|(l, n, _)| *l == location && *n == name);
        found
            .map(|(_, _, src)| parse(src.as_bytes()).map_err(|e| e.to_string()))
            .transpose()
    };
    let run_main = |src: &str| {
        let script = parse(src.as_bytes()).unwrap_or_else(|e| panic!("{src}: {e}"));
        run(
            &script,
            &Input {
                content: MAIL,
                sender: None,
                recipient: "bob@example.org",
                mailbox_exists: &exists,
                now: NOW,
                scores: &scores,
                seen: &|_| false,
                include: &include,
            },
        )
    };
    let head = "require [\"include\", \"variables\", \"fileinto\"];\n";
    let o = run_main(&format!(
        "{head}global \"folder\"; include \"lists\"; fileinto \"${{folder}}\";"
    ));
    assert_eq!(o.actions, vec![into("Lists/rust", false, &[])], "{:?}", o.error);
    // A global script's stop ends the whole run.
    let o = run_main(&format!("{head}include :global \"spam\"; fileinto \"After\";"));
    assert_eq!(o.actions, vec![into("Junk", false, &[])]);
    assert_eq!(
        run_main(&format!("{head}include :personal \"spam\";"))
            .error
            .unwrap()
            .line,
        2
    );
    let o = run_main(&format!(
        "{head}include :once \"count\"; include :once \"count\"; include \"count\"; fileinto \"${{global.n}}\";"
    ));
    assert_eq!(o.actions, vec![into("xx", false, &[])]);
    let o = run_main(&format!("{head}include :optional \"missing\"; return; fileinto \"x\";"));
    assert_eq!(
        (o.actions, o.error),
        (vec![keep(&[])], None),
        "top-level return is stop"
    );
    for (src, why) in [
        ("include \"loop\";", "includes itself"),
        ("include \"missing\";", "no script"),
        ("include \"broken\";", "require \"fileinto\""),
        ("set \"n\" \"../x\"; include \"${n}\";", "bad script name"),
    ] {
        let o = run_main(&format!("{head}{src}"));
        assert_eq!(o.actions, vec![keep(&[])]);
        let e = o.error.unwrap_or_else(|| panic!("{src}"));
        assert!(e.message.contains(why), "{src}: {e}");
    }
    assert!(
        parse(b"require \"include\"; global \"x\";")
            .unwrap_err()
            .message
            .contains("variables")
    );
    assert!(
        parse(b"require \"include\"; include \"../etc/x\";")
            .unwrap_err()
            .message
            .contains("bad script name")
    );
}

fn vacation_of(src: &str) -> ast::Vacation {
    let all = actions(src);
    assert_eq!(all.last(), Some(&keep(&[])), "vacation keeps the message: {src}");
    match all.into_iter().next() {
        Some(Action::Vacation(v)) => v,
        other => panic!("{src}: {other:?}"),
    }
}

#[test]
fn vacation_arguments_and_defaults() {
    let v = vacation_of("require \"vacation\"; vacation \"Away until Monday.\";");
    assert_eq!(
        v,
        ast::Vacation {
            days: 7,
            subject: None,
            from: None,
            addresses: vec![],
            mime: false,
            handle: None,
            reason: "Away until Monday.".into()
        }
    );
    let v = vacation_of(
        r#"require ["vacation", "variables"]; set "who" "Bob";
vacation :days 0 :subject "Out: ${who}" :from "bob@example.org" :addresses ["b@example.org", "bob@old.example"] :mime :handle "h1" "Content-Type: text/plain\r\n\r\nAway";"#,
    );
    assert_eq!(v.days, 1, ":days has a minimum of 1");
    assert_eq!(v.subject.as_deref(), Some("Out: Bob"));
    assert_eq!(v.from.as_deref(), Some("bob@example.org"));
    assert_eq!(v.addresses, vec!["b@example.org", "bob@old.example"]);
    assert!(v.mime);
    assert_eq!(v.handle.as_deref(), Some("h1"));

    let e = parse(b"vacation \"x\";").unwrap_err();
    assert!(e.message.contains("require \"vacation\""), "{e}");
    let e = parse(b"require \"vacation\";\nvacation :days \"x\" \"r\";").unwrap_err();
    assert_eq!((e.line, e.message.as_str()), (2, ":days takes a number"));
    let o = outcome("require \"vacation\";\nvacation \"a\";\nvacation \"b\";");
    assert_eq!(o.actions, vec![keep(&[])]);
    assert_eq!(o.error.unwrap().line, 3);
    let o = outcome("require [\"vacation\", \"reject\"];\nreject \"no\";\nvacation \"b\";");
    assert_eq!(o.actions, vec![keep(&[])]);
    assert!(o.error.unwrap().message.contains("vacation"));
}

#[test]
fn vacation_replies_only_to_people_writing_to_the_user() {
    let v = vacation_of("require \"vacation\"; vacation :addresses \"carol@example.org\" \"Away\";");
    let check = |headers: &str, sender: Option<&str>| {
        let content = format!("{headers}\r\n\r\nbody\r\n");
        vacation::check(
            &v,
            &message::Headers::parse(content.as_bytes()),
            sender,
            "bob+x@example.org",
        )
        .map(str::to_string)
    };
    let to_bob = "From: ann@a.example\r\nTo: Bob <bob@example.org>";
    assert_eq!(check(to_bob, Some("ann@a.example")), Ok("ann@a.example".into()));
    assert_eq!(
        check("To: carol@example.org", Some("ann@a.example")),
        Ok("ann@a.example".into()),
        ":addresses"
    );
    assert_eq!(
        check("To: x@example.org\r\nCc: BOB+x@example.org", Some("a@a.example")),
        Ok("a@a.example".into())
    );
    use vacation::Skip;
    for (headers, sender, why) in [
        (to_bob, None, Skip::NullSender),
        (to_bob, Some("MAILER-DAEMON@a.example"), Skip::Robot),
        (to_bob, Some("owner-rust@a.example"), Skip::Robot),
        (to_bob, Some("rust-request@a.example"), Skip::Robot),
        (to_bob, Some("bob@example.org"), Skip::OwnAddress),
        (
            "To: bob@example.org\r\nAuto-Submitted: auto-generated",
            Some("a@a.example"),
            Skip::AutoSubmitted,
        ),
        (
            "To: bob@example.org\r\nPrecedence: Bulk",
            Some("a@a.example"),
            Skip::Bulk,
        ),
        (
            "To: bob@example.org\r\nPrecedence: junk",
            Some("a@a.example"),
            Skip::Bulk,
        ),
        (
            "To: bob@example.org\r\nList-Unsubscribe: <mailto:u@a>",
            Some("a@a.example"),
            Skip::List,
        ),
        ("To: everyone@example.org", Some("a@a.example"), Skip::NotAddressed),
    ] {
        assert_eq!(check(headers, sender), Err(why), "{headers} from {sender:?}");
    }
    assert!(check("To: bob@example.org\r\nAuto-Submitted: no", Some("a@a.example")).is_ok());
}

#[test]
fn vacation_reply_is_threaded_and_marked_automatic() {
    let v = vacation_of("require \"vacation\"; vacation text:\nBack on Monday.\nAnn\n.\n;");
    let original = b"From: ann@a.example\r\nTo: bob@example.org\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\
Message-ID: <m2@a.example>\r\nReferences: <m1@a.example>\r\n\r\nhi\r\n";
    let headers = message::Headers::parse(original);
    let reply = vacation::reply(
        &v,
        &headers,
        "ann@a.example",
        "bob@example.org",
        1_800_000_000,
        "mx.example.org",
    );
    let text = String::from_utf8(reply).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let parsed = message::Headers::parse(text.as_bytes());
    assert_eq!(parsed.get("from"), vec!["bob@example.org"]);
    assert_eq!(parsed.get("to"), vec!["<ann@a.example>"]);
    assert_eq!(parsed.decoded("subject"), vec!["Auto: café"]);
    assert_eq!(parsed.get("auto-submitted"), vec!["auto-replied (vacation)"]);
    assert_eq!(parsed.get("in-reply-to"), vec!["<m2@a.example>"]);
    assert_eq!(parsed.get("references"), vec!["<m1@a.example> <m2@a.example>"]);
    assert!(head.contains("Content-Type: text/plain; charset=utf-8"), "{head}");
    assert_eq!(body, "Back on Monday.\r\nAnn\r\n");
    assert!(!head.contains("\n\n") && head.split("\r\n").all(|l| !l.contains('\n')));

    // The key is per sender and handle; without a handle, per reply text.
    let other = vacation_of("require \"vacation\"; vacation \"Other text\";");
    let k = vacation::memory_key(&v, "ann@a.example");
    assert_eq!(k, vacation::memory_key(&v, "ANN@a.example"));
    assert_ne!(k, vacation::memory_key(&v, "carl@a.example"));
    assert_ne!(k, vacation::memory_key(&other, "ann@a.example"));
    let handled = |text: &str| vacation_of(&format!("require \"vacation\"; vacation :handle \"h\" \"{text}\";"));
    assert_eq!(
        vacation::memory_key(&handled("one"), "ann@a.example"),
        vacation::memory_key(&handled("two"), "ann@a.example")
    );
    assert_eq!(vacation::period(&v), 7 * 24 * 3600);
}

proptest! {
    #[test]
    fn parser_never_panics(src in "\\PC{0,200}") {
        let _ = parse(src.as_bytes());
    }

    #[test]
    fn token_soup_never_panics(parts in proptest::collection::vec(prop_oneof![
        Just("if"), Just("anyof"), Just("not"), Just("header"), Just(":is"), Just(":matches"),
        Just("\"a*\""), Just("["), Just("]"), Just(","), Just("("), Just(")"), Just("{"), Just("}"),
        Just(";"), Just("keep"), Just("fileinto"), Just("require"), Just("\"fileinto\""), Just("10K"),
        Just("text:\nx\n.\n"), Just("set"), Just("\"${1}\""), Just("elsif"), Just("else"), Just("true"),
    ], 0..40)) {
        let src = parts.join(" ");
        if let Ok(script) = parse(src.as_bytes()) {
            let exists = |_: &str| false;
            let scores = Default::default();
            let o = run(&script, &Input { content: MAIL, sender: None, recipient: "a@b", mailbox_exists: &exists, now: NOW, scores: &scores, seen: &|_| false, include: &|_, _| Ok(None) });
            // Either some action or an explicit discard; an error always keeps.
            if o.error.is_some() {
                prop_assert_eq!(o.actions, vec![Action::Keep { flags: vec![] }]);
            }
        }
    }

    #[test]
    fn any_fileinto_name_round_trips(name in "[A-Za-z0-9 ./-]{1,20}") {
        let src = format!("require \"fileinto\"; fileinto \"{name}\";");
        let want = if name.eq_ignore_ascii_case("INBOX") { keep(&[]) } else { into(&name, false, &[]) };
        prop_assert_eq!(actions(&src), vec![want]);
    }
}
