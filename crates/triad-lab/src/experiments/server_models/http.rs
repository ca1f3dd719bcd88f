//! The small HTTP/1.1 JSON API every server model of `server-models` serves, and its two
//! connection handlers: blocking ([`serve_blocking`], for the thread models) and async
//! ([`serve_async`], for the event loops).
//!
//! (A third, [`serve_reference`], runs on the lab's reference event loop.) One endpoint: `GET /sum?n=N&work=W` answers `{"n":N,"sum":S,"work":"W"}` with
//! S = 1² + … + N², after the work the request asks for: `cpu` (50 µs of this thread's CPU
//! time), `wait` (a 10 ms timer), `slow` (50 ms) or `none`. Anything else is a 400 or 404 with a JSON error.
//! Connections are kept alive until the client closes them. `python/server_models.py` answers
//! byte for byte the same bodies, and the load generator checks every body it reads.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// The CPU work of a `cpu` request: this much of the thread's own CPU time.
pub(crate) const CPU_WORK: Duration = Duration::from_micros(50);
/// The wait of a `wait` request.
pub(crate) const WAIT: Duration = Duration::from_millis(10);
/// The wait of a `slow` request: a slow site for `many-fetches`' crawlers.
pub(crate) const SLOW: Duration = Duration::from_millis(50);
/// The largest `n` served.
const LARGEST_N: u64 = 1_000_000;
/// The longest request head read (request line and headers).
const LONGEST_HEAD: usize = 8 * 1024;

/// What a request asks the handler to do before it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum Work {
    /// Burn [`CPU_WORK`] of CPU time.
    Cpu,
    /// Wait [`WAIT`] on a timer.
    Wait,
    /// Wait [`SLOW`] on a timer.
    Slow,
    /// Nothing.
    None,
}

impl Work {
    /// Its name in requests, answers and the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Work::Cpu => "cpu",
            Work::Wait => "wait",
            Work::Slow => "slow",
            Work::None => "none",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Work::Cpu, Work::Wait, Work::Slow, Work::None]
            .into_iter()
            .find(|w| w.name() == text)
    }
}

/// An answer: its status and JSON body, and the work to do before sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
    pub(crate) work: Work,
}

impl Answer {
    fn error(status: u16, message: &str) -> Self {
        Self {
            status,
            body: format!("{{\"error\":\"{message}\"}}"),
            work: Work::None,
        }
    }

    /// The whole response, head and body, as one buffer (one write).
    pub(crate) fn response(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            _ => "Request Header Fields Too Large",
        };
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            self.status,
            self.body.len(),
            self.body
        )
        .into_bytes()
    }
}

/// The body of a good answer to `n` with `work`.
pub(crate) fn body(n: u64, work: Work) -> String {
    let sum = n * (n + 1) * (2 * n + 1) / 6;
    format!("{{\"n\":{n},\"sum\":{sum},\"work\":\"{}\"}}", work.name())
}

/// The request line a client sends for `n` with `work`.
pub(crate) fn request(n: u64, work: Work) -> String {
    format!(
        "GET /sum?n={n}&work={} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        work.name()
    )
}

/// Requests every model must answer as [`answer`] does: good ones of each work, a repeated
/// key, and each kind of error.
pub(crate) const PROBES: [&str; 9] = [
    "GET /sum?n=7&work=cpu HTTP/1.1",
    "GET /sum?n=0&work=none HTTP/1.1",
    "GET /sum?n=1000000&work=wait HTTP/1.1",
    "GET /sum?n=12&work=none&n=3 HTTP/1.1",
    "GET /sum?n=+7 HTTP/1.1",
    "GET /sum?n=1000001 HTTP/1.1",
    "GET /sum?n=5&work=gpu HTTP/1.1",
    "GET /nothing/here HTTP/1.1",
    "POST /sum?n=1 HTTP/1.1",
];

