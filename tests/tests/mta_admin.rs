//! The status page and the metrics of both daemons, against a real greyd in
//! front of a real mta: greyd greylists a tuple, traps a source and passes
//! the whitelisted retry on to mta, which delivers it and refuses a relay
//! attempt. Then greyd's control socket (`stats`, also through greydb),
//! `/admin` over curl, and mta's Prometheus endpoint show exactly that; the
//! page's history is still there after mta restarts, and a greyd that is
//! gone is named on the page instead of breaking it.

use std::time::Duration;

use greyd_tests::greyd::{Greyd, attempt, eventually};
use greyd_tests::mta::*;
use greyd_tests::{connect_from, free_port, wait_port};

const ADMIN: &str = "admin@example.test";
const PASS: &str = "admin-pw";
const GREY: &str = "127.0.40.1";
const TRAPPED: &str = "127.0.40.2";

/// The value of the Prometheus sample named exactly `name` (labels included).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The text of the element with `id` in `page` (up to the next tag).
fn by_id<'a>(page: &'a str, id: &str) -> &'a str {
    let at = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {page}"));
    let start = at + page[at..].find('>').unwrap() + 1;
    let end = start + page[start..].find('<').unwrap();
    &page[start..end]
}

#[track_caller]
fn admin_page(base: &str, jar: &std::path::Path) -> String {
    let (code, _, page) = curl_session(Some(jar), &format!("{base}/admin"), &[]);
    assert_eq!(code, 200, "{page}");
    page
}

