//! Tests of the analysis on hand-built recordings (`synth`): the research note's signatures,
//! and the defects of real programs (issue 20).

use super::*;
use crate::recording::{Exit, Lang, Recording, Totals};
use crate::synth::{self, signatures as sig};

fn check(a: &Analysis) {
    assert!(
        (3..=5).contains(&a.evidence.len()),
        "evidence: {:#?}",
        a.evidence
    );
    assert!((0.0..=1.0).contains(&a.confidence));
    assert!(!a.advice.as_ref().unwrap().reasons.is_empty());
    assert!(a.advice.as_ref().unwrap().workers >= 1);
    let json = serde_json::to_value(&a.figures).unwrap();
    for (k, v) in json.as_object().unwrap() {
        assert!(!v.is_null(), "figure {k} is not finite");
    }
}

#[test]
fn cpu_loop_python_is_cpu_bound_serial_use_processes() {
    let a = analyse(&sig::cpu_loop(Lang::Python));
    check(&a);
    assert_eq!(
        a.verdict,
        Verdict::CpuBound {
            parallel: false,
            gil_limited: false
        }
    );
    assert!(a.confidence > 0.8, "{}", a.confidence);
    assert!((a.figures.cpu_ratio - 1.0).abs() < 0.01);
    assert!(a.figures.wait_over_compute < 0.05);
    assert_eq!(a.advice.as_ref().unwrap().model, Model::Processes);
    assert_eq!(a.advice.as_ref().unwrap().workers, 2);
}

#[test]
fn cpu_loop_native_uses_threads() {
    let a = analyse(&sig::cpu_loop(Lang::Native));
    check(&a);
    assert_eq!(
        a.verdict,
        Verdict::CpuBound {
            parallel: false,
            gil_limited: false
        }
    );
    assert_eq!(a.advice.as_ref().unwrap().model, Model::Threads);
    assert_eq!(a.advice.as_ref().unwrap().workers, 2);
}

#[test]
fn sleep_loop_is_io_bound_on_a_timer() {
    let a = analyse(&sig::sleep_loop());
    check(&a);
    assert_eq!(
        a.verdict,
        Verdict::IoBound {
            wait: IoWait::Sleep
        },
        "{a:#?}"
    );
    assert!(a.figures.cpu_ratio < 0.05);
    assert!(a.figures.wait_over_compute > 10.0);
    // Moderate concurrency (2 × (1 + W/C) ≈ 60) → threads, capped at 32 per core.
    assert_eq!(a.advice.as_ref().unwrap().model, Model::Threads);
    assert!(
        a.advice.as_ref().unwrap().workers > 2 && a.advice.as_ref().unwrap().workers <= 64,
        "{}",
        a.advice.as_ref().unwrap().workers
    );
}

#[test]
fn gil_threads_are_cpu_bound_gil_limited_use_processes() {
    let a = analyse(&sig::gil_threads());
    check(&a);
    assert_eq!(
        a.verdict,
        Verdict::CpuBound {
            parallel: false,
            gil_limited: true
        },
        "{a:#?}"
    );
    assert!(a.confidence > 0.8);
    assert!(a.evidence.iter().any(|e| e.contains("GIL")));
    assert_eq!(a.advice.as_ref().unwrap().model, Model::Processes);
    assert_eq!(a.advice.as_ref().unwrap().workers, 2);
}

#[test]
fn serialised_native_threads_are_cpu_bound_not_gil() {
    let mut rec = sig::gil_threads();
    rec.lang = Lang::Native;
    let a = analyse(&rec);
    check(&a);
    assert_eq!(
        a.verdict,
        Verdict::CpuBound {
            parallel: false,
            gil_limited: false
        }
    );
    assert_eq!(a.advice.as_ref().unwrap().model, Model::Threads);
    assert!(
        a.advice
            .as_ref()
            .unwrap()
            .reasons
            .iter()
            .any(|r| r.contains("lock"))
    );
}

