//! What triad's Redis apps (`triad stream`, the cluster) share, one layer below them.
//!
//! - [`connect`]: a [`ConnectionManager`] (redis-rs's multiplexed connection that reconnects by
//!   itself) with the time limits the apps need: a blocking `XREADGROUP` may wait, so replies
//!   get seconds, not redis-rs's default half second.
//! - [`ensure_group`]: a consumer group that exists, whatever state the stream is in.
//! - [`group`]: reads through a consumer group, claims, delivery counts.
//! - [`server::RedisServer`]: a real `redis-server` on a free loopback port in a temporary
//!   directory, for tests and benchmarks (never a mock).

pub mod group;
pub mod server;

use std::time::Duration;

pub use redis;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError};

/// How long one command's reply may take (a blocking read asks for less than this).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest pause between two tries to reach a Redis that went away.
pub const MOST_BACKOFF: Duration = Duration::from_secs(2);

/// Why Redis could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL is not a Redis URL.
    #[error("{url} is not a Redis URL ({source})")]
    Url {
        /// What was given.
        url: String,
        /// Why.
        #[source]
        source: RedisError,
    },
    /// Redis did not answer, or refused.
    #[error("Redis at {url}: {source}")]
    Redis {
        /// Where.
        url: String,
        /// Why.
        #[source]
        source: RedisError,
    },
}

/// A client for `url` (nothing is connected yet).
pub fn client(url: &str) -> Result<redis::Client, Error> {
    redis::Client::open(url).map_err(|source| Error::Url {
        url: url.to_owned(),
        source,
    })
}

/// A connection to `url` that reconnects by itself, with triad's time limits; fails when
/// Redis cannot be reached now.
pub async fn connect(url: &str) -> Result<ConnectionManager, Error> {
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(REPLY_TIMEOUT))
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(2)
        .set_max_delay(MOST_BACKOFF);
    client(url)?
        .get_connection_manager_with_config(config)
        .await
        .map_err(|source| Error::Redis {
            url: url.to_owned(),
            source,
        })
}

/// Makes `group` exist on `stream` (creating the stream if need be), starting at `start` (`0`:
/// everything already in the stream; `$`: only what comes next). Whether it was created now.
pub async fn ensure_group(
    connection: &mut ConnectionManager,
    stream: &str,
    group: &str,
    start: &str,
) -> Result<bool, RedisError> {
    match connection
        .xgroup_create_mkstream::<_, _, _, ()>(stream, group, start)
        .await
    {
        Ok(()) => Ok(true),
        Err(error) if error.code() == Some("BUSYGROUP") => Ok(false),
        Err(error) => Err(error),
    }
}

/// The next pause after `previous` when retrying against a Redis that went away: doubling from
/// 50 ms up to [`MOST_BACKOFF`].
pub fn backoff(previous: Duration) -> Duration {
    (previous * 2).clamp(Duration::from_millis(50), MOST_BACKOFF)
}

/// Whether an error means "Redis is not there right now" (worth waiting out), rather than a
/// command Redis refused.
pub fn is_unreachable(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
        || error.code() == Some("LOADING")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_50_ms_to_2_s() {
        let mut pause = Duration::ZERO;
        let mut seen = Vec::new();
        for _ in 0..8 {
            pause = backoff(pause);
            seen.push(pause.as_millis());
        }
        assert_eq!(seen, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
    }

    #[test]
    fn a_url_that_is_not_redis_is_named() {
        let error = client("http://127.0.0.1:1").unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("http://127.0.0.1:1 is not a Redis URL")
        );
    }
}
