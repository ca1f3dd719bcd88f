//! `triad images`: the seed's batch image processor (§7.4) as a tool — every core busy, each
//! bad file failing alone, nothing half-written.
//!
//! The seed opens, resizes, rotates and filters each image with PIL over
//! `multiprocessing.Pool.map`, because the GIL keeps Python's threads off the other cores. Rust
//! threads run in parallel, so here threads are the default ([`Mode::Threads`]: no
//! serialisation, no copies) and worker processes ([`Mode::Processes`], triad's own pool) are
//! there for what only they give: a decoder that crashes or hangs on a hostile file takes down
//! one worker, and fails one image.
//!
//! Each image is read, its header probed (a bomb is refused before decoding; its memory is
//! reserved against a bound), decoded — a JPEG shrunk by 2, 4 or 8 in the DCT domain when the
//! first operation shrinks it anyway, as libvips does — put through the operations in order
//! (resizing by `fast_image_resize`, SIMD), encoded and written atomically.
//!
//! ```no_run
//! use triad_images::{Op, Options, run};
//! let ops = vec![Op::parse("resize=800x600").unwrap(), Op::parse("rotate=90").unwrap()];
//! let summary = run(&Options::new(ops, "out", vec!["photos".into()])).unwrap();
//! println!("{} ok, {} failed", summary.ok, summary.failed);
//! ```
//!
//! # Layout
//! - [`inputs`]: files, directories and globs into a list of images and their output paths.
//! - [`ops`]: the operations: parsing, geometry, applying; `rotate` turns by any angle.
//! - [`decode`]: the header probe and decoding (shrink-on-load for JPEG).
//! - [`encode`]: encoding, and the atomic write.
//! - `budget`: the memory bound on decodes in flight.
//! - [`job`]: one image, start to end; the task worker processes run.
//! - [`run`](mod@run): the batch, on threads or in processes.
//! - [`summary`]: the rows and totals.
//! - [`error`]: one image's [`Failure`], and the run's [`ImagesError`].

mod budget;
pub mod decode;
pub mod encode;
pub mod error;
pub mod inputs;
pub mod job;
pub mod ops;
mod rotate;
pub mod run;
pub mod summary;

pub use decode::Kind;
pub use error::{Failure, FailureKind, ImagesError};
pub use ops::Op;
pub use run::{Mode, Options, Progress, run};
pub use summary::{Row, Status, Summary};
