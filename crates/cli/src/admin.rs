//! A client of the server's admin API (`POST /v1/admin/scopes/{scope}/records`): the cloud's
//! own writes, which `seed` and `demo` use to load and change the generated dataset.

use serde_json::{json, Value};
use tether_dataset::{Dataset, GenRecord};
use tether_engine::protocol;
use tether_native::http::CaCerts;
use ureq3 as ureq;

use crate::error::{CliError, Result};

/// Records per admin request: well under the server's default body limit.
pub(crate) const BATCH: usize = 5000;

/// The admin API of one server, with one token.
pub(crate) struct Admin {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Admin {
    /// The server at `base` (e.g. `http://127.0.0.1:8080`), with an admin token.
    pub(crate) fn new(base: &str, token: &str) -> Self {
        Self::with_ca(base, token, None)
    }

    /// The same, trusting the CAs of `ca` (`--ca-cert`) instead of Mozilla's roots for an
    /// `https` server, as the sync's remote does.
    pub(crate) fn with_ca(base: &str, token: &str, ca: Option<&CaCerts>) -> Self {
        let roots = match ca {
            Some(ca) => ca
                .der()
                .map(|der| ureq::tls::Certificate::from_der(der).to_owned())
                .into(),
            None => ureq::tls::RootCerts::WebPki,
        };
        let agent = ureq::Agent::config_builder()
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .build()
            .new_agent();
        Admin {
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            agent,
        }
    }

    /// Writes records of `scope` in one request: `upserts` are `{collection, id, data}`
    /// objects, `deletes` `{collection, id}` objects.
    pub(crate) fn write(&self, scope: &str, upserts: &[Value], deletes: &[Value]) -> Result<()> {
        let url = format!(
            "{}/v1/admin/scopes/{}/records",
            self.base,
            protocol::encode(scope)
        );
        let body = json!({ "upserts": upserts, "deletes": deletes }).to_string();
        self.agent
            .post(&url)
            .header("authorization", &protocol::bearer(&self.token))
            .header("content-type", "application/json")
            .send(body.as_bytes())
            .map_err(|e| match e {
                ureq::Error::StatusCode(status) => CliError::Admin {
                    url: url.clone(),
                    status: Some(status),
                    message: format!("HTTP {status}"),
                },
                e => CliError::Admin {
                    url: url.clone(),
                    status: None,
                    message: e.to_string(),
                },
            })?;
        Ok(())
    }

    /// Upserts many records, [`BATCH`] per request.
    pub(crate) fn upsert_all(&self, scope: &str, upserts: &[Value]) -> Result<()> {
        upserts
            .chunks(BATCH)
            .try_for_each(|chunk| self.write(scope, chunk, &[]))
    }

    /// Deletes many records, [`BATCH`] per request.
    pub(crate) fn delete_all(&self, scope: &str, deletes: &[Value]) -> Result<()> {
        deletes
            .chunks(BATCH)
            .try_for_each(|chunk| self.write(scope, &[], chunk))
    }

    /// Loads records `0..dataset.len()` of the dataset into `scope`, generating one batch at
    /// a time so that a large dataset is never held in memory whole.
    pub(crate) fn seed(&self, scope: &str, dataset: &Dataset) -> Result<()> {
        let mut batch = Vec::with_capacity(BATCH);
        for record in dataset.iter() {
            batch.push(upsert(&record));
            if batch.len() == BATCH {
                self.write(scope, &batch, &[])?;
                batch.clear();
            }
        }
        if !batch.is_empty() {
            self.write(scope, &batch, &[])?;
        }
        Ok(())
    }
}

/// A generated record as an admin upsert.
pub(crate) fn upsert(r: &GenRecord) -> Value {
    json!({"collection": r.collection, "id": r.id, "data": r.data})
}

/// A generated record's key as an admin delete.
pub(crate) fn delete(r: &GenRecord) -> Value {
    json!({"collection": r.collection, "id": r.id})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against a real server: a scope that needs encoding stays one scope, and a seed of
    /// more than one batch arrives whole.
    #[test]
    fn seeds_a_scope_whose_name_needs_encoding() {
        use tether_native::{http::HttpRemote, Replica, SyncOptions};
        use tether_server::{Config, StorageConfig, Tokens};

        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        let config = Config::new(
            ([127, 0, 0, 1], 0).into(),
            StorageConfig::Sqlite {
                path: dir.path().join("cloud.db"),
            },
            Tokens::default().grant("t", &["*"], true),
        );
        let server = rt.block_on(tether_server::serve(config)).unwrap();
        let scope = "team a/b?c#é";
        let records = BATCH as u64 + 1;
        Admin::new(&format!("{}/", server.url()), "t")
            .seed(scope, &Dataset::new(3, records))
            .unwrap();

        let replica = Replica::open(dir.path().join("replica.db")).unwrap();
        let report = replica
            .scope(scope)
            .unwrap()
            .sync(&HttpRemote::new(&server.url(), "t"), SyncOptions::default())
            .unwrap();
        assert_eq!(report.snapshot.count, records);
        let other = replica
            .scope("team a")
            .unwrap()
            .sync(&HttpRemote::new(&server.url(), "t"), SyncOptions::default())
            .unwrap();
        assert_eq!(other.snapshot.count, 0, "the seed went to another scope");

        let err = Admin::new(&server.url(), "wrong")
            .write(scope, &[], &[])
            .unwrap_err();
        assert!(
            matches!(
                err,
                CliError::Admin {
                    status: Some(401),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(err.kind(), "Auth");
        rt.block_on(server.shutdown());
    }
}
