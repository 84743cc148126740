//! A readable device for a session's user agent ("Chrome on Linux"), for the
//! pages that list sessions. The parsing is the woothee crate's (Project
//! Woothee's shared rules), kept off the request path: only the pages call it.

use std::sync::OnceLock;

use woothee::parser::Parser;

/// "<browser> on <os>", "<browser>", or "Unknown device".
pub(crate) fn describe(user_agent: Option<&str>) -> String {
    static PARSER: OnceLock<Parser> = OnceLock::new();
    let Some(ua) = user_agent.filter(|u| !u.is_empty()) else {
        return "Unknown device".to_owned();
    };
    let known = |s: &str| !s.is_empty() && s != "UNKNOWN";
    let parsed = PARSER.get_or_init(Parser::new).parse(ua);
    let (r_name, r_os) = parsed.as_ref().map_or(("", ""), |r| (r.name, r.os));
    // Otherwise a tool's own name, from `name/version`, when it is one word.
    let name = if known(r_name) {
        r_name
    } else {
        ua.split('/')
            .next()
            .filter(|t| t.len() <= 32 && !t.contains(' '))
            .unwrap_or("Unknown browser")
    };
    let os = if known(r_os) {
        r_os
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        ""
    };
    if os.is_empty() {
        name.to_owned()
    } else {
        format!("{name} on {os}")
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_agents_read_as_browser_on_system() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
                "Firefox on Windows 10",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            ("curl/8.5.0", "HTTP Library"),
        ];
        for (ua, want) in cases {
            assert_eq!(describe(Some(ua)), want, "{ua}");
        }
        assert_eq!(describe(None), "Unknown device");
        assert_eq!(describe(Some("")), "Unknown device");
        assert_eq!(describe(Some("Phone")), "Phone");
        assert_eq!(describe(Some("a b c d")), "Unknown browser");
    }
}
