#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use potter_plugin::{Limits, Manifest};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // The seeds name their plugin `fuzzed`, the stem the host would expect for `fuzzed.wasm`.
    let path = Path::new("plugins/fuzzed.plugin.toml");
    if let Ok(manifest) = Manifest::parse(text, "fuzzed", path) {
        assert_eq!(manifest.namespace(), "plugins.fuzzed");
        // What the host does next with an accepted manifest.
        if let Ok(limits) = Limits::resolve(&manifest.limits, &Limits::DEFAULT, &Limits::MAXIMA) {
            assert!(limits.memory_mib <= Limits::MAXIMA.memory_mib && limits.memory_mib > 0);
            assert!(limits.timeout_ms <= Limits::MAXIMA.timeout_ms && limits.timeout_ms > 0);
        }
    }
});
