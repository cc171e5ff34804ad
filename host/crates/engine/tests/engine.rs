//! Behaviour of the engine: precedence, merge rules, provenance and refusal of bad documents.

use std::sync::Arc;

use potter_engine::{envvars, parse_document, Axes, Format, Layer, LayerSource, Location, Rank, Scope, Snapshot, View, ViewKey};
use serde_json::{json, Value};

fn layer(name: &str, rank: Rank, scope: Scope, data: Value) -> Arc<Layer> {
    let source = match rank {
        Rank::Defaults => LayerSource::Defaults(name.into()),
        Rank::Source => LayerSource::Plugin(name.into()),
        Rank::EnvVars => LayerSource::EnvVars { prefix: "POTTER_".into() },
        Rank::Overrides => LayerSource::Overrides,
        _ => LayerSource::File(format!("{name}.json").into()),
    };
    Arc::new(Layer::new(name, rank, scope, source, data.as_object().unwrap().clone()))
}

fn axes() -> Axes {
    Axes { environments: vec!["production".into()], services: vec!["api".into()], users: vec!["alice".into()] }
}

/// One layer per precedence class, each writing `k` (and its own marker key).
fn every_rank() -> Vec<Arc<Layer>> {
    let prod = || Scope::environment("production");
    vec![
        layer("defaults", Rank::Defaults, Scope::everywhere(), json!({"k": "defaults"})),
        layer("source", Rank::Source, Scope::everywhere(), json!({"k": "source"})),
        layer("global", Rank::GlobalFile, Scope::everywhere(), json!({"k": "global"})),
        layer("environments/production", Rank::EnvironmentFile, prod(), json!({"k": "environment"})),
        layer("services/api", Rank::ServiceFile, Scope { service: Some("api".into()), ..Scope::default() }, json!({"k": "service"})),
        layer("users/alice", Rank::UserFile, Scope { user: Some("alice".into()), ..Scope::default() }, json!({"k": "user"})),
        layer("env", Rank::EnvVars, Scope::everywhere(), json!({"k": "envvars"})),
        layer("overrides/production", Rank::Overrides, prod(), json!({"k": "overrides"})),
    ]
}

#[test]
fn each_precedence_class_beats_the_one_below_it() {
    let all = every_rank();
    let key = ViewKey::new("production", Some("api"), Some("alice"));
    // Dropping the layers above each class, one at a time, shows every adjacent pair.
    for top in 1..all.len() {
        let layers: Vec<Arc<Layer>> = all[..=top].to_vec();
        let snapshot = Snapshot::new(0, layers, axes());
        let view = snapshot.view(&key).unwrap();
        let upper = all[top].data["k"].clone();
        let lower = all[top - 1].data["k"].clone();
        assert_eq!(view.get("k"), Some(upper.clone()), "{upper} must beat {lower}");
        assert_eq!(view.origin("k").unwrap().layer.name, all[top].name);
    }
}

#[test]
fn plugin_sources_order_by_priority_then_name() {
    let low = Arc::new((*layer("b-source", Rank::Source, Scope::everywhere(), json!({"k": "low"}))).clone().with_order(1));
    let high = Arc::new((*layer("a-source", Rank::Source, Scope::everywhere(), json!({"k": "high"}))).clone().with_order(5));
    let snapshot = Snapshot::new(0, vec![high, low], axes());
    assert_eq!(snapshot.view(&ViewKey::environment("production")).unwrap().get("k"), Some(json!("high")));
}

#[test]
fn layers_apply_only_to_their_scope() {
    let snapshot = Snapshot::new(0, every_rank(), Axes { environments: vec!["production".into(), "staging".into()], ..axes() });
    let staging = snapshot.view(&ViewKey::environment("staging")).unwrap();
    assert_eq!(staging.get("k"), Some(json!("envvars")));
    let layer_names: Vec<&str> = staging.layers().iter().map(|l| l.name.as_str()).collect();
    assert_eq!(layer_names, ["defaults", "source", "global", "env"]);
}

#[test]
fn null_in_a_higher_layer_deletes_the_key() {
    let layers = vec![
        layer("global", Rank::GlobalFile, Scope::everywhere(), json!({"a": {"b": 1, "c": 2}})),
        layer("environments/production", Rank::EnvironmentFile, Scope::environment("production"), json!({"a": {"b": null}})),
    ];
    let snapshot = Snapshot::new(0, layers, axes());
    let view = snapshot.view(&ViewKey::environment("production")).unwrap();
    assert_eq!(view.get("a"), Some(json!({"c": 2})));
    assert_eq!(view.get("a.b"), None);
}

