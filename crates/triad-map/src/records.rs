//! Records as they travel: a batch is its records end to end in one buffer (each ending in a
//! newline, the wire format of every kind of worker), with where each came from; what comes
//! back is the batch's output lines, in order, and its failures.

use serde::Serialize;

use crate::input::Format;

/// Where a record came from: which input, and which line of it (from 1; for CSV, the record's
/// line, the header being line 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The input's index in the list of inputs.
    pub input: u32,
    /// The line.
    pub line: u64,
}

/// Records to transform together.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    /// The index, in the whole input, of the batch's first record (malformed ones count).
    pub first: u64,
    /// The records, each ending in `\n`, end to end.
    pub data: Vec<u8>,
    /// Where each record ends in `data` (after its newline).
    pub ends: Vec<usize>,
    /// Where each record came from.
    pub origins: Vec<Origin>,
    /// Records of this batch's stretch of input that could not be read (they count towards
    /// the batch's records, and go to the errors as they are).
    pub malformed: Vec<Failure>,
}

impl Batch {
    /// The records sent to a worker.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether it has no record to send (it may still carry malformed ones).
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// How many input records the batch accounts for: sent and malformed.
    pub fn records(&self) -> u64 {
        (self.ends.len() + self.malformed.len()) as u64
    }

    /// Record `index`, with its newline.
    pub fn record(&self, index: usize) -> &[u8] {
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        &self.data[start..self.ends[index]]
    }

    /// Appends a record (without its newline; one is added).
    pub fn push(&mut self, record: &[u8], origin: Origin) {
        self.data.extend_from_slice(record);
        self.data.push(b'\n');
        self.ends.push(self.data.len());
        self.origins.push(origin);
    }
}

/// A record that failed for good: it never reaches the output, and goes to `--errors`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    /// The input record as it was read (its text, without the newline).
    pub record: String,
    /// The input's path (or `-` for standard input).
    pub input: String,
    /// Its line in that input.
    pub line: u64,
    /// Why it failed.
    pub reason: String,
    /// The last lines its worker wrote to stderr before it failed, if any.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stderr: Vec<String>,
    /// Its place in the input (input index, line), for keeping failures in input order.
    #[serde(skip)]
    pub order: (u32, u64),
}

/// What became of a batch.
#[derive(Debug, Default, Clone)]
pub struct Done {
    /// As in the batch.
    pub first: u64,
    /// As in the batch: the input records it accounts for.
    pub records: u64,
    /// The output lines of the records that succeeded, in input order, each ending in `\n`.
    pub output: Vec<u8>,
    /// How many records succeeded (one output line each).
    pub succeeded: u64,
    /// The records that failed for good, in input order (malformed ones first).
    pub failures: Vec<Failure>,
    /// Runs of a record again after it failed.
    pub retried: u64,
}

/// The answer line that says the function raised (ASCII record separator: no JSON text and no
/// sane line of text starts with it); the rest of the line is the reason, as a JSON string.
pub const RAISED: u8 = 0x1e;

/// Whether `line` is one JSON text: UTF-8 (which serde_json does not check inside strings it
/// skips), then valid JSON.
pub fn json_text(line: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(line).map_err(|error| format!("not UTF-8: {error}"))?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|error| error.to_string())
}

/// Whether an answer line of the Python harness is acceptable: never the "raised" mark, and
/// then as [`check_answer`] says.
pub fn check_harness_answer(line: &[u8], format: Format) -> Result<(), String> {
    if line.first() == Some(&RAISED) {
        let reason = String::from_utf8_lossy(&line[1..]);
        let reason =
            serde_json::from_str::<String>(&reason).unwrap_or_else(|_| reason.into_owned());
        return Err(format!("the function raised {reason}"));
    }
    check_answer(line, format)
}

/// Whether an answer line is acceptable: JSON where JSON is expected (a JSON object for CSV);
/// any line for raw lines.
pub fn check_answer(line: &[u8], format: Format) -> Result<(), String> {
    let shown = || String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned();
    match format {
        Format::Lines => Ok(()),
        Format::Jsonl => json_text(line)
            .map_err(|error| format!("the answer is not valid JSON ({error}): {}", shown())),
        Format::Csv => match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(_)) => Ok(()),
            Ok(_) => Err(format!(
                "the answer is not a JSON object (CSV needs one): {}",
                shown()
            )),
            Err(error) => Err(format!(
                "the answer is not valid JSON ({error}): {}",
                shown()
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_as_they_were_pushed() {
        let mut batch = Batch::default();
        for (line, text) in ["{\"a\":1}", "", "x"].iter().enumerate() {
            batch.push(
                text.as_bytes(),
                Origin {
                    input: 0,
                    line: line as u64 + 1,
                },
            );
        }
        assert_eq!(batch.len(), 3);
        assert_eq!(batch.record(0), b"{\"a\":1}\n");
        assert_eq!(batch.record(1), b"\n");
        assert_eq!(batch.record(2), b"x\n");
        assert_eq!(batch.records(), 3);
    }

    #[test]
    fn answers_are_checked_against_the_format() {
        assert!(check_answer(b"{\"a\":1}", Format::Jsonl).is_ok());
        assert!(check_answer(b"[1,2]", Format::Jsonl).is_ok());
        assert!(
            check_answer(b"[1,2]", Format::Csv)
                .unwrap_err()
                .contains("object")
        );
        assert!(
            check_answer(b"nope", Format::Jsonl)
                .unwrap_err()
                .contains("not valid JSON")
        );
        assert!(check_answer(b"nope", Format::Lines).is_ok());
        let raised = b"\x1e\"ValueError: bad\"";
        assert_eq!(
            check_harness_answer(raised, Format::Lines).unwrap_err(),
            "the function raised ValueError: bad"
        );
        assert!(
            check_answer(raised, Format::Lines).is_ok(),
            "a program's own line is text"
        );
        assert!(check_harness_answer(b"nope", Format::Jsonl).is_err());
        assert!(
            check_answer(b"\"(\xda\"", Format::Jsonl)
                .unwrap_err()
                .contains("not UTF-8"),
            "found by the fuzzer: a string that is not UTF-8 is not JSON"
        );
    }
}
