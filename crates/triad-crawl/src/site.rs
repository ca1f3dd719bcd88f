//! A generated web site on 127.0.0.1, for the tests and the benchmark: `pages` pages whose
//! link graph is known ([`SiteSpec::links`]), served with a chosen latency, and the pages a
//! crawler must survive (with `specials`): 404s, 500s that succeed on retry, a 429 with
//! `Retry-After`, redirect chains and a loop, a page that never ends, a huge page, non-HTML
//! resources, malformed HTML with links in comments and scripts, `..` and `<base>` links,
//! duplicate spellings of one URL, a gzipped page, a link and a redirect to another host, and
//! a robots.txt.
//!
//! The server logs every request and the most requests it ever had in flight at once, which
//! is how the tests check politeness and that nothing is fetched twice.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use http_body_util::StreamBody;
use hyper::body::{Bytes, Frame};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rand::Rng;
use tokio::net::TcpListener;

/// What to serve.
#[derive(Debug, Clone)]
pub struct SiteSpec {
    /// Pages `/p/0` … `/p/{pages-1}`.
    pub pages: usize,
    /// Links on each page (to pseudo-random other pages, some repeated).
    pub links_per_page: usize,
    /// Time before each answer.
    pub latency: Duration,
    /// Each answer's latency varies uniformly by up to this much either way.
    pub jitter: Duration,
    /// Serve the special pages, linked from `/p/0`.
    pub specials: bool,
    /// The robots.txt body (404 if none).
    pub robots: Option<String>,
    /// A base URL of another host that `/p/0` links to.
    pub other_host: Option<String>,
    /// Links written as absolute URLs (for crawlers that do not resolve relative ones, such
    /// as the seed's).
    pub absolute: bool,
    /// Filler text per page, in bytes.
    pub filler: usize,
}

impl Default for SiteSpec {
    fn default() -> SiteSpec {
        SiteSpec {
            pages: 100,
            links_per_page: 8,
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            specials: false,
            robots: None,
            other_host: None,
            absolute: false,
            filler: 2000,
        }
    }
}

impl SiteSpec {
    /// The pages that page `i` links to (its graph edges).
    pub fn links(&self, i: usize) -> Vec<usize> {
        let n = self.pages as u64;
        let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        let mut out = vec![(i + 1) % self.pages];
        for _ in 1..self.links_per_page {
            x ^= x >> 33;
            x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
            x ^= x >> 29;
            out.push((x % n) as usize);
        }
        out
    }

    /// Pages reachable from `/p/0` in at most `depth` links (all of them with `None`).
    pub fn reachable(&self, depth: Option<usize>) -> Vec<usize> {
        let mut level = vec![usize::MAX; self.pages];
        level[0] = 0;
        let mut queue = std::collections::VecDeque::from([0]);
        while let Some(i) = queue.pop_front() {
            if depth.is_some_and(|d| level[i] >= d) {
                continue;
            }
            for j in self.links(i) {
                if level[j] == usize::MAX {
                    level[j] = level[i] + 1;
                    queue.push_back(j);
                }
            }
        }
        (0..self.pages)
            .filter(|&i| level[i] != usize::MAX)
            .collect()
    }
}

/// One request the site got.
#[derive(Debug, Clone)]
pub struct Logged {
    /// Path and query.
    pub path: String,
    /// When it came.
    pub at: Instant,
}

#[derive(Debug, Default)]
struct Shared {
    log: Mutex<Vec<Logged>>,
    counts: Mutex<HashMap<String, usize>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// A running site; stopped when dropped.
#[derive(Debug)]
pub struct Site {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Site {
    /// Serves `spec` on a free port of 127.0.0.1, from a thread of its own.
    pub fn start(spec: SiteSpec) -> std::io::Result<Site> {
        Site::start_on(spec, 0)
    }

