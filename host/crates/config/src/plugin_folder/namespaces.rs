//! Namespace plugins (`plugins.<name>`): their defaults layer, what they may see of their
//! namespace, and `on-config-changed` after applied changes.

use std::sync::Arc;

use potter_engine::{Layer, LayerSource, Location, Rank, Scope, Snapshot, ViewKey};
use potter_plugin::{LoadedPlugin, PluginError};
use serde_json::{json, Value};

use super::{remember_error, Plugins};

impl Plugins {
    /// The namespace-defaults layers of the running plugins (by plugin name), at the defaults level.
    pub fn namespace_defaults(&self) -> Vec<Arc<Layer>> {
        self.active.values().filter_map(|active| active.defaults.clone()).collect()
    }

    /// Calls `on-config-changed` of every namespace plugin whose namespace changed in an
    /// environment of `snapshot` since it was last told. Failures are logged and listed.
    pub(crate) fn notify_namespaces(&mut self, snapshot: &Snapshot) {
        for active in self.active.values_mut() {
            if !active.plugin.owns_namespace() {
                continue;
            }
            for environment in &snapshot.axes().environments {
                let content = namespace_in(snapshot, environment, &active.plugin);
                if active.notified.get(&**environment) == Some(&content) {
                    continue;
                }
                let result = active.plugin.on_config_changed(environment, &content.to_string());
                remember_error(&active.errors, environment, &result);
                if let Err(error) = result {
                    tracing::warn!(plugin = %active.plugin.name(), %error, "on-config-changed failed");
                }
                active.notified.insert(environment.to_string(), content);
            }
        }
    }
}

/// The layer of a freshly loaded plugin's namespace defaults (its first call), if it has any.
pub(super) fn defaults_layer(plugin: &LoadedPlugin) -> Result<Option<Arc<Layer>>, PluginError> {
    let name = plugin.name();
    let Some(defaults) = plugin.namespace_defaults()? else { return Ok(None) };
    let data = json!({ "plugins": { name: defaults } });
    let Value::Object(data) = data else { unreachable!("built as an object") };
    let mut layer = Layer::new(format!("plugins/{name}/defaults"), Rank::Defaults, Scope::everywhere(), LayerSource::Defaults(format!("plugin:{name}")), data);
    layer.locations.values_mut().for_each(|location| *location = Location::Layer);
    Ok(Some(Arc::new(layer)))
}

/// The plugin's namespace in the environment's view of `snapshot`, as the plugin may see it (secret
/// values removed unless granted).
pub(super) fn namespace_in(snapshot: &Snapshot, environment: &str, plugin: &LoadedPlugin) -> Value {
    match snapshot.view(&ViewKey::environment(environment)) {
        Ok(view) => plugin.namespace_of(view.value(), &|path| view.is_secret(path)),
        Err(_) => json!({}),
    }
}
