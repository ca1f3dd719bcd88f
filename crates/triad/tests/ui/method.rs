struct Counter;

impl Counter {
    #[triad::task]
    fn next(&self) -> u64 {
        1
    }
}

fn main() {}
