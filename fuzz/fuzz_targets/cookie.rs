//! The `Cookie` header parser plus verification: never panics, and accepts only
//! what the signer produced (the accepted value is exactly the signer's).
#![no_main]
use libfuzzer_sys::fuzz_target;
use sessiongate::{cookie_values, Secret, Signer};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = std::str::from_utf8(data) else {
        return;
    };
    let signer = Signer::new("sid", &[Secret::new(vec![7; 32]), Secret::new(vec![9; 32])]);
    for candidate in cookie_values(header, "sid") {
        if let Some(v) = signer.verify(candidate) {
            let resigned = signer.sign(&v.id);
            // Verified by the first secret: the value is the signer's own; by
            // the second, the id is one the signer would sign anew.
            assert!(v.resign || resigned == candidate, "{candidate:?}");
        }
    }
});
