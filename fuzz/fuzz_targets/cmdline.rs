//! The guest-option parser the guest runs on its command line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(o) = firmware::cmdline::GuestOptions::parse(s) {
            let mut out = String::new();
            o.write(&mut out).expect("writing to a String cannot fail");
            assert_eq!(firmware::cmdline::GuestOptions::parse(&out), Ok(o), "options must round-trip");
        }
    }
});
