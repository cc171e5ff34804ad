//! {{name}}: a Potter Config source. `load` returns the layer for an environment; its keys must
//! lie under the manifest's `prefixes`.

use potter_sdk::{json, Source, Value};

struct {{type_name}};

impl Source for {{type_name}} {
    fn load(environment: &str) -> Result<Value, String> {
        Ok(json!({ "{{prefix}}": { "greeting": format!("hello from {{name}} in {environment}") } }))
    }
}

potter_sdk::export_source!({{type_name}});