#[test]
fn admin_page_and_metrics_show_what_greyd_and_mta_did() {
    let gdir = tempfile::tempdir().unwrap();
    let setup = MtaSetup::new();
    setup.add_user(ADMIN, PASS);
    setup.add_user("alice@example.test", "pw");
    setup.edit("admins = []", &format!("admins = [\"{ADMIN}\"]"));
    setup.edit("proxy_from = []", "proxy_from = [\"127.0.0.1\"]");
    let socket = gdir.path().join("greyd.sock");
    setup.edit(
        "[outbound]\n",
        &format!("[outbound]\ngreyd_control = \"{}\"\n", socket.display()),
    );
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    setup.edit("[metrics]\n", &format!("[metrics]\nlisten = \"{metrics}\"\n"));
    let mut mta = setup.start();
    let upstream = setup.smtp.to_string();
    let mut g = Greyd::start(
        gdir.path(),
        &["-G", "2s:1h:1d", "-s", "0", "-S", "0", "--upstream", &upstream],
    );
    g.greydb(&["-T", "-a", "trap@example.test"]);
    let list = r#"{"op":"load_list","name":"testlist","kind":"black","entries":["192.0.2.0/24","198.51.100.0/24"]}"#;
    assert!(g.control(list).contains(r#""changed":2"#));

    // A new tuple is greylisted; its retry after the pass time whitelists the source.
    assert_eq!(attempt(&g, GREY, "bob@remote.test", "alice@example.test"), 451);
    std::thread::sleep(Duration::from_millis(2100));
    attempt(&g, GREY, "bob@remote.test", "alice@example.test");
    g.daemon
        .wait_log(&format!("{GREY}: whitelisted (retry)"), Duration::from_secs(5));
    // Mailing the spamtrap traps the source; it connects once more, trapped.
    let (mut c, _) = g.smtp_from(TRAPPED);
    c.cmd("HELO spam.test").unwrap();
    c.cmd("MAIL FROM:<x@spam.test>").unwrap();
    c.cmd("RCPT TO:<trap@example.test>").unwrap();
    drop(c);
    g.daemon
        .wait_log(&format!("{TRAPPED}: trapped (spamtrap)"), Duration::from_secs(5));
    drop(connect_from(TRAPPED.parse().unwrap(), g.addr()).unwrap());
    // The whitelisted source reaches mta: one relay attempt refused, one message delivered.
    let (mut c, banner) = g.smtp_from(GREY);
    assert!(banner.text().starts_with("mx.test ESMTP"), "{banner:?}");
    assert_eq!(c.cmd("EHLO relay.remote.test").unwrap().code, 250);
    assert_eq!(c.cmd("MAIL FROM:<bob@remote.test>").unwrap().code, 250);
    assert_eq!(c.cmd("RCPT TO:<victim@elsewhere.test>").unwrap().code, 550);
    assert_eq!(c.cmd("RCPT TO:<alice@example.test>").unwrap().code, 250);
    assert_eq!(c.cmd("DATA").unwrap().code, 354);
    assert_eq!(c.cmd("Subject: through greyd\r\n\r\nhi\r\n.").unwrap().code, 250);
    wait_messages(&setup.maildir("alice@example.test"), 1);
    drop(c);

    // greyd's own account, on its control socket and through greydb.
    let stats: serde_json::Value = serde_json::from_str(&g.control(r#"{"op":"stats"}"#)).unwrap();
    assert_eq!(stats["status"], "stats", "{stats}");
    let today = &stats["numbers"]["today"];
    assert_eq!(
        today["funnel"],
        serde_json::json!({"greylisted": 1, "promoted": 1, "passed": 1}),
        "{stats}"
    );
    assert_eq!(
        today["connections"]["grey"], 3,
        "two attempts and the trapping one: {stats}"
    );
    assert_eq!(today["connections"]["trapped"], 1, "{stats}");
    assert_eq!(today["connections"]["white"], 1, "{stats}");
    assert_eq!(today["trap_hits"], 1, "{stats}");
    assert_eq!(
        stats["numbers"]["top_trapped"],
        serde_json::json!([{"ip": TRAPPED, "connections": 1}]),
        "{stats}"
    );
    let lists = stats["lists"].as_array().unwrap();
    assert_eq!(
        (lists[0]["name"].as_str(), lists[0]["entries"].as_u64()),
        (Some("testlist"), Some(2))
    );
    assert!(lists[0]["loaded"].as_i64().unwrap() > 1_700_000_000, "{stats}");
    let greydb: serde_json::Value = serde_json::from_str(&g.greydb(&["--stats"])).unwrap();
    assert_eq!(greydb["numbers"]["today"]["funnel"], today["funnel"]);

    // mta's Prometheus endpoint counts the same delivery and refusal.
    let scrape = || curl(&format!("http://{metrics}/metrics"), &[]).1;
    let local = r#"mta_deliveries_total{status="local"}"#;
    eventually("the delivery counted", Duration::from_secs(5), || {
        sample(&scrape(), local) == Some(1.0)
    });
    let text = scrape();
    assert_eq!(sample(&text, "mta_messages_accepted_total"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, r#"mta_rejected_total{reason="recipient"}"#),
        Some(1.0),
        "{text}"
    );
    // The session greyd passed on; the readiness probe of `setup.start`
    // sent no PROXY header, so it never became one.
    assert_eq!(
        sample(&text, r#"mta_sessions_total{listener="smtp"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "mta_queue_messages"), Some(0.0), "{text}");

    // The status page shows greyd's numbers and the funnel beside mta's charts.
    let base = format!("https://{}", setup.web);
    let jar = gdir.path().join("cookies");
    web_login(&jar, &base, ADMIN, PASS);
    let page = admin_page(&base, &jar);
    assert_eq!(by_id(&page, "greyd-greylisted"), "1", "{page}");
    assert_eq!(by_id(&page, "greyd-promoted"), "1");
    assert_eq!(by_id(&page, "greyd-passed"), "1");
    assert_eq!(by_id(&page, "greyd-trap-hits"), "1");
    // Connections today by class (those open now may still be closing).
    let row = &page[page
        .find(r#"<tr data-class="grey"><td>greylisted</td>"#)
        .expect("the grey row")..];
    assert!(
        row[..row.find("</tr>").unwrap()].ends_with(r#"<td class="num">3</td>"#),
        "{page}"
    );
    assert!(
        page.contains(&format!(">{TRAPPED}</text>")),
        "top trapped sources: {page}"
    );
    assert!(
        page.contains("<td>testlist</td><td>black</td><td class=\"num\">2</td><td>"),
        "{page}"
    );
    assert!(page.contains("No sync peers."), "{page}");
    for legend in [">greylisted 1<", ">promoted 1<", ">passed 1<"] {
        assert!(page.contains(legend), "funnel legend {legend}: {page}");
    }
    assert!(page.contains("Deliveries per hour (max 1)"), "{page}");
    assert!(page.contains("Rejected recipients per hour (max 1)"), "{page}");

    // After a restart of mta the charts still show the last hours.
    assert_eq!(mta.terminate(), Some(0));
    let history = std::fs::read_to_string(setup.root().join("queue/stats.json")).unwrap();
    assert!(history.contains(r#""delivered":1"#), "{history}");
    let _mta = setup.start();
    wait_port(setup.web, Duration::from_secs(10));
    // Webmail sessions live in memory: log in again.
    web_login(&jar, &base, ADMIN, PASS);
    let page = admin_page(&base, &jar);
    assert!(
        page.contains("Deliveries per hour (max 1)"),
        "history lost on restart: {page}"
    );
    assert!(
        page.contains(">greylisted 1<"),
        "greyd's funnel counted twice or lost: {page}"
    );

    // greyd gone: the page says so and shows the rest.
    g.daemon.terminate();
    eventually("greyd to exit", Duration::from_secs(5), || !socket.exists());
    let page = admin_page(&base, &jar);
    assert!(
        by_id(&page, "greyd-unavailable").starts_with("greyd's numbers are not available: "),
        "{page}"
    );
    assert!(page.contains("Deliveries per hour (max 1)"), "{page}");
}
