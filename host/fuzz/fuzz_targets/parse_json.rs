#![no_main]

use libfuzzer_sys::fuzz_target;
use potter_engine::Format;

fuzz_target!(|data: &[u8]| potter_fuzz::check_document(data, Format::Json));
