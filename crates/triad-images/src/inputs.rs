//! The command line's INPUTs turned into a list of images, each with the path its output keeps
//! under `--out`.
//!
//! - A file is taken as it is, whatever its name (its bytes say what it is); its output is its
//!   file name.
//! - A directory gives its JPEG, PNG and WebP files (by extension), with `recursive` those of
//!   every directory below too; an output keeps the path below the directory.
//! - A glob (`photos/*.jpg`, `'**/*.png'`, for a shell that did not expand it) gives what it
//!   matches; an output keeps the path below the glob's first directory without a wildcard.
//!
//! An input that names nothing (a missing file, a glob that matches nothing) is an entry that
//! failed, so that it shows in the summary and the exit code beside the others. Entries come
//! sorted within each input, in the order the inputs were given. The output directory is never
//! walked into, so a re-run does not take last run's outputs as inputs.

use std::path::{Path, PathBuf};

use crate::decode::Kind;
use crate::error::{Failure, FailureKind};

/// One image to process, or an input that named none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path as found (the input as given, for one that failed).
    pub path: PathBuf,
    /// Its path below the output directory (with the input's file name).
    pub relative: PathBuf,
    /// Why it cannot be processed at all, found while listing the inputs.
    pub failure: Option<Failure>,
}

/// The images that `inputs` name, in order. `skip` is a directory never walked into (the
/// output directory).
pub fn expand(inputs: &[PathBuf], recursive: bool, skip: Option<&Path>) -> Vec<Entry> {
    let skip = skip.and_then(|dir| dir.canonicalize().ok());
    let mut entries = Vec::new();
    for input in inputs {
        let text = input.to_string_lossy();
        if input.is_dir() {
            walk(
                input,
                Path::new(""),
                recursive,
                skip.as_deref(),
                &mut entries,
            );
        } else if input.exists() || !is_glob(&text) {
            entries.push(file(input, input.file_name().map(PathBuf::from)));
        } else {
            glob(input, recursive, skip.as_deref(), &mut entries);
        }
    }
    entries
}

/// A file entry; one whose name cannot be an output (`..`, `/`) or that cannot be read as a
/// file fails.
fn file(path: &Path, relative: Option<PathBuf>) -> Entry {
    let failure = match std::fs::metadata(path) {
        Err(error) => Some(Failure::new(
            FailureKind::Unreadable,
            format!("cannot read {}: {error}", path.display()),
        )),
        Ok(meta) if !meta.is_file() => Some(Failure::new(
            FailureKind::Unreadable,
            format!("{} is not a regular file", path.display()),
        )),
        Ok(_) if relative.is_none() => Some(Failure::new(
            FailureKind::Unreadable,
            format!("{} has no file name", path.display()),
        )),
        Ok(_) => None,
    };
    Entry {
        path: path.to_owned(),
        relative: relative.unwrap_or_default(),
        failure,
    }
}

/// Adds the image files of `dir` (whose path below the input is `below`), sorted; with
/// `recursive`, those of its subdirectories too.
fn walk(dir: &Path, below: &Path, recursive: bool, skip: Option<&Path>, out: &mut Vec<Entry>) {
    if skip.is_some() && dir.canonicalize().ok().as_deref() == skip {
        return;
    }
    let listing = match std::fs::read_dir(dir) {
        Ok(listing) => listing,
        Err(error) => {
            out.push(Entry {
                path: dir.to_owned(),
                relative: below.to_owned(),
                failure: Some(Failure::new(
                    FailureKind::Unreadable,
                    format!("cannot list {}: {error}", dir.display()),
                )),
            });
            return;
        }
    };
    let mut children: Vec<_> = listing.filter_map(Result::ok).collect();
    children.sort_by_key(|child| child.file_name());
    for child in children {
        let path = child.path();
        let relative = below.join(child.file_name());
        let is_dir = child.file_type().is_ok_and(|kind| kind.is_dir());
        if is_dir {
            if recursive {
                walk(&path, &relative, recursive, skip, out);
            }
        } else if is_image_name(&path) {
            out.push(file(&path, Some(relative)));
        }
    }
}

/// Adds what the glob `pattern` matches.
fn glob(pattern: &Path, recursive: bool, skip: Option<&Path>, out: &mut Vec<Entry>) {
    let text = pattern.to_string_lossy();
    let failed = |message: String| Entry {
        path: pattern.to_owned(),
        relative: PathBuf::new(),
        failure: Some(Failure::new(FailureKind::Unreadable, message)),
    };
    let matches = match glob::glob(&text) {
        Ok(matches) => matches,
        Err(error) => return out.push(failed(format!("bad pattern {text}: {error}"))),
    };
    // The directory the outputs' paths start below: the pattern's components before the
    // first that has a wildcard.
    let base: PathBuf = pattern
        .components()
        .take_while(|part| !is_glob(&part.as_os_str().to_string_lossy()))
        .collect();
    let before = out.len();
    for found in matches {
        match found {
            Ok(path) => {
                let relative = path.strip_prefix(&base).unwrap_or(&path).to_owned();
                if path.is_dir() {
                    walk(&path, &relative, recursive, skip, out);
                } else {
                    out.push(file(&path, Some(relative)));
                }
            }
            Err(error) => out.push(failed(format!(
                "cannot read {}: {error}",
                error.path().display()
            ))),
        }
    }
    if out.len() == before {
        out.push(failed(format!("no file matches {text}")));
    }
}

fn is_glob(text: &str) -> bool {
    text.contains(['*', '?', '['])
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|extension| extension.to_str())
        .and_then(Kind::from_extension)
        .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn files_directories_and_globs_keep_their_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for name in [
            "a.jpg",
            "b.PNG",
            "notes.txt",
            "sub/c.webp",
            "sub/deeper/d.jpeg",
            "out/old.jpg",
        ] {
            touch(&root.join(name));
        }
        let relatives = |entries: Vec<Entry>| -> Vec<String> {
            entries
                .into_iter()
                .map(|e| {
                    assert_eq!(e.failure, None, "{}", e.path.display());
                    e.relative.to_string_lossy().into_owned()
                })
                .collect()
        };
        let flat = expand(&[root.to_owned()], false, Some(&root.join("out")));
        assert_eq!(relatives(flat), ["a.jpg", "b.PNG"]);
        let deep = expand(&[root.to_owned()], true, Some(&root.join("out")));
        assert_eq!(
            relatives(deep),
            ["a.jpg", "b.PNG", "sub/c.webp", "sub/deeper/d.jpeg"]
        );
        let named = expand(&[root.join("notes.txt")], false, None);
        assert_eq!(
            relatives(named),
            ["notes.txt"],
            "a named file is taken whatever its name"
        );
        let globbed = expand(&[root.join("sub/**/*.*")], false, None);
        assert_eq!(relatives(globbed), ["c.webp", "deeper/d.jpeg"]);
    }

    #[test]
    fn inputs_that_name_nothing_are_failed_entries() {
        let dir = tempfile::tempdir().unwrap();
        let entries = expand(
            &[dir.path().join("missing.jpg"), dir.path().join("*.png")],
            false,
            None,
        );
        assert_eq!(entries.len(), 2);
        let reasons: Vec<_> = entries
            .iter()
            .map(|e| e.failure.as_ref().unwrap().message.clone())
            .collect();
        assert!(reasons[0].contains("No such file"), "{reasons:?}");
        assert!(reasons[1].contains("no file matches"), "{reasons:?}");
    }
}
