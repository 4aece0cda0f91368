//! What the cross-crate scenarios share on the client side (included by path, like the
//! server's harness).

use std::time::Duration;

use tether_native::http::{HttpOptions, HttpRemote, RetryPolicy};

/// An HTTP remote with fast retries (2, from 20 ms), for tests against a loopback server.
pub(crate) fn remote(url: &str, token: &str) -> HttpRemote {
    HttpRemote::with_options(
        url,
        token,
        HttpOptions {
            retry: RetryPolicy {
                retries: 2,
                backoff_base_ms: 20,
                ..RetryPolicy::default()
            },
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            ..HttpOptions::default()
        },
    )
}
