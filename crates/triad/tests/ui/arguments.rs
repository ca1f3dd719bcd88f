#[triad::task(name = "other")]
fn square(x: u64) -> u64 {
    x * x
}

fn main() {}
