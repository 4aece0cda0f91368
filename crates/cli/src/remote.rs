//! Commands that talk to a tether server over HTTP, or run one: `serve`, `sync`, `verify`,
//! `seed`, and the local record commands `get`, `list`, `put`, `delete`.

use std::path::PathBuf;
use std::process::ExitCode;

use tether_engine::{Error, Result, SyncOptions};
use tether_dataset::Dataset;
use tether_native::http::HttpRemote;
use tether_native::Replica;
use tether_server::{Config, StorageConfig, Tokens};

use crate::progress::Bar;

/// Options of `tether serve`.
#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: std::net::SocketAddr,
    /// SQLite database file of the cloud (the default storage).
    #[arg(long, default_value = "./tether-cloud.db")]
    db: PathBuf,
    /// PostgreSQL URL; when given, used instead of --db.
    #[arg(long)]
    database_url: Option<String>,
    /// JSON file of tokens: {"<token>": {"scopes": ["org-1"], "admin": false}}. Without it,
    /// the JSON in $TETHER_TOKENS, else --dev-token.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// A single token granting every scope, admin included (for local use only).
    #[arg(long)]
    dev_token: Option<String>,
    /// Serve this directory's files at /demo.
    #[arg(long)]
    demo_dir: Option<PathBuf>,
    /// Allow browser pages of this origin to call the API (CORS); repeatable; `*` for any.
    #[arg(long = "cors-origin")]
    cors_origins: Vec<String>,
}

/// Which server, token, scope and replica.
#[derive(clap::Args)]
pub struct RemoteArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    remote: String,
    /// Bearer token.
    #[arg(long)]
    token: String,
    /// The scope.
    #[arg(long, default_value = "org-1")]
    scope: String,
    /// The replica file.
    #[arg(long, default_value = "./replica.db")]
    db: PathBuf,
}

/// Options of `tether sync`.
#[derive(clap::Args)]
pub struct SyncArgs {
    #[command(flatten)]
    target: RemoteArgs,
    /// Changes per page.
    #[arg(long, default_value_t = 1000)]
    page_size: u32,
    /// Download the scope in full under a new generation.
    #[arg(long)]
    full: bool,
}

/// Options of `tether verify`.
#[derive(clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    target: RemoteArgs,
    /// Fix differing key ranges in place (cloud wins).
    #[arg(long)]
    repair: bool,
}

/// Options of `tether seed`.
#[derive(clap::Args)]
pub struct SeedArgs {
    /// Base URL of the server.
    #[arg(long)]
    remote: String,
    /// An admin token.
    #[arg(long)]
    token: String,
    /// The scope.
    #[arg(long, default_value = "org-1")]
    scope: String,
    /// Records to generate.
    #[arg(long, default_value_t = 10_000)]
    records: u64,
    /// Generator seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

/// A replica file and scope, for local reads and edits.
#[derive(clap::Args)]
pub struct LocalArgs {
    /// The replica file.
    #[arg(long, default_value = "./replica.db")]
    db: PathBuf,
    /// The scope.
    #[arg(long, default_value = "org-1")]
    scope: String,
}

/// Options of `tether get` and `tether delete`.
#[derive(clap::Args)]
pub struct KeyArgs {
    #[command(flatten)]
    local: LocalArgs,
    /// Collection.
    collection: String,
    /// Id.
    id: String,
}

/// Options of `tether put`.
#[derive(clap::Args)]
pub struct PutArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The record's data, a JSON object.
    data: String,
}

/// Options of `tether list`.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    local: LocalArgs,
    /// Collection.
    collection: String,
    /// Records to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

