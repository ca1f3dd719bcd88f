//! Turns recorded task spans into a [`Timeline`] for the Gantt charts of the HTML report.

use triad::Span;

use crate::results::{Lane, Timeline, TimelineSpan};

/// How spans are grouped into rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaneBy {
    /// One row per thread (process id and thread id).
    Thread,
    /// One row per CPU the span ran on.
    Cpu,
    /// One row per task.
    Task,
}

/// A timeline of `spans`, times measured from the earliest start, rows in order of first start.
pub fn from_spans(title: impl Into<String>, spans: &[Span], lane_by: LaneBy) -> Timeline {
    let origin = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let mut sorted: Vec<&Span> = spans.iter().collect();
    sorted.sort_by_key(|s| s.start_ns);
    let mut keys: Vec<(u64, String)> = Vec::new();
    let mut lanes: Vec<Lane> = Vec::new();
    for span in sorted {
        let (key, label) = match lane_by {
            LaneBy::Thread => (
                (u64::from(span.pid) << 32) | u64::from(span.tid),
                format!("pid {} tid {}", span.pid, span.tid),
            ),
            LaneBy::Cpu => (
                span.cpu.map_or(u64::MAX, u64::from),
                span.cpu
                    .map_or("cpu ?".to_owned(), |cpu| format!("cpu {cpu}")),
            ),
            LaneBy::Task => (span.task, format!("task {}", span.task)),
        };
        let index = match keys.iter().position(|(k, _)| *k == key) {
            Some(index) => index,
            None => {
                keys.push((key, label.clone()));
                lanes.push(Lane {
                    label,
                    spans: Vec::new(),
                });
                lanes.len() - 1
            }
        };
        lanes[index].spans.push(TimelineSpan {
            task: span.task,
            start_ns: span.start_ns - origin,
            end_ns: span.end_ns.max(span.start_ns) - origin,
            cpu: span.cpu,
        });
    }
    Timeline {
        title: title.into(),
        lanes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(task: u64, tid: u32, cpu: u32, start_ns: u64, end_ns: u64) -> Span {
        Span {
            name: "work".into(),
            task,
            pid: 1,
            tid,
            cpu: Some(cpu),
            start_ns,
            end_ns,
        }
    }

    #[test]
    fn groups_rows_and_measures_from_the_first_start() {
        let spans = [
            span(0, 10, 0, 1_000, 2_000),
            span(1, 11, 1, 1_500, 2_500),
            span(2, 10, 1, 2_000, 3_000),
        ];
        let by_thread = from_spans("t", &spans, LaneBy::Thread);
        assert_eq!(by_thread.lanes.len(), 2);
        assert_eq!(by_thread.lanes[0].spans.len(), 2);
        assert_eq!(by_thread.lanes[0].spans[0].start_ns, 0);
        assert_eq!(by_thread.lanes[1].spans[0].start_ns, 500);
        let by_cpu = from_spans("c", &spans, LaneBy::Cpu);
        assert_eq!(by_cpu.lanes[1].label, "cpu 1");
        assert_eq!(from_spans("k", &spans, LaneBy::Task).lanes.len(), 3);
    }
}
