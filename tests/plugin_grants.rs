//! The plugins folder under a running host: a production plugin's module replaced by a link to
//! `/dev/null` is refused by name, its rule stays enforced, and at start-up the load is refused.

use crate::common;

use std::fs;

use common::wasm::PluginTree;
use common::Tree;
use potter_config::runtime::ConfigHost;
use potter_plugin::PluginStatus;
use serde_json::Value;

fn set_debug_in_production(example: &PluginTree) {
    let path = example.tree.root().join("environments/production.json");
    let mut document: Value = serde_json::from_str(&fs::read_to_string(&path).unwrap()).unwrap();
    document["app"]["debug"] = Value::Bool(true);
    fs::write(&path, serde_json::to_string_pretty(&document).unwrap()).unwrap();
}

#[test]
fn a_production_plugins_module_replaced_by_a_dev_null_link_keeps_its_rule() {
    let example = PluginTree::new(Tree::copy_of("examples/potter"));
    example.install("production-safety");
    let host = ConfigHost::open(example.options()).unwrap();
    let wasm = example.wasm("production-safety");
    fs::remove_file(&wasm).unwrap();
    std::os::unix::fs::symlink("/dev/null", &wasm).unwrap();
    host.reload().expect("the refused module does not stop the reload");
    let info = host.plugin_list().into_iter().find(|info| info.name == "production-safety").unwrap();
    assert_eq!(info.status, PluginStatus::Loaded, "the old version keeps running");
    let refused = info.refused_update.expect("the new files are refused");
    assert!(refused.contains("production-safety.wasm is a character device, not a regular file"), "{refused}");

    set_debug_in_production(&example);
    let error = host.reload().expect_err("the old version's rule is still enforced");
    assert!(error.to_string().contains("app.debug must be false in production"), "{error}");
    assert!(host.view("production", None, None).unwrap().get::<u64>("api.timeout").is_ok(), "the host keeps serving");

    // At start-up the plugin is refused by name, and the host does not open.
    let error = ConfigHost::open(example.options()).err().expect("no host opens without its production rule");
    assert!(error.to_string().contains("production-safety.wasm"), "{error}");
}

/// The production policy (no unsigned plugin) follows the environments a host serves: a host
/// restricted to `development` never loads production and may run an unsigned plugin; a host
/// that serves production refuses it, alone or beside other environments.
#[test]
fn unsigned_plugins_are_refused_exactly_where_production_is_served() {
    let example = PluginTree::new(Tree::minimal());
    example.install("production-safety");
    fs::remove_file(potter_plugin::signature_path(&example.wasm("production-safety"))).unwrap();
    let open = |served: Option<&[&str]>| {
        let mut options = example.options();
        options.allow_unsigned = true;
        options.environments = served.map(|names| names.iter().map(|name| name.to_string()).collect());
        ConfigHost::open(options)
    };

    let host = open(Some(&["development"])).expect("a development-only host may run unsigned plugins");
    let info = host.plugin_list().into_iter().find(|info| info.name == "production-safety").unwrap();
    assert_eq!(info.status, PluginStatus::Loaded);
    assert_eq!(info.signer_key_id, None);
    assert!(host.view("development", None, None).unwrap().get::<u64>("api.timeout").is_ok());
    assert!(host.view("production", None, None).is_err(), "production is not served");
    open(Some(&["development", "staging"])).expect("no production among them");

    for served in [None, Some(&["production"][..]), Some(&["development", "production"][..])] {
        let error = open(served).err().unwrap_or_else(|| panic!("{served:?}: opened with an unsigned plugin"));
        assert!(matches!(error, potter_config::error::Error::UnsignedRefused { .. }), "{served:?}: {error}");
        assert!(error.to_string().contains("has a `production` environment this host serves"), "{served:?}: {error}");
    }
}
