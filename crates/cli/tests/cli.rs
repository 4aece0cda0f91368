//! The `tether` binary as a user runs it: the demo end to end, then the inspection and local
//! record commands on the replica it leaves, and the errors of a missing replica.

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn tether(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .output()
        .expect("run tether")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "tether failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn demo_then_inspect_and_edit_its_replica() {
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    let out = stdout(&tether(&["demo", "--records", "500", "--dir", dir_arg]));
    let last = out.lines().last().unwrap_or_default();
    assert!(last.starts_with("verified: count "), "{out}");
    // 500 records, 2% changed, 0.5% deleted (3 of 500: ids 25, 225, 425), 1% added.
    assert!(last.contains("count 502 digest "), "{out}");

    let db = dir.path().join("replica.db");
    let db_arg = db.to_str().unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&stdout(&tether(&["status", "--db", db_arg, "--json"]))).unwrap();
    assert_eq!(status["count"], 502, "{status}");
    assert_eq!(status["open_conflicts"], 1, "{status}");
    let history = stdout(&tether(&["history", "--db", db_arg]));
    assert_eq!(history.lines().count(), 3, "header and two runs: {history}");
    let stats: serde_json::Value = serde_json::from_str(&stdout(&tether(&[
        "stats", "--db", db_arg, "--days", "1", "--json",
    ])))
    .unwrap();
    assert_eq!(
        (stats["runs"].as_u64(), stats["completed"].as_u64()),
        (Some(2), Some(2)),
        "{stats}"
    );
    assert_eq!(stats["conflicts"], 1, "{stats}");
    let line = stdout(&tether(&["stats", "--db", db_arg]));
    assert!(
        line.starts_with("last 7 days: 2 runs (2 completed"),
        "{line}"
    );

    stdout(&tether(&[
        "put",
        "--db",
        db_arg,
        "objects",
        "cli_1",
        r#"{"n": 1}"#,
    ]));
    let got = stdout(&tether(&["get", "--db", db_arg, "objects", "cli_1"]));
    assert_eq!(got.trim(), r#"{"n":1}"#);
    let listed = stdout(&tether(&[
        "list", "--db", db_arg, "objects", "--limit", "500",
    ]));
    assert!(listed.lines().any(|l| l.starts_with("cli_1\t")), "{listed}");
}

#[test]
fn reading_a_missing_replica_fails_without_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nothing.db");
    for cmd in ["status", "history", "conflicts", "list"] {
        let mut args = vec![cmd, "--db", db.to_str().unwrap()];
        if cmd == "list" {
            args.push("objects");
        }
        let out = tether(&args);
        assert!(!out.status.success(), "{cmd}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.starts_with("error [Usage]: no replica at "),
            "{cmd}: {err}"
        );
        assert!(!Path::new(&db).exists(), "{cmd} created the file");
    }
}