#[test]
fn arrays_are_replaced_not_appended() {
    let layers = vec![
        layer("global", Rank::GlobalFile, Scope::everywhere(), json!({"hosts": ["a", "b"]})),
        layer("environments/production", Rank::EnvironmentFile, Scope::environment("production"), json!({"hosts": ["c"]})),
    ];
    let snapshot = Snapshot::new(0, layers, axes());
    assert_eq!(snapshot.view(&ViewKey::environment("production")).unwrap().get("hosts"), Some(json!(["c"])));
}

#[test]
fn environment_variables_map_snake_case_keys_and_json_values() {
    let vars = [("POTTER_LOGGING__MAX_SIZE", "5"), ("POTTER_API__TIMEOUT", "30"), ("POTTER_FEATURE_FLAGS__NEW_UI", "true"), ("POTTER_APP__NAME", "Potter Pro")];
    let env = Arc::new(envvars::env_layer("POTTER_", vars.iter().map(|(k, v)| (k.to_string(), v.to_string()))));
    let global = layer("global", Rank::GlobalFile, Scope::everywhere(), json!({"logging": {"max_size": 50, "level": "INFO"}, "api": {"timeout": 10}}));
    let snapshot = Snapshot::new(0, vec![global, env], axes());
    let view = snapshot.view(&ViewKey::environment("production")).unwrap();
    assert_eq!(view.get("logging.max_size"), Some(json!(5)));
    assert_eq!(view.get("logging.level"), Some(json!("INFO")));
    assert_eq!(view.get("api.timeout"), Some(json!(30)));
    assert_eq!(view.get("feature_flags.new_ui"), Some(json!(true)));
    assert_eq!(view.get("app.name"), Some(json!("Potter Pro")));
    assert_eq!(view.origin("logging.max_size").unwrap().location, &Location::EnvVar("POTTER_LOGGING__MAX_SIZE".into()));
}

fn text_location(text: &str, format: Format, path: &str) -> (u32, u32) {
    match parse_document(text, format).unwrap().locations.get(path) {
        Some(Location::Text { line, column }) => (*line, *column),
        other => panic!("no text location for {path}: {other:?}"),
    }
}

#[test]
fn json_values_know_their_line_and_column() {
    let text = "{\n  \"api\": {\n    \"rate_limit\": 5000,\n    \"hosts\": [\"a\"]\n  }\n}\n";
    assert_eq!(text_location(text, Format::Json, "api.rate_limit"), (3, 19));
    assert_eq!(text_location(text, Format::Json, "api.hosts"), (4, 14));
    assert_eq!(text_location(text, Format::Json, "api"), (2, 10));
}

#[test]
fn yaml_values_know_their_line_and_column() {
    let text = "# comment\napi:\n  rate_limit: 5000\n  name: \"x\"\n";
    assert_eq!(text_location(text, Format::Yaml, "api.rate_limit"), (3, 15));
    assert_eq!(text_location(text, Format::Yaml, "api.name"), (4, 9));
}

#[test]
fn toml_values_know_their_line_and_column() {
    let text = "title = \"x\"\n\n[api]\nrate_limit = 5000\n";
    assert_eq!(text_location(text, Format::Toml, "api.rate_limit"), (4, 14));
    assert_eq!(text_location(text, Format::Toml, "title"), (1, 9));
}

