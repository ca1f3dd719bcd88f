//! `triad crawl`'s handling of the bytes a server sends: the HTML sniffing, link and title
//! extraction, resolving each link against the page (and its `<base>`), robots.txt, and
//! `Retry-After`. None may panic; every link followed is an http(s) URL that normalises to
//! itself, and its key is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use triad_crawl::{fetch, links, robots, urls};

fuzz_target!(|data: &[u8]| {
    let _ = links::is_html(Some("text/html"), data);
    let _ = links::is_html(None, data);
    let page = url::Url::parse("http://127.0.0.1:8000/a/b/page.html").expect("a URL");
    let found = links::extract(data);
    let base = found
        .base
        .as_deref()
        .and_then(|b| page.join(b.trim()).ok())
        .unwrap_or_else(|| page.clone());
    for link in &found.links {
        for sort in [false, true] {
            if let Ok(u) = urls::resolve(&base, &link.href, sort) {
                assert!(matches!(u.scheme(), "http" | "https"));
                let again = urls::normalise(u.clone(), sort);
                assert_eq!(again.as_str(), u.as_str());
                assert_eq!(urls::key(u.as_str()), urls::key(again.as_str()));
            }
        }
    }
    let rules = robots::Rules::from_answer(200, data, "triad-crawl");
    let _ = rules.allowed("http://127.0.0.1:8000/a/b");
    let _ = rules.crawl_delay();
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = fetch::parse_retry_after(text);
    }
});
