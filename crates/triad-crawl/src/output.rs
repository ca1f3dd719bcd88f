//! What a crawl writes: one JSON line per page, bodies by content address, and the summary.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One page's line in the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    /// The URL asked for (a redirect chain's first).
    pub url: String,
    /// The URL that answered, after redirects.
    pub final_url: String,
    /// The final HTTP status; none when no response came.
    pub status: Option<u16>,
    /// Links followed from a start URL.
    pub depth: u16,
    /// The page the link was found on.
    pub parent: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// Body bytes received (decoded).
    pub bytes: u64,
    /// The body was cut off at `--max-bytes`.
    pub truncated: bool,
    /// Milliseconds from the first request to the last byte, retries and redirects included.
    pub fetch_ms: f64,
    /// Requests made for it, retries included.
    pub attempts: u32,
    /// Redirects followed.
    pub redirects: u32,
    /// The `<title>`.
    pub title: Option<String>,
    /// Links found on it (any scheme).
    pub links: u32,
    /// Of those, the URLs queued for the first time.
    pub new_links: u32,
    /// SHA-256 of the body, with `--save`: the file under the save directory.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// Why the page failed, if it did.
    pub error: Option<PageError>,
}

/// A page's failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageError {
    /// A stable name: `timeout`, `connect`, `body`, `request`, `robots`, `redirect-loop`,
    /// `too-many-redirects`, `redirect-out-of-scope`, `bad-redirect`.
    pub kind: String,
    /// What happened, in words.
    pub message: String,
}

/// The output's lines already written, read back to resume: the URLs done, and how many.
#[derive(Debug, Default)]
pub struct Done {
    /// `url` and `final_url` of every complete line.
    pub urls: Vec<String>,
    /// Complete lines.
    pub pages: u64,
}

/// A failure of the output or of `--save`.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Writing the output failed (a full disk, a closed pipe).
    #[error("cannot write the output {0}: {1}")]
    Write(String, io::Error),
    /// Writing the page lines to standard output failed (its reader went away, say).
    #[error("cannot write the pages to standard output: {0}")]
    Stdout(io::Error),
    /// The output to resume holds a line that is not a page.
    #[error("{0} line {1} is not a triad crawl page record; resume needs the crawl's own output")]
    Foreign(PathBuf, u64),
    /// Saving a body failed.
    #[error("cannot save a body in {0}: {1}")]
    Save(PathBuf, io::Error),
}

/// Where page lines go: a file, or standard output.
pub struct Output {
    name: String,
    stdout: bool,
    sink: Box<dyn Write + Send>,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output").field("name", &self.name).finish()
    }
}

impl Output {
    /// Standard output.
    pub fn stdout() -> Output {
        Output {
            name: "standard output".into(),
            stdout: true,
            sink: Box::new(io::stdout()),
        }
    }

    /// A new (or truncated) file.
    pub fn create(path: &Path) -> Result<Output, OutputError> {
        let file =
            File::create(path).map_err(|e| OutputError::Write(path.display().to_string(), e))?;
        Ok(Output {
            name: path.display().to_string(),
            stdout: false,
            sink: Box::new(file),
        })
    }

    /// An existing output to continue: reads its complete lines, cuts off a torn last one,
    /// and opens it for appending. A missing file is a new one.
    pub fn resume(path: &Path) -> Result<(Output, Done), OutputError> {
        let name = path.display().to_string();
        let err = |e| OutputError::Write(name.clone(), e);
        let mut file = match OpenOptions::new().read(true).append(true).open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((Output::create(path)?, Done::default()));
            }
            Err(e) => return Err(err(e)),
        };
        let mut done = Done::default();
        let mut good: u64 = 0;
        {
            let mut reader = BufReader::new(&mut file);
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = reader.read_until(b'\n', &mut line).map_err(err)?;
                if n == 0 || line.last() != Some(&b'\n') {
                    break;
                }
                #[derive(Deserialize)]
                struct Urls {
                    url: String,
                    final_url: String,
                }
                let urls: Urls = serde_json::from_slice(&line)
                    .map_err(|_| OutputError::Foreign(path.to_owned(), done.pages + 1))?;
                done.urls.push(urls.url);
                done.urls.push(urls.final_url);
                done.pages += 1;
                good += n as u64;
            }
        }
        file.set_len(good).map_err(err)?;
        file.seek(io::SeekFrom::End(0)).map_err(err)?;
        Ok((
            Output {
                name,
                stdout: false,
                sink: Box::new(file),
            },
            done,
        ))
    }

    /// Writes `lines` (whole JSON lines) and hands them to the OS.
    pub fn write(&mut self, lines: &[u8]) -> Result<(), OutputError> {
        self.sink
            .write_all(lines)
            .and_then(|()| self.sink.flush())
            .map_err(|e| {
                if self.stdout {
                    OutputError::Stdout(e)
                } else {
                    OutputError::Write(self.name.clone(), e)
                }
            })
    }
}

