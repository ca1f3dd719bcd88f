//! The corpus: programs triad did not write, profiled as a user would, each beside a ground
//! truth argued from what the program does. The test prints a table (program, truth, verdict,
//! advice), reports how many it classified right, and asserts all of them: the bar is 100%.
//! Where the truth is honestly ambiguous it asserts only the certain part (`sort` is CPU-bound;
//! how parallel depends on how long its single-threaded read and merge take).
//!
//! The inputs are made in a temporary directory by the test itself: 24 MB of word-salad text
//! (compressible like real text, from a fixed seed), a tree of 130,000 hard links for `tar`, a
//! copy of the interpreter's standard library for `compileall`, and a local HTTP server on
//! 127.0.0.1 that answers every request 200 ms late. It runs in about a minute on two cores,
//! and must pass with one core kept busy by another program.
//!
//! Needs `gzip`, `pigz`, `xz`, `zstd`, `sort`, `tar`, `dd` and `python3` (`.ci/run` installs
//! what a fresh Debian lacks).

use std::fs;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use triad_profile::{Analysis, IoWait, Model, RunOptions, Verdict, analyse, profile};

/// A temporary directory, removed at the end (even when an assertion fails).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("triad-corpus-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("a temporary directory");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().expect("a UTF-8 path").to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The real interpreter, not a version manager's shell-script shim.
fn python() -> String {
    let out = std::process::Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 runs");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// `bytes` of text: lines of six words from a 5,000-word vocabulary and a number, from a fixed
/// seed (xorshift64), so that compressors work as hard as on real text and every run is alike.
fn write_text(path: &str, bytes: usize) {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let vocabulary: Vec<Vec<u8>> = (0..5000)
        .map(|_| {
            let len = 2 + (next() % 8) as usize;
            (0..len).map(|_| b'a' + (next() % 26) as u8).collect()
        })
        .collect();
    let mut text = Vec::with_capacity(bytes + 128);
    while text.len() < bytes {
        for _ in 0..6 {
            text.extend_from_slice(&vocabulary[(next() % 5000) as usize]);
            text.push(b' ');
        }
        text.extend_from_slice((next() % 1_000_000_000).to_string().as_bytes());
        text.push(b'\n');
    }
    fs::write(path, text).expect("the text is written");
}

/// A tree of `dirs × per_dir` hard links (to a few files: ext4 allows 65,000 links to one), so
/// that `tar` has many entries to walk and the test little to write.
fn write_link_tree(root: &str, dirs: usize, per_dir: usize) {
    let root = Path::new(root);
    fs::create_dir_all(root).unwrap();
    let mut bases = Vec::new();
    for d in 0..dirs {
        let dir = root.join(format!("d{d}"));
        fs::create_dir(&dir).unwrap();
        if d % 50 == 0 {
            let base = dir.join("base");
            fs::write(&base, b"triad").unwrap();
            bases.push(base);
        }
        let base = bases.last().unwrap();
        for f in 0..per_dir {
            fs::hard_link(base, dir.join(format!("f{f}"))).unwrap();
        }
    }
}

/// Copies the `.py` files of the interpreter's standard library (no tests, no site packages)
/// into `to`, up to `limit` bytes: "many MB of packages" for `compileall`.
fn copy_stdlib(python: &str, to: &str, limit: u64) -> u64 {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ])
        .output()
        .unwrap();
    let stdlib = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    let mut copied = 0;
    let mut stack = vec![stdlib.clone()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = fs::read_dir(&dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                let skip = [
                    "test",
                    "tests",
                    "idle_test",
                    "site-packages",
                    "dist-packages",
                ];
                if !skip.contains(&name.as_str()) && !name.starts_with("__pycache__") {
                    stack.push(path);
                }
            } else if kind.is_file() && name.ends_with(".py") && copied < limit {
                let target = Path::new(to).join(path.strip_prefix(&stdlib).unwrap());
                fs::create_dir_all(target.parent().unwrap()).unwrap();
                copied += fs::copy(&path, &target).unwrap();
            }
        }
    }
    copied
}