#[test]
fn bad_input_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("r.db");
    let out = tether(&[
        "put",
        "--db",
        db.to_str().unwrap(),
        "objects",
        "x",
        "{not json",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.starts_with("error [Usage]: data is not JSON"), "{err}");
    let out = tether(&[
        "demo",
        "--records",
        "0",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error [Usage]: --records"));
}

#[test]
fn a_server_that_cannot_bind_is_not_a_storage_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let cloud = dir.path().join("cloud.db");
    let out = tether(&[
        "serve",
        "--bind",
        &addr,
        "--db",
        cloud.to_str().unwrap(),
        "--dev-token",
        "t",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("error [Server]: cannot start the server: cannot listen"),
        "{err}"
    );
}

#[test]
fn jwt_options_are_checked_before_the_server_starts() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = dir.path().join("cloud.db");
    let serve = |extra: &[&str], env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tether"));
        cmd.args([
            "serve",
            "--bind",
            "127.0.0.1:1",
            "--db",
            cloud.to_str().unwrap(),
        ])
        .args(extra)
        .env_remove("TETHER_TOKENS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run tether");
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = serve(&["--jwt-secret-env", "TETHER_TEST_NO_SUCH_VAR"], &[]);
    assert!(err.contains("the variable is not set"), "{err}");
    let err = serve(&["--jwt-secret-env", "S"], &[("S", "short")]);
    assert!(err.contains("at least 32 bytes"), "{err}");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, r#"{"keys": []}"#).unwrap();
    let err = serve(&["--jwks", jwks.to_str().unwrap()], &[]);
    assert!(err.contains("no keys"), "{err}");
    let err = serve(&[], &[]);
    assert!(err.contains("no tokens"), "{err}");
}

#[test]
fn sync_every_takes_a_duration() {
    for (bad, why) in [
        ("15x", "the unit must be ms, s, m or h"),
        ("0s", "above 0"),
        ("m", "not a duration"),
    ] {
        let out = tether(&[
            "sync",
            "--remote",
            "http://127.0.0.1:1",
            "--token",
            "t",
            "--every",
            bad,
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{bad}: {err}");
    }
}

/// `tether sync --dry-run` against a real `tether serve`: it reports what the sync would do
/// (inserts, updates, the local edit that would conflict), writes nothing, and the real sync
/// that follows does exactly that.
#[test]
fn sync_dry_run_reports_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cloud = dir.path().join("cloud.db");
    let (_server, url) = support::serve(&["--db", cloud.to_str().unwrap()]);
    let db = dir.path().join("r.db");
    let db = db.to_str().unwrap();
    let remote = ["--remote", url.as_str(), "--token", "t", "--scope", "s"];
    let with = |cmd: &[&str], extra: &[&str]| -> Vec<String> {
        cmd.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        stdout(&tether(&args))
    };
    run(with(&["seed", "--records", "40"], &remote));
    run(with(&["sync", "--db", db], &remote));
    // The cloud changes: a generator of another seed rewrites the 40 and adds 10; locally, one
    // record is edited, so the cloud's change of it will win and journal the edit.
    run(with(&["seed", "--records", "50", "--seed", "8"], &remote));
    let listed = run(vec![
        "list".into(),
        "--db".into(),
        db.into(),
        "--scope".into(),
        "s".into(),
        "objects".into(),
    ]);
    let id = listed
        .lines()
        .next()
        .and_then(|l| l.split('\t').next())
        .expect("an object")
        .to_owned();
    run(vec![
        "put".into(),
        "--db".into(),
        db.into(),
        "--scope".into(),
        "s".into(),
        "objects".into(),
        id.clone(),
        r#"{"mine": true}"#.into(),
    ]);
    let status_before = run(vec![
        "status".into(),
        "--db".into(),
        db.into(),
        "--scope".into(),
        "s".into(),
        "--json".into(),
    ]);

    let preview = run(with(&["sync", "--db", db, "--dry-run"], &remote));
    assert!(preview.ends_with("nothing was written\n"), "{preview}");
    assert!(
        preview.starts_with("an incremental sync of s would insert "),
        "{preview}"
    );
    assert!(
        preview.contains(&format!("  conflict: objects/{id}")),
        "{preview}"
    );
    let number = |after: &str| -> u64 {
        let at = preview
            .find(after)
            .unwrap_or_else(|| panic!("{after:?} in {preview}"))
            + after.len();
        preview[at..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (inserts, updates, conflicts) = (
        number("would insert "),
        number("update "),
        number("edits; "),
    );
    assert_eq!(inserts, 10, "{preview}");
    assert!(updates > 0, "{preview}");
    assert_eq!(conflicts, 1, "{preview}");
    let status_after = run(vec![
        "status".into(),
        "--db".into(),
        db.into(),
        "--scope".into(),
        "s".into(),
        "--json".into(),
    ]);
    assert_eq!(status_before, status_after, "a dry run writes nothing");

    run(with(&["sync", "--db", db], &remote));
    let history = run(vec![
        "history".into(),
        "--db".into(),
        db.into(),
        "--scope".into(),
        "s".into(),
    ]);
    assert_eq!(
        history.lines().count(),
        3,
        "the dry run is not a run: {history}"
    );
    let stats: serde_json::Value = serde_json::from_str(&run(vec![
        "stats".into(),
        "--db".into(),
        db.into(),
        "--scope".into(),
        "s".into(),
        "--json".into(),
    ]))
    .unwrap();
    assert_eq!(stats["inserted"], 40 + inserts, "{stats}");
    assert_eq!(stats["updated"], updates, "{stats}");
    assert_eq!(stats["conflicts"], conflicts, "{stats}");
}

/// `tether list ... | head -n 1`: a reader that closes the pipe early ends the command quietly
/// (exit 0, no panic message), whichever command was printing.
#[test]
fn a_closed_stdout_ends_commands_quietly() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let dir_arg = dir.path().to_str().unwrap();
    stdout(&tether(&["demo", "--records", "300", "--dir", dir_arg]));
    let db = dir.path().join("replica.db");
    let db_arg = db.to_str().unwrap();
    let commands: [&[&str]; 5] = [
        &["list", "--db", db_arg, "objects", "--limit", "300"],
        &["history", "--db", db_arg],
        &["status", "--db", db_arg],
        &["status", "--db", db_arg, "--json"],
        &["conflicts", "--db", db_arg],
    ];
    for args in commands {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The reader is gone before the command prints its first line.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

/// Issue 18, item 3, as it was reported: `tether serve` under a small `ulimit -n` with 300
/// idle sockets open. `accept` runs out of descriptors; the server sheds idle connections,
/// backs off and keeps accepting, and a legitimate request is answered.
#[test]
fn serve_answers_with_its_descriptors_used_up_by_idle_sockets() {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let db = dir.path().join("cloud.db");
    let mut server = Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 64 && exec "$@""#)
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_tether"))
        .args(["serve", "--bind", &bind, "--dev-token", "t"])
        .arg("--db")
        .arg(&db)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://{bind}");
    let status = || {
        ureq3::get(&format!("{url}/v1/scopes/s1/status"))
            .header("authorization", "Bearer t")
            .config()
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .call()
            .map(|r| r.status().as_u16())
            .ok()
    };
    let started = Instant::now();
    while status().is_none() {
        assert!(started.elapsed() < Duration::from_secs(20), "no server");
        std::thread::sleep(Duration::from_millis(50));
    }
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&bind).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    for _ in 0..5 {
        assert_eq!(status(), Some(200));
    }
    let took = t.elapsed();
    drop(idle);
    let _ = server.kill();
    let mut stderr = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let _ = server.wait();
    eprintln!("5 requests under ulimit -n 64 with 300 idle sockets: {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        stderr.contains("accept failed"),
        "the limit was reached: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
