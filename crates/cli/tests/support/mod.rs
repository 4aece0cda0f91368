//! What the CLI's tests share: a `tether serve` on loopback, and the PostgreSQL URL of the
//! tests that need one.

#![allow(dead_code)]

use std::io::Write as _;
use std::process::{Child, Command, Stdio};

/// A running `tether serve`, killed when dropped.
pub(crate) struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `tether serve --dev-token t` on a free loopback port with `args` added, waits until
/// it listens, and returns it with its base URL.
pub(crate) fn serve(args: &[&str]) -> (Server, String) {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(["serve", "--bind", &addr, "--dev-token", "t"])
        .args(args)
        .env_remove("TETHER_TOKENS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tether serve");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never listened"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited: {status}");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (Server(child), format!("http://{addr}"))
}

/// `TETHER_TEST_PG`, a superuser URL; `None` (the test says it skipped) when it is not set,
/// which fails the test instead where PostgreSQL is required (CI, `TETHER_REQUIRE_POSTGRES`).
pub(crate) fn postgres(test: &str) -> Option<String> {
    if let Some(url) = std::env::var("TETHER_TEST_PG")
        .ok()
        .filter(|u| !u.is_empty())
    {
        return Some(url);
    }
    let required = ["CI", "TETHER_REQUIRE_POSTGRES"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|v| v == "1" || v == "true"));
    assert!(
        !required,
        "TETHER_TEST_PG is not set, and PostgreSQL is required here"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: TETHER_TEST_PG is not set (`source scripts/ci/setup.sh && \
         ensure_postgres` sets it)"
    );
    None
}
