//! The fork start method, end to end. Fork is refused in a process with threads, and libtest
//! runs tests on threads, so this test has its own `main` (`harness = false` in Cargo.toml).

use std::sync::atomic::{AtomicU64, Ordering};

use triad::{ProcessPool, StartMethod, TaskError};

/// State set by `main` before the pool is built: a forked worker has it, a spawned one not.
static LOADED: AtomicU64 = AtomicU64::new(0);

#[triad::task]
fn read_loaded(_: u8) -> u64 {
    LOADED.load(Ordering::SeqCst)
}

#[triad::task]
fn die_on_zero(x: u8) -> u8 {
    if x == 0 {
        // SAFETY: kill with our own pid and SIGKILL has no memory-safety preconditions.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    }
    x
}

fn pool(method: StartMethod) -> Result<ProcessPool, triad::PoolError> {
    ProcessPool::builder()
        .workers(2)
        .start_method(method)
        .build()
}

/// Set in the copy of this test that checks buffered output is printed once.
const PRINT_ONCE: &str = "TRIAD_TEST_PRINT_ONCE";

fn main() {
    triad::init();
    if std::env::var_os(PRINT_ONCE).is_some() {
        // A partial line sits in stdout's buffer when the pool forks its server.
        print!("PARTIAL-LINE ");
        let pool = pool(StartMethod::Fork).expect("fork");
        assert_eq!(pool.map(read_loaded, [0; 4]), vec![Ok(0); 4]);
        drop(pool);
        println!("done");
        return;
    }
    LOADED.store(42, Ordering::SeqCst);
    let mut passed = 0;

    let fork = pool(StartMethod::Fork).expect("a single-threaded process may fork");
    assert_eq!(fork.map(read_loaded, [0; 4]), vec![Ok(42); 4]);
    println!("forked workers start with the parent's memory ... ok");
    passed += 1;

    let results = fork.map_chunked(die_on_zero, [1, 0, 2, 3], 1);
    assert_eq!(
        results,
        vec![
            Ok(1),
            Err(TaskError::WorkerDied {
                signal: Some(libc::SIGKILL),
                code: None
            }),
            Ok(2),
            Ok(3)
        ]
    );
    assert_eq!(fork.map(read_loaded, [0; 2]), vec![Ok(42); 2]);
    println!("a killed forked worker is reported and replaced by another fork ... ok");
    passed += 1;

    drop(fork);

    // Each pool's dispatcher and fork-server reader threads are joined when it drops; the
    // kernel may list them a few milliseconds longer, which must not count against the next.
    let refused: Vec<String> = (0..50)
        .filter_map(|_| pool(StartMethod::Fork).err().map(|error| error.to_string()))
        .collect();
    assert!(
        refused.is_empty(),
        "{} of 50 refused: {:?}",
        refused.len(),
        refused.first()
    );
    println!("50 fork pools built back to back are all accepted ... ok");
    passed += 1;

    let spawn = pool(StartMethod::Spawn).expect("spawn always works");
    assert_eq!(spawn.map(read_loaded, [0; 2]), vec![Ok(0); 2]);
    println!("spawned workers start fresh, without the parent's memory ... ok");
    passed += 1;
    drop(spawn);

    let (stop, wait) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || wait.recv());
    let refused = pool(StartMethod::Fork).expect_err("fork is refused once a thread runs");
    assert!(refused.to_string().contains("ForkServer"), "{refused}");
    println!("fork is refused in a process with threads, pointing to ForkServer ... ok");
    passed += 1;
    stop.send(()).unwrap();
    let _ = thread.join();

    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env(PRINT_ONCE, "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "PARTIAL-LINE done\n"
    );
    println!("output buffered before a fork is printed once ... ok");
    passed += 1;

    println!("{passed} passed, 0 failed");
}
