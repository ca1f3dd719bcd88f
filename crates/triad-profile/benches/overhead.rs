//! What profiling costs the profiled program: a CPU-bound Python program with a fixed amount of
//! work (about 10 s here: `cpu_work.py`, the sum of 85 million squares) run plain and under
//! `triad_profile::profile` (20 ms sampling), alternately, `ROUNDS` times each; the ratio of the
//! median wall times is the overhead. Run with `cargo bench -p triad-profile --bench overhead`.

use std::process::Command;
use std::time::Instant;

/// Squares to add up: about 10 s of CPython work on this machine.
const WORK: &str = "85000000";
const ROUNDS: usize = 3;

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn main() {
    let program = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/programs/cpu_work.py");
    let mut plain = Vec::new();
    let mut profiled = Vec::new();
    for _ in 0..ROUNDS {
        let started = Instant::now();
        let status = Command::new("python3")
            .args([program, WORK])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("python3 runs");
        assert!(status.success());
        plain.push(started.elapsed().as_secs_f64());

        let command = ["python3", program, WORK];
        let recording = triad_profile::profile(&command, &triad_profile::RunOptions::default())
            .expect("profile runs");
        profiled.push(recording.totals.wall_s);
    }
    let (plain, profiled) = (median(plain), median(profiled));
    println!(
        "cores: {}; fixed-work CPU-bound program, median of {ROUNDS}: plain {plain:.3} s, \
         profiled {profiled:.3} s, overhead {:+.2}%",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        (profiled / plain - 1.0) * 100.0
    );
}