    /// Serves `spec` on 127.0.0.1:`port` (0: any free port).
    pub fn start_on(spec: SiteSpec, port: u16) -> std::io::Result<Site> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (spec, state) = (Arc::new(spec), shared.clone());
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("a tokio listener");
                tokio::select! {
                    () = accept(listener, spec, state) => {}
                    _ = stopped => {}
                }
            });
        });
        Ok(Site {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Requests of each path so far.
    pub fn counts(&self) -> HashMap<String, usize> {
        self.shared
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The most requests that were ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept(listener: TcpListener, spec: Arc<SiteSpec>, shared: Arc<Shared>) {
    while let Ok((connection, _)) = listener.accept().await {
        let (spec, shared) = (spec.clone(), shared.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<_>| {
                let (spec, shared) = (spec.clone(), shared.clone());
                async move { Ok::<_, Infallible>(answer(&spec, &shared, &request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(connection), service)
                .await;
        });
    }
}

/// Counts a request in flight until the response body is dropped (sent, or abandoned).
struct InFlight(Arc<Shared>);

impl InFlight {
    fn new(shared: &Arc<Shared>) -> InFlight {
        let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(shared.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

type Body = StreamBody<futures::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    chunks: Vec<Bytes>,
    /// After the chunks, the body never ends.
    hang: bool,
}

fn html(status: u16, body: String) -> Answer {
    Answer {
        status,
        headers: vec![("content-type", "text/html; charset=utf-8".into())],
        chunks: vec![Bytes::from(body)],
        hang: false,
    }
}

fn redirect(status: u16, to: &str) -> Answer {
    Answer {
        status,
        headers: vec![("location", to.to_owned())],
        chunks: vec![],
        hang: false,
    }
}

async fn answer<B>(spec: &SiteSpec, shared: &Arc<Shared>, request: &Request<B>) -> Response<Body> {
    let guard = InFlight::new(shared);
    let path = request
        .uri()
        .path_and_query()
        .map_or("/".to_owned(), |p| p.as_str().to_owned());
    shared
        .log
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Logged {
            path: path.clone(),
            at: Instant::now(),
        });
    let seen = {
        let mut counts = shared.counts.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(path.clone()).or_default();
        *n += 1;
        *n
    };
    let wait = if spec.jitter.is_zero() {
        spec.latency
    } else {
        let j = spec.jitter.as_secs_f64();
        let d = spec.latency.as_secs_f64() + rand::rng().random_range(-j..=j);
        Duration::from_secs_f64(d.max(0.0))
    };
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_owned();
    let a = route(spec, &path, seen, &host);
    let mut response = Response::builder().status(a.status);
    for (name, value) in &a.headers {
        response = response.header(*name, value);
    }
    let chunks = futures::stream::iter(a.chunks.into_iter().map(|c| Ok(Frame::data(c))));
    let body: futures::stream::BoxStream<'static, _> = if a.hang {
        chunks.chain(futures::stream::pending()).boxed()
    } else {
        chunks.boxed()
    };
    // The guard lives as long as the body stream.
    let body = body
        .map(move |frame| {
            let _ = &guard;
            frame
        })
        .boxed();
    response
        .body(StreamBody::new(body))
        .expect("a valid response")
}

fn page(spec: &SiteSpec, i: usize, host: &str) -> String {
    let href = |j: usize| {
        if spec.absolute {
            format!("http://{host}/p/{j}")
        } else if j.is_multiple_of(2) {
            format!("/p/{j}")
        } else {
            format!("../p/{j}")
        }
    };
    let mut s = format!(
        "<!DOCTYPE html><html><head><meta charset=utf-8><title>Page {i}</title></head><body><h1>Page {i}</h1>\n"
    );
    for j in spec.links(i) {
        s += &format!("<p>See <a href=\"{}\">page {j}</a>.</p>\n", href(j));
    }
    if i == 0 && spec.specials {
        s += SPECIAL_LINKS;
        if let Some(other) = &spec.other_host {
            s += &format!("<a href=\"{other}/p/0\">elsewhere</a>\n");
        }
    }
    let words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor ";
    let mut filler = String::with_capacity(spec.filler + words.len());
    while filler.len() < spec.filler {
        filler += words;
    }
    s += &format!("<div class=text><p>{filler}</p></div></body></html>\n");
    s
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// The special pages `/p/0` links to, duplicates and junk included.
const SPECIAL_LINKS: &str = r#"<ul>
<li><a href="/missing">missing</a> <a href="/flaky/1">flaky</a> <a href="/busy">busy</a>
<li><a href="/redirect/a">chain</a> <a href="/loop/a">loop</a>
<li><a href="/hang">hang</a> <a href="/huge">huge</a>
<li><a href="/image.png">png</a> <a href="/data.json">json</a> <a href="/private/secret">private</a>
<li><a href="/malformed">malformed</a> <a href="/dir/sub/base">base</a>
<li><a href="/zipped">gzip</a> <a href="/away">away</a>
<li><a href="/p/1#top">dup</a> <a href="/p/./1">dup</a> <a href="/p/x/../1#x">dup</a>
<li><a href="mailto:me@example.invalid">mail</a> <a href="javascript:void(0)">js</a>
</ul>
"#;

/// Paths that special pages link to only from comments and scripts: never to be fetched.
pub const NEVER: [&str; 2] = ["/never/commented", "/never/scripted"];

/// The special pages a crawl of `/p/0` with specials finds, besides `/p/*`.
pub const SPECIAL_PAGES: [&str; 15] = [
    "/missing",
    "/flaky/1",
    "/busy",
    "/redirect/a",
    "/loop/a",
    "/hang",
    "/huge",
    "/image.png",
    "/data.json",
    "/private/secret",
    "/malformed",
    "/dir/sub/base",
    "/based/x",
    "/zipped",
    "/away",
];

fn route(spec: &SiteSpec, path: &str, seen: usize, host: &str) -> Answer {
    let numbered = path
        .strip_prefix("/p/")
        .and_then(|i| i.parse::<usize>().ok());
    if let Some(i) = numbered.filter(|&i| i < spec.pages) {
        return html(200, page(spec, i, host));
    }
    if path == "/robots.txt" {
        return match &spec.robots {
            Some(txt) => Answer {
                status: 200,
                headers: vec![("content-type", "text/plain".into())],
                chunks: vec![Bytes::from(txt.clone())],
                hang: false,
            },
            None => html(404, "no robots here".into()),
        };
    }
    if !spec.specials {
        return html(404, "<title>404</title>not found".into());
    }
    match path {
        "/flaky/1" if seen <= 2 => html(500, "<title>500</title>try again".into()),
        "/flaky/1" => html(200, "<title>Flaky</title>fine now".into()),
        "/busy" if seen == 1 => Answer {
            headers: vec![("retry-after", "1".into())],
            ..html(429, "slow down".into())
        },
        "/busy" => html(200, "<title>Busy</title>ok".into()),
        "/redirect/a" => redirect(301, "/redirect/b"),
        "/redirect/b" => redirect(302, "/redirect/c?from=b"),
        "/redirect/c?from=b" => html(200, "<title>End of chain</title>".into()),
        "/loop/a" => redirect(302, "/loop/b"),
        "/loop/b" => redirect(307, "/loop/a"),
        "/hang" => Answer {
            hang: true,
            ..html(200, "<title>Hang</title><a href=\"/p/2\">".into())
        },
        "/huge" => Answer {
            chunks: std::iter::once(Bytes::from_static(b"<title>Huge</title>"))
                .chain(std::iter::repeat_n(Bytes::from(vec![b'x'; 64 << 10]), 320))
                .collect(),
            ..html(200, String::new())
        },
        "/image.png" => Answer {
            status: 200,
            headers: vec![("content-type", "image/png".into())],
            chunks: vec![Bytes::from_static(
                b"\x89PNG\r\n\x1a\n<a href=\"/never/png\">",
            )],
            hang: false,
        },
        "/data.json" => Answer {
            status: 200,
            headers: vec![("content-type", "application/json".into())],
            chunks: vec![Bytes::from_static(b"{\"href\": \"/never/json\"}")],
            hang: false,
        },
        "/private/secret" => html(200, "<title>Secret</title>".into()),
        "/malformed" => html(
            200,
            r#"<title>Malformed</title><div><p><b><a href="/p/3">three<table><tr><td>
<!-- <a href="/never/commented">c</a> -->
<script>var s = '<a href="/never/scripted">s</a>';</script>
<a href=/p/4>four"#
                .into(),
        ),
        "/dir/sub/base" => html(
            200,
            r#"<head><title>Base</title><base href="/based/"></head>
<a href="../p/5">up</a> <a href="x">x</a> <a href="HTTP://HOST/p/1">case</a>"#
                .replace("HOST", &host.to_ascii_uppercase()),
        ),
        "/based/x" => html(200, "<title>Based</title>".into()),
        "/zipped" => Answer {
            headers: vec![
                ("content-type", "text/html".into()),
                ("content-encoding", "gzip".into()),
            ],
            chunks: vec![Bytes::from(gzip(
                b"<title>Zipped</title><a href=\"/p/6\">six</a>",
            ))],
            ..html(200, String::new())
        },
        "/away" => match &spec.other_host {
            Some(other) => redirect(302, &format!("{other}/p/1")),
            None => html(404, "nowhere".into()),
        },
        _ => html(404, "<title>404</title>not found".into()),
    }
}
