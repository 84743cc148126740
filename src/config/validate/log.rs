//! `[log]`: the output format and the level or filter directive, checked
//! before `tracing-subscriber` is handed it.

use super::Validator;
use crate::config::raw::RawLog;
use crate::config::{LogConfig, LogFormat};

impl Validator {
    pub(super) fn log(&mut self, raw: RawLog) -> Option<LogConfig> {
        let format = match raw.format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                self.problem(
                    "log.format",
                    format!("must be text or json (got {other:?})"),
                );
                return None;
            }
        };
        // Directives are ASCII (targets, levels, `=`, `,`, spans); and
        // tracing-subscriber 0.3.23's parser panics on some non-ASCII input
        // (it slices inside a character; found by fuzz/config), so it never
        // sees any.
        if !raw.level.is_ascii() || tracing_subscriber::EnvFilter::try_new(&raw.level).is_err() {
            self.problem(
                "log.level",
                format!("not a level or filter directive (got {:?})", raw.level),
            );
            return None;
        }
        Some(LogConfig {
            format,
            level: raw.level,
            access_log: raw.access_log,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_refused, minimal, valid};
    use crate::config::LogFormat;

    #[test]
    fn unsafe_log_settings_are_refused() {
        // tracing-subscriber's filter parser panicked on this (fuzz/config).
        let level = "ii^^^^^^^^^^^^^^^^^^^^^^^^^^^h^^^^^^^^^^^^,,,,8,,,,,,,,,,\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\u{7c2}\u{644}\t/.sessmongates \u{244} e= 4{ n?e = [= [{ e= [{ ecrets =GGGGGGGGGGGGGG\t\t,,,,,,,,,,,,,,R|||||x||fo";
        assert_refused(
            &minimal(&format!("[log]\nlevel = \"{level}\"\n")),
            "log.level: not a level or filter directive",
        );
    }

    /// The minimal config with `lines` in `[log]`.
    fn log(lines: &str) -> String {
        minimal(&format!("[log]\n{lines}\n"))
    }

    #[test]
    fn log_defaults_apply_when_unset() {
        let l = valid(&minimal("")).log;
        assert_eq!(l.format, LogFormat::Text);
        assert_eq!(l.level, "info");
        assert!(l.access_log);
    }

    #[test]
    fn log_settings_are_taken_as_written() {
        let l = valid(&log(
            "format = \"json\"\nlevel = \"debug,sessiongate=trace\"\naccess_log = false",
        ))
        .log;
        assert_eq!(l.format, LogFormat::Json);
        assert_eq!(l.level, "debug,sessiongate=trace");
        assert!(!l.access_log);
    }

    #[test]
    fn each_log_refusal_names_its_key_and_value() {
        let cases = [
            (
                log("format = \"xml\""),
                "log.format: must be text or json (got \"xml\")",
            ),
            (
                log("format = \"JSON\""),
                "log.format: must be text or json (got \"JSON\")",
            ),
            (
                log("level = \"sessiongate=loud\""),
                "log.level: not a level or filter directive (got \"sessiongate=loud\")",
            ),
            (
                // Never handed to the filter parser: not ASCII.
                log("level = \"inf\u{f6}\""),
                "log.level: not a level or filter directive (got \"inf\u{f6}\")",
            ),
        ];
        for (text, want) in cases {
            assert_refused(&text, want);
        }
    }
}
