//! Any bytes: intake must return objects or an error, never panic, hang or blow up memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podswarm_manifest::{Limits, Policy, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse(text, "fuzz", &Limits::default(), &Policy::default());
    }
});
