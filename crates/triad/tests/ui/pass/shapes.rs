//! Every shape a task may have: no argument, one, several, async, with docs and attributes.
use triad::Task;

/// No argument: the input is `()`.
#[triad::task]
fn nothing() {}

#[triad::task]
fn one(x: u64) -> u64 {
    x + 1
}

#[triad::task]
#[allow(clippy::too_many_arguments)]
pub fn several(a: u8, b: String, c: (i32, bool)) -> String {
    format!("{a}{b}{}{}", c.0, c.1)
}

#[triad::task]
async fn later(x: u8) -> u8 {
    x
}

fn main() {
    let _: <nothing as Task>::Input = ();
    let _: <several as Task>::Input = (1, String::new(), (2, true));
    assert_eq!(one::call(1), 2);
    assert_eq!(several::call(1, "b".into(), (3, false)), "1b3false");
    assert!(one::NAME.ends_with("::one"));
    let _ = later::call(3);
    nothing::call();
}
