//! Hostile test source plugin: load never returns (the host must time it out).

use potter_sdk::{Source, Value};

struct Slow;

impl Source for Slow {
    fn load(_environment: &str) -> Result<Value, String> {
        let mut counter: u64 = 0;
        loop {
            // black_box keeps the optimiser from proving the loop side-effect free.
            counter = std::hint::black_box(counter.wrapping_add(1));
        }
    }
}

potter_sdk::export_source!(Slow);