/// The answer to a request line (`GET /sum?n=7&work=cpu HTTP/1.1`).
pub(crate) fn answer(request_line: &str) -> Answer {
    let mut parts = request_line.split_ascii_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Answer::error(400, "a request line is METHOD TARGET VERSION");
    };
    if method != "GET" {
        return Answer::error(405, "only GET is served");
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/sum" {
        return Answer::error(404, "no such path: try /sum?n=7");
    }
    let (mut n, mut work) = (None, Some(Work::None));
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("n", value)) => {
                let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                n = value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| digits && *n <= LARGEST_N);
            }
            Some(("work", value)) => work = Work::parse(value),
            _ => {}
        }
    }
    match (n, work) {
        (None, _) => Answer::error(400, "n must be a whole number from 0 to 1000000"),
        (_, None) => Answer::error(400, "work must be cpu, wait, slow or none"),
        (Some(n), Some(work)) => Answer {
            status: 200,
            body: body(n, work),
            work,
        },
    }
}

/// Burns `amount` of this thread's CPU time (not wall time: a thread that loses its CPU still
/// does the whole of its work).
pub(crate) fn burn_cpu(amount: Duration) {
    let cpu = || {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
    };
    let start = cpu();
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    while cpu() - start < amount {
        for _ in 0..64 {
            x = std::hint::black_box(x.rotate_left(5) ^ 0x2545_F491);
        }
    }
}

/// How a request head ended: its request line, or why the connection ends.
enum Head {
    Request(String),
    Closed,
    TooLarge,
}

/// Serves one kept-alive connection on this thread until the client closes it.
pub(crate) fn serve_blocking(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(&stream);
    loop {
        let head = read_head_blocking(&mut reader);
        let answer = match &head {
            Head::Closed => return,
            Head::TooLarge => Answer::error(431, "the request head is too large"),
            Head::Request(line) => answer(line),
        };
        match answer.work {
            Work::Cpu => burn_cpu(CPU_WORK),
            Work::Wait => std::thread::sleep(WAIT),
            Work::Slow => std::thread::sleep(SLOW),
            Work::None => {}
        }
        if (&stream).write_all(&answer.response()).is_err() || answer.status == 431 {
            return;
        }
    }
}

fn read_head_blocking(reader: &mut BufReader<&TcpStream>) -> Head {
    let mut first = None;
    let mut read = 0;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return Head::Closed,
            Ok(n) => read += n,
        }
        if let Some(head) = take_head_line(&line, read, &mut first) {
            return head;
        }
    }
}

/// One line of a request head, read after `read` bytes of it: the head once it is complete
/// (its blank line after a request line) or too large; `first` keeps the request line.
fn take_head_line(line: &str, read: usize, first: &mut Option<String>) -> Option<Head> {
    if read > LONGEST_HEAD {
        return Some(Head::TooLarge);
    }
    if line.trim_end().is_empty() {
        first.take().map(Head::Request)
    } else {
        if first.is_none() {
            *first = Some(line.trim_end().to_owned());
        }
        None
    }
}

/// Serves one kept-alive connection as a task of the event loop; the CPU work blocks the loop
/// for its 50 µs, as a handler that computes does.
pub(crate) async fn serve_async(stream: tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut stream = tokio::io::BufReader::new(stream);
    loop {
        let head = read_head_async(&mut stream).await;
        let answer = match &head {
            Head::Closed => return,
            Head::TooLarge => Answer::error(431, "the request head is too large"),
            Head::Request(line) => answer(line),
        };
        match answer.work {
            Work::Cpu => burn_cpu(CPU_WORK),
            Work::Wait => tokio::time::sleep(WAIT).await,
            Work::Slow => tokio::time::sleep(SLOW).await,
            Work::None => {}
        }
        let written = stream.get_mut().write_all(&answer.response()).await;
        if written.is_err() || answer.status == 431 {
            return;
        }
    }
}

