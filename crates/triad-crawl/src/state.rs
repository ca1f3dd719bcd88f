//! The resume state: an append-only journal of what was queued, compacted at a clean stop.
//!
//! The file is a sequence of frames, each `[length u32 LE][crc32 u32 LE][postcard bytes]`.
//! While a crawl runs, every URL queued is appended as [`Frame::Queued`] (and a URL resolved
//! without a page in the output, a redirect's hop, as [`Frame::Dropped`]) *before* the output
//! line of the page that found it is written. The output file is the record of what is done:
//! a page in it was fetched, and the links it found are in the journal. So after any stop —
//! SIGINT, SIGKILL, a full disk — the journal plus the output give the seen set and the
//! frontier, and nothing is fetched twice or lost. A torn last frame (a kill mid-write) fails
//! its length or checksum and is cut off. At a clean stop the journal is rewritten compactly:
//! the seen keys in blocks, then the jobs still queued.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Format version, in the header frame.
pub const VERSION: u32 = 1;
/// No frame is longer than this; a longer length is corruption.
pub const MAX_FRAME: usize = 64 << 20;
/// Seen keys per block in a compacted state.
const SEEN_BLOCK: usize = 65_536;

/// One journal frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// The first frame: the format version and the crawl's start URLs.
    Header {
        /// [`VERSION`].
        version: u32,
        /// The start URLs, normalised.
        starts: Vec<String>,
    },
    /// Keys seen, whose pages are done (a compacted state's record of the past).
    Seen(Vec<u128>),
    /// A URL queued.
    Queued(JobRecord),
    /// A queued URL resolved without its own line in the output (a redirect's hop).
    Dropped(u128),
}

/// A queued job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The normalised URL.
    pub url: String,
    /// Its depth.
    pub depth: u16,
    /// The page that linked to it.
    pub parent: Option<String>,
    /// A redirect chain's origin URL, if this is a redirect's target.
    pub origin: Option<String>,
    /// The chain's hops so far.
    pub hops: Vec<u128>,
}

/// A state file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing it failed.
    #[error("resume state {0}: {1}")]
    Io(PathBuf, io::Error),
    /// Its first frame is not a header of this version.
    #[error("resume state {0} is not a triad crawl state of version {VERSION}")]
    NotAState(PathBuf),
}

/// Encodes one frame.
pub fn encode(frame: &Frame, out: &mut Vec<u8>) {
    let body = postcard::to_allocvec(frame).expect("frames serialise");
    let mut crc = flate2::Crc::new();
    crc.update(&body);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&body);
}

/// Decodes frames from `bytes` until the end or the first bad frame (short, too long, wrong
/// checksum, undecodable); returns how many bytes were good. Never panics on any input.
pub fn decode(bytes: &[u8], mut each: impl FnMut(Frame)) -> usize {
    let mut at = 0;
    while bytes.len() - at >= 8 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let sum = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes"));
        if len > MAX_FRAME || bytes.len() - at - 8 < len {
            break;
        }
        let body = &bytes[at + 8..at + 8 + len];
        let mut crc = flate2::Crc::new();
        crc.update(body);
        if crc.sum() != sum {
            break;
        }
        let Ok(frame) = postcard::from_bytes::<Frame>(body) else {
            break;
        };
        each(frame);
        at += 8 + len;
    }
    at
}

/// Reads a state file: its start URLs, and every later frame through `each`. The file is cut
/// back to its last good frame, so that appends continue a valid journal.
pub fn load(path: &Path, mut each: impl FnMut(Frame)) -> Result<Vec<String>, StateError> {
    let err = |e| StateError::Io(path.to_owned(), e);
    let bytes = std::fs::read(path).map_err(err)?;
    let mut starts = None;
    let mut first = true;
    let mut bad_header = false;
    let good = decode(&bytes, |frame| {
        if first {
            first = false;
            match frame {
                Frame::Header { version, starts: s } if version == VERSION => starts = Some(s),
                _ => bad_header = true,
            }
        } else if !bad_header {
            each(frame);
        }
    });
    let starts = starts
        .filter(|_| !bad_header)
        .ok_or_else(|| StateError::NotAState(path.to_owned()))?;
    if good < bytes.len() {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(good as u64))
            .map_err(err)?;
    }
    Ok(starts)
}

/// The journal being appended to.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: BufWriter<File>,
    buf: Vec<u8>,
}

impl Journal {
    /// A new state file holding only the header.
    pub fn create(path: &Path, starts: &[String]) -> Result<Journal, StateError> {
        let err = |e| StateError::Io(path.to_owned(), e);
        let mut journal = Journal {
            path: path.to_owned(),
            file: BufWriter::new(File::create(path).map_err(err)?),
            buf: Vec::new(),
        };
        journal.write(&Frame::Header {
            version: VERSION,
            starts: starts.to_vec(),
        })?;
        journal.flush()?;
        Ok(journal)
    }

    /// Appends to an existing (loaded, hence valid) state file.
    pub fn append(path: &Path) -> Result<Journal, StateError> {
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(|e| StateError::Io(path.to_owned(), e))?;
        Ok(Journal {
            path: path.to_owned(),
            file: BufWriter::new(file),
            buf: Vec::new(),
        })
    }