#[test]
fn multiprocessing_is_cpu_bound_parallel() {
    let a = analyse(&sig::multiprocessing());
    check(&a);
    assert_eq!(
        a.verdict,
        Verdict::CpuBound {
            parallel: true,
            gil_limited: false
        },
        "{a:#?}"
    );
    assert!((a.figures.avg_cores_busy - 1.975).abs() < 0.01);
    assert_eq!(a.figures.max_busy_processes, 3);
    assert!(a.figures.share_runnable > 0.1);
    assert_eq!(a.advice.as_ref().unwrap().model, Model::Processes);
    assert_eq!(a.advice.as_ref().unwrap().workers, 2);
}

#[test]
fn fsync_loop_is_io_bound_on_disk_despite_system_time() {
    let a = analyse(&sig::fsync_loop());
    check(&a);
    assert_eq!(a.verdict, Verdict::IoBound { wait: IoWait::Disk }, "{a:#?}");
    assert!(a.figures.system_s > 1.7);
    // System time in the IO path is not compute.
    assert!((a.figures.compute_s - a.figures.user_s).abs() < 1e-9);
    assert!(a.figures.share_disk_wait > 0.2);
    assert_eq!(a.advice.as_ref().unwrap().model, Model::Threads);
    assert_eq!(
        a.advice.as_ref().unwrap().workers,
        2 * DISK_THREADS_PER_CORE_CAP
    );
}

#[test]
fn kernel_time_of_a_thread_that_never_waits_is_compute() {
    let a = analyse(&sig::tree_walk_in_kernel());
    check(&a);
    assert!(a.figures.system_s > 2.0 * a.figures.user_s);
    assert!(a.figures.read_bytes_per_s > 0.0, "{a:#?}");
    assert_eq!(
        a.verdict,
        Verdict::CpuBound {
            parallel: false,
            gil_limited: false
        },
        "{a:#?}"
    );
    assert!((a.figures.compute_s - a.figures.user_s - a.figures.system_s).abs() < 1e-9);
}

#[test]
fn alternating_compute_and_sleep_is_mixed() {
    let a = analyse(&sig::mixed(Lang::Python));
    check(&a);
    assert_eq!(a.verdict, Verdict::Mixed, "{a:#?}");
    assert!((a.figures.cpu_demand - 0.5).abs() < 0.05);
    assert!((a.figures.wait_over_compute - 1.0).abs() < 0.1);
    assert_eq!(a.advice.as_ref().unwrap().model, Model::HybridPipeline);
    assert_eq!(a.advice.as_ref().unwrap().workers, 2);
    assert_eq!(a.advice.as_ref().unwrap().concurrency, Some(2));
}

#[test]
fn network_waits_use_coroutines() {
    let a = analyse(&sig::network_client());
    check(&a);
    assert_eq!(
        a.verdict,
        Verdict::IoBound {
            wait: IoWait::NetworkOrPipe
        },
        "{a:#?}"
    );
    assert_eq!(a.advice.as_ref().unwrap().model, Model::Coroutines);
    let c = a.advice.as_ref().unwrap().concurrency.unwrap();
    assert!(
        (COROUTINE_MIN_CONCURRENCY..=MAX_COROUTINES).contains(&c),
        "{c}"
    );
}

#[test]
fn cores_busy_series_has_one_value_per_sample() {
    let rec = sig::mixed(Lang::Native);
    let a = analyse(&rec);
    assert_eq!(a.figures.cores_busy.len(), rec.samples.len());
    assert!((a.figures.cores_busy[0] - 1.0).abs() < 1e-9);
    assert_eq!(a.figures.cores_busy[3], 0.0);
    assert!((a.figures.peak_cores_busy - 1.0).abs() < 1e-9);
}

#[test]
fn three_samples_are_too_short_to_classify() {
    // 60 ms of CPU used to get a confident "CPU-bound" from three samples.
    let rec = synth::recording(Lang::Python, 2, 20, &synth::one_thread(20.0, 3), 0.0, 0, 1);
    let a = analyse(&rec);
    assert_eq!(a.verdict, Verdict::TooShort { samples: 3 });
    assert_eq!((a.confidence, a.advice.is_none()), (0.0, true));
    assert!(a.evidence[0].contains("at least 5"), "{:?}", a.evidence);
    assert!((a.figures.cpu_s - 0.06).abs() < 1e-9, "the totals are kept");
}

