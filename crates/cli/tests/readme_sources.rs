//! The README's "Sync an existing PostgreSQL schema", run as written: its SQL and shell blocks
//! are read from README.md and run with psql and bash in a fresh database, with
//! `cargo run --release -p tether-cli --` standing for this build's binary and the server on a
//! free port instead of 8080. Needs `TETHER_TEST_PG` (a superuser URL, as
//! `scripts/ci/setup.sh`'s `ensure_postgres` exports) and psql; in CI a missing one fails.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SECTION: &str = "## Sync an existing PostgreSQL schema";
const DATABASE: &str = "tether_readme";

/// The fenced blocks of the README's section, by language, in order.
fn blocks() -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let start = readme.find(SECTION).expect("the README section");
    let rest = &readme[start + SECTION.len()..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    let mut out = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```").filter(|l| !l.is_empty()) {
            let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
            out.push((lang.to_string(), body.join("\n") + "\n"));
        }
    }
    out
}

fn psql(url: &str, sql: &str) {
    let mut child = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("psql (apt's postgresql-client)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(sql.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "psql failed: {sql}");
}

/// `url` with another database, and optionally another user and password.
fn with(url: &str, user: Option<&str>, db: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (auth, hostpath) = rest.rsplit_once('@').unwrap_or(("", rest));
    let host = hostpath.split('/').next().unwrap();
    let auth = user.map_or(auth.to_string(), str::to_string);
    format!("{scheme}://{auth}@{host}/{db}")
}

fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn the_readme_syncs_an_existing_postgresql_schema() {
    let Some(admin) = support::postgres("readme_sources") else {
        return;
    };
    let blocks = blocks();
    let sql = &blocks
        .iter()
        .find(|(l, _)| l == "sql")
        .expect("an sql block")
        .1;
    let sh = &blocks
        .iter()
        .find(|(l, _)| l == "sh")
        .expect("an sh block")
        .1;

    psql(
        &admin,
        &format!(
            "DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE); DROP ROLE IF EXISTS tether_sync;"
        ),
    );
    psql(&admin, &format!("CREATE DATABASE {DATABASE}"));
    let database_url = with(&admin, None, DATABASE);
    let tether_url = with(&admin, Some("tether_sync:change-me"), DATABASE);
    psql(&database_url, sql);

    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let bin = format!("'{}'", env!("CARGO_BIN_EXE_tether"));
    let script = sh
        .replace("cargo run --release -p tether-cli --", &bin)
        .replace("127.0.0.1:8080", &addr);
    let lines: Vec<&str> = script.lines().collect();
    let serve = lines
        .iter()
        .position(|l| l.starts_with(&format!("{bin} serve")))
        .expect("a serve command");
    let dir = tempfile::tempdir().unwrap();
    let bash = |text: String| {
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", &text])
            .current_dir(dir.path())
            .env("DATABASE_URL", &database_url)
            .env("TETHER_DATABASE_URL", &tether_url)
            .env_remove("TETHER_TOKENS")
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "{text}\n{stdout}\n{stderr}");
        stdout
    };
    bash(lines[..serve].join("\n"));

    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(
        Command::new("bash")
            .args(["-c", &format!("exec {} --bind {addr}", lines[serve])])
            .current_dir(dir.path())
            .env("DATABASE_URL", &database_url)
            .env("TETHER_DATABASE_URL", &tether_url)
            .env_remove("TETHER_TOKENS")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Ready, and the table's first rows sent.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = get(&addr, "/readyz").unwrap_or_default();
        if ready.contains("\"state\":\"live\"") && ready.contains("\"backlog\":0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server never got ready: {ready}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = bash(lines[serve + 1..].join("\n"));
    let first = out
        .find("\"orders\"")
        .expect("the first list shows the row");
    let second = out
        .find("\"orders_v2\"")
        .expect("the second list shows the update");
    assert!(first < second, "{out}");
    assert!(out.contains("match"), "verify: {out}");
    assert!(
        !out.contains("invoices"),
        "a row of another organization: {out}"
    );
    assert!(
        !out.contains("internal_notes"),
        "the excluded column: {out}"
    );

    drop(_server);
    psql(
        &admin,
        &format!(
            "DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE); DROP ROLE IF EXISTS tether_sync;"
        ),
    );
}
