//! The change listener of live pulls: one connection per instance that `LISTEN`s to the
//! triggers' notifications and wakes this instance's waiters.

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::NoTls;

use crate::live::ChangeHub;

/// The channel the triggers notify on; the payload is `schema:scope`.
const CHANNEL: &str = "tether_changes";

/// Passes the triggers' notifications of this schema to `hub`, on its own connection,
/// reconnecting with backoff; after a reconnect every waiter is woken (commits may have gone
/// unseen meanwhile).
pub(super) async fn listen_loop(
    config: tokio_postgres::Config,
    schema: String,
    hub: Arc<ChangeHub>,
) {
    use futures_util::StreamExt;
    let prefix = format!("{schema}:");
    let mut backoff = Duration::from_millis(100);
    loop {
        match config.connect(NoTls).await {
            Ok((client, mut connection)) => {
                let mut messages =
                    futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                let statement = format!("LISTEN {CHANNEL}");
                let listen = client.batch_execute(&statement);
                tokio::pin!(listen);
                let mut listening = false;
                loop {
                    tokio::select! {
                        done = &mut listen, if !listening => match done {
                            Ok(()) => {
                                listening = true;
                                backoff = Duration::from_millis(100);
                                hub.notify_all();
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "LISTEN failed");
                                break;
                            }
                        },
                        message = messages.next() => match message {
                            Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                                if let Some(scope) = n.payload().strip_prefix(&prefix) {
                                    hub.notify(scope);
                                }
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, "change listener connection lost");
                                break;
                            }
                            None => break,
                        },
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "change listener cannot connect"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}
