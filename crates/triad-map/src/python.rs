//! How a `--py` worker starts: `python3 -c <the harness> FILE FUNC FORMAT`, the harness being
//! `harness.py`, shipped inside the binary (nothing to install beside triad but python3).

use std::ffi::OsString;
use std::path::Path;

use crate::input::Format;

const HARNESS: &str = include_str!("harness.py");

/// The worker's command line.
pub(crate) fn argv(file: &Path, function: &str, format: Format) -> Vec<OsString> {
    let format = match format {
        Format::Jsonl => "jsonl",
        Format::Csv => "csv",
        Format::Lines => "lines",
    };
    vec![
        "python3".into(),
        // Unbuffered streams, no user site: the harness flushes per batch itself.
        "-u".into(),
        "-c".into(),
        HARNESS.into(),
        file.as_os_str().to_owned(),
        function.into(),
        format.into(),
    ]
}