#[test]
fn enough_samples_of_a_short_run_keep_serial() {
    let rec = synth::recording(Lang::Python, 2, 10, &synth::one_thread(10.0, 8), 0.0, 0, 1);
    let a = analyse(&rec);
    check(&a);
    assert!(matches!(a.verdict, Verdict::CpuBound { .. }));
    assert_eq!(a.advice.as_ref().unwrap().model, Model::KeepSerial);
    assert_eq!(a.advice.as_ref().unwrap().workers, 1);
}

#[test]
fn single_core_cpu_bound_keeps_serial() {
    let mut rec = sig::cpu_loop(Lang::Native);
    rec.cores = 1;
    let a = analyse(&rec);
    assert_eq!(a.advice.as_ref().unwrap().model, Model::KeepSerial);
}

#[test]
fn empty_recording_gives_finite_figures() {
    let rec = Recording {
        command: vec!["true".into()],
        interval_ms: 20,
        cores: 0,
        lang: Lang::Native,
        samples: Vec::new(),
        totals: Totals::default(),
        exit: Exit::Code { code: 0 },
        command_wall_s: 0.0,
        descendants_left: 0,
        threads: Vec::new(),
    };
    let a = analyse(&rec);
    assert_eq!(a.verdict, Verdict::TooShort { samples: 0 });
    let json = serde_json::to_value(&a.figures).unwrap();
    assert!(json.as_object().unwrap().values().all(|v| !v.is_null()));
    let any = analyse_any_length(&rec);
    check(&any);
    assert_eq!(any.advice.as_ref().unwrap().model, Model::KeepSerial);
}

#[test]
fn totals_only_recording_is_classified_when_asked() {
    // The command ended before the first sample: only wait4's totals.
    let rec = Recording {
        command: vec!["spin".into()],
        interval_ms: 20,
        cores: 2,
        lang: Lang::Native,
        samples: Vec::new(),
        totals: Totals {
            wall_s: 0.5,
            user_s: 0.49,
            system_s: 0.0,
            ..Totals::default()
        },
        exit: Exit::Code { code: 0 },
        command_wall_s: 0.0,
        descendants_left: 0,
        threads: Vec::new(),
    };
    // `measure`'s way: one exact reading, no samples needed.
    let a = analyse_any_length(&rec);
    check(&a);
    assert_eq!(
        a.verdict,
        Verdict::CpuBound {
            parallel: false,
            gil_limited: false
        }
    );
}

#[test]
fn human_bytes_units() {
    assert_eq!(human_bytes(512.0), "512 B");
    assert_eq!(human_bytes(1536.0), "1.5 KB");
    assert_eq!(human_bytes(3.0 * 1024.0 * 1024.0), "3.0 MB");
}

// --- The defects of issue 20 ------------------------------------------------------------------

/// `compileall -j 2`'s shape: two worker processes compute flat out; the main process's
/// management and queue-feeder threads (and its main thread) wake for a moment in every
/// interval. Five threads are busy in every interval, two do the work.
fn pool_with_helpers() -> Recording {
    let st = synth::Step {
        cpu_ms: 39.3,
        processes: 3,
        threads: 5,
        running: 2,
        sleeping: 3,
        busy_threads: 5,
        busy_processes: 3,
        // (2 × 19.5 + 3 × 0.1)² / (2 × 19.5² + 3 × 0.1²)
        work_threads: Some(39.3_f64.powi(2) / (2.0 * 19.5_f64.powi(2) + 3.0 * 0.01)),
        ..synth::Step::default()
    };
    let mut rec = synth::recording(Lang::Python, 2, 20, &vec![st; 150], 0.05, 2400, 300);
    use crate::recording::WaitKind::{Lock, Pipe, Poll};
    rec.threads = vec![
        synth::thread(&rec, 100, 100, 0.015, 0, Lock),
        synth::thread(&rec, 100, 101, 0.015, 0, Poll),
        synth::thread(&rec, 100, 102, 0.015, 0, Lock),
        synth::thread(&rec, 200, 200, 2.93, 150, Pipe),
        synth::thread(&rec, 300, 300, 2.93, 150, Pipe),
    ];
    rec
}