#[test]
fn the_three_formats_read_to_the_same_tree() {
    let json = parse_document(r#"{"a": {"b": 1, "c": [true, "x"], "d": 1.5}}"#, Format::Json).unwrap().data;
    let yaml = parse_document("a:\n  b: 1\n  c: [true, x]\n  d: 1.5\n", Format::Yaml).unwrap().data;
    let toml = parse_document("[a]\nb = 1\nc = [true, \"x\"]\nd = 1.5\n", Format::Toml).unwrap().data;
    assert_eq!(json, yaml);
    assert_eq!(json, toml);
}

#[test]
fn malformed_documents_name_line_and_column() {
    let cases = [
        (Format::Json, "{\n  \"a\": 1,\n  \"b\": }\n", 3),
        (Format::Json, "{\"a\": 1,}", 1),
        (Format::Yaml, "a: 1\nb: [1, 2\n", 3),
        (Format::Toml, "a = 1\nb = = 2\n", 2),
    ];
    for (format, text, line) in cases {
        let error = parse_document(text, format).unwrap_err();
        assert_eq!(error.line, Some(line), "{format:?} {text:?}: {error}");
        assert!(error.column.is_some(), "{format:?}: {error}");
    }
}

#[test]
fn duplicate_keys_are_refused_in_every_format() {
    for (format, text) in [
        (Format::Json, "{\"a\": {\"b\": 1, \"b\": 2}}"),
        (Format::Yaml, "a:\n  b: 1\n  b: 2\n"),
        (Format::Toml, "[a]\nb = 1\nb = 2\n"),
    ] {
        let error = parse_document(text, format).unwrap_err();
        assert!(error.to_string().to_lowercase().contains("duplicate"), "{format:?}: {error}");
        assert!(error.line.is_some(), "{format:?}: {error}");
    }
}

#[test]
fn nesting_ten_thousand_levels_deep_is_refused_without_overflow() {
    let depth = 10_000;
    let json = format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let json_arrays = format!("{{\"a\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
    let yaml_flow = format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth));
    let yaml_block: String = (0..depth).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
    let toml = format!("a = {}{}\n", "[".repeat(depth), "]".repeat(depth));
    let toml_inline = format!("a = {}{}\n", "{b = ".repeat(depth), "}".repeat(depth));
    for (format, text) in [
        (Format::Json, json),
        (Format::Json, json_arrays),
        (Format::Yaml, yaml_flow),
        (Format::Yaml, yaml_block),
        (Format::Toml, toml),
        (Format::Toml, toml_inline),
    ] {
        // A small stack, like a worker thread's, must be enough.
        let result = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || parse_document(&text, format).map(|_| ()).map_err(|e| e.to_string()))
            .unwrap()
            .join()
            .expect("parser must not overflow the stack");
        let error = result.expect_err("deep nesting must be refused");
        assert!(error.contains("nesting") || error.contains("depth") || error.contains("recursion"), "{format:?}: {error}");
    }
}

#[test]
fn the_top_level_must_be_an_object() {
    for (format, text) in [(Format::Json, "[1]"), (Format::Yaml, "- 1\n"), (Format::Json, "3")] {
        assert!(parse_document(text, format).unwrap_err().to_string().contains("top level"));
    }
    assert!(parse_document("", Format::Yaml).unwrap().data.is_empty());
}

#[test]
fn explain_lists_every_layer_and_marks_the_winner() {
    let snapshot = Snapshot::new(0, every_rank(), axes());
    let view = snapshot.view(&ViewKey::new("production", Some("api"), None)).unwrap();
    let contributions = view.explain("k");
    assert_eq!(contributions.len(), 7);
    let winners: Vec<&str> = contributions.iter().filter(|c| c.won).map(|c| c.layer.name.as_str()).collect();
    assert_eq!(winners, ["overrides/production"]);
}

#[test]
fn unknown_views_are_refused_with_the_known_names() {
    let snapshot = Snapshot::new(0, every_rank(), axes());
    let error = snapshot.view(&ViewKey::environment("prod")).unwrap_err().to_string();
    assert!(error.contains("unknown environment `prod`") && error.contains("production"), "{error}");
    let error = snapshot.view(&ViewKey::new("production", Some("web"), None)).unwrap_err().to_string();
    assert!(error.contains("unknown service `web`"), "{error}");
}

#[test]
fn typed_extraction_reads_through_serde() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Api {
        rate_limit: u32,
        timeout: f64,
    }
    let snapshot = Snapshot::new(0, vec![layer("global", Rank::GlobalFile, Scope::everywhere(), json!({"api": {"rate_limit": 100, "timeout": 2.5}}))], axes());
    let view = snapshot.view(&ViewKey::environment("production")).unwrap();
    assert_eq!(view.extract::<u32>("api.rate_limit").unwrap(), 100);
    assert_eq!(view.extract::<Api>("api").unwrap(), Api { rate_limit: 100, timeout: 2.5 });
    assert!(view.extract::<String>("api.rate_limit").unwrap_err().to_string().contains("api.rate_limit"));
}

