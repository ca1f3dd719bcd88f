//! `triad map`'s two decoders of outside bytes: a worker's answer line (`check_answer` and
//! `check_harness_answer`, for each format) and the input reader (jsonl, csv and lines over
//! the bytes as a file, also gzipped). Nothing may panic; an answer accepted for jsonl must
//! be JSON; every input line is either a record or a malformed one with a line number, never
//! lost.

#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use triad_map::input::Reader;
use triad_map::records::{check_answer, check_harness_answer};
use triad_map::{Format, Inputs};

fuzz_target!(|data: &[u8]| {
    for line in data.split(|byte| *byte == b'\n') {
        for format in [Format::Jsonl, Format::Csv, Format::Lines] {
            let plain = check_answer(line, format).is_ok();
            let harness = check_harness_answer(line, format).is_ok();
            assert!(plain || !harness, "the harness's check is the stricter");
            if plain && format != Format::Lines {
                // JSON text: a Value, or short of one only for a number past an f64's range.
                if let Err(error) = serde_json::from_slice::<serde_json::Value>(line) {
                    assert!(error.to_string().starts_with("number out of range"), "{error}");
                }
            }
        }
    }
    let directory = std::env::temp_dir().join(format!("triad-fuzz-map-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let plain = directory.join("input.txt");
    std::fs::write(&plain, data).unwrap();
    let gzipped = directory.join("input.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    std::fs::write(&gzipped, encoder.finish().unwrap()).unwrap();
    for path in [plain, gzipped] {
        for format in [Format::Jsonl, Format::Csv, Format::Lines] {
            let inputs = Inputs::new(vec![path.clone()]);
            let mut reader = Reader::new(&inputs, format, 7, 0);
            let mut records = 0;
            let mut lines = Vec::new();
            for batch in &mut reader {
                records += batch.len();
                lines.extend(batch.malformed.iter().map(|failure| failure.line));
                lines.extend(batch.origins.iter().map(|origin| origin.line));
            }
            if format == Format::Lines
                && !data.starts_with(&[0x1f, 0x8b])
                && reader.error().lock().unwrap().is_none()
            {
                let expected = data.split(|byte| *byte == b'\n').count()
                    - usize::from(data.is_empty() || data.ends_with(b"\n"));
                assert_eq!(records, expected, "every line is a record");
            }
            lines.sort_unstable();
            // A CSV record's line is where it starts, as the csv crate counts lines (by `\n`;
            // a lone `\r` ends a record too, so two records may start on one line).
            if format != Format::Csv {
                assert!(lines.windows(2).all(|pair| pair[0] < pair[1]), "a line once");
            }
        }
    }
});