#[test]
fn sleeping_helper_threads_do_not_make_a_parallel_pool_mixed() {
    let rec = pool_with_helpers();
    let a = analyse(&rec);
    check(&a);
    assert_eq!(
        a.verdict,
        Verdict::CpuBound {
            parallel: true,
            gil_limited: false
        },
        "{a:#?}"
    );
    // Counted by busy threads (5), W/C was 1.5 and the verdict mixed; weighted by their work,
    // about 2 threads are at work and they hardly wait.
    assert!(
        (a.figures.active_threads - 2.0).abs() < 0.1,
        "{}",
        a.figures.active_threads
    );
    assert!(
        a.figures.wait_over_compute < 0.1,
        "{}",
        a.figures.wait_over_compute
    );
    assert_eq!(a.advice.as_ref().unwrap().model, Model::Processes);
    // The helpers are named as set aside.
    assert_eq!(a.set_aside.len(), 1, "{:?}", a.set_aside);
    assert_eq!((a.set_aside[0].pid, a.set_aside[0].threads), (100, 3));
    assert!(a.set_aside[0].asleep_share > 0.99 && a.set_aside[0].cpu_share < 0.01);
}

#[test]
fn python_threads_already_in_parallel_are_advised_to_stay_threads() {
    // Two threads hashing in one process: hashlib releases the GIL, 1.95 cores busy.
    let st = synth::Step {
        cpu_ms: 39.0,
        processes: 1,
        threads: 3,
        running: 2,
        sleeping: 1,
        busy_threads: 2,
        busy_processes: 1,
        ..synth::Step::default()
    };
    let mut rec = synth::recording(Lang::Python, 2, 20, &vec![st; 150], 0.01, 40, 30);
    use crate::recording::WaitKind::Lock;
    rec.threads = vec![
        synth::thread(&rec, 100, 100, 0.01, 0, Lock),
        synth::thread(&rec, 100, 101, 2.92, 150, Lock),
        synth::thread(&rec, 100, 102, 2.92, 150, Lock),
    ];
    let a = analyse(&rec);
    check(&a);
    assert_eq!(
        a.verdict,
        Verdict::CpuBound {
            parallel: true,
            gil_limited: false
        }
    );
    let advice = a.advice.as_ref().unwrap();
    assert_eq!(advice.model, Model::Threads, "{advice:#?}");
    assert!(
        advice.reasons[0].contains("releases the GIL"),
        "{:?}",
        advice.reasons
    );
    // The same threads taking turns on the GIL (about one core) still want processes.
    let a = analyse(&sig::gil_threads());
    assert_eq!(a.advice.as_ref().unwrap().model, Model::Processes);
}

#[test]
fn starved_parallel_threads_are_still_parallel() {
    // Two threads each wanting a core, on a machine where another program holds one: 1.33
    // cores busy, 0.67 queued. Cores busy alone would say "one core" (or the GIL).
    let st = synth::Step {
        cpu_ms: 26.6,
        delay_ms: 13.4,
        processes: 1,
        threads: 2,
        running: 2,
        busy_threads: 2,
        busy_processes: 1,
        ..synth::Step::default()
    };
    let a = analyse(&synth::recording(
        Lang::Python,
        2,
        20,
        &vec![st; 150],
        0.01,
        60,
        900,
    ));
    assert_eq!(
        a.verdict,
        Verdict::CpuBound {
            parallel: true,
            gil_limited: false
        },
        "{a:#?}"
    );
    assert!((a.figures.cores_demanded - 2.0).abs() < 0.01);
}

