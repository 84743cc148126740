//! The few HTML pages sessiongate serves (login, logout, a user's sessions, the
//! admin page): one escaping function and one page shell, no template engine and
//! no JavaScript. Every value that reaches a page goes through [`escape`].

/// Escape text for HTML element content and quoted attributes.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A complete, small, accessible page: no scripts, readable on a phone.
pub(crate) fn page(title: &str, main: &str) -> String {
    shell(title, main, "22rem")
}

/// [`page`] with room for a list (a user's sessions).
pub(crate) fn card_page(title: &str, main: &str) -> String {
    shell(title, main, "36rem")
}

/// [`page`] with room for a table.
pub(crate) fn wide_page(title: &str, main: &str) -> String {
    shell(title, main, "72rem")
}

fn shell(title: &str, main: &str, width: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;background:#f4f5f7;color:#1d2330}}
main{{box-sizing:border-box;width:calc(100% - 2rem);max-width:{width};margin:8vh auto;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08)}}
@media (max-width:30rem){{main{{margin:1rem auto;padding:1.3rem}}}}
h1{{font-size:1.4rem;margin:0 0 1.2rem}}
h2{{font-size:1.1rem;margin:1.2rem 0 .6rem}}
label{{display:block;font-weight:600;margin:.9rem 0 .3rem}}
input,select{{box-sizing:border-box;width:100%;padding:.6rem .7rem;font:inherit;border:1px solid #b8bfcc;border-radius:8px}}
input:focus,button:focus{{outline:3px solid #7aa7ff;outline-offset:1px}}
button{{margin-top:1.4rem;width:100%;padding:.7rem;font:inherit;font-weight:600;color:#fff;background:#2856d6;border:0;border-radius:8px;cursor:pointer}}
.error{{color:#a1181d;background:#fdecec;padding:.6rem .8rem;border-radius:8px}}
a.button{{display:block;box-sizing:border-box;margin-top:.8rem;width:100%;padding:.7rem;text-align:center;text-decoration:none;font-weight:600;border-radius:8px;color:#fff;background:#2856d6}}
a.provider{{color:#1d2330;background:#fff;border:1px solid #b8bfcc}}
a.button:focus{{outline:3px solid #7aa7ff;outline-offset:1px}}
.or{{display:flex;align-items:center;gap:.8rem;margin:1.4rem 0 0;color:#5c6473;font-size:.9rem}}
.or::before,.or::after{{content:"";flex:1;border-top:1px solid #e3e6ec}}
table{{border-collapse:collapse;width:100%;font-size:.9rem}}
th,td{{text-align:left;padding:.45rem .5rem;border-bottom:1px solid #e3e6ec;vertical-align:top}}
td form button,form.inline button{{margin:0;width:auto;padding:.35rem .7rem}}
form.inline{{display:flex;gap:.5rem;align-items:end;margin-bottom:1rem}}
form.inline input{{width:auto}}
.scroll{{overflow-x:auto}}
code{{font-size:.85em}}
small{{color:#5c6473}}
button.secondary,a.secondary{{color:#1d2330;background:#fff;border:1px solid #b8bfcc}}
ul.sessions,ul.keys,ul.factors{{list-style:none;margin:1rem 0;padding:0}}
ul.sessions li,ul.keys li,ul.factors li{{display:flex;gap:1rem;align-items:center;justify-content:space-between;padding:.8rem 0;border-bottom:1px solid #e3e6ec}}
ul.sessions li button,ul.keys li button,ul.factors li button{{margin:0;width:auto;padding:.4rem .8rem}}
figure.qr{{margin:1rem 0;text-align:center}}
ol.recovery-codes{{columns:2;font-size:1.05rem}}
.tag{{font-size:.8rem;font-weight:600;color:#22543d;background:#e6f4ea;padding:.2rem .5rem;border-radius:6px;white-space:nowrap}}
.totals{{display:grid;grid-template-columns:repeat(auto-fit,minmax(9rem,1fr));gap:.8rem;margin:0 0 1.5rem}}
.totals div{{background:#f4f5f7;border-radius:8px;padding:.7rem .9rem}}
.totals b{{display:block;font-size:1.5rem}}
nav.pages{{display:flex;gap:1rem;margin-top:1rem}}
</style>
</head>
<body>
<main>
{main}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// How long ago `ms` was at `now` (both unix ms), in words: "just now",
/// "3 minutes ago", "2 hours ago", "5 days ago".
pub(crate) fn ago(ms: u64, now: u64) -> String {
    let secs = now.saturating_sub(ms) / 1000;
    let (n, unit) = match secs {
        0..=59 => return "just now".to_owned(),
        60..=3599 => (secs / 60, "minute"),
        3600..=86_399 => (secs / 3600, "hour"),
        _ => (secs / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// `ms` for a page: the words of [`ago`], with the exact time on hover.
pub(crate) fn time_ago(ms: u64, now: u64) -> String {
    let exact = date(ms);
    format!(r#"<time title="{exact}">{}</time>"#, ago(ms, now))
}

/// A session's device for a page: readable, with the raw user agent on hover.
pub(crate) fn device(user_agent: Option<&str>) -> String {
    format!(
        r#"<span title="{}">{}</span>"#,
        escape(user_agent.unwrap_or("")),
        escape(&super::device::describe(user_agent))
    )
}

/// A unix time in milliseconds as an IMF-fixdate (RFC 9110 §5.6.7), the way
/// the pages show times.
pub(crate) fn date(ms: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

/// What every page test feeds in where a client or a store controls text.
#[cfg(test)]
pub(crate) const HOSTILE: &str = r#"<script>alert("x")</script>"'><img src=x onerror=alert(1)>"#;

/// Assert that `html` shows [`HOSTILE`] only as text: no tag of it survives.
#[cfg(test)]
pub(crate) fn assert_inert(html: &str) {
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "a script tag survived:\n{html}");
    assert!(!lower.contains("<img"), "an img tag survived:\n{html}");
    assert!(
        html.contains("&lt;script&gt;"),
        "the hostile text is not shown escaped:\n{html}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ago_reads_in_words() {
        let now = 10_000_000_000;
        assert_eq!(ago(now - 5_000, now), "just now");
        assert_eq!(ago(now - 60_000, now), "1 minute ago");
        assert_eq!(ago(now - 3 * 60_000, now), "3 minutes ago");
        assert_eq!(ago(now - 2 * 3_600_000, now), "2 hours ago");
        assert_eq!(ago(now - 5 * 86_400_000, now), "5 days ago");
        assert_eq!(ago(now + 9_000, now), "just now", "a clock step back");
        assert!(time_ago(now - 60_000, now).starts_with("<time title=\""));
    }

    #[test]
    fn escape_makes_markup_inert() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }
}
