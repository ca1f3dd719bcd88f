//! The Prometheus endpoint: `GET /metrics` answers [`Metrics::prometheus`] in the text
//! exposition format (`text/plain; version=0.0.4`); any other path is a 404. HTTP/1.1 on
//! hyper, one task per connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Metrics, StreamError};

/// Listens on `address` (bound before this returns, so a taken port is an error now) and
/// serves until the returned task is aborted.
pub async fn serve(
    address: SocketAddr,
    metrics: Arc<Metrics>,
) -> Result<JoinHandle<()>, StreamError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| StreamError::Metrics { address, source })?;
    Ok(tokio::spawn(async move {
        while let Ok((connection, _)) = listener.accept().await {
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let metrics = metrics.clone();
                    async move { Ok::<_, Infallible>(answer(&request, &metrics)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(connection), service)
                    .await;
            });
        }
    }))
}

fn answer<B>(request: &Request<B>, metrics: &Metrics) -> Response<Full<Bytes>> {
    let (status, kind, body) = if request.uri().path() == "/metrics" {
        (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.prometheus(),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "not found: the metrics are at /metrics\n".to_owned(),
        )
    };
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, kind)
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response")
}
