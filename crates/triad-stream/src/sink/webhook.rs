//! The webhook sink: an HTTP POST of each message's JSON, retried with jittered exponential
//! backoff while the service is down or says to try later (a connection error, a timeout,
//! 408, 429, 5xx; `Retry-After` in seconds is honoured). Any other 4xx is the message's fault:
//! it goes to the dead letters with the status.

use std::time::Duration;

use crate::sink::Outcome;

/// Tries per message before it is left for redelivery.
const TRIES: u32 = 5;

/// The first pause between tries (doubling, with jitter, up to 5 s).
const FIRST_PAUSE: Duration = Duration::from_millis(50);

/// The sink's client.
#[derive(Debug, Clone)]
pub(crate) struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
}

impl Webhook {
    /// A client for `url` (checked to be http).
    pub(crate) fn new(url: &str) -> Result<Webhook, String> {
        let url = reqwest::Url::parse(url).map_err(|error| format!("--webhook {url}: {error}"))?;
        match url.scheme() {
            "http" => {}
            // reqwest is built without a TLS stack here (it would double what this crate
            // costs to compile); say so at the start rather than fail every message.
            "https" => {
                return Err(format!(
                    "--webhook {url}: https is not built into this triad; post to an http URL \
                     (a local TLS-terminating proxy, say)"
                ));
            }
            _ => return Err(format!("--webhook {url}: not an http URL")),
        }
        // In a build that also has triad crawl, reqwest is compiled with rustls and no crypto
        // provider of its own (the crawler brings ring), and building any client without one
        // installed panics: install it, whether or not this client ever speaks TLS.
        #[allow(deprecated)]
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .map_err(|error| format!("--webhook: {error}"))?;
        Ok(Webhook { client, url })
    }

    /// Posts `payload`; see the module doc for what is tried again.
    pub(crate) async fn post(&self, payload: &[u8]) -> Outcome {
        let mut pause = FIRST_PAUSE;
        let mut last = String::new();
        for attempt in 1..=TRIES {
            let response = self
                .client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(payload.to_vec())
                .send()
                .await;
            let mut wait = pause;
            match response {
                Ok(response) if response.status().is_success() => return Outcome::Committed,
                Ok(response) => {
                    let status = response.status();
                    let retryable = status.is_server_error()
                        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
                        || status == reqwest::StatusCode::REQUEST_TIMEOUT;
                    if !retryable {
                        return Outcome::Rejected(format!("the webhook answered {status}"));
                    }
                    if let Some(seconds) = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|text| text.trim().parse::<u64>().ok())
                    {
                        wait = Duration::from_secs(seconds.min(30));
                    }
                    last = format!("the webhook answered {status}");
                }
                Err(error) => last = format!("the webhook could not be reached: {error}"),
            }
            if attempt < TRIES {
                tokio::time::sleep(jitter(wait)).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
        Outcome::Failed(format!("{last} ({TRIES} tries)"))
    }
}

/// `pause` stretched by up to half again, so that many handlers do not retry in step.
fn jitter(pause: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |now| now.subsec_nanos());
    pause + pause.mul_f64(f64::from(nanos % 1000) / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_are_taken() {
        assert!(Webhook::new("http://127.0.0.1:9/hook").is_ok());
        assert!(
            Webhook::new("ftp://127.0.0.1/")
                .unwrap_err()
                .contains("not an http")
        );
        assert!(Webhook::new("nope").is_err());
        assert!(
            Webhook::new("https://127.0.0.1/hook")
                .unwrap_err()
                .contains("https is not built in")
        );
    }

    #[test]
    fn jitter_stretches_by_at_most_half() {
        let pause = Duration::from_millis(100);
        let stretched = jitter(pause);
        assert!(stretched >= pause && stretched <= pause * 3 / 2);
    }
}
