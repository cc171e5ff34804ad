#![no_main]

use libfuzzer_sys::fuzz_target;

// Bodies are at most 64 KiB (larger: 413 before any parsing); libFuzzer's -max_len keeps to that.
fuzz_target!(|data: &[u8]| {
    potter_server::read_request_bodies(data);
});