async fn read_head_async(reader: &mut tokio::io::BufReader<tokio::net::TcpStream>) -> Head {
    let mut first = None;
    let mut read = 0;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line).await {
            Ok(0) | Err(_) => return Head::Closed,
            Ok(n) => read += n,
        }
        if let Some(head) = take_head_line(&line, read, &mut first) {
            return head;
        }
    }
}

/// Serves one kept-alive connection as a task of the lab's reference event loop (`event-loop`):
/// reads through its epoll selector, waits on its timer heap.
pub(crate) async fn serve_reference(
    connection: crate::experiments::event_loop::reference_loop::AsyncFd,
) {
    use crate::experiments::event_loop::reference_loop::sleep;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break Some(at + 4);
            }
            if buffer.len() > LONGEST_HEAD {
                break None;
            }
            match connection.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(count) => buffer.extend_from_slice(&chunk[..count]),
            }
        };
        let answer = match end {
            None => Answer::error(431, "the request head is too large"),
            Some(end) => {
                let head: Vec<u8> = buffer.drain(..end).collect();
                let head = String::from_utf8_lossy(&head);
                answer(head.lines().next().unwrap_or_default())
            }
        };
        match answer.work {
            Work::Cpu => burn_cpu(CPU_WORK),
            Work::Wait => sleep(WAIT).await,
            Work::Slow => sleep(SLOW).await,
            Work::None => {}
        }
        let written = connection.write_all(&answer.response()).await;
        if written.is_err() || answer.status == 431 {
            return;
        }
    }
}

/// What one line of an answer's head says: the status (first line) or the body's length.
pub(crate) fn read_head_line(text: &str, status: &mut Option<u16>, length: &mut Option<usize>) {
    if status.is_none() {
        *status = text
            .split_ascii_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok());
    } else if let Some((name, value)) = text.split_once(':')
        && name.eq_ignore_ascii_case("content-length")
    {
        *length = value.trim().parse::<usize>().ok();
    }
}

/// The lab's HTTP parsers over outside text, for the fuzz target `lab_http`: the servers'
/// request-line parser, and the load generator's reading of an answer's head. Neither may
/// panic; an answer's response must say its own body's length and status.
#[doc(hidden)]
pub fn fuzz_http(text: &str) {
    let answer = answer(text);
    let response = String::from_utf8(answer.response()).expect("responses are text");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let (mut status, mut length) = (None, None);
    for line in head.split("\r\n") {
        read_head_line(line, &mut status, &mut length);
    }
    assert_eq!((status, length), (Some(answer.status), Some(body.len())));
    let (mut status, mut length) = (None, None);
    for line in text.lines() {
        read_head_line(line, &mut status, &mut length);
    }
}

