//! greyd-setup's dry run (-n) against lists served over loopback HTTP, from
//! files and from commands: what would be loaded, and how failures show.

use std::path::{Path, PathBuf};

use greyd_tests::setup::{Body, HttpServer, greyd_setup, greyd_setup_env, gzip, test_tls};

/// A spamd.conf in `dir` with `records` (each a full `name:...` record), `all` in their order.
fn conf(dir: &Path, records: &[String]) -> PathBuf {
    let names: Vec<&str> = records.iter().map(|r| r.split(':').next().unwrap()).collect();
    let text = format!("all:\\\n\t:{}:\n\n{}\n", names.join(":"), records.join("\n"));
    let path = dir.join("spamd.conf");
    std::fs::write(&path, text).unwrap();
    path
}

/// getcap ends a field at a colon: `host:port` needs `\:`.
fn escaped(file: &str) -> String {
    file.replace(':', "\\:")
}

fn black(name: &str, method: &str, file: &str) -> String {
    let file = escaped(file);
    format!("{name}:\\\n\t:black:\\\n\t:msg=\"Go away %A\\nsee {name}\":\\\n\t:method={method}:\\\n\t:file={file}:")
}

fn white(name: &str, method: &str, file: &str) -> String {
    let file = escaped(file);
    format!("{name}:white:method={method}:file={file}:")
}

