//! The `next` validator: whatever it returns is a same-origin relative path,
//! as a WHATWG URL parser (what browsers use) reads it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sessiongate::fuzzing::safe_next;

fuzz_target!(|data: &[u8]| {
    let Ok(next) = std::str::from_utf8(data) else {
        return;
    };
    let got = safe_next(Some(next));
    assert!(
        got.starts_with('/') && !got.starts_with("//"),
        "{next:?} -> {got:?}"
    );
    assert!(!got.contains(['\r', '\n', '\\']), "{next:?} -> {got:?}");
    let base = url::Url::parse("https://app.test/.sessiongate/login").unwrap();
    let resolved = base.join(&got).expect("a relative path resolves");
    assert_eq!(resolved.origin(), base.origin(), "{next:?} -> {got:?}");
});
