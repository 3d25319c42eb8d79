//! Whole scripts, compiled and run over messages.

use super::*;
use proptest::prelude::*;

const MAIL: &[u8] = b"From: \"Ann\" <ann+news@lists.example>\r\n\
To: bob@example.org, carol@example.org\r\n\
Subject: [rust] weekly\r\n\
List-Id: Rust users <rust.lists.example>\r\n\
X-Spam-Score: 7\r\n\
\r\n\
body\r\n";

fn outcome(src: &str) -> Outcome {
    let script = parse(src.as_bytes()).unwrap_or_else(|e| panic!("{src}: {e}"));
    let exists = |m: &str| m == "Existing";
    run(
        &script,
        &Input {
            content: MAIL,
            sender: Some("ann+news@lists.example"),
            recipient: "bob+rust@example.org",
            mailbox_exists: &exists,
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
            let o = run(&script, &Input { content: MAIL, sender: None, recipient: "a@b", mailbox_exists: &exists });
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
