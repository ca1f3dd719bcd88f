#[triad::task]
const fn seven(_: ()) -> u8 {
    7
}

fn main() {}