/// A small deterministic generator (xorshift) for the change-path test below.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// A random tree over few key names, so that layers overlap, replace and delete each other.
fn random_tree(rng: &mut Rng, depth: usize) -> Value {
    let mut map = serde_json::Map::new();
    for _ in 0..rng.below(4) {
        let key = ["a", "b", "c", "d"][rng.below(4)].to_owned();
        let value = match rng.below(if depth == 0 { 4 } else { 6 }) {
            0 => Value::Null,
            1 => json!(rng.below(3)),
            2 => json!([rng.below(2)]),
            3 => json!({}),
            _ => random_tree(rng, depth - 1),
        };
        map.insert(key, value);
    }
    Value::Object(map)
}

/// A change to some layers (edited, added or removed): its views compared under
/// `Snapshot::changed_paths` only (`Snapshot::diff_view_under`: merged from the layers' nodes there,
/// or read from the view when it is merged) give exactly the whole views' diff.
#[test]
fn views_differ_only_under_the_changed_paths() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let axes = || Axes { environments: vec!["production".into(), "staging".into()], services: vec!["api".into()], users: vec!["alice".into()] };
    let scopes = [
        (Rank::Defaults, Scope::everywhere()),
        (Rank::GlobalFile, Scope::everywhere()),
        (Rank::EnvironmentFile, Scope::environment("production")),
        (Rank::ServiceFile, Scope { environment: None, service: Some("api".into()), user: None }),
        (Rank::UserFile, Scope { environment: None, service: None, user: Some("alice".into()) }),
        (Rank::UserFile, Scope { environment: None, service: Some("api".into()), user: Some("alice".into()) }),
        (Rank::Overrides, Scope::environment("production")),
    ];
    let (mut compared, mut shared) = (0, 0);
    for case in 0..2_000 {
        let mut before: Vec<Arc<Layer>> = Vec::new();
        for (i, (rank, scope)) in scopes.iter().enumerate() {
            if rng.below(5) > 0 {
                before.push(layer(&format!("l{i}"), *rank, scope.clone(), random_tree(&mut rng, 3)));
            }
        }
        let mut after = before.clone();
        for _ in 0..1 + rng.below(2) {
            let i = rng.below(scopes.len());
            let name = format!("l{i}");
            after.retain(|layer| layer.name != name);
            if rng.below(4) > 0 {
                after.push(layer(&name, scopes[i].0, scopes[i].1.clone(), random_tree(&mut rng, 3)));
            }
        }
        let (old, new) = (Snapshot::new(0, before, axes()), Snapshot::new(1, after, axes()));
        // Some views merged already, as a live snapshot would have them.
        if case % 2 == 0 {
            old.view(&ViewKey::environment("production")).unwrap();
            new.view(&ViewKey::new("production", Some("api"), None)).unwrap();
        }
        let paths = old.changed_paths(&new).expect("no layer moved and no key holds a dot");
        let mut partials = std::collections::BTreeMap::new();
        for key in old.all_view_keys() {
            let partial = old.diff_view_under(&new, &key, &paths);
            let whole = potter_engine::diff("", Some(old.view(&key).unwrap().value()), Some(new.view(&key).unwrap().value()));
            assert_eq!(partial, whole, "case {case}, view {key}, paths {paths:?}");
            compared += usize::from(!whole.is_empty());
            partials.insert(key, partial);
        }
        // Where a view is said to share its base's diff, it does.
        for (key, partial) in &partials {
            let Some(base) = Snapshot::base_key(key) else { continue };
            if old.shares_base_diff(&new, key, &paths, &partials[&base]) {
                assert_eq!(partial, &partials[&base], "case {case}, view {key} said to share {base}'s diff, paths {paths:?}, layers {:?}", new.layers().iter().map(|l| (&l.name, &l.scope, &l.data)).collect::<Vec<_>>());
                shared += usize::from(!partial.is_empty());
            }
        }
    }
    assert!(compared > 2_000, "the cases change views ({compared} changed views)");
    assert!(shared > 50, "views share their base's change ({shared})");
}

