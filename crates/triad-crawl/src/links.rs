//! Links and title out of an HTML page, by `lol_html`'s streaming HTML5 tokenizer.
//!
//! A real tokenizer, not a regular expression: a link inside a comment or a `<script>` is not
//! a link, unclosed tags do not hide the rest of the page. lol_html hands out attributes and
//! text as written (its issue #131), so entities are decoded here, by `html-escape`'s HTML5
//! table: `href="?a=1&amp;b=2"` is the link `?a=1&b=2`. The hrefs are kept as written; the caller resolves them against the page URL, or
//! against the first `<base href>` if the page has one (which HTML applies to every link in
//! the document, wherever the `<base>` sits). This is CPU work, and the crawler runs it on its
//! thread pool, off the event loop.

use std::cell::RefCell;

use lol_html::{HtmlRewriter, Settings, element, text};

/// What one page links to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The first `<title>`'s text, whitespace collapsed.
    pub title: Option<String>,
    /// The first `<base href>`, as written.
    pub base: Option<String>,
    /// Every `<a href>`, `<area href>` and `<link rel=next|prev href>`, in document order.
    pub links: Vec<Link>,
}

/// One link as written in the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The href attribute, entities decoded.
    pub href: String,
    /// Whether its `rel` names `nofollow`.
    pub nofollow: bool,
}

/// Title text past this many bytes is dropped: a page's title is a line, not a chapter.
const MAX_TITLE_BYTES: usize = 1024;

/// Extracts the links and title of an HTML document (bytes as received; invalid UTF-8 and
/// broken markup are tolerated, never an error).
pub fn extract(html: &[u8]) -> Extracted {
    let out = RefCell::new(Extracted::default());
    let title = RefCell::new(TitleState::Before);
    let rel_has = |rel: Option<String>, word: &str| {
        rel.is_some_and(|r| {
            r.split_ascii_whitespace()
                .any(|w| w.eq_ignore_ascii_case(word))
        })
    };
    let result = {
        let mut rewriter = HtmlRewriter::new(
            Settings {
                element_content_handlers: vec![
                    element!("a[href], area[href]", |el| {
                        if let Some(href) = el.get_attribute("href") {
                            let nofollow = rel_has(el.get_attribute("rel"), "nofollow");
                            out.borrow_mut().links.push(Link {
                                href: decode(&href),
                                nofollow,
                            });
                        }
                        Ok(())
                    }),
                    element!("link[href][rel]", |el| {
                        let rel = el.get_attribute("rel");
                        if (rel_has(rel.clone(), "next") || rel_has(rel.clone(), "prev"))
                            && let Some(href) = el.get_attribute("href")
                        {
                            {
                                let nofollow = rel_has(rel, "nofollow");
                                out.borrow_mut().links.push(Link {
                                    href: decode(&href),
                                    nofollow,
                                });
                            }
                        }
                        Ok(())
                    }),
                    element!("base[href]", |el| {
                        let mut o = out.borrow_mut();
                        if o.base.is_none() {
                            o.base = el.get_attribute("href").map(|b| decode(&b));
                        }
                        Ok(())
                    }),
                    text!("title", |t| {
                        let mut state = title.borrow_mut();
                        match &mut *state {
                            TitleState::Before => *state = TitleState::In(t.as_str().to_owned()),
                            TitleState::In(s) if s.len() < MAX_TITLE_BYTES => {
                                s.push_str(t.as_str())
                            }
                            _ => {}
                        }
                        if t.last_in_text_node()
                            && let TitleState::In(s) = &*state
                        {
                            {
                                let s = collapse(s);
                                *state = TitleState::Done;
                                drop(state);
                                out.borrow_mut().title = Some(s);
                            }
                        }
                        Ok(())
                    }),
                ],
                ..Settings::new()
            },
            |_: &[u8]| {},
        );
        rewriter.write(html).and_then(|()| rewriter.end())
    };
    // The handlers never fail, and lol_html's own errors (a memory limit we do not set) leave
    // what was found so far: a broken page still yields the links before the break.
    let _ = result;
    let mut out = out.into_inner();
    if out.title.is_none()
        && let TitleState::In(s) = title.into_inner()
    {
        out.title = Some(collapse(&s));
    }
    out
}

enum TitleState {
    Before,
    In(String),
    Done,
}

fn decode(s: &str) -> String {
    html_escape::decode_html_entities(s).into_owned()
}

fn collapse(s: &str) -> String {
    let mut out: String = decode(s).split_whitespace().collect::<Vec<_>>().join(" ");
    if out.len() > MAX_TITLE_BYTES {
        let mut cut = MAX_TITLE_BYTES;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

/// Whether a body is HTML: by its `Content-Type` when it has one (and the body does not
/// contradict it by looking binary), else by sniffing its first bytes as browsers do.
pub fn is_html(content_type: Option<&str>, body: &[u8]) -> bool {
    let head = &body[..body.len().min(512)];
    if looks_binary(head) {
        return false;
    }
    match content_type.map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }) {
        Some(m) if m == "text/html" || m == "application/xhtml+xml" => true,
        // Unknown types are sniffed, as browsers do; a declared type is believed.
        Some(m)
            if !matches!(
                m.as_str(),
                "" | "unknown/unknown" | "application/unknown" | "*/*"
            ) =>
        {
            false
        }
        _ => sniffs_as_html(head),
    }
}