pub fn serve(a: &ServeArgs) -> Result<ExitCode> {
    let tokens = match (&a.tokens, &a.dev_token) {
        (Some(path), _) => Tokens::from_file(path),
        (None, Some(t)) => Ok(Tokens::default().grant(t, &["*"], true)),
        (None, None) => Tokens::from_env("TETHER_TOKENS").and_then(|t| {
            t.ok_or_else(|| {
                tether_server::ServerError::Config(
                    "no tokens: pass --tokens FILE, --dev-token T, or set TETHER_TOKENS".into(),
                )
            })
        }),
    }
    .map_err(|e| Error::invalid(e.to_string()))?;
    let storage = match &a.database_url {
        Some(url) => StorageConfig::Postgres {
            url: url.clone(),
            schema: None,
            pool_size: 8,
        },
        None => StorageConfig::Sqlite { path: a.db.clone() },
    };
    let mut config = Config::new(a.bind, storage, tokens);
    config.demo_dir = a.demo_dir.clone();
    config.cors_origins = a.cors_origins.clone();
    let rt = tokio::runtime::Runtime::new().map_err(Error::storage)?;
    rt.block_on(async {
        let server = tether_server::serve(config)
            .await
            .map_err(|e| Error::storage(e.to_string()))?;
        eprintln!(
            "tether server listening on {} (Ctrl-C to stop)",
            server.url()
        );
        let _ = tokio::signal::ctrl_c().await;
        server.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn sync(a: &SyncArgs) -> Result<ExitCode> {
    let t = &a.target;
    let replica = Replica::open(&t.db)?;
    let scope = replica.scope(&t.scope)?;
    let remote = HttpRemote::new(&t.remote, &t.token);
    let bar = Bar::new("sync");
    let progress = |p: &tether_engine::Progress| bar.event(p);
    let report = scope.sync(
        &remote,
        SyncOptions {
            page_size: a.page_size,
            full: a.full,
            progress: Some(&progress),
            ..SyncOptions::default()
        },
    );
    bar.finish();
    let report = report?;
    let c = report.run.counts;
    println!(
        "{:?} sync of {}: {} pages, {} inserted, {} updated, {} deleted, {} unchanged, {} conflicts, {} bytes",
        report.run.kind, t.scope, report.run.pages, c.inserted, c.updated, c.deleted,
        c.unchanged, c.conflicts, report.run.bytes_received
    );
    println!(
        "verified: {} records, digest {}",
        report.snapshot.count, report.snapshot.digest
    );
    Ok(ExitCode::SUCCESS)
}

pub fn verify(a: &VerifyArgs) -> Result<ExitCode> {
    let t = &a.target;
    let replica = Replica::open(&t.db)?;
    let report = replica
        .scope(&t.scope)?
        .verify(&HttpRemote::new(&t.remote, &t.token), a.repair)?;
    println!(
        "cloud: {} records, digest {}\nlocal: {} records, digest {}",
        report.cloud.count, report.cloud.digest, report.local.count, report.local.digest
    );
    if a.repair && !report.matched {
        println!("repaired {} rows", report.repaired);
    }
    println!(
        "{}",
        if report.matches_now {
            "match"
        } else {
            "MISMATCH"
        }
    );
    Ok(if report.matches_now {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn seed(a: &SeedArgs) -> Result<ExitCode> {
    let ds = Dataset::new(a.seed, a.records);
    let mut batch = Vec::new();
    for i in 0..a.records {
        let r = ds.record(i);
        batch.push(serde_json::json!({"collection": r.collection, "id": r.id, "data": r.data}));
        if batch.len() == 5000 || i + 1 == a.records {
            admin_write(
                &a.remote,
                &a.token,
                &a.scope,
                std::mem::take(&mut batch),
                Vec::new(),
            )?;
        }
    }
    println!("seeded {} records into scope {}", a.records, a.scope);
    Ok(ExitCode::SUCCESS)
}

/// Writes the cloud's own data through the server's admin API: `upserts` are
/// `{collection, id, data}` objects, `deletes` `{collection, id}` objects.
pub fn admin_write(
    base: &str,
    token: &str,
    scope: &str,
    upserts: Vec<serde_json::Value>,
    deletes: Vec<serde_json::Value>,
) -> Result<()> {
    let url = format!(
        "{}/v1/admin/scopes/{scope}/records",
        base.trim_end_matches('/')
    );
    ureq::post(&url)
        .set("authorization", &format!("Bearer {token}"))
        .send_json(serde_json::json!({ "upserts": upserts, "deletes": deletes }))
        .map_err(|e| match e {
            ureq::Error::Status(s @ (401 | 403), _) => Error::Auth {
                message: format!("writing to {url}: HTTP {s}"),
                status: Some(s),
            },
            e => Error::network(format!("writing to {url}: {e}")),
        })?;
    Ok(())
}

fn local(l: &LocalArgs) -> Result<Replica> {
    Replica::open(&l.db)
}

pub fn get(k: &KeyArgs) -> Result<ExitCode> {
    let replica = local(&k.local)?;
    match replica.scope(&k.local.scope)?.get(&k.collection, &k.id)? {
        Some(r) => {
            println!("{}", serde_json::Value::Object(r.data));
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("no record {}/{}", k.collection, k.id);
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn list(l: &ListArgs) -> Result<ExitCode> {
    let replica = local(&l.local)?;
    for r in replica
        .scope(&l.local.scope)?
        .list(&l.collection, None, l.limit)?
    {
        println!("{}\t{}", r.id, serde_json::Value::Object(r.data));
    }
    Ok(ExitCode::SUCCESS)
}

pub fn put(p: &PutArgs) -> Result<ExitCode> {
    let data: serde_json::Value = serde_json::from_str(&p.data)
        .map_err(|e| Error::invalid(format!("data is not JSON: {e}")))?;
    let replica = local(&p.key.local)?;
    replica
        .scope(&p.key.local.scope)?
        .put(&p.key.collection, &p.key.id, data)?;
    println!("saved locally; `tether sync` pushes it");
    Ok(ExitCode::SUCCESS)
}

pub fn delete(k: &KeyArgs) -> Result<ExitCode> {
    let replica = local(&k.local)?;
    replica
        .scope(&k.local.scope)?
        .delete(&k.collection, &k.id)?;
    println!("deleted locally; `tether sync` pushes it");
    Ok(ExitCode::SUCCESS)
}
