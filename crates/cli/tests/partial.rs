//! A partial replica end to end over HTTP, on both storages of the reference server:
//! `tether sync --only files:repository=...` on the demo dataset holds exactly the cloud's
//! matching files, follows a file moved to another repository out, and verifies; `--all`
//! makes it whole again.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Output};

fn tether(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tether"))
        .args(args)
        .output()
        .expect("run tether")
}

fn stdout(out: Output) -> String {
    assert!(
        out.status.success(),
        "tether failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The files a replica holds: id and repository.
fn files(db: &str) -> BTreeSet<(String, String)> {
    stdout(tether(&[
        "list", "--db", db, "--scope", "org-1", "--limit", "100000", "files",
    ]))
    .lines()
    .map(|line| {
        let (id, data) = line.split_once('\t').expect("id and data");
        let data: serde_json::Value = serde_json::from_str(data).unwrap();
        (
            id.to_owned(),
            data["repository"].as_str().unwrap().to_owned(),
        )
    })
    .collect()
}

fn partial_replica_follows_the_cloud(storage: &[&str]) {
    let mut args = vec!["--filter-index", "files:repository"];
    args.extend_from_slice(storage);
    let (_server, url) = support::serve(&args);
    let dir = tempfile::tempdir().unwrap();
    let (whole, part) = (dir.path().join("whole.db"), dir.path().join("part.db"));
    let (whole, part) = (whole.to_str().unwrap(), part.to_str().unwrap());
    let remote = ["--remote", url.as_str(), "--token", "t", "--scope", "org-1"];
    let run = |args: &[&str]| stdout(tether(&[args, &remote[..]].concat()));
    run(&["seed", "--records", "2000"]);
    let wanted = ["repo_000003", "repo_000011"];
    let only = format!("files:repository={}", wanted.join(","));
    // A dry run changes nothing, subscriptions included: it refuses them.
    let dry = tether(
        &[
            &["sync", "--db", part, "--dry-run", "--only", &only][..],
            &remote[..],
        ]
        .concat(),
    );
    assert_eq!(dry.status.code(), Some(2), "a usage error");
    let out = run(&["sync", "--db", part, "--only", &only]);
    assert!(
        out.contains("each verified against the cloud's subset"),
        "{out}"
    );
    run(&["sync", "--db", whole]);
    let matching = |db: &str| -> BTreeSet<(String, String)> {
        files(db)
            .into_iter()
            .filter(|(_, repo)| wanted.contains(&repo.as_str()))
            .collect()
    };
    let held = files(part);
    assert!(held.len() >= 2, "{held:?}");
    assert_eq!(held, matching(whole));
    let other = stdout(tether(&[
        "list", "--db", part, "--scope", "org-1", "objects",
    ]));
    assert!(other.is_empty(), "no objects: {other}");

    // The cloud moves one of the files to another repository and adds one to a wanted one.
    let (moved, _) = held.iter().next().unwrap().clone();
    let body = serde_json::json!({
        "upserts": [
            {"collection": "files", "id": moved, "data": {"repository": "repo_000004"}},
            {"collection": "files", "id": "file_new", "data": {"repository": "repo_000011"}},
        ],
        "deletes": [],
    });
    ureq3::post(format!("{url}/v1/admin/scopes/org-1/records"))
        .header("authorization", "Bearer t")
        .header("content-type", "application/json")
        .send(body.to_string().as_bytes())
        .expect("admin write");
    run(&["sync", "--db", part]);
    run(&["sync", "--db", whole]);
    let held = files(part);
    assert!(
        !held.iter().any(|(id, _)| *id == moved),
        "{moved} moved out"
    );
    assert!(held.iter().any(|(id, _)| id == "file_new"));
    assert_eq!(held, matching(whole));
    let verified = run(&["verify", "--db", part]);
    assert!(verified.ends_with("match\n"), "{verified}");
    let status = stdout(tether(&["status", "--db", part, "--scope", "org-1"]));
    assert!(
        status.contains("subscription     {\"collection\":\"files\""),
        "{status}"
    );

    // Whole again: it downloads the rest and equals the whole replica.
    let out = run(&["sync", "--db", part, "--all"]);
    assert!(out.contains("verified: "), "{out}");
    assert_eq!(files(part), files(whole));
}

#[test]
fn a_partial_replica_on_sqlite_storage() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cloud.db");
    partial_replica_follows_the_cloud(&["--db", db.to_str().unwrap()]);
}

#[test]
fn a_partial_replica_on_postgres_storage() {
    let Some(url) = support::postgres("a_partial_replica_on_postgres_storage") else {
        return;
    };
    let schema = format!("partial_e2e_{}", std::process::id());
    partial_replica_follows_the_cloud(&["--database-url", &url, "--database-schema", &schema]);
    let _ = Command::new("psql")
        .args([
            url.as_str(),
            "-qc",
            &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
        ])
        .output();
}
