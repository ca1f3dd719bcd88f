//! Serves a generated site on 127.0.0.1 until killed, for trying `triad crawl` and for the
//! benchmark (`bench/run.sh`): prints its URL on the first line of stdout.
//!
//! `cargo run --release -p triad-crawl --example site -- [--pages N] [--links N]
//!  [--latency MS] [--jitter MS] [--port P] [--absolute] [--specials] [--filler BYTES]`

use std::io::Write;
use std::time::Duration;

use triad_crawl::site::{Site, SiteSpec};

fn main() {
    let mut spec = SiteSpec::default();
    let mut port = 0;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{flag} wants a number"))
        };
        match flag.as_str() {
            "--pages" => spec.pages = value() as usize,
            "--links" => spec.links_per_page = value() as usize,
            "--latency" => spec.latency = Duration::from_millis(value()),
            "--jitter" => spec.jitter = Duration::from_millis(value()),
            "--filler" => spec.filler = value() as usize,
            "--port" => port = value() as u16,
            "--absolute" => spec.absolute = true,
            "--specials" => {
                spec.specials = true;
                spec.robots = Some("User-agent: *\nDisallow: /private/\n".into());
            }
            other => panic!("unknown flag {other}"),
        }
    }
    let site = Site::start_on(spec, port).expect("a free port on 127.0.0.1");
    println!("{}", site.url());
    std::io::stdout().flush().expect("stdout");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
