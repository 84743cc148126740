//! The few HTML pages sessiongate serves (login, logout, a user's sessions, the
//! admin page): one escaping function and one page shell, no template engine and
//! no JavaScript. Every value that reaches a page goes through [`escape`].

/// Escape text for HTML element content and quoted attributes.
pub fn escape(s: &str) -> String {
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
pub fn page(title: &str, main: &str) -> String {
    shell(title, main, "22rem")
}

/// [`page`] with room for a table.
pub fn wide_page(title: &str, main: &str) -> String {
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
main{{max-width:{width};margin:12vh auto;padding:2rem;background:#fff;border-radius:12px;box-shadow:0 2px 12px rgba(0,0,0,.08)}}
h1{{font-size:1.4rem;margin:0 0 1.2rem}}
label{{display:block;font-weight:600;margin:.9rem 0 .3rem}}
input{{box-sizing:border-box;width:100%;padding:.6rem .7rem;font:inherit;border:1px solid #b8bfcc;border-radius:8px}}
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
form.inline{{display:flex;gap:.5rem;align-items:end}}
form.inline input{{width:auto}}
.scroll{{overflow-x:auto}}
code{{font-size:.85em}}
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

/// A unix time in milliseconds as an IMF-fixdate (RFC 9110 §5.6.7), the way
/// the pages show times.
pub fn date(ms: u64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_makes_markup_inert() {
        assert_eq!(
            escape(r#"<script>alert("x")</script>&'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"
        );
    }
}
