//! Present an [`Analysis`]: a short human report ([`render_text`], at most 30 lines: verdict,
//! evidence, advice, figures, a sparkline of cores busy) and a JSON document ([`render_json`],
//! every figure and the time series; schema in `SCHEMA.md`).

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::classify::{Analysis, IoWait, Model, Verdict, human_bytes};
use crate::recording::{Exit, Recording};

/// The `"schema"` tag of [`render_json`]'s document.
pub const JSON_SCHEMA: &str = "triad-profile/2";

/// The most lines [`render_text`] writes.
pub const MAX_TEXT_LINES: usize = 30;

/// The most columns of the cores-busy sparkline.
pub const SPARKLINE_WIDTH: usize = 60;

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// A verdict in words: `CPU-bound, GIL-limited`, `IO-bound (disk)`, `mixed`, ….
pub fn verdict_text(verdict: Verdict) -> String {
    match verdict {
        Verdict::CpuBound {
            gil_limited: true, ..
        } => "CPU-bound, GIL-limited (threads take turns on one core)".into(),
        Verdict::CpuBound { parallel: true, .. } => {
            "CPU-bound, already parallel (several cores busy)".into()
        }
        Verdict::CpuBound { .. } => "CPU-bound, on one core".into(),
        Verdict::IoBound { wait: IoWait::Disk } => "IO-bound, waiting on the disk".into(),
        Verdict::IoBound {
            wait: IoWait::NetworkOrPipe,
        } => "IO-bound, waiting on a network or pipe".into(),
        Verdict::IoBound {
            wait: IoWait::Sleep,
        } => "IO-bound, waiting on a timer (sleep)".into(),
        Verdict::Mixed => "mixed: compute and waits in comparable amounts".into(),
        Verdict::TooShort { samples } => format!("too short to classify ({samples} sample(s))"),
    }
}

fn model_text(model: Model) -> &'static str {
    match model {
        Model::KeepSerial => "keep it serial",
        Model::Processes => "processes (a process pool)",
        Model::Threads => "threads (a thread pool)",
        Model::Coroutines => "coroutines (an event loop)",
        Model::HybridPipeline => "a hybrid pipeline",
    }
}

/// The cores-busy series as a sparkline of at most `width` columns (averaging buckets), scaled
/// from 0 to `top` (at least the series' maximum).
pub fn sparkline(series: &[f64], width: usize, top: f64) -> String {
    if series.is_empty() || width == 0 {
        return String::new();
    }
    let columns = series.len().min(width);
    let top = series.iter().copied().fold(top, f64::max);
    (0..columns)
        .map(|c| {
            let from = c * series.len() / columns;
            let to = ((c + 1) * series.len() / columns).max(from + 1);
            let bucket = &series[from..to];
            let v = bucket.iter().sum::<f64>() / bucket.len() as f64;
            let level = if top > 0.0 {
                (v / top * 8.0).ceil() as usize
            } else {
                0
            };
            BARS[level.clamp(1, 8) - 1]
        })
        .collect()
}

struct Paint(bool);