/// An HTTP server on 127.0.0.1 that answers every request `late`: a thread per connection.
fn late_server(late: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                std::thread::sleep(late);
                let body = "late but here\n";
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

/// `command` with its stdout sent to /dev/null (`exec`: the shell leaves the tree at once).
fn to_null(command: &[&str]) -> Vec<String> {
    let mut all = vec![
        "sh".to_owned(),
        "-c".to_owned(),
        "exec \"$@\" > /dev/null".to_owned(),
        "sh".to_owned(),
    ];
    all.extend(command.iter().map(|s| s.to_string()));
    all
}

/// What a program must be judged; `Err` says what was wrong.
type Truth = fn(&Analysis) -> Result<(), String>;

struct Program {
    name: &'static str,
    truth: &'static str,
    command: Vec<String>,
    check: Truth,
}

fn cpu_bound(a: &Analysis, parallel: Option<bool>) -> Result<(), String> {
    match a.verdict {
        Verdict::CpuBound {
            parallel: p,
            gil_limited: false,
        } if parallel.is_none_or(|want| want == p) => Ok(()),
        other => Err(format!(
            "wanted CPU-bound (parallel: {parallel:?}), got {other:?}"
        )),
    }
}

fn advised(a: &Analysis, models: &[Model]) -> Result<(), String> {
    let model = a.advice.as_ref().map(|advice| advice.model);
    match model {
        Some(m) if models.contains(&m) => Ok(()),
        other => Err(format!("wanted advice {models:?}, got {other:?}")),
    }
}

fn io_bound(a: &Analysis, wait: IoWait) -> Result<(), String> {
    if a.verdict == (Verdict::IoBound { wait }) {
        Ok(())
    } else {
        Err(format!("wanted IO-bound on {wait:?}, got {:?}", a.verdict))
    }
}

fn corpus(dir: &Scratch, python: &str, port: u16) -> Vec<Program> {
    let text = dir.path("text");
    let small = dir.path("small");
    let py = python.to_owned();
    vec![
        // gzip has no threads: one process compressing text from the page cache to /dev/null
        // never waits. CPU-bound on one core; native, so threads (what pigz does) would help.
        Program {
            name: "gzip -6",
            truth: "CPU-bound, one core",
            command: to_null(&["gzip", "-6", "-c", &text]),
            check: |a| cpu_bound(a, Some(false)).and(advised(a, &[Model::Threads])),
        },
        // pigz splits the input into 128 KB blocks and deflates them on 2 threads; its writer
        // thread waits for them, by design.
        Program {
            name: "pigz -p 2",
            truth: "CPU-bound, already parallel",
            command: to_null(&["pigz", "-6", "-p", "2", "-c", &text]),
            check: |a| cpu_bound(a, Some(true)),
        },
        // xz -T1: one thread of LZMA2 over data in memory.
        Program {
            name: "xz -T1",
            truth: "CPU-bound, one core",
            command: to_null(&["xz", "-T1", "-1", "-c", &small]),
            check: |a| cpu_bound(a, Some(false)),
        },
        // xz -T2 with 2 MB blocks: two threads each compress their own blocks (5 in all).
        Program {
            name: "xz -T2",
            truth: "CPU-bound, already parallel",
            command: to_null(&["xz", "-T2", "-1", "--block-size=2MiB", "-c", &small]),
            check: |a| cpu_bound(a, Some(true)),
        },
        // zstd --single-thread: compression and IO on one thread.
        Program {
            name: "zstd --single-thread",
            truth: "CPU-bound, one core",
            command: to_null(&["zstd", "-q", "-12", "--single-thread", "-c", &small]),
            check: |a| cpu_bound(a, Some(false)),
        },
        // zstd -T2 with 2 MB jobs: two worker threads compress jobs side by side.
        Program {
            name: "zstd -T2",
            truth: "CPU-bound, already parallel",
            command: to_null(&["zstd", "-q", "-12", "-T2", "-B2097152", "-c", &small]),
            check: |a| cpu_bound(a, Some(true)),
        },
        // GNU sort reads the file (from the page cache), sorts runs on 2 threads, then merges
        // on one: CPU-bound; how much of it is parallel depends on the phases' lengths, so
        // only "CPU-bound" is certain.
        Program {
            name: "sort",
            truth: "CPU-bound (parallel: ambiguous)",
            command: to_null(&["sort", "--parallel=2", "-S", "256M", "-k", "3", &text]),
            check: |a| cpu_bound(a, None),
        },
        // tar to /dev/null does not read file data (GNU tar skips it for /dev/null): it
        // walks the tree, one lstat per entry, from the kernel's dentry cache (the test just
        // made it). That is CPU work in the kernel on one thread — system time, no waits. The
        // tree is named three times (tar walks each operand in full) so that the walk, 0.2 s a
        // pass, lasts long enough to sample well.
        Program {
            name: "tar -cf /dev/null",
            truth: "CPU-bound (in the kernel), one core",
            command: vec![
                "tar".into(),
                "-cf".into(),
                "/dev/null".into(),
                "-C".into(),
                dir.path(""),
                "tree".into(),
                "tree".into(),
                "tree".into(),
            ],
            check: |a| cpu_bound(a, Some(false)),
        },
        // dd with oflag=direct,dsync: every 4 KB write bypasses the page cache and waits
        // until the device has it. It waits on the disk nearly all the time.
        Program {
            name: "dd oflag=direct,dsync",
            truth: "IO-bound, disk",
            command: vec![
                "dd".into(),
                "if=/dev/zero".into(),
                format!("of={}", dir.path("dd.out")),
                "bs=4k".into(),
                "count=2000".into(),
                "oflag=direct,dsync".into(),
                "status=none".into(),
            ],
            check: |a| io_bound(a, IoWait::Disk).and(advised(a, &[Model::Threads])),
        },
        // compileall -j 2: a ProcessPoolExecutor of 2 workers compiles the files; the main
        // process's management and queue-feeder threads sleep by design. CPU-bound, already
        // parallel (in processes, each with its own GIL): keep the process pool.
        Program {
            name: "python3 -m compileall -j 2",
            truth: "CPU-bound, already parallel; keep processes",
            command: vec![
                py.clone(),
                "-W".into(),
                "ignore".into(),
                "-m".into(),
                "compileall".into(),
                "-f".into(),
                "-q".into(),
                "-j".into(),
                "2".into(),
                dir.path("stdlib"),
            ],
            check: |a| cpu_bound(a, Some(true)).and(advised(a, &[Model::Processes])),
        },
        // Two threads hashing 1 MB buffers: hashlib releases the GIL while it hashes, so the
        // threads run in parallel. Keep threads; processes would only add copying.
        Program {
            name: "python3 threads: hashlib",
            truth: "CPU-bound, already parallel; keep threads",
            command: vec![
                py.clone(),
                "-c".into(),
                "import hashlib, os, threading\n\
                 data = os.urandom(1 << 20)\n\
                 def work():\n    h = hashlib.sha256()\n    for _ in range(1000): h.update(data)\n\
                 ts = [threading.Thread(target=work) for _ in range(2)]\n\
                 [t.start() for t in ts]; [t.join() for t in ts]\n"
                    .into(),
            ],
            check: |a| cpu_bound(a, Some(true)).and(advised(a, &[Model::Threads])),
        },
        // The same with zlib.compress, which releases the GIL while it deflates.
        Program {
            name: "python3 threads: zlib",
            truth: "CPU-bound, already parallel; keep threads",
            command: vec![
                py.clone(),
                "-c".into(),
                format!(
                    "import threading, zlib\n\
                     data = open({small:?}, 'rb').read()[:4 << 20]\n\
                     def work():\n    for _ in range(3): zlib.compress(data, 6)\n\
                     ts = [threading.Thread(target=work) for _ in range(2)]\n\
                     [t.start() for t in ts]; [t.join() for t in ts]\n"
                ),
            ],
            check: |a| cpu_bound(a, Some(true)).and(advised(a, &[Model::Threads])),
        },
        // sqlite3 in its default journal mode: every commit writes the journal and the
        // database and fsyncs both. Many small transactions (for 1.2 s, however fast the
        // disk) wait on the disk. On a virtual disk with a write cache an fsync takes about
        // 0.2 ms, as long as the commit's own CPU, so how IO-bound it is depends on the disk:
        // certain is that it is not CPU-bound and that what it waits on is the disk.
        Program {
            name: "python3 sqlite3 commits",
            truth: "IO-bound, disk (or mixed on a fast disk)",
            command: vec![
                py.clone(),
                "-c".into(),
                format!(
                    "import sqlite3, time\n\
                     db = sqlite3.connect({:?})\n\
                     db.execute('create table t (k integer primary key, v text)')\n\
                     end = time.monotonic() + 1.2\n\
                     while time.monotonic() < end:\n    db.execute('insert into t (v) values (?)', ('x' * 100,))\n    db.commit()\n",
                    dir.path("db.sqlite")
                ),
            ],
            check: |a| match a.verdict {
                Verdict::IoBound { .. } => io_bound(a, IoWait::Disk),
                Verdict::Mixed if a.figures.share_disk_wait > 0.0 => Ok(()),
                other => Err(format!(
                    "wanted IO-bound on the disk (or mixed with disk waits), got {other:?}"
                )),
            },
        },
        // Eight threads fetching 64 URLs from a server that answers each 200 ms late: the
        // threads wait on their sockets. IO-bound on the network; threads, or coroutines for
        // more at once, are both right.
        Program {
            name: "python3 ThreadPoolExecutor urllib",
            truth: "IO-bound, network; threads or coroutines",
            command: vec![
                py,
                "-c".into(),
                format!(
                    "import concurrent.futures, urllib.request\n\
                     def get(i):\n    return urllib.request.urlopen('http://127.0.0.1:{port}/%d' % i).read()\n\
                     with concurrent.futures.ThreadPoolExecutor(8) as pool:\n    assert all(pool.map(get, range(64)))\n"
                ),
            ],
            check: |a| {
                io_bound(a, IoWait::NetworkOrPipe)
                    .and(advised(a, &[Model::Threads, Model::Coroutines]))
            },
        },
    ]
}

fn verdict_words(a: &Analysis) -> String {
    let mut words = triad_profile::report::verdict_text(a.verdict);
    if !a.phases.is_empty() {
        words = format!(
            "{words}; phases: {}",
            triad_profile::classify::describe(&a.phases)
        );
    }
    words
}

fn advice_words(a: &Analysis) -> String {
    a.advice.as_ref().map_or("-".into(), |advice| {
        format!("{:?} × {}", advice.model, advice.workers)
    })
}

#[test]
fn real_programs_are_classified_right() {
    let started = Instant::now();
    let dir = Scratch::new();
    let python = python();
    write_text(&dir.path("text"), 24 << 20);
    write_text(&dir.path("small"), 10 << 20);
    write_link_tree(&dir.path("tree"), 130, 1000);
    let copied = copy_stdlib(&python, &dir.path("stdlib"), 40 << 20);
    assert!(copied > 10 << 20, "only {copied} bytes of standard library");
    let port = late_server(Duration::from_millis(200));
    eprintln!("inputs ready in {:.1} s", started.elapsed().as_secs_f64());

    let mut rows = Vec::new();
    let mut wrong = Vec::new();
    // TRIAD_CORPUS_ONLY=name picks the programs whose name contains it (for working on one).
    let only = std::env::var("TRIAD_CORPUS_ONLY").unwrap_or_default();
    for program in corpus(&dir, &python, port)
        .into_iter()
        .filter(|p| p.name.contains(only.as_str()))
    {
        let recording = profile(&program.command, &RunOptions::default()).expect("it runs");
        assert!(
            matches!(recording.exit, triad_profile::Exit::Code { code: 0 }),
            "{} failed: {:?}",
            program.name,
            recording.exit
        );
        let analysis = analyse(&recording);
        let outcome = (program.check)(&analysis);
        rows.push(format!(
            "| {} | {} | {} | {} | {:.2} s | {} |",
            program.name,
            program.truth,
            verdict_words(&analysis),
            advice_words(&analysis),
            analysis.figures.wall_s,
            if outcome.is_ok() { "right" } else { "WRONG" }
        ));
        if let Err(why) = outcome {
            wrong.push(format!(
                "{}: {why}\n{}",
                program.name,
                triad_profile::render_text(&recording, &analysis, false)
            ));
        }
    }
    eprintln!("| program | truth | verdict | advice | wall | |\n|---|---|---|---|---|---|");
    for row in &rows {
        eprintln!("{row}");
    }
    eprintln!(
        "{} of {} classified right, in {:.1} s",
        rows.len() - wrong.len(),
        rows.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(wrong.is_empty(), "wrong:\n{}", wrong.join("\n"));
}