fn looks_binary(head: &[u8]) -> bool {
    const MAGIC: [&[u8]; 6] = [
        b"\x89PNG",
        b"\xff\xd8\xff",
        b"GIF8",
        b"%PDF",
        b"PK\x03\x04",
        b"\x1f\x8b",
    ];
    MAGIC.iter().any(|m| head.starts_with(m)) || head.contains(&0)
}

/// The WHATWG MIME sniffing standard's HTML patterns: after leading whitespace, one of these
/// tags (any case), followed by a space or `>`.
fn sniffs_as_html(head: &[u8]) -> bool {
    const TAGS: [&[u8]; 17] = [
        b"<!doctype html",
        b"<html",
        b"<head",
        b"<script",
        b"<iframe",
        b"<h1",
        b"<div",
        b"<font",
        b"<table",
        b"<a",
        b"<style",
        b"<title",
        b"<b",
        b"<body",
        b"<br",
        b"<p",
        b"<!--",
    ];
    let start = head
        .iter()
        .position(|b| !b" \t\n\r\x0c".contains(b))
        .unwrap_or(head.len());
    let s = &head[start..];
    TAGS.iter().any(|tag| {
        s.len() > tag.len()
            && s[..tag.len()].eq_ignore_ascii_case(tag)
            && (tag == b"<!--" || matches!(s[tag.len()], b' ' | b'>'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hrefs(html: &str) -> Vec<String> {
        extract(html.as_bytes())
            .links
            .into_iter()
            .map(|l| l.href)
            .collect()
    }

    #[test]
    fn links_in_comments_and_scripts_are_not_links() {
        let html = r#"<html><body><a href="/one">1</a>
            <!-- <a href="/commented">x</a> -->
            <script>document.write('<a href="/scripted">x</a>')</script>
            <a href='/two'>2</a><a>no href</a></body></html>"#;
        assert_eq!(hrefs(html), ["/one", "/two"]);
    }

    #[test]
    fn unclosed_tags_do_not_hide_later_links() {
        let html = r#"<div><p><b><a href="/a">a<table><tr><td><a href="/b">b<a href=/c>c"#;
        assert_eq!(hrefs(html), ["/a", "/b", "/c"]);
    }

    #[test]
    fn entities_in_hrefs_are_decoded() {
        assert_eq!(
            hrefs(r#"<a href="/s?a=1&amp;b=2&#x26;c">x</a>"#),
            ["/s?a=1&b=2&c"]
        );
        let e = extract("<title>Fish &amp; chips &eacute;</title>".as_bytes());
        assert_eq!(e.title.as_deref(), Some("Fish & chips é"));
    }

    #[test]
    fn base_rel_next_nofollow_and_title() {
        let html = r#"<head><title>  A
            title </title><base href="/docs/"><base href="/ignored/">
            <link rel="next" href="p2.html"><link rel="stylesheet" href="s.css"></head>
            <a rel="external NoFollow" href="x.html">x</a><svg><title>not this</title></svg>"#;
        let e = extract(html.as_bytes());
        assert_eq!(e.title.as_deref(), Some("A title"));
        assert_eq!(e.base.as_deref(), Some("/docs/"));
        assert_eq!(
            e.links,
            [
                Link {
                    href: "p2.html".into(),
                    nofollow: false
                },
                Link {
                    href: "x.html".into(),
                    nofollow: true
                }
            ]
        );
    }

    #[test]
    fn a_page_cut_mid_tag_still_gives_what_came_before() {
        let e = extract(b"<title>T</title><a href=\"/ok\">ok</a><a href=\"/cu");
        assert_eq!(e.title.as_deref(), Some("T"));
        assert_eq!(e.links[0].href, "/ok");
    }

    #[test]
    fn content_type_decides_and_sniffing_fills_in() {
        assert!(is_html(Some("text/html; charset=utf-8"), b"hello"));
        assert!(is_html(Some("application/xhtml+xml"), b"<html>"));
        assert!(!is_html(Some("application/json"), b"<html>"));
        assert!(!is_html(Some("text/html"), b"\x89PNG\r\n\x1a\n...."));
        assert!(!is_html(Some("text/html"), b"abc\0def"));
        assert!(is_html(None, b"\n  <!DOCTYPE html><html>"));
        assert!(!is_html(Some("text/plain"), b"<HTML><body>"));
        assert!(is_html(Some("unknown/unknown"), b"<HTML><body>"));
        assert!(!is_html(None, b"just text"));
        assert!(!is_html(None, b"<ab>"));
    }
}
