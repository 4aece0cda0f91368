//! `tether get`, `list`, `put`, `delete`: local reads and edits of a replica file, no network
//! (the next `tether sync` pushes edits).

use std::process::ExitCode;

use crate::args::ReplicaArgs;
use crate::error::{CliError, Result};

/// Options of `tether get` and `tether delete`.
#[derive(clap::Args)]
pub(crate) struct KeyArgs {
    #[command(flatten)]
    replica: ReplicaArgs,
    /// Collection.
    collection: String,
    /// Id.
    id: String,
}

/// Options of `tether put`.
#[derive(clap::Args)]
pub(crate) struct PutArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The record's data, a JSON object.
    data: String,
}

/// Options of `tether list`.
#[derive(clap::Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    replica: ReplicaArgs,
    /// Collection.
    collection: String,
    /// Records to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
}

pub(crate) fn get(k: &KeyArgs) -> Result<ExitCode> {
    let replica = k.replica.open_existing()?;
    match replica.scope(&k.replica.scope)?.get(&k.collection, &k.id)? {
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

pub(crate) fn list(l: &ListArgs) -> Result<ExitCode> {
    let replica = l.replica.open_existing()?;
    for r in replica
        .scope(&l.replica.scope)?
        .list(&l.collection, None, l.limit)?
    {
        println!("{}\t{}", r.id, serde_json::Value::Object(r.data));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn put(p: &PutArgs) -> Result<ExitCode> {
    let data: serde_json::Value = serde_json::from_str(&p.data)
        .map_err(|e| CliError::Usage(format!("data is not JSON: {e}")))?;
    let replica = p.key.replica.open()?;
    replica
        .scope(&p.key.replica.scope)?
        .put(&p.key.collection, &p.key.id, data)?;
    println!("saved locally; `tether sync` pushes it");
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn delete(k: &KeyArgs) -> Result<ExitCode> {
    let replica = k.replica.open_existing()?;
    replica
        .scope(&k.replica.scope)?
        .delete(&k.collection, &k.id)?;
    println!("deleted locally; `tether sync` pushes it");
    Ok(ExitCode::SUCCESS)
}
