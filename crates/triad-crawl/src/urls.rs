//! URLs: resolving links, normalising them, keying the seen set, and the crawl's scope.
//!
//! The `url` crate parses by the WHATWG URL standard, which already lowercases the scheme and
//! host, drops default ports and resolves `.` and `..` segments. [`normalise`] adds what a
//! crawler needs on top: no fragment, no empty query, and optionally sorted query parameters.
//! Two spellings of one page then give one string, and [`key`] hashes that string to the 128
//! bits the seen set keeps (no collision is expected below 10^18 URLs).

use regex::Regex;
use url::Url;

/// Why a link found on a page is not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Skip {
    /// A scheme other than http(s): `mailto:`, `javascript:`, `tel:`, `data:` and the like.
    Scheme,
    /// Not a URL even against the page's base.
    Malformed,
    /// Outside `--scope`.
    Scope,
    /// Kept out by `--include` / `--exclude`.
    Filtered,
    /// Deeper than `--depth`.
    Depth,
    /// `rel=nofollow`, with `--respect-nofollow`.
    Nofollow,
}

/// Resolves `href` (as written in the page) against `base` and normalises it; a non-HTTP
/// scheme or an unparsable link is a [`Skip`].
pub fn resolve(base: &Url, href: &str, sort_query: bool) -> Result<Url, Skip> {
    // HTML strips leading and trailing ASCII whitespace from URL attributes.
    let href = href.trim_matches(|c: char| c.is_ascii_whitespace());
    let url = base.join(href).map_err(|_| Skip::Malformed)?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(normalise(url, sort_query)),
        "http" | "https" => Err(Skip::Malformed),
        _ => Err(Skip::Scheme),
    }
}

/// Parses a start URL given on the command line: http(s) only, normalised.
pub fn parse_start(s: &str, sort_query: bool) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(normalise(url, sort_query)),
        other => Err(format!(
            "{s:?}: only http and https URLs can be crawled, not {other:?}"
        )),
    }
}

/// The crawler's normal form: the parser's (lowercase scheme and host, no default port, dot
/// segments resolved), without fragment or empty query, with query parameters sorted if asked.
pub fn normalise(mut url: Url, sort_query: bool) -> Url {
    url.set_fragment(None);
    match url.query() {
        Some("") => url.set_query(None),
        Some(_) if sort_query => {
            let mut pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            pairs.sort();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        _ => {}
    }
    url
}

/// The seen set's key of a normalised URL.
pub fn key(url: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(url.as_bytes())
}

/// The politeness unit: host and port (the default port of the scheme made explicit), so
/// that `http://a/` and `http://a:80/` share limits and two ports of one host do not.
pub fn authority(url: &Url) -> String {
    format!(
        "{}:{}",
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}

/// `--scope`: which links found on pages are followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// The start URLs' hosts, each with its own port (`http` and `https` alike).
    #[default]
    Host,
    /// The start URLs' hosts (a leading `www.` dropped) and their subdomains, on any port.
    Domain,
    /// URLs under a start URL's directory (its path up to the last `/`).
    Prefix,
    /// Any http(s) URL.
    Any,
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "host" => Ok(Scope::Host),
            "domain" => Ok(Scope::Domain),
            "prefix" => Ok(Scope::Prefix),
            "any" => Ok(Scope::Any),
            _ => Err(format!(
                "unknown scope {s:?}: use host, domain, prefix or any"
            )),
        }
    }
}