impl Paint {
    fn wrap(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// The human report: verdict first, then evidence, advice, key figures and a sparkline of cores
/// busy over time; at most [`MAX_TEXT_LINES`] lines. `color` adds ANSI styling (the CLI passes
/// false when `NO_COLOR` is set or stdout is not a terminal).
pub fn render_text(recording: &Recording, analysis: &Analysis, color: bool) -> String {
    let p = Paint(color);
    let f = &analysis.figures;
    let mut lines: Vec<String> = Vec::new();

    let exit = match recording.exit {
        Exit::Code { code } => format!("exit {code}"),
        Exit::Signal { signal } => format!("killed by signal {signal}"),
    };
    let mut command = recording.command.join(" ");
    if command.chars().count() > 50 {
        command = command.chars().take(49).collect::<String>() + "…";
    }
    let verdict_colour = match analysis.verdict {
        Verdict::CpuBound { .. } => "1;31",
        Verdict::IoBound { .. } => "1;34",
        Verdict::Mixed | Verdict::TooShort { .. } => "1;33",
    };
    let confidence = match analysis.verdict {
        Verdict::TooShort { .. } => String::new(),
        _ => format!("  (confidence {:.0}%)", analysis.confidence * 100.0),
    };
    lines.push(format!(
        "{} {}{confidence}",
        p.wrap("1", "Verdict:"),
        p.wrap(verdict_colour, &verdict_text(analysis.verdict)),
    ));
    lines.push(format!(
        "  {command}  ({exit}, {:.2} s wall, {} core(s))",
        f.wall_s, f.cores
    ));
    if recording.descendants_left > 0 {
        lines.push(format!(
            "  {} descendant(s) still ran when the command exited at {:.2} s: followed to the end",
            recording.descendants_left, recording.command_wall_s
        ));
    }
    let Some(a) = &analysis.advice else {
        // Too short: the totals only, and why.
        for e in &analysis.evidence {
            lines.push(format!("  {e}"));
        }
        let t = &recording.totals;
        lines.push(p.wrap("1", "Totals:"));
        lines.push(format!(
            "  CPU user {:.3} s + system {:.3} s in {:.3} s wall; peak RSS {}",
            t.user_s,
            t.system_s,
            t.wall_s,
            human_bytes(t.max_rss_bytes as f64)
        ));
        lines.push(format!(
            "  switches {} voluntary, {} involuntary; blocks {} read, {} written; {} process(es), {} thread(s) at most",
            t.voluntary_switches,
            t.involuntary_switches,
            t.in_blocks,
            t.out_blocks,
            t.peak_processes,
            t.peak_threads
        ));
        let mut out = lines.join("\n");
        out.push('\n');
        return out;
    };
    lines.push(p.wrap("1", "Evidence:"));
    for e in analysis.evidence.iter().take(5) {
        lines.push(format!("  - {e}"));
    }
    if let Some(line) = set_aside_line(analysis) {
        lines.push(format!("  - {line}"));
    }
    let mut head = format!("Advice: {}", model_text(a.model));
    if a.model != Model::KeepSerial {
        let _ = write!(head, ", {} worker(s)", a.workers);
    }
    if let Some(c) = a.concurrency {
        let _ = write!(head, ", {c} in flight");
    }
    lines.push(p.wrap("1;32", &head));
    for r in a.reasons.iter().take(4) {
        lines.push(format!("  - {r}"));
    }
    lines.push(p.wrap("1", "Figures:"));
    lines.push(format!(
        "  CPU      user {:.2} s + system {:.2} s = {:.2}× wall; cores busy avg {:.2}, peak {:.2}",
        f.user_s, f.system_s, f.cpu_ratio, f.avg_cores_busy, f.peak_cores_busy
    ));
    lines.push(format!(
        "  Threads  running {:.0}%, runnable {:.0}%, sleeping {:.0}%, disk {:.0}%; busy avg {:.1}, max {} (procs max {})",
        f.share_running * 100.0,
        f.share_runnable * 100.0,
        f.share_sleeping * 100.0,
        f.share_disk_wait * 100.0,
        f.mean_busy_threads,
        f.max_busy_threads,
        f.max_busy_processes
    ));
    lines.push(format!(
        "  IO       read {}/s ({}/s storage), written {}/s ({}/s storage), {:.0} calls/s",
        human_bytes(f.rchar_per_s),
        human_bytes(f.read_bytes_per_s),
        human_bytes(f.wchar_per_s),
        human_bytes(f.write_bytes_per_s),
        f.syscalls_per_s
    ));
    lines.push(format!(
        "  Waits    W/C {:.2}; switches {:.0}/s voluntary, {:.0}/s involuntary; peak RSS {}",
        f.wait_over_compute,
        f.voluntary_switches_per_s,
        f.involuntary_switches_per_s,
        human_bytes(f.peak_rss_bytes as f64)
    ));
    if !f.cores_busy.is_empty() {
        let top = f.cores as f64;
        lines.push(format!(
            "Cores busy over time (0 to {top:.0}, {} samples of {} ms):",
            f.cores_busy.len(),
            recording.interval_ms
        ));
        lines.push(format!(
            "  {}",
            sparkline(&f.cores_busy, SPARKLINE_WIDTH, top)
        ));
    }
    lines.truncate(MAX_TEXT_LINES);
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// The threads set aside, in one sentence (`None` when there are none).
pub fn set_aside_line(analysis: &Analysis) -> Option<String> {
    let aside = &analysis.set_aside;
    if aside.is_empty() {
        return None;
    }
    let threads: u32 = aside.iter().map(|a| a.threads).sum();
    let cpu_share: f64 = aside.iter().map(|a| a.cpu_share).sum();
    let asleep = aside.iter().map(|a| a.asleep_share).fold(1.0, f64::min);
    let mut whose: Vec<String> = aside
        .iter()
        .take(3)
        .map(|a| format!("{} of {} [{}]", a.threads, a.process, a.pid))
        .collect();
    if aside.len() > 3 {
        whose.push(format!("{} more process(es)", aside.len() - 3));
    }
    Some(format!(
        "Set aside: {threads} idle helper thread(s) ({}), asleep in at least {:.0}% of the samples, with {:.1}% of the CPU: the waits counted are those of the threads at work.",
        whose.join(", "),
        (asleep * 100.0).floor(),
        cpu_share * 100.0
    ))
}

/// The JSON document: `"schema": "triad-profile/2"`, the command, exit, every figure, the
/// verdict with confidence and evidence, the advice and the per-sample time series.
pub fn render_json(recording: &Recording, analysis: &Analysis) -> Value {
    let mut figures = serde_json::to_value(&analysis.figures).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut figures {
        // The series lives under "series", aligned with its timestamps.
        map.remove("cores_busy");
    }
    let s = &recording.samples;
    json!({
        "schema": JSON_SCHEMA,
        "command": recording.command,
        "lang": recording.lang,
        "cores": recording.cores,
        "interval_ms": recording.interval_ms,
        "exit": recording.exit,
        "command_wall_s": recording.command_wall_s,
        "descendants_left": recording.descendants_left,
        "totals": recording.totals,
        "figures": figures,
        "verdict": analysis.verdict,
        "verdict_text": verdict_text(analysis.verdict),
        "confidence": analysis.confidence,
        "evidence": analysis.evidence,
        "advice": analysis.advice,
        "phases": analysis.phases,
        "set_aside": analysis.set_aside,
        "series": {
            "t_ms": s.iter().map(|x| x.t_ms).collect::<Vec<_>>(),
            "cores_busy": analysis.figures.cores_busy,
            "busy_threads": s.iter().map(|x| x.busy_threads).collect::<Vec<_>>(),
            "busy_processes": s.iter().map(|x| x.busy_processes).collect::<Vec<_>>(),
            "threads": s.iter().map(|x| x.threads).collect::<Vec<_>>(),
            "running": s.iter().map(|x| x.running).collect::<Vec<_>>(),
            "sleeping": s.iter().map(|x| x.sleeping).collect::<Vec<_>>(),
            "disk_wait": s.iter().map(|x| x.disk_wait).collect::<Vec<_>>(),
            "rss_bytes": s.iter().map(|x| x.rss_bytes).collect::<Vec<_>>(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::analyse;
    use crate::recording::Lang;
    use crate::synth::signatures as sig;

    fn all() -> Vec<Recording> {
        vec![
            sig::cpu_loop(Lang::Python),
            sig::sleep_loop(),
            sig::gil_threads(),
            sig::multiprocessing(),
            sig::fsync_loop(),
            sig::mixed(Lang::Python),
            sig::network_client(),
        ]
    }

    #[test]
    fn text_fits_in_30_lines_verdict_first() {
        for rec in all() {
            let a = analyse(&rec);
            for color in [false, true] {
                let text = render_text(&rec, &a, color);
                let lines: Vec<&str> = text.lines().collect();
                assert!(
                    lines.len() <= MAX_TEXT_LINES,
                    "{} lines:\n{text}",
                    lines.len()
                );
                assert!(lines[0].contains("Verdict:"), "{text}");
                let evidence = text.find("Evidence:").unwrap();
                let advice = text.find("Advice:").unwrap();
                assert!(evidence < advice);
            }
        }
    }

    #[test]
    fn text_without_color_has_no_ansi_escapes() {
        for rec in all() {
            let a = analyse(&rec);
            assert!(!render_text(&rec, &a, false).contains('\x1b'));
            assert!(render_text(&rec, &a, true).contains("\x1b["));
        }
    }

    #[test]
    fn text_names_the_verdict_and_shows_a_sparkline() {
        let rec = sig::gil_threads();
        let a = analyse(&rec);
        let text = render_text(&rec, &a, false);
        assert!(text.contains("GIL-limited"), "{text}");
        assert!(text.contains("processes"), "{text}");
        let spark = text.lines().last().unwrap().trim();
        assert!(spark.chars().count() <= SPARKLINE_WIDTH && !spark.is_empty());
        assert!(spark.chars().all(|c| BARS.contains(&c)), "{spark}");
    }

    #[test]
    fn sparkline_downsamples_and_scales() {
        let series: Vec<f64> = (0..500).map(|i| f64::from(i % 2)).collect();
        assert_eq!(sparkline(&series, 60, 2.0).chars().count(), 60);
        assert_eq!(sparkline(&[0.0, 1.0, 2.0], 60, 2.0), "▁▄█");
        assert_eq!(sparkline(&[], 60, 2.0), "");
        assert_eq!(sparkline(&[0.0, 0.0], 60, 0.0), "▁▁");
    }

    #[test]
    fn json_has_schema_figures_verdict_advice_and_series() {
        let rec = sig::fsync_loop();
        let a = analyse(&rec);
        let doc = render_json(&rec, &a);
        assert_eq!(doc["schema"], JSON_SCHEMA);
        assert_eq!(doc["verdict"]["kind"], "io_bound");
        assert_eq!(doc["verdict"]["wait"], "disk");
        assert_eq!(doc["advice"]["model"], "threads");
        let figures = doc["figures"].as_object().unwrap();
        for key in [
            "wall_s",
            "user_s",
            "system_s",
            "cpu_ratio",
            "avg_cores_busy",
            "peak_cores_busy",
            "share_running",
            "share_runnable",
            "share_sleeping",
            "share_disk_wait",
            "rchar_per_s",
            "write_bytes_per_s",
            "syscalls_per_s",
            "peak_rss_bytes",
            "max_busy_threads",
            "mean_busy_processes",
            "wait_over_compute",
            "voluntary_switches_per_s",
            "involuntary_switches_per_s",
        ] {
            assert!(figures[key].is_number(), "{key}");
        }
        assert!(figures.values().all(|v| !v.is_null()));
        let n = rec.samples.len();
        assert_eq!(doc["series"]["t_ms"].as_array().unwrap().len(), n);
        assert_eq!(doc["series"]["cores_busy"].as_array().unwrap().len(), n);
        assert!((3..=5).contains(&doc["evidence"].as_array().unwrap().len()));
        assert_eq!(doc["exit"]["kind"], "code");
    }

    #[test]
    fn a_run_too_short_gets_totals_and_no_advice() {
        let mut rec = sig::cpu_loop(Lang::Python);
        rec.samples.truncate(crate::classify::MIN_SAMPLES - 1);
        let a = analyse(&rec);
        assert_eq!(
            a.verdict,
            Verdict::TooShort {
                samples: crate::classify::MIN_SAMPLES - 1
            }
        );
        let text = render_text(&rec, &a, false);
        assert!(text.starts_with("Verdict: too short to classify"), "{text}");
        assert!(
            text.contains("Totals:") && text.contains("CPU user"),
            "{text}"
        );
        assert!(
            !text.contains("Advice:") && !text.contains("confidence"),
            "{text}"
        );
        let doc = render_json(&rec, &a);
        assert_eq!(doc["verdict"]["kind"], "too_short");
        assert!(doc["advice"].is_null());
        assert_eq!(doc["confidence"], 0.0);
    }

    #[test]
    fn descendants_left_running_are_reported() {
        let mut rec = sig::sleep_loop();
        rec.descendants_left = 2;
        rec.command_wall_s = 0.25;
        let a = analyse(&rec);
        let text = render_text(&rec, &a, false);
        assert!(
            text.contains("2 descendant(s) still ran when the command exited at 0.25 s"),
            "{text}"
        );
        let doc = render_json(&rec, &a);
        assert_eq!(doc["descendants_left"], 2);
        assert_eq!(doc["command_wall_s"], 0.25);
    }
}
