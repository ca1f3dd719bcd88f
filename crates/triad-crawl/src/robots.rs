//! robots.txt: one fetch per host, its rules obeyed, as RFC 9309 says to read the answer.
//!
//! Parsing and matching are `texting_robots`'s. What this module adds is the RFC's reading of
//! the fetch: a 2xx body is parsed; a 4xx means there are no rules (allow all); a 5xx, or a
//! host that cannot be reached, means the crawler must assume it may fetch nothing.
//! `Crawl-delay` raises the host's delay between fetches.

use std::time::Duration;

use texting_robots::Robot;

/// One host's robots rules.
#[derive(Debug)]
pub enum Rules {
    /// No robots.txt (4xx), or `--ignore-robots`.
    AllowAll,
    /// The host failed to answer for its robots.txt (5xx or unreachable): nothing is fetched.
    DisallowAll(String),
    /// Parsed rules for our user agent.
    Parsed(Box<Robot>),
}

impl Rules {
    /// Reads a robots.txt answer: `status` and `body`, for the agent token `agent`.
    pub fn from_answer(status: u16, body: &[u8], agent: &str) -> Rules {
        match status {
            200..=299 => match Robot::new(agent, body) {
                Ok(robot) => Rules::Parsed(Box::new(robot)),
                // texting_robots refuses little; what it cannot read holds no rule we can obey.
                Err(_) => Rules::AllowAll,
            },
            400..=499 => Rules::AllowAll,
            _ => Rules::DisallowAll(format!("robots.txt answered {status}")),
        }
    }

    /// Whether `url` may be fetched.
    pub fn allowed(&self, url: &str) -> bool {
        match self {
            Rules::AllowAll => true,
            Rules::DisallowAll(_) => false,
            Rules::Parsed(robot) => robot.allowed(url),
        }
    }

    /// The `Crawl-delay` for our agent, if any (negative or absurd values ignored).
    pub fn crawl_delay(&self) -> Option<Duration> {
        match self {
            Rules::Parsed(robot) => robot
                .delay
                .filter(|d| d.is_finite() && *d > 0.0 && *d < 86_400.0)
                .map(Duration::from_secs_f32),
            _ => None,
        }
    }
}

/// The token robots.txt groups are matched on: the user agent's product name (`triad-crawl`
/// of `triad-crawl/0.1 (+https://…)`).
pub fn agent_token(user_agent: &str) -> &str {
    user_agent
        .split(|c: char| c == '/' || c.is_whitespace())
        .next()
        .filter(|t| !t.is_empty())
        .unwrap_or("*")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TXT: &[u8] = b"User-agent: other\nDisallow: /\n\nUser-agent: *\nDisallow: /private/\nAllow: /private/open\nCrawl-delay: 0.25\n";

    #[test]
    fn rules_for_our_agent_are_obeyed() {
        let r = Rules::from_answer(200, TXT, agent_token("triad-crawl/0.1 (+test)"));
        assert!(r.allowed("http://h/public"));
        assert!(!r.allowed("http://h/private/x"));
        assert!(r.allowed("http://h/private/open"));
        assert_eq!(r.crawl_delay(), Some(Duration::from_millis(250)));
        let other = Rules::from_answer(200, TXT, "other");
        assert!(!other.allowed("http://h/public"));
    }

    #[test]
    fn answers_are_read_as_rfc_9309_says() {
        assert!(Rules::from_answer(404, b"Disallow: /", "a").allowed("http://h/x"));
        assert!(Rules::from_answer(403, b"", "a").allowed("http://h/x"));
        assert!(!Rules::from_answer(500, b"", "a").allowed("http://h/x"));
        assert!(!Rules::from_answer(503, b"", "a").allowed("http://h/"));
        assert_eq!(
            Rules::from_answer(200, b"\xff\xfe garbage", "a").crawl_delay(),
            None
        );
    }

    #[test]
    fn agent_token_is_the_product_name() {
        assert_eq!(agent_token("triad-crawl/0.1 (+x)"), "triad-crawl");
        assert_eq!(agent_token("Bot"), "Bot");
        assert_eq!(agent_token(""), "*");
    }
}
