//! `--firewall nftables` in network namespaces the test creates: a client
//! namespace talks to port 25 of a server namespace where greyd and a
//! stand-in MTA run. Non-whitelisted sources land on greyd, whitelisted
//! ones on the MTA; hard blocks are dropped; greyd removes its table on exit.
//! greyd stays root (nft needs it) even with a `user` configured.

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use greyd_tests::greyd::{Greyd, QUICK_GREYLISTING, eventually};
use greyd_tests::netns::{Pair, have_root, real_mta};
use greyd_tests::users::SystemUser;

/// The banner a client gets on port 25 (None: nothing answered).

#[test]
fn nftables_steers_non_white_sources_to_greyd_and_white_ones_to_the_mta() {
    if !have_root("nftables_steers") {
        return;
    }
    let pair = Pair::new(&["10.77.1.1", "10.77.1.4"], &["10.77.1.2", "10.77.1.3"]);
    real_mta(&pair.server, 25);
    let dir = tempfile::tempdir().unwrap();
    // A configured user is not taken: nft runs for every change and needs root.
    let user = SystemUser::daemon("_greydn");
    let config = dir.path().join("greyd.toml");
    std::fs::write(&config, format!("user = \"{}\"\n", user.name)).unwrap();
    let config_arg = config.display().to_string();
    let mut args = vec!["--config", &config_arg, "--firewall", "nftables", "-M", "10.77.1.4"];
    args.extend(QUICK_GREYLISTING);
    let mut g = Greyd::start_in(Some(&pair.server), dir.path(), 8025, &args);
    assert!(
        g.daemon.log().contains(&format!(
            "runs nft for every whitelisting: running as root, not as {}",
            user.name
        )),
        "{}",
        g.daemon.log()
    );
    let owner = std::fs::metadata(format!("/proc/{}", g.daemon.pid())).unwrap().uid();
    assert_eq!(owner, 0, "greyd stays root with nftables");
    let mx: SocketAddr = "10.77.1.1:25".parse().unwrap();
    let backup_mx: SocketAddr = "10.77.1.4:25".parse().unwrap();

    // Unknown source: redirected to greyd, greylisted.
    assert_eq!(pair.attempt("10.77.1.2", mx), 451);
    std::thread::sleep(Duration::from_millis(1100));
    pair.attempt("10.77.1.2", mx);
    // Whitelisted: the kernel now sends it to the MTA itself.
    eventually("the white set to take the source", Duration::from_secs(5), || {
        pair.banner("10.77.1.2", mx).is_some_and(|r| r.text() == "real MTA")
    });
    let set = pair.server.output("nft", &["list", "set", "inet", "greyd", "white4"]);
    assert!(set.contains("10.77.1.2"), "{set}");
    // Other sources still land on greyd.
    assert!(pair.banner("10.77.1.3", mx).unwrap().text().contains("spamd"));

    // greyd sees the original destination through the redirect: the low-priority MX trap works.
    assert_eq!(
        pair.attempt("10.77.1.3", backup_mx),
        354,
        "new tuple on the backup MX is trapped"
    );
    assert!(g.greydb(&[]).contains("TRAPPED|10.77.1.3|"));

    // Deleting the whitelist entry sends the source back to greyd.
    g.greydb(&["-d", "10.77.1.2"]);
    eventually("the source back on greyd", Duration::from_secs(5), || {
        pair.banner("10.77.1.2", mx).is_some_and(|r| r.text().contains("spamd"))
    });

    // A hard-blocked source gets nothing at all.
    let resp =
        g.control(r#"{"op":"load_list","name":"hard","kind":"black","hard_block":true,"entries":["10.77.1.3/32"]}"#);
    assert!(resp.contains("\"ok\""), "{resp}");
    let mut s = pair.connect("10.77.1.3", mx);
    if let Ok(stream) = s.as_mut() {
        stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 1];
        assert!(stream.read(&mut buf).is_err(), "a blocked source must not get a banner");
    }

    // On exit greyd removes its table; the MTA then serves everyone.
    g.daemon.terminate();
    let tables = pair.server.output("nft", &["list", "tables"]);
    assert!(!tables.contains("greyd"), "table left behind: {tables}");
    assert_eq!(pair.banner("10.77.1.3", mx).unwrap().text(), "real MTA");
}