/// `View::origin` answers from the leaf index when it is built and from the layers otherwise; both
/// must name the same layer for every leaf, whatever the layers delete or replace.
#[test]
fn a_leaf_has_the_same_origin_with_or_without_the_leaf_index() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let axes = || Axes { environments: vec!["production".into()], services: vec!["api".into()], users: Vec::new() };
    let mut leaves = 0;
    for _ in 0..2_000 {
        let ranks = [Rank::Defaults, Rank::GlobalFile, Rank::EnvironmentFile, Rank::ServiceFile, Rank::Overrides];
        let layers: Vec<Arc<Layer>> = ranks.iter().enumerate().map(|(i, rank)| layer(&format!("l{i}"), *rank, Scope::everywhere(), random_tree(&mut rng, 3))).collect();
        let (indexed, walked) = (Snapshot::new(0, layers.clone(), axes()), Snapshot::new(0, layers, axes()));
        let key = ViewKey::new("production", Some("api"), None);
        let (indexed, walked) = (indexed.view(&key).unwrap(), walked.view(&key).unwrap());
        let paths: Vec<String> = indexed.leaf_paths().map(|(path, _)| path.to_owned()).collect();
        for path in &paths {
            let name = |view: &View| view.origin(path).map(|origin| origin.layer.name.clone());
            assert_eq!(name(walked), name(indexed), "leaf {path}");
            assert!(name(indexed).is_some(), "every leaf has an origin: {path}");
        }
        leaves += paths.len();
    }
    assert!(leaves > 2_000, "the cases have leaves ({leaves})");
}

/// A snapshot finds a view's layers through its index by scope; they are the layers
/// `View::layers_for` picks from every layer, in the same order, and the view merges them alike.
#[test]
fn a_view_has_the_same_layers_found_by_scope_or_by_testing_every_layer() {
    let mut rng = Rng(0x51af_d7ed_558c_cd43);
    let axes = || Axes { environments: vec!["production".into(), "staging".into()], services: vec!["api".into(), "web".into()], users: vec!["alice".into(), "bob".into()] };
    let pick = |rng: &mut Rng, names: &[&str]| -> Option<Arc<str>> { (rng.below(2) == 0).then(|| names[rng.below(names.len())].into()) };
    let ranks = [Rank::Defaults, Rank::Source, Rank::GlobalFile, Rank::EnvironmentFile, Rank::ServiceFile, Rank::UserFile, Rank::EnvVars, Rank::Overrides];
    for case in 0..500 {
        let mut layers = Vec::new();
        for i in 0..1 + rng.below(12) {
            let scope = Scope { environment: pick(&mut rng, &["production", "staging"]), service: pick(&mut rng, &["api", "web"]), user: pick(&mut rng, &["alice", "bob"]) };
            let rank = ranks[rng.below(ranks.len())];
            // Equal names and ranks too, so that the sort's stability shows.
            layers.push(layer(&format!("l{}", i % 3), rank, scope, random_tree(&mut rng, 2)));
        }
        let snapshot = Snapshot::new(0, layers.clone(), axes());
        for key in snapshot.all_view_keys() {
            let expected = View::layers_for(&key, &layers);
            let found = snapshot.layers_of(&key).unwrap();
            let names = |layers: &[Arc<Layer>]| layers.iter().map(|layer| Arc::as_ptr(layer)).collect::<Vec<_>>();
            assert_eq!(names(&found), names(&expected), "case {case}, view {key}");
            assert_eq!(snapshot.view(&key).unwrap().value(), View::build(key.clone(), &layers).value(), "case {case}, view {key}");
        }
    }
}

/// Every dotted path of a tree's nodes, subtrees and leaves alike.
fn node_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    if let Value::Object(map) = value {
        for (key, child) in map {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            out.push(path.clone());
            node_paths(child, &path, out);
        }
    }
}

