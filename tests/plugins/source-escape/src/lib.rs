//! Hostile test source plugin: tries to read outside its granted directory
//! (`/data`) and reports which attempts succeeded, so a test can assert that
//! WASI refused every one of them.

use potter_sdk::{json, Source, Value};

struct Escape;

impl Source for Escape {
    fn load(_environment: &str) -> Result<Value, String> {
        let parent = std::fs::read("/data/../../etc/hostname").is_ok();
        let root = std::fs::read("/etc/hostname").is_ok();
        let relative = std::fs::read("../secret.txt").is_ok();
        let listed_root = std::fs::read_dir("/").is_ok();
        Ok(json!({
            "escape": {
                "parent": parent,
                "root": root,
                "relative": relative,
                "listed_root": listed_root,
            }
        }))
    }
}

potter_sdk::export_source!(Escape);