/// Saves `body` under `dir` by its SHA-256 (`dir/ab/cdef…`), unless that file exists; returns
/// the hash in hex. Written to a temporary name and renamed, so a file there is whole.
pub fn save(dir: &Path, body: &[u8]) -> Result<String, OutputError> {
    let hex: String = Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sub = dir.join(&hex[..2]);
    let path = sub.join(&hex[2..]);
    if path.exists() {
        return Ok(hex);
    }
    let err = |e| OutputError::Save(dir.to_owned(), e);
    std::fs::create_dir_all(&sub).map_err(err)?;
    let tmp = sub.join(format!(".{}.{}", &hex[2..], std::process::id()));
    std::fs::write(&tmp, body)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            err(e)
        })?;
    Ok(hex)
}

/// The end-of-crawl summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Page lines written by this run.
    pub pages: u64,
    /// Of those, 2xx without error.
    pub ok: u64,
    /// Of those, with an error or a status of 400 or more.
    pub failed: u64,
    /// Pages by status class (`2xx`, `3xx`, `4xx`, `5xx`).
    pub by_status: BTreeMap<String, u64>,
    /// Pages by error kind.
    pub by_error: BTreeMap<String, u64>,
    /// Pages done by earlier runs of this `--resume` state.
    pub resumed_pages: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// Seconds the run took.
    pub elapsed_s: f64,
    /// Pages per second of this run.
    pub pages_per_s: f64,
    /// HTTP requests made: pages, retries, redirects and robots.txt.
    pub requests: u64,
    /// Requests that were retries.
    pub retries: u64,
    /// Links not followed, by reason (`duplicate`: already seen).
    pub skipped: BTreeMap<String, u64>,
    /// URLs still queued (with `--resume`, the next run's work).
    pub queued_left: u64,
    /// Why the crawl ended before its frontier did: `interrupted`, `max-pages`.
    pub stopped: Option<String>,
    /// The hosts with the slowest mean fetch, slowest first (at most 5).
    pub slowest_hosts: Vec<HostTime>,
}

/// A host's fetch times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostTime {
    /// `host:port`.
    pub host: String,
    /// Pages fetched from it.
    pub pages: u64,
    /// Mean fetch time, milliseconds.
    pub mean_ms: f64,
}

impl Summary {
    /// Counts one page line.
    pub fn count(&mut self, page: &Page) {
        self.pages += 1;
        self.bytes += page.bytes;
        if let Some(status) = page.status {
            *self
                .by_status
                .entry(format!("{}xx", status / 100))
                .or_default() += 1;
        }
        if let Some(e) = &page.error {
            *self.by_error.entry(e.kind.clone()).or_default() += 1;
        }
        if page.error.is_some() || page.status.is_none_or(|s| s >= 400) {
            self.failed += 1;
        } else if page.status.is_some_and(|s| (200..300).contains(&s)) {
            self.ok += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(url: &str) -> Page {
        Page {
            url: url.into(),
            final_url: url.into(),
            status: Some(200),
            depth: 0,
            parent: None,
            content_type: None,
            bytes: 3,
            truncated: false,
            fetch_ms: 1.0,
            attempts: 1,
            redirects: 0,
            title: None,
            links: 0,
            new_links: 0,
            sha256: None,
            error: None,
        }
    }

    #[test]
    fn resume_reads_whole_lines_and_cuts_a_torn_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pages.jsonl");
        let mut text = String::new();
        for u in ["http://h/a", "http://h/b"] {
            text += &serde_json::to_string(&page(u)).unwrap();
            text.push('\n');
        }
        let whole = text.len() as u64;
        text += r#"{"url":"http://h/c","fin"#;
        std::fs::write(&path, &text).unwrap();
        let (mut out, done) = Output::resume(&path).unwrap();
        assert_eq!(done.pages, 2);
        assert_eq!(
            done.urls,
            ["http://h/a", "http://h/a", "http://h/b", "http://h/b"]
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        out.write(b"{}\n").unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n{}\n"));
    }

    #[test]
    fn resume_refuses_a_file_that_is_not_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "dear diary\n").unwrap();
        assert!(matches!(
            Output::resume(&path),
            Err(OutputError::Foreign(_, 1))
        ));
    }

    #[test]
    fn a_full_disk_is_an_error() {
        let mut out = Output::create(Path::new("/dev/full")).unwrap();
        let e = out.write(b"{}\n").unwrap_err();
        assert!(e.to_string().contains("/dev/full"), "{e}");
    }

    #[test]
    fn saved_bodies_are_content_addressed() {
        let dir = tempfile::tempdir().unwrap();
        let hex = save(dir.path(), b"abc").unwrap();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            std::fs::read(dir.path().join("ba").join(&hex[2..])).unwrap(),
            b"abc"
        );
        assert_eq!(save(dir.path(), b"abc").unwrap(), hex);
    }

    #[test]
    fn the_summary_counts_by_class_and_kind() {
        let mut s = Summary::default();
        s.count(&page("a"));
        s.count(&Page {
            status: Some(404),
            ..page("b")
        });
        s.count(&Page {
            status: None,
            error: Some(PageError {
                kind: "timeout".into(),
                message: "t".into(),
            }),
            ..page("c")
        });
        assert_eq!((s.pages, s.ok, s.failed), (3, 2 - 1, 2));
        assert_eq!(s.by_status["2xx"], 1);
        assert_eq!(s.by_status["4xx"], 1);
        assert_eq!(s.by_error["timeout"], 1);
    }
}