/// The scope and the include/exclude patterns, compiled against the start URLs.
#[derive(Debug, Clone)]
pub struct Filter {
    scope: Scope,
    hosts: Vec<(String, Option<u16>)>,
    domains: Vec<String>,
    prefixes: Vec<String>,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Filter {
    /// A filter for links found from `starts`.
    pub fn new(scope: Scope, starts: &[Url], include: Vec<Regex>, exclude: Vec<Regex>) -> Self {
        let host = |u: &Url| u.host_str().unwrap_or_default().to_owned();
        Filter {
            scope,
            hosts: starts.iter().map(|u| (host(u), u.port())).collect(),
            domains: starts
                .iter()
                .map(|u| host(u).trim_start_matches("www.").to_owned())
                .collect(),
            prefixes: starts
                .iter()
                .map(|u| {
                    let mut p = u.clone();
                    p.set_query(None);
                    let s = p.as_str();
                    s[..=s.rfind('/').unwrap_or(s.len() - 1)].to_owned()
                })
                .collect(),
            include,
            exclude,
        }
    }

    /// Whether a link to `url` is followed; `Err` names why not.
    pub fn check(&self, url: &Url) -> Result<(), Skip> {
        if !self.in_scope(url) {
            return Err(Skip::Scope);
        }
        let s = url.as_str();
        if (!self.include.is_empty() && !self.include.iter().any(|r| r.is_match(s)))
            || self.exclude.iter().any(|r| r.is_match(s))
        {
            return Err(Skip::Filtered);
        }
        Ok(())
    }

    /// Whether `url` is inside `--scope` (redirects are held to this, not to the patterns).
    pub fn in_scope(&self, url: &Url) -> bool {
        let host = url.host_str().unwrap_or_default();
        match self.scope {
            Scope::Any => true,
            Scope::Host => self
                .hosts
                .iter()
                .any(|(h, p)| h == host && *p == url.port()),
            Scope::Domain => self.domains.iter().any(|d| {
                host == d
                    || host
                        .strip_suffix(d.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            }),
            Scope::Prefix => self.prefixes.iter().any(|p| url.as_str().starts_with(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn spellings_of_one_page_normalise_to_one_url() {
        let base = url("http://Example.COM:80/a/b/page.html");
        let same = [
            "HTTP://EXAMPLE.com/a/c/x.html",
            "../c/x.html",
            "./../c/./x.html#top",
            "http://example.com:80/a/c/x.html#",
            "  /a/c/x.html?\t",
        ];
        for href in same {
            assert_eq!(
                resolve(&base, href, false).unwrap().as_str(),
                "http://example.com/a/c/x.html",
                "{href}"
            );
        }
        // The path is case-sensitive, and a non-default port is another page.
        assert_ne!(
            resolve(&base, "/A/c/x.html", false).unwrap().as_str(),
            "http://example.com/a/c/x.html"
        );
        assert_eq!(
            resolve(&base, "http://example.com:8080/", false)
                .unwrap()
                .as_str(),
            "http://example.com:8080/"
        );
    }

    #[test]
    fn query_parameters_sort_only_when_asked() {
        let base = url("http://h/");
        assert_eq!(
            resolve(&base, "/s?b=2&a=1", false).unwrap().as_str(),
            "http://h/s?b=2&a=1"
        );
        assert_eq!(
            resolve(&base, "/s?b=2&a=1", true).unwrap().as_str(),
            "http://h/s?a=1&b=2"
        );
    }

    #[test]
    fn other_schemes_and_garbage_are_skipped() {
        let base = url("http://h/x/");
        for href in [
            "mailto:a@b.c",
            "javascript:void(0)",
            "tel:+1",
            "data:text/html,hi",
            "ftp://h/f",
        ] {
            assert_eq!(resolve(&base, href, false), Err(Skip::Scheme), "{href}");
        }
        assert_eq!(resolve(&base, "http://[::1", false), Err(Skip::Malformed));
        assert_eq!(resolve(&base, "http://", false), Err(Skip::Malformed));
    }

    #[test]
    fn scope_host_keeps_other_ports_out() {
        let f = Filter::new(
            Scope::Host,
            &[url("http://127.0.0.1:8000/")],
            vec![],
            vec![],
        );
        assert!(f.check(&url("http://127.0.0.1:8000/a")).is_ok());
        assert_eq!(f.check(&url("http://127.0.0.1:8001/a")), Err(Skip::Scope));
        assert_eq!(f.check(&url("http://localhost:8000/a")), Err(Skip::Scope));
    }

    #[test]
    fn scope_domain_takes_subdomains_not_lookalikes() {
        let f = Filter::new(
            Scope::Domain,
            &[url("https://www.example.com/")],
            vec![],
            vec![],
        );
        assert!(f.in_scope(&url("http://example.com:8080/")));
        assert!(f.in_scope(&url("https://a.b.example.com/")));
        assert!(!f.in_scope(&url("https://badexample.com/")));
        assert!(!f.in_scope(&url("https://example.com.evil.net/")));
    }

    #[test]
    fn scope_prefix_is_the_start_directory() {
        let f = Filter::new(
            Scope::Prefix,
            &[url("http://h/docs/index.html?x=1")],
            vec![],
            vec![],
        );
        assert!(f.in_scope(&url("http://h/docs/a/b")));
        assert!(!f.in_scope(&url("http://h/blog/")));
        assert!(!f.in_scope(&url("http://h/docsx")));
    }

    #[test]
    fn include_and_exclude_patterns_filter() {
        let f = Filter::new(
            Scope::Any,
            &[url("http://h/")],
            vec![Regex::new("/p/").unwrap()],
            vec![Regex::new(r"\.pdf$").unwrap()],
        );
        assert!(f.check(&url("http://h/p/1")).is_ok());
        assert_eq!(f.check(&url("http://h/q/1")), Err(Skip::Filtered));
        assert_eq!(f.check(&url("http://h/p/1.pdf")), Err(Skip::Filtered));
    }

    #[test]
    fn start_urls_must_be_http() {
        assert!(parse_start("http://127.0.0.1:1/", false).is_ok());
        assert!(
            parse_start("file:///etc/passwd", false)
                .unwrap_err()
                .contains("only http")
        );
        assert!(
            parse_start("not a url", false)
                .unwrap_err()
                .contains("not a URL")
        );
    }
}
