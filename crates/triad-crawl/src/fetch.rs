//! One URL fetched: reqwest on tokio, with retries, backoff, `Retry-After`, and a size cap.
//!
//! Redirects are not followed here: a 3xx comes back with its `Location`, and the crawler
//! queues the target like any link, so that scope, robots.txt, the seen set and the per-host
//! limits apply to every hop. Retries happen here, in the fetch's own slot of its host: a
//! connect error, a timeout, a 429 or a 5xx is tried again after an exponential backoff with
//! jitter, or after the server's `Retry-After`, which also pauses the whole host.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use url::Url;

/// How fetches behave: from the command's options.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Per attempt: connecting, headers and the whole body.
    pub timeout: Duration,
    /// Bodies are cut off past this many (decoded) bytes.
    pub max_bytes: usize,
    /// Attempts after the first.
    pub retries: u32,
    /// The first backoff; each later one doubles, up to [`MAX_BACKOFF`].
    pub backoff: Duration,
    /// Connections kept open per host.
    pub per_host: usize,
}

/// The longest backoff between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `Retry-After` waited for; a server asking for more gets its answer recorded.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// A fetched response (any status).
#[derive(Debug)]
pub struct Fetched {
    /// HTTP status.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Location` header, on a redirect.
    pub location: Option<String>,
    /// The body, decoded (gzip, brotli), at most `max_bytes`.
    pub body: Vec<u8>,
    /// The body was longer than `max_bytes` and was cut off.
    pub truncated: bool,
    /// Attempts made (1 without retries).
    pub attempts: u32,
}

/// Why a fetch gave no response, after its retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The attempt ran past `--timeout` (connect, headers or body).
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// No connection (refused, reset, DNS).
    #[error("could not connect: {0}")]
    Connect(String),
    /// The connection broke while the body came, or its encoding was corrupt.
    #[error("body failed: {0}")]
    Body(String),
    /// Any other failure of the request.
    #[error("{0}")]
    Other(String),
}

impl FetchError {
    /// A short stable name, for the output's `error.kind` and the summary.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Timeout(_) => "timeout",
            FetchError::Connect(_) => "connect",
            FetchError::Body(_) => "body",
            FetchError::Other(_) => "request",
        }
    }
}

/// A host's pause, set by a `Retry-After`: no fetch of that host starts before it.
pub type Pause = Arc<Mutex<Option<Instant>>>;

/// The HTTP client and its settings.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    config: FetchConfig,
}

impl Fetcher {
    /// A client with rustls (ring) for https, gzip and brotli, and no automatic redirects.
    pub fn new(config: FetchConfig) -> Result<Fetcher, String> {
        // ring, not rustls's default aws-lc-rs: aws-lc's C build would cost CI minutes, and
        // ring's lack of post-quantum key exchange (why rustls 0.23.48 deprecates it) does
        // not matter for fetching public pages. Installed once per process; a second call
        // finds it there, which is fine.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(config.per_host)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Fetcher { client, config })
    }

    /// Fetches `url`, retrying what is worth retrying; a retried 429 or 5xx that still fails
    /// comes back as that response.
    pub async fn fetch(&self, url: &Url, pause: &Pause) -> Result<Fetched, (FetchError, u32)> {
        let mut attempt = 1;
        loop {
            let last = attempt > self.config.retries;
            match self.once(url).await {
                Ok((mut fetched, retry_after)) => {
                    let retryable = fetched.status == 429 || fetched.status >= 500;
                    let wait = match retry_after {
                        Some(after) if after > MAX_RETRY_AFTER => None,
                        Some(after) => Some(after),
                        None => Some(self.backoff(attempt)),
                    };
                    match wait {
                        Some(wait) if retryable && !last => {
                            if retry_after.is_some() {
                                let until = Instant::now() + wait;
                                let mut p = pause.lock().unwrap_or_else(|e| e.into_inner());
                                *p = Some(p.map_or(until, |q| q.max(until)));
                            }
                            tokio::time::sleep(wait).await;
                        }
                        _ => {
                            fetched.attempts = attempt;
                            return Ok(fetched);
                        }
                    }
                }
                Err(e) if !last && !matches!(e, FetchError::Other(_)) => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(e) => return Err((e, attempt)),
            }
            attempt += 1;
        }
    }

    /// Exponential backoff with equal jitter: half the doubled delay, plus a random part of
    /// the other half, so that many fetches failing together do not come back together.
    fn backoff(&self, attempt: u32) -> Duration {
        let full = self
            .config
            .backoff
            .saturating_mul(1 << (attempt - 1).min(16))
            .min(MAX_BACKOFF);
        let half = full / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }

    async fn once(&self, url: &Url) -> Result<(Fetched, Option<Duration>), FetchError> {
        let classify = |e: reqwest::Error| {
            if e.is_timeout() {
                FetchError::Timeout(self.config.timeout)
            } else if e.is_connect() {
                FetchError::Connect(source_chain(&e))
            } else if e.is_body() || e.is_decode() {
                FetchError::Body(source_chain(&e))
            } else {
                FetchError::Other(source_chain(&e))
            }
        };
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(classify)?;
        let header = |name: reqwest::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let status = response.status().as_u16();
        let content_type = header(reqwest::header::CONTENT_TYPE);
        let location = header(reqwest::header::LOCATION);
        let retry_after = header(reqwest::header::RETRY_AFTER).and_then(|v| parse_retry_after(&v));
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
            let room = self.config.max_bytes - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        Ok((
            Fetched {
                status,
                content_type,
                location,
                body,
                truncated,
                attempts: 1,
            },
            retry_after,
        ))
    }
}

/// The error and its causes, one line: reqwest's own message names only the outer layer.
fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// `Retry-After`: delay-seconds, or an HTTP date (RFC 9110 §10.2.3).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate(value)?;
    let now = std::time::SystemTime::now();
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only date form servers send now.
fn httpdate(s: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    u64::try_from(secs)
        .ok()
        .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            httpdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(784_111_777))
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-1"), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let f = Fetcher::new(FetchConfig {
            user_agent: "t".into(),
            timeout: Duration::from_secs(1),
            max_bytes: 10,
            retries: 3,
            backoff: Duration::from_millis(100),
            per_host: 1,
        })
        .unwrap();
        for attempt in 1..=5u32 {
            let full = Duration::from_millis(100 << (attempt - 1));
            let d = f.backoff(attempt);
            assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
        }
        assert!(f.backoff(40) <= MAX_BACKOFF);
    }
}
