//! A JSON Schema that describes one subtree of every view, e.g. a plugin's namespace
//! `plugins.<name>`, shipped outside the schemas folder.

use std::collections::BTreeMap;

use potter_engine::{Issue, View};
use serde_json::{json, Value};

use crate::compile::Compiled;
use crate::error::{SchemaError, ValidatorError};
use crate::schema_issues::schema_issues;
use crate::validator::Validator;

/// A schema mounted at a dotted key path; its issues carry full key paths and the rule
/// `schema:<keyword>`, like the folder's schemas.
pub struct MountedSchema {
    name: String,
    label: String,
    compiled: Compiled,
}

impl MountedSchema {
    /// Compiles `schema` for the subtree at `mount`. `name` names the validator, `label` the
    /// schema in issue locations (e.g. `plugin:audit namespace_schema`). `$ref`s may only point
    /// inside the schema itself.
    pub fn new(name: impl Into<String>, label: impl Into<String>, mount: &str, schema: &Value) -> Result<Self, SchemaError> {
        let label = label.into();
        // Nest the schema under `properties` of each mount segment, so instance paths of issues
        // are full key paths of the view.
        let wrapped = mount.split('.').rev().fold(schema.clone(), |inner, segment| json!({ "properties": { segment: inner } }));
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&wrapped)
            .map_err(|error| SchemaError::Compile { file: label.clone(), reason: error.to_string() })?;
        Ok(Self { name: name.into(), label, compiled: Compiled { validator, inputs: BTreeMap::new() } })
    }
}

impl Validator for MountedSchema {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self, view: &View) -> Result<Vec<Issue>, ValidatorError> {
        let mut issues = Vec::new();
        schema_issues(&self.label, &self.compiled, view, &view.tree(), &mut issues);
        Ok(issues)
    }
}
