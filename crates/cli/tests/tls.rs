//! `tether serve --tls-cert --tls-key` and the commands that talk to it over https with
//! `--ca-cert`, as a user runs them: a certificate signed by a CA made here (rcgen).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tether(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .env_remove("TETHER_TOKEN")
        .output()
        .expect("run tether")
}

/// Writes `ca.pem` (a CA), `cert.pem` and `key.pem` (a certificate it signed for 127.0.0.1).
fn write_pki(dir: &Path) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca =
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sync_over_https_with_ca_cert() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let file = |name: &str| dir.path().join(name).to_str().unwrap().to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("https://{addr}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_tether"))
        .args([
            "serve",
            "--bind",
            &addr,
            "--db",
            &file("cloud.db"),
            "--dev-token",
            "t",
        ])
        .args([
            "--tls-cert",
            &file("cert.pem"),
            "--tls-key",
            &file("key.pem"),
        ])
        .env_remove("TETHER_TOKENS")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tether serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the server never listened");
        if let Ok(Some(status)) = server.try_wait() {
            panic!("the server exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _server = Kill(server);
    let (ca, db) = (file("ca.pem"), file("r.db"));
    let remote = ["--remote", url.as_str(), "--token", "t", "--scope", "s"];
    let run = |args: &[&str]| {
        let out = tether(&[args, &remote].concat());
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.success(), text(&out.stdout), text(&out.stderr))
    };

    let (ok, out, err) = run(&["seed", "--records", "30", "--ca-cert", &ca]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = run(&["sync", "--db", &db, "--ca-cert", &ca]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("verified: 30 records"), "{out}");
    let (ok, out, err) = run(&["verify", "--db", &db, "--ca-cert", &ca]);
    assert!(ok && out.ends_with("match\n"), "{out}{err}");

    // Without the CA: the server's certificate is not trusted; say so once and what to do.
    let started = Instant::now();
    let (ok, _, err) = run(&["sync", "--db", &db]);
    assert!(!ok);
    assert!(err.starts_with("error [InvalidInput]"), "{err}");
    assert!(
        err.contains("not trusted") && err.contains("--ca-cert"),
        "{err}"
    );
    assert!(!err.contains("attempts"), "not retried: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "not retried: {err}"
    );

    // A --ca-cert that is not a certificate is refused before the replica file is created.
    let fresh = file("fresh.db");
    let (ok, _, err) = run(&["sync", "--db", &fresh, "--ca-cert", &file("key.pem")]);
    assert!(!ok);
    assert!(err.starts_with("error [InvalidInput]"), "{err}");
    assert!(err.contains("no PEM certificate"), "{err}");
    assert!(!Path::new(&fresh).exists());
}
