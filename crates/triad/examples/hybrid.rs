//! The seed's hybrid pipeline (§8.2), for real: fetch JSON documents over HTTP (coroutines),
//! compute on each in worker processes, and save each result (coroutines) — as one streaming
//! pipeline with bounded channels, where the seed's `HybridTaskExecutor` gathers each step
//! whole before the next starts.
//!
//! The example starts its own HTTP server on 127.0.0.1 (a random port) that answers each
//! `GET /data/<n>` after a delay, so nothing leaves this machine. With `--python` it then runs
//! `python/hybrid.py` — the seed's own executor, stdlib only — against the same server, and
//! prints both rates side by side.
//!
//! ```text
//! cargo run --release -p triad --example hybrid -- [--documents 200] [--delay-ms 50] [--python]
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use triad::Mode;
use triad::pipeline::{Pipeline, Stage};

/// What the server sends: the seed's `response.json()`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Document {
    id: u64,
    source: String,
}

/// What the CPU step makes of it: the seed's `process_data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Processed {
    processed: u128,
    original: Document,
}

/// The seed's `process_data`: `sum(item**2 for item in range(100000))`, in a worker process.
#[triad::task]
fn process_data(document: Document) -> Processed {
    Processed {
        processed: (0..100_000_u128).map(|item| item * item).sum(),
        original: document,
    }
}

struct Options {
    documents: u64,
    delay: Duration,
    python: bool,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        documents: 200,
        delay: Duration::from_millis(50),
        python: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            args.next()
                .and_then(|value| value.parse().ok())
                .ok_or_else(|| format!("{name} takes a number"))
        };
        match arg.as_str() {
            "--documents" => options.documents = number("--documents")?,
            "--delay-ms" => options.delay = Duration::from_millis(number("--delay-ms")?),
            "--python" => options.python = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(options)
}

/// Serves `GET /data/<n>` after `delay` on 127.0.0.1, on a thread and event loop of its own.
fn start_server(delay: Duration) -> SocketAddr {
    let (address_tx, address_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the server's event loop");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a loopback port");
            address_tx
                .send(listener.local_addr().expect("its address"))
                .expect("main waits");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                        answer(request, delay)
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    address_rx.recv().expect("the server starts")
}

async fn answer(
    request: Request<hyper::body::Incoming>,
    delay: Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    tokio::time::sleep(delay).await;
    let id = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or(0);
    let document = Document {
        id,
        source: format!("api{}.local", id % 4),
    };
    let body = serde_json::to_vec(&document).expect("a document encodes");
    Ok(Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("a valid response"))
}

fn run_triad(address: SocketAddr, documents: u64) -> Result<f64, Box<dyn std::error::Error>> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut results = Pipeline::new()
        .then(Stage::future("fetch", 256, move |n: u64| {
            let client = client.clone();
            async move {
                client
                    .get(format!("http://{address}/data/{n}"))
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<Document>()
                    .await
            }
        }))
        .then(Stage::task(
            "process",
            Mode::Processes(triad::available_cores()),
            process_data,
        ))
        .then(Stage::future(
            "save",
            256,
            |processed: Processed| async move {
                tokio::time::sleep(Duration::from_millis(100)).await; // the seed's save_result
                Ok::<_, String>(processed.original.id)
            },
        ))
        .run(0..documents)?;
    let mut saved = 0;
    for result in results.by_ref() {
        result?;
        saved += 1;
    }
    let seconds = started.elapsed().as_secs_f64();
    let rate = saved as f64 / seconds;
    println!("triad pipeline: {saved} documents in {seconds:.2} s = {rate:.1} records/s");
    results.metrics().write_table(&mut std::io::stdout())?;
    Ok(rate)
}

fn run_python(address: SocketAddr, documents: u64) -> Result<f64, String> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/hybrid.py");
    let output = std::process::Command::new("python3")
        .args([script, "--url", &format!("http://{address}/data/")])
        .args(["--documents", &documents.to_string()])
        .output()
        .map_err(|error| format!("python3: {error}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    print!("{stdout}");
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("records/s: "))
        .and_then(|rate| rate.trim().parse().ok())
        .ok_or_else(|| format!("no rate in python's output: {stdout}"))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Worker processes are this program run again: they stop here.
    triad::init();
    let options = options()?;
    let address = start_server(options.delay);
    println!(
        "{} documents from http://{address}/data/<n> (answers after {:?}), sum of squares below \
         100,000 each in worker processes, a 100 ms save each",
        options.documents, options.delay
    );
    let ours = run_triad(address, options.documents)?;
    if options.python {
        let theirs = run_python(address, options.documents)?;
        println!(
            "records/s: triad pipeline {ours:.1}, the seed's HybridTaskExecutor (CPython) \
             {theirs:.1}: {:.1}×",
            ours / theirs
        );
    }
    Ok(())
}