    /// Appends a frame (buffered).
    pub fn write(&mut self, frame: &Frame) -> Result<(), StateError> {
        self.buf.clear();
        encode(frame, &mut self.buf);
        self.file
            .write_all(&self.buf)
            .map_err(|e| StateError::Io(self.path.clone(), e))
    }

    /// Hands everything written to the OS: it survives this process being killed.
    pub fn flush(&mut self) -> Result<(), StateError> {
        self.file
            .flush()
            .map_err(|e| StateError::Io(self.path.clone(), e))
    }

    /// Replaces the file, atomically, by a compact one: header, seen keys, queued jobs; and
    /// syncs it to the disk.
    pub fn compact(
        &mut self,
        starts: &[String],
        seen: impl Iterator<Item = u128>,
        queued: impl Iterator<Item = JobRecord>,
    ) -> Result<(), StateError> {
        self.flush()?;
        let path = self.path.clone();
        let err = |e| StateError::Io(path.clone(), e);
        let tmp = self.path.with_extension("tmp");
        let mut out = BufWriter::new(File::create(&tmp).map_err(err)?);
        let mut buf = Vec::new();
        let mut put = |frame: &Frame, out: &mut BufWriter<File>| {
            buf.clear();
            encode(frame, &mut buf);
            out.write_all(&buf)
        };
        put(
            &Frame::Header {
                version: VERSION,
                starts: starts.to_vec(),
            },
            &mut out,
        )
        .map_err(err)?;
        let mut block = Vec::with_capacity(SEEN_BLOCK);
        for key in seen {
            block.push(key);
            if block.len() == SEEN_BLOCK {
                put(&Frame::Seen(std::mem::take(&mut block)), &mut out).map_err(err)?;
            }
        }
        if !block.is_empty() {
            put(&Frame::Seen(block), &mut out).map_err(err)?;
        }
        for job in queued {
            put(&Frame::Queued(job), &mut out).map_err(err)?;
        }
        let file = out.into_inner().map_err(|e| err(e.into_error()))?;
        file.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
        *self = Journal::append(&path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn job(url: &str) -> JobRecord {
        JobRecord {
            url: url.into(),
            depth: 1,
            parent: Some("http://h/".into()),
            origin: None,
            hops: vec![],
        }
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut j = Journal::create(&path, &["http://h/".into()]).unwrap();
        j.write(&Frame::Queued(job("http://h/a"))).unwrap();
        j.write(&Frame::Queued(job("http://h/b"))).unwrap();
        j.flush().unwrap();
        drop(j);
        let full = std::fs::metadata(&path).unwrap().len();
        // A kill in the middle of the last frame.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(full - 3)
            .unwrap();
        let mut got = Vec::new();
        let starts = load(&path, |f| got.push(f)).unwrap();
        assert_eq!(starts, ["http://h/"]);
        assert_eq!(got, [Frame::Queued(job("http://h/a"))]);
        let mut j = Journal::append(&path).unwrap();
        j.write(&Frame::Dropped(7)).unwrap();
        j.flush().unwrap();
        let mut got = Vec::new();
        load(&path, |f| got.push(f)).unwrap();
        assert_eq!(got, [Frame::Queued(job("http://h/a")), Frame::Dropped(7)]);
    }

    #[test]
    fn compaction_keeps_seen_and_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let mut j = Journal::create(&path, &["http://h/".into()]).unwrap();
        j.write(&Frame::Queued(job("http://h/a"))).unwrap();
        j.compact(
            &["http://h/".into()],
            0..70_000u128,
            [job("http://h/z")].into_iter(),
        )
        .unwrap();
        let (mut seen, mut queued) = (0, Vec::new());
        load(&path, |f| match f {
            Frame::Seen(keys) => seen += keys.len(),
            Frame::Queued(j) => queued.push(j.url),
            other => panic!("{other:?}"),
        })
        .unwrap();
        assert_eq!((seen, queued), (70_000, vec!["http://h/z".to_string()]));
    }

    #[test]
    fn other_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notes.txt");
        std::fs::write(&path, "hello, this is not a state").unwrap();
        assert!(matches!(load(&path, |_| {}), Err(StateError::NotAState(_))));
        let mut bytes = Vec::new();
        encode(&Frame::Dropped(1), &mut bytes);
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(load(&path, |_| {}), Err(StateError::NotAState(_))));
    }

    proptest! {
        #[test]
        fn frames_round_trip_and_any_prefix_decodes_a_prefix(
            urls in proptest::collection::vec("[a-z/]{0,30}", 0..20),
            cut in 0usize..2000,
        ) {
            let frames: Vec<Frame> = urls.iter().enumerate().map(|(i, u)| {
                if i % 3 == 0 { Frame::Dropped(i as u128) } else { Frame::Queued(job(u)) }
            }).collect();
            let mut bytes = Vec::new();
            for f in &frames { encode(f, &mut bytes); }
            let mut got = Vec::new();
            prop_assert_eq!(decode(&bytes, |f| got.push(f)), bytes.len());
            prop_assert_eq!(&got, &frames);
            let cut = cut.min(bytes.len());
            let mut part = Vec::new();
            let good = decode(&bytes[..cut], |f| part.push(f));
            prop_assert!(good <= cut);
            prop_assert_eq!(&part[..], &frames[..part.len()]);
        }
    }
}
