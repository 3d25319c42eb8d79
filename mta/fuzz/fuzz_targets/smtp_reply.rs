//! The outbound client's reply parser and the transaction fed with what it
//! parses: never a panic; a parsed reply never claims more bytes than given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mta::outbound::client::{Mail, Rcpt, Step, Transaction};
use mta::outbound::reply::{Capabilities, parse};

fuzz_target!(|data: &[u8]| {
    let mail = Mail {
        sender: Some("a@b.example".into()),
        params: Default::default(),
        size: 10,
        needs_smtputf8: false,
    };
    let rcpts = vec![
        Rcpt {
            address: "c@d.example".into(),
            notify: Vec::new(),
            orcpt: None,
        };
        2
    ];
    let mut caps = Capabilities::default();
    let mut rest = data;
    let mut transaction = None;
    while let Ok(Some((reply, used))) = parse(rest) {
        assert!(used > 0 && used <= rest.len());
        rest = &rest[used..];
        let t = transaction.get_or_insert_with(|| {
            caps = Capabilities::from_ehlo(&reply);
            Transaction::start(&caps, &mail, rcpts.clone()).0
        });
        if let Step::Done(verdicts) = t.on_reply(reply) {
            assert_eq!(verdicts.len(), rcpts.len());
            return;
        }
    }
});