/// `steps` of a disk-bound warm-up (one thread reading, in D state, little CPU), then of
/// compute on two threads.
fn warm_up_then_compute(warm_up: usize, compute: usize) -> Recording {
    let reading = synth::Step {
        cpu_ms: 1.0,
        processes: 1,
        threads: 1,
        disk_wait: 1,
        busy_threads: 1,
        busy_processes: 1,
        rchar: 1 << 20,
        read_bytes: 1 << 20,
        syscalls: 16,
        ..synth::Step::default()
    };
    let computing = synth::Step {
        cpu_ms: 39.5,
        processes: 1,
        threads: 2,
        running: 2,
        busy_threads: 2,
        busy_processes: 1,
        ..synth::Step::default()
    };
    let mut steps = vec![reading; warm_up];
    steps.extend(vec![computing; compute]);
    synth::recording(Lang::Native, 2, 20, &steps, 0.05, 200, 50)
}

#[test]
fn a_disk_bound_warm_up_then_compute_is_reported_as_phases() {
    let cold = analyse(&warm_up_then_compute(40, 200));
    check(&cold);
    let verdict = Verdict::CpuBound {
        parallel: true,
        gil_limited: false,
    };
    // Averaged, it was a third answer (mixed-ish demand, not parallel); by phases, the run is
    // CPU-bound on 2 cores after a 0.8 s disk-bound start.
    assert_eq!(cold.verdict, verdict, "{cold:#?}");
    assert_eq!(cold.phases.len(), 2, "{:#?}", cold.phases);
    assert_eq!(
        cold.phases[0].verdict,
        Verdict::IoBound { wait: IoWait::Disk }
    );
    assert!(
        (cold.phases[0].end_s - 0.8).abs() < 0.15,
        "{:?}",
        cold.phases
    );
    assert_eq!(cold.phases[1].verdict, verdict);
    assert!(
        cold.evidence[0].starts_with("Phases: first 0.")
            && cold.evidence[0].contains("disk-bound, then"),
        "{:?}",
        cold.evidence
    );
    assert!(
        cold.evidence[0].contains("CPU-bound on 2.0 core(s)"),
        "{:?}",
        cold.evidence
    );
    // Warm (no warm-up), the same verdict, in one phase.
    let warm = analyse(&warm_up_then_compute(0, 200));
    assert_eq!(warm.verdict, verdict);
    assert!(warm.phases.is_empty());
}

#[test]
fn short_spells_and_fine_grained_alternation_are_not_phases() {
    // A 0.2 s warm-up is too short to be a phase of a 4 s run.
    let a = analyse(&warm_up_then_compute(10, 200));
    assert!(a.phases.is_empty(), "{:#?}", a.phases);
    assert!(matches!(
        a.verdict,
        Verdict::CpuBound { parallel: true, .. }
    ));
    // 50 ms on / 50 ms off is mixed in every window: one character, no phases.
    let a = analyse(&sig::mixed(Lang::Python));
    assert!(a.phases.is_empty(), "{:#?}", a.phases);
    assert_eq!(a.verdict, Verdict::Mixed);
}

#[test]
fn waits_are_named_by_what_the_threads_at_work_were_blocked_in() {
    // Few bytes move (a server answering late), so the IO counters alone say "timer"; the
    // threads were found blocked on sockets.
    let mut rec = sig::sleep_loop();
    use crate::recording::WaitKind::{Lock, Socket};
    rec.threads = vec![
        synth::thread(&rec, 100, 100, 0.1, 1, Socket),
        synth::thread(&rec, 100, 101, 0.005, 0, Lock),
    ];
    let a = analyse(&rec);
    assert_eq!(
        a.verdict,
        Verdict::IoBound {
            wait: IoWait::NetworkOrPipe
        },
        "{a:#?}"
    );
    assert!(
        a.evidence.iter().any(|e| e.contains("socket")),
        "{:?}",
        a.evidence
    );
    // Without the records, the counters' answer.
    assert_eq!(
        analyse(&sig::sleep_loop()).verdict,
        Verdict::IoBound {
            wait: IoWait::Sleep
        }
    );
}