/// A view built on its base (`View::on_base`: it merges only the root keys its own layers write and
/// reads the rest from the base) reads exactly as the same view merged whole from its layers: the
/// tree, every node, every leaf, the winning layer of each, and paths that are not there — whichever
/// views were merged first and whether or not their leaf indexes were built.
#[test]
fn a_view_built_on_its_base_reads_as_the_view_merged_whole() {
    let mut rng = Rng(0x94d0_49bb_1331_11eb);
    let axes = || Axes { environments: vec!["production".into(), "staging".into()], services: vec!["api".into(), "web".into()], users: vec!["alice".into()] };
    let pick = |rng: &mut Rng, names: &[&str]| -> Option<Arc<str>> { (rng.below(2) == 0).then(|| names[rng.below(names.len())].into()) };
    let ranks = [Rank::Defaults, Rank::GlobalFile, Rank::EnvironmentFile, Rank::ServiceFile, Rank::UserFile, Rank::EnvVars, Rank::Overrides];
    let (mut shared, mut nodes) = (0, 0);
    for case in 0..1_500 {
        let mut layers = Vec::new();
        for i in 0..1 + rng.below(8) {
            let scope = Scope { environment: pick(&mut rng, &["production", "staging"]), service: pick(&mut rng, &["api", "web"]), user: pick(&mut rng, &["alice"]) };
            layers.push(layer(&format!("l{i}"), ranks[rng.below(ranks.len())], scope, random_tree(&mut rng, 3)));
        }
        let snapshot = Snapshot::new(0, layers.clone(), axes());
        let mut keys = snapshot.all_view_keys();
        // Views merged in another order than bases first, indexed or not.
        if case % 2 == 1 {
            keys.reverse();
        }
        for key in keys {
            let view = snapshot.view(&key).unwrap();
            if case % 3 == 0 {
                view.build_leaf_index();
            }
            let whole = View::build(key.clone(), &layers);
            let mut paths = Vec::new();
            node_paths(whole.value(), "", &mut paths);
            paths.extend(["a.missing", "zz", "a.b.c.d.e"].map(str::to_owned));
            for path in &paths {
                assert_eq!(view.value_at(path), whole.value_at(path), "case {case}, view {key}, value_at {path}");
                assert_eq!(view.get_ref(path), whole.get_ref(path), "case {case}, view {key}, get_ref {path}");
                let winner = |view: &View| view.origin(path).map(|origin| origin.layer.name.clone());
                assert_eq!(winner(view), winner(&whole), "case {case}, view {key}, origin {path}");
            }
            let leaves = |view: &View| {
                let mut leaves: Vec<(String, Value)> = view.leaf_paths().map(|(path, value)| (path.to_owned(), value.clone())).collect();
                leaves.sort_by(|a, b| a.0.cmp(&b.0));
                leaves
            };
            assert_eq!(leaves(view), leaves(&whole), "case {case}, view {key}");
            assert_eq!(view.leaf_count(), whole.leaf_count(), "case {case}, view {key}");
            assert_eq!(*view.tree(), *whole.value(), "case {case}, view {key}");
            assert_eq!(view.value(), whole.value(), "case {case}, view {key}");
            // Order too: the whole tree of a view is rendered as it is (objects keep their order).
            assert_eq!(serde_json::to_string(view.value()).unwrap(), serde_json::to_string(whole.value()).unwrap());
            shared += paths.iter().filter(|path| key.service.is_some() && whole.value_at(path).is_some()).count();
            nodes += paths.len();
        }
    }
    assert!(shared > 10_000 && nodes > 20_000, "the cases have views with a base and nodes to read ({shared} / {nodes})");
}

#[test]
fn a_key_kept_from_an_earlier_snapshot_finds_its_view_in_a_later_one_by_pointer() {
    let earlier = Snapshot::new(0, every_rank(), axes());
    let slot = earlier.slot_of(&ViewKey::new("production", Some("api"), Some("alice"))).unwrap();
    let kept = earlier.key_at(slot).unwrap().clone();

    // A later listing reads the same names into new strings, and one name more.
    let mut later_axes = Axes { environments: vec!["production".into(), "staging".into()], services: vec!["api".into()], users: vec!["alice".into()] };
    later_axes.share_names_with(earlier.axes());
    assert!(Arc::ptr_eq(&later_axes.environments[0], &earlier.axes().environments[0]));
    assert!(Arc::ptr_eq(&later_axes.services[0], &earlier.axes().services[0]));
    assert!(Arc::ptr_eq(&later_axes.users[0], &earlier.axes().users[0]));
    assert_eq!(&*later_axes.environments[1], "staging");

    let later = Snapshot::new(1, every_rank(), later_axes);
    let later_slot = later.slot_of(&kept).unwrap();
    let found = later.key_at(later_slot).unwrap();
    assert!(Arc::ptr_eq(&found.environment, &kept.environment) && Arc::ptr_eq(found.user.as_ref().unwrap(), kept.user.as_ref().unwrap()));
    assert_eq!(later.view_hinted(later_slot, &kept).unwrap().value(), earlier.view(&kept).unwrap().value());
    // A stale slot misses rather than answering with another view.
    assert!(later.view_hinted(later_slot + 1, &kept).is_none());
}
