//! The path normaliser: its output is in normal form (normalising it again
//! gives the same path), starts with one `/` and has no dot segments.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sessiongate::fuzzing::normalize;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(once) = normalize(path) {
        assert!(once.starts_with('/'), "{once:?}");
        assert!(
            !once.contains("//") && !once.contains("/./") && !once.contains("/../"),
            "{once:?}"
        );
        assert!(!once.ends_with("/.") && !once.ends_with("/.."), "{once:?}");
        let twice = normalize(&once).expect("a normalised path normalises");
        assert_eq!(once, twice);
    }
});