/// One fetch of `n` with `work` on a new blocking connection: connect, ask, read the whole
/// answer, check it against the API's, close.
pub(crate) fn fetch_blocking(port: u16, n: u64, work: Work) -> Result<(), String> {
    use std::io::Read;
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_nodelay(true);
    (&stream)
        .write_all(request(n, work).as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut reader = BufReader::new(&stream);
    let (mut status, mut length) = (None, None);
    let mut line = String::new();
    loop {
        line.clear();
        if reader
            .read_line(&mut line)
            .map_err(|e| format!("receive: {e}"))?
            == 0
        {
            return Err("the server closed the connection".to_owned());
        }
        if line.trim_end().is_empty() {
            break;
        }
        read_head_line(line.trim_end(), &mut status, &mut length);
    }
    let (Some(status), Some(length)) = (status, length) else {
        return Err("an answer without a status or length".to_owned());
    };
    let mut answer = vec![0; length.min(1 << 20)];
    reader
        .read_exact(&mut answer)
        .map_err(|e| format!("receive the body: {e}"))?;
    let expected = body(n, work);
    if status != 200 || answer != expected.as_bytes() {
        return Err(format!(
            "a wrong answer to n = {n}: {status} {:?} (expected {expected:?})",
            String::from_utf8_lossy(&answer)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_the_sum_of_squares_and_names_the_work() {
        let good = answer("GET /sum?n=7&work=cpu HTTP/1.1");
        assert_eq!(good.status, 200);
        assert_eq!(good.body, r#"{"n":7,"sum":140,"work":"cpu"}"#);
        assert_eq!(good.work, Work::Cpu);
        assert_eq!(answer("GET /sum?n=0 HTTP/1.1").body, body(0, Work::None));
        let largest = answer("GET /sum?work=wait&n=1000000 HTTP/1.1");
        assert_eq!(
            largest.body,
            r#"{"n":1000000,"sum":333333833333500000,"work":"wait"}"#
        );
        assert_eq!(
            request(3, Work::Wait).lines().next().unwrap(),
            "GET /sum?n=3&work=wait HTTP/1.1"
        );
    }

    #[test]
    fn bad_requests_get_a_json_error_and_no_work() {
        for (line, status) in [
            ("GET /sum?n=-1 HTTP/1.1", 400),
            ("GET /sum?n=1000001 HTTP/1.1", 400),
            ("GET /sum?n=x HTTP/1.1", 400),
            ("GET /sum?n=+7 HTTP/1.1", 400),
            ("GET /sum HTTP/1.1", 400),
            ("GET /sum?n=1&work=gpu HTTP/1.1", 400),
            ("GET /other?n=1 HTTP/1.1", 404),
            ("POST /sum?n=1 HTTP/1.1", 405),
            ("GET", 400),
        ] {
            let answer = answer(line);
            assert_eq!(answer.status, status, "{line}");
            assert_eq!(answer.work, Work::None, "{line}");
            assert!(answer.body.starts_with("{\"error\":\""), "{line}");
        }
        let missing = answer("GET /x HTTP/1.1");
        let head = String::from_utf8(missing.response()).unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\n"), "{head}");
        let length = format!("Content-Length: {}\r\n\r\n{{", missing.body.len());
        assert!(head.contains(&length), "{head}");
    }

    #[test]
    fn cpu_work_takes_its_cpu_time() {
        let cpu = || {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
            Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
        };
        let start = cpu();
        burn_cpu(Duration::from_millis(2));
        assert!(cpu() - start >= Duration::from_millis(2));
    }

    proptest::proptest! {
        #[test]
        fn any_request_line_gets_a_json_answer(line in "\\PC{0,80}") {
            let answer = answer(&line);
            proptest::prop_assert!([200, 400, 404, 405].contains(&answer.status));
            let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
            proptest::prop_assert_eq!(body.get("error").is_some(), answer.status != 200);
            let (mut status, mut length) = (None, None);
            read_head_line(&line, &mut status, &mut length);
            read_head_line(&line, &mut status, &mut length);
        }

        #[test]
        fn a_good_request_gets_the_sum_of_squares(n in 0u64..=1_000_000, which in 0usize..4) {
            let work = [Work::Cpu, Work::Wait, Work::Slow, Work::None][which];
            let line = request(n, work);
            let answer = answer(line.lines().next().unwrap());
            proptest::prop_assert_eq!(answer.status, 200);
            proptest::prop_assert_eq!(answer.work, work);
            let body: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
            let sum: u128 = (1..=u128::from(n)).map(|i| i * i).sum();
            proptest::prop_assert_eq!(u128::from(body["sum"].as_u64().unwrap()), sum);
        }
    }

    #[test]
    fn a_head_too_large_is_answered_431_and_closed() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || serve_blocking(listener.accept().unwrap().0));
        let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let long = format!(
            "GET /sum?n=1 HTTP/1.1\r\nX-Long: {}\r\n\r\n",
            "x".repeat(9000)
        );
        client.write_all(long.as_bytes()).unwrap();
        let mut reply = String::new();
        client.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 431 "), "{reply}");
        server.join().unwrap();
        assert!(
            fetch_blocking(port, 1, Work::None).is_err(),
            "nothing listens any more"
        );
    }
}