#[test]
fn plain_and_gzipped_http_lists_merge_and_subtract() {
    let text = "# plain\n192.0.2.0/25\n192.0.2.128 - 192.0.2.255\n2001:db8::/33\n2001:db8:8000::/33\n";
    let server = HttpServer::start(vec![
        ("/plain.txt", Body::Fixed(text.as_bytes().to_vec())),
        // gzip recognised by content, not by name
        ("/list", Body::Fixed(gzip(b"198.51.100.0/24\n"))),
        ("/white", Body::Fixed(b"198.51.100.1\n".to_vec())),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let path = conf(
        dir.path(),
        &[
            black("plain", "http", &server.file("/plain.txt")),
            black("zipped", "http", &server.file("/list")),
            white("exempt", "http", &server.file("/white")),
        ],
    );
    let run = greyd_setup(&path, &["-n", "--cache", cache.to_str().unwrap()]);
    assert!(run.ok);
    assert_eq!(
        run.stdout,
        "list plain black 2 nets message \"Go away %A\\nsee plain\"\n\
         192.0.2.0/24\n2001:db8::/32\n\
         list zipped black 8 nets message \"Go away %A\\nsee zipped\"\n\
         198.51.100.0/32\n198.51.100.2/31\n198.51.100.4/30\n198.51.100.8/29\n\
         198.51.100.16/28\n198.51.100.32/27\n198.51.100.64/26\n198.51.100.128/25\n"
    );
    assert!(!cache.exists(), "a dry run writes no cache");
}

#[test]
fn malformed_lines_are_reported_by_number_and_skipped() {
    let server = HttpServer::start(vec![(
        "/l",
        Body::Fixed(b"192.0.2.1\nthis is not an address\n192.0.2.3 ; trailing text\n".to_vec()),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let path = conf(dir.path(), &[black("l", "http", &server.file("/l"))]);
    let run = greyd_setup(&path, &["-n"]);
    assert!(run.ok);
    assert!(
        run.stderr
            .contains("line 2: malformed, skipped: this is not an address")
    );
    assert!(run.stdout.ends_with("192.0.2.1/32\n192.0.2.3/32\n"));
}

#[test]
fn file_and_exec_methods() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("list.txt");
    std::fs::write(&file, "10.0.0.0/8\n").unwrap();
    let zipped = dir.path().join("white.gz");
    std::fs::write(&zipped, gzip(b"10.128.0.0/9\n")).unwrap();
    let msg = dir.path().join("msg.txt");
    std::fs::write(&msg, "From a file: %A\n").unwrap();
    let path = conf(
        dir.path(),
        &[
            format!("f:black:msg={}:file={}:", msg.display(), file.display()),
            white("w", "exec", &format!("/bin/cat {}", zipped.display())),
        ],
    );
    let run = greyd_setup(&path, &["-n"]);
    assert!(run.ok);
    assert_eq!(
        run.stdout,
        "list f black 1 nets message \"From a file: %A\"\n10.0.0.0/9\n"
    );
}

/// Each failure names its source, fails the run, and loads nothing of that list.
#[test]
fn failing_sources_load_nothing_and_fail_the_run() {
    let full = gzip(&b"192.0.2.1\n".repeat(5000));
    let server = HttpServer::start(vec![
        ("/truncated", Body::Fixed(full[..full.len() / 2].to_vec())),
        ("/endless", Body::Endless(b"192.0.2.1\n".to_vec())),
        ("/good", Body::Fixed(b"203.0.113.0/24\n".to_vec())),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("trunc", "http", server.file("/truncated")),
        ("endless", "http", server.file("/endless")),
        ("missing", "http", server.file("/404")),
        ("nofile", "file", "/nonexistent/list".to_string()),
        ("cmdfail", "exec", "/bin/false".to_string()),
        ("stalled", "exec", "/bin/sleep 60".to_string()),
    ];
    let mut records: Vec<String> = cases.iter().map(|(n, m, f)| black(n, m, f)).collect();
    records.push(black("good", "http", &server.file("/good")));
    let path = conf(dir.path(), &records);
    let cache = dir.path().join("cache");
    let run = greyd_setup(
        &path,
        &[
            "-n",
            "--max-bytes",
            "100000",
            "--timeout",
            "1",
            "--cache",
            cache.to_str().unwrap(),
        ],
    );
    assert!(!run.ok);
    for (name, method, file) in &cases {
        let shown = match *method {
            "exec" => format!("exec {file}"),
            "http" => format!("http://{file}"),
            _ => file.clone(),
        };
        assert!(
            run.stderr.contains(&format!("list {name}: {shown}: ")),
            "{name} not reported"
        );
    }
    assert!(run.stderr.contains("larger than 100000 bytes"));
    assert!(run.stderr.contains("HTTP status 404"));
    assert!(
        run.stderr
            .contains("list stalled: exec /bin/sleep 60: no complete answer within 1s")
    );
    assert_eq!(
        run.stdout,
        "list good black 1 nets message \"Go away %A\\nsee good\"\n203.0.113.0/24\n"
    );
}

#[test]
fn failing_source_falls_back_to_last_good_copy() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::write(cache.join("l.list"), "192.0.2.0/24\n").unwrap();
    let path = conf(dir.path(), &[black("l", "file", "/nonexistent/list")]);
    let run = greyd_setup(&path, &["-n", "--cache", cache.to_str().unwrap()]);
    assert!(!run.ok);
    assert!(run.stderr.contains("list l: /nonexistent/list: "));
    assert!(run.stderr.contains("keeping the last good copy"));
    assert!(run.stdout.ends_with("\n192.0.2.0/24\n"));
}

#[test]
fn config_errors_stop_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = conf(dir.path(), &["x:black:file=/etc/hosts:".to_string()]);
    let run = greyd_setup(&path, &["-n"]);
    assert!(!run.ok);
    assert!(run.stderr.contains("black list x: no msg"));
}

#[test]
fn toml_config_with_its_own_cache_setting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("black.txt"), "192.0.2.0/24\n").unwrap();
    let cache = dir.path().join("toml-cache");
    std::fs::create_dir(&cache).unwrap();
    // The white source fails; its cached copy still applies.
    std::fs::write(cache.join("friends.list"), "192.0.2.0/25\n").unwrap();
    let path = dir.path().join("greyd.toml");
    std::fs::write(
        &path,
        format!(
            "[setup]\ncache = \"{}\"\n\n\
             [[setup.lists]]\nname = \"spam\"\nkind = \"black\"\nmessage = \"No, %A\"\nfile = \"{}\"\n\n\
             [[setup.lists]]\nname = \"friends\"\nkind = \"white\"\nmethod = \"exec\"\nfile = \"/bin/false\"\n",
            cache.display(),
            dir.path().join("black.txt").display()
        ),
    )
    .unwrap();
    let run = greyd_setup(&path, &["-n"]);
    assert!(!run.ok);
    assert!(run.stderr.contains("list friends: exec /bin/false: command failed"));
    assert_eq!(
        run.stdout,
        "list spam black 1 nets message \"No, %A\"\n192.0.2.128/25\n"
    );
}

#[test]
fn https_with_a_trusted_ca_and_refused_without() {
    let (ca_pem, tls) = test_tls();
    let server = HttpServer::start_tls(vec![("/l.gz", Body::Fixed(gzip(b"192.0.2.0/24\n")))], tls);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let path = conf(dir.path(), &[black("tls", "https", &server.file("/l.gz"))]);
    let run = greyd_setup_env(&path, &["-n"], &[("SSL_CERT_FILE", ca.to_str().unwrap())]);
    assert!(run.ok);
    assert!(run.stdout.ends_with("\n192.0.2.0/24\n"));
    // The system roots do not know the test CA.
    let empty = dir.path().join("none.pem");
    std::fs::write(&empty, "").unwrap();
    let run = greyd_setup_env(&path, &["-n"], &[("SSL_CERT_FILE", empty.to_str().unwrap())]);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains(&format!("list tls: https://{}: ", server.file("/l.gz")))
    );
}
