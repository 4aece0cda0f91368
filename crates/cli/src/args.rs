//! Options shared by several commands.

use std::path::PathBuf;

use tether_native::http::{CaCerts, HttpOptions, HttpRemote};
use tether_native::Replica;

use crate::admin::Admin;
use crate::error::{CliError, Result};

/// The replica file every command uses unless `--db` says otherwise. `tether demo` writes its
/// own replica under `--dir` (default `./tether-demo/replica.db`) and prints the `--db` to
/// inspect it with.
pub(crate) const DEFAULT_REPLICA: &str = "./replica.db";

/// Which replica file, and which scope of it.
#[derive(clap::Args)]
pub(crate) struct ReplicaArgs {
    /// The replica file (a SQLite database).
    #[arg(long, default_value = DEFAULT_REPLICA)]
    pub db: PathBuf,
    /// The scope.
    #[arg(long, default_value = "org-1")]
    pub scope: String,
}

impl ReplicaArgs {
    /// Opens the replica, creating the file if it is missing (for `sync` and `put`).
    pub(crate) fn open(&self) -> Result<Replica> {
        Ok(Replica::open(&self.db)?)
    }

    /// Opens an existing replica: reading a file that is not there must not create it.
    pub(crate) fn open_existing(&self) -> Result<Replica> {
        if !self.db.exists() {
            return Err(CliError::Usage(format!(
                "no replica at {} (run `tether sync`, or pass --db)",
                self.db.display()
            )));
        }
        self.open()
    }
}

/// Which server, with which token.
#[derive(clap::Args)]
pub(crate) struct ServerArgs {
    /// Base URL of the server, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub remote: String,
    /// Bearer token; better from $TETHER_TOKEN (a token on the command line is visible to
    /// every user of the machine).
    #[arg(long, env = "TETHER_TOKEN", hide_env_values = true)]
    pub token: String,
    /// PEM file of the CA that signed an https server's certificate (a private cloud's), trusted
    /// instead of the public roots.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

impl ServerArgs {
    /// The sync protocol's client of the server; a --ca-cert that cannot be read or parsed is
    /// an `InvalidInput` error before anything is sent.
    pub(crate) fn http(&self) -> Result<HttpRemote> {
        let options = HttpOptions {
            ca_certs: self.ca_certs()?,
            ..HttpOptions::default()
        };
        Ok(HttpRemote::with_options(&self.remote, &self.token, options))
    }

    /// The admin API's client of the server, trusting the same CA.
    pub(crate) fn admin(&self) -> Result<Admin> {
        Ok(Admin::with_ca(
            &self.remote,
            &self.token,
            self.ca_certs()?.as_ref(),
        ))
    }

    fn ca_certs(&self) -> Result<Option<CaCerts>> {
        Ok(self
            .ca_cert
            .as_deref()
            .map(CaCerts::from_pem_file)
            .transpose()?)
    }
}
