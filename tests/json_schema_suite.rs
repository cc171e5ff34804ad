//! The official JSON-Schema-Test-Suite (draft-07 and 2020-12, vendored and pinned in
//! host/crates/validate/tests/json-schema-test-suite) run through the library path `validate`
//! uses: one config tree per case, loaded and validated by `ConfigHost::inspect`.
//!
//! The case's schema is the tree's global schema and its instance is `global.json`. A
//! configuration file is always an object, so an instance that is not one is written as
//! `{"value": [instance]}` (in an array, as a `null` at a key deletes the key) and checked by a
//! global schema that applies the case's schema, in `schemas/suite_case.json`, to that item. The
//! suite's remote documents (`http://localhost:1234/...`) are placed in the schemas folder, each
//! identified by its `$id` (the URL it is served at when it has none; a schema of its own names
//! the URL when the `$id` differs): references between documents resolve by `$id` inside the
//! folder, and nothing is fetched. docs/VALIDATION.md ("The official test suite") says why.
//!
//! Two assertions: at least 99% of the cases agree with the suite, and every disagreement is in
//! [`KNOWN_DISAGREEMENTS`] with its reason (docs/VALIDATION.md lists the same), so a case that
//! regresses fails this test, and so does a known one that starts to agree (take it off the list).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use potter_config::runtime::ConfigHost;
use potter_config::Options;
use potter_engine::Severity;
use serde_json::{json, Value};

const DRAFTS: [(&str, &str); 2] = [("draft7", "http://json-schema.org/draft-07/schema#"), ("draft2020-12", "https://json-schema.org/draft/2020-12/schema")];

/// Where the suite's remotes are served from, in the suite's own harness.
const REMOTES_URL: &str = "http://localhost:1234/";

/// The cases Potter decides differently from the suite, as `draft/file.json: group / test`,
/// each with its reason. Keep in step with docs/VALIDATION.md.
const KNOWN_DISAGREEMENTS: &[(&str, &str)] = &[
    ("draft7/allOf.json: allOf with base schema / valid", NULL_DELETES),
    ("draft7/patternProperties.json: regexes are not anchored by default and are case sensitive / recognized members are accounted for", NULL_DELETES),
    ("draft2020-12/allOf.json: allOf with base schema / valid", NULL_DELETES),
    ("draft2020-12/format.json: email format / invalid email string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: regex format / invalid regex string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: ipv4 format / invalid ipv4 string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: ipv6 format / invalid ipv6 string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: hostname format / invalid hostname string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: date format / invalid date string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: date-time format / invalid date-time string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: time format / invalid time string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: json-pointer format / invalid json-pointer string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: relative-json-pointer format / invalid relative-json-pointer string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: iri format / invalid iri string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: iri-reference format / invalid iri-reference string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: uri format / invalid uri string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: uri-reference format / invalid uri-reference string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: uri-template format / invalid uri-template string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: uuid format / invalid uuid string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/format.json: duration format / invalid duration string is only an annotation by default", FORMAT_ASSERTS),
    ("draft2020-12/patternProperties.json: regexes are not anchored by default and are case sensitive / recognized members are accounted for", NULL_DELETES),
];

/// Potter's format policy: formats are assertions (docs/VALIDATION.md), where 2020-12 makes them
/// annotations unless the format-assertion vocabulary is in force.
const FORMAT_ASSERTS: &str = "formats are assertions in Potter; 2020-12 makes them annotations by default";
/// The merge rule: a `null` in a configuration file deletes the key, so the object reaches the
/// schema without that member.
const NULL_DELETES: &str = "a null member of a configuration file deletes the key";

/// The lowest share of agreeing cases accepted.
const MIN_AGREEMENT: f64 = 0.99;

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../validate/tests/json-schema-test-suite")
}

/// A remote document and the path it is served at below [`REMOTES_URL`].
struct Remote {
    path: String,
    document: Value,
}

/// The remotes a draft's cases may refer to: the draft's own folder and the shared top-level ones.
fn remotes_for(draft: &str) -> Vec<Remote> {
    let root = suite_dir().join("remotes");
    let mut files = Vec::new();
    collect_json(&root, &root, &mut files);
    files
        .into_iter()
        .filter(|path| {
            let first = path.split('/').next().unwrap_or_default();
            first == draft || !first.starts_with("draft")
        })
        .map(|path| {
            let document: Value = serde_json::from_str(&fs::read_to_string(root.join(&path)).unwrap()).unwrap();
            Remote { path, document }
        })
        .collect()
}

fn collect_json(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_json(root, &path, out);
        } else if path.extension().is_some_and(|ext| ext == "json") {
            out.push(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
        }
    }
}

/// One case: the suite's verdict and Potter's.
struct Outcome {
    name: String,
    expected: bool,
    accepted: bool,
    /// Why Potter refused it (the first error), for the failure message.
    refusal: Option<String>,
}

/// The trees of one draft's cases: one without and one with the suite's remotes in its schemas
/// folder. Each case rewrites the files it consists of (on many file systems creating and
/// removing folders costs far more than the load itself); every load reads the whole tree anew.
struct Trees {
    dir: tempfile::TempDir,
}

impl Trees {
    fn new(remotes: &[Remote]) -> Self {
        // In memory where the machine has it: the run writes some 7,000 files.
        let shm = Path::new("/dev/shm");
        let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
        let trees = Trees { dir: dir.unwrap() };
        for root in [trees.root(false), trees.root(true)] {
            write(&root, "environments/suite.json", &json!({}));
        }
        let root = trees.root(true);
        for remote in remotes {
            let url = format!("{REMOTES_URL}{}", remote.path);
            let mut document = remote.document.clone();
            // A document the suite serves at a URL and that names no `$id` of its own is known by that URL.
            if let Value::Object(map) = &mut document {
                map.entry("$id").or_insert_with(|| json!(url));
            }
            // Served at a URL other than its `$id`: the URL is a schema of its own that refers to it.
            if let Some(id) = document.get("$id").and_then(Value::as_str).filter(|id| *id != url) {
                write(&root, &format!("schemas/remotes-by-url/{}", remote.path), &json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": url, "$ref": id}));
            }
            write(&root, &format!("schemas/remotes/{}", remote.path), &document);
        }
        trees
    }

    fn root(&self, with_remotes: bool) -> PathBuf {
        self.dir.path().join(if with_remotes { "with-remotes" } else { "plain" })
    }

    /// Writes the case's tree and validates it the way `validate` does: (valid, first error).
    fn run_case(&self, draft_uri: &str, schema: &Value, instance: &Value) -> (bool, Option<String>) {
        // The suite runs each folder's cases as that draft; Potter reads a schema without `$schema` as 2020-12.
        let mut schema = schema.clone();
        if let Value::Object(map) = &mut schema {
            map.entry("$schema").or_insert_with(|| json!(draft_uri));
        }
        let root = self.root(schema.to_string().contains(REMOTES_URL));
        if instance.is_object() {
            write(&root, "schemas/global_schema.json", &schema);
            write(&root, "schemas/suite_case.json", &json!(true));
            write(&root, "global.json", instance);
        } else {
            // In an array: a `null` at a key would delete the key.
            let items = if draft_uri.contains("draft-07") { "items" } else { "prefixItems" };
            write(&root, "schemas/suite_case.json", &schema);
            write(&root, "schemas/global_schema.json", &json!({"$schema": draft_uri, "properties": {"value": {items: [{"$ref": "suite_case.json"}]}}}));
            write(&root, "global.json", &json!({ "value": [instance] }));
        }
        let mut options = Options::new(&root);
        options.state_dir = self.dir.path().join("state");
        options.env_vars = Some(Vec::new());
        options.history = false;
        match ConfigHost::inspect(&options) {
            Ok((_, report)) => {
                let first_error = report.issues().find(|issue| issue.severity == Severity::Error).map(|issue| format!("{}: {} ({})", issue.path, issue.message, issue.rule));
                (!report.has_errors(), first_error)
            }
            Err(error) => (false, Some(error.to_string())),
        }
    }
}

fn write(root: &Path, rel: &str, value: &Value) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

fn run_suite() -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for (draft, draft_uri) in DRAFTS {
        let trees = Trees::new(&remotes_for(draft));
        let folder = suite_dir().join("tests").join(draft);
        let mut files: Vec<_> = fs::read_dir(&folder).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|ext| ext == "json")).collect();
        files.sort();
        for file in files {
            let file_name = file.file_name().unwrap().to_string_lossy().into_owned();
            let groups: Value = serde_json::from_str(&fs::read_to_string(&file).unwrap()).unwrap();
            for group in groups.as_array().unwrap() {
                let group_name = group["description"].as_str().unwrap();
                for test in group["tests"].as_array().unwrap() {
                    let (accepted, refusal) = trees.run_case(draft_uri, &group["schema"], &test["data"]);
                    outcomes.push(Outcome {
                        name: format!("{draft}/{file_name}: {group_name} / {}", test["description"].as_str().unwrap()),
                        expected: test["valid"].as_bool().unwrap(),
                        accepted,
                        refusal,
                    });
                }
            }
        }
    }
    outcomes
}

#[test]
fn the_official_suite_agrees_but_for_the_known_disagreements() {
    let started = std::time::Instant::now();
    let outcomes = run_suite();
    println!("{} cases in {:?}", outcomes.len(), started.elapsed());
    let known: BTreeMap<&str, &str> = KNOWN_DISAGREEMENTS.iter().copied().collect();
    assert_eq!(known.len(), KNOWN_DISAGREEMENTS.len(), "a known disagreement is listed twice");
    let total = outcomes.len();
    let disagreeing: Vec<&Outcome> = outcomes.iter().filter(|o| o.expected != o.accepted).collect();
    let agreement = (total - disagreeing.len()) as f64 / total as f64;
    for (draft, _) in DRAFTS {
        let of_draft: Vec<&Outcome> = outcomes.iter().filter(|o| o.name.starts_with(&format!("{draft}/"))).collect();
        let agreeing = of_draft.iter().filter(|o| o.expected == o.accepted).count();
        println!("{draft}: {agreeing} of {} cases agree", of_draft.len());
    }
    println!("together: {} of {total} cases agree ({:.2}%)", total - disagreeing.len(), agreement * 100.0);

    let unexpected: Vec<String> = disagreeing
        .iter()
        .filter(|o| !known.contains_key(o.name.as_str()))
        .map(|o| {
            let verdict = if o.expected { "valid, refused" } else { "invalid, accepted" };
            format!("{} ({verdict}: {})", o.name, o.refusal.as_deref().unwrap_or("no error"))
        })
        .collect();
    let names: std::collections::BTreeSet<&str> = outcomes.iter().map(|o| o.name.as_str()).collect();
    let disagreeing_names: std::collections::BTreeSet<&str> = disagreeing.iter().map(|o| o.name.as_str()).collect();
    let now_agreeing: Vec<&str> = known.keys().copied().filter(|name| !disagreeing_names.contains(name)).collect();
    let not_in_suite: Vec<&str> = known.keys().copied().filter(|name| !names.contains(name)).collect();
    assert!(unexpected.is_empty(), "{} disagreement(s) not in KNOWN_DISAGREEMENTS:\n{}", unexpected.len(), unexpected.join("\n"));
    assert!(not_in_suite.is_empty(), "known disagreements that are no case of the suite:\n{}", not_in_suite.join("\n"));
    assert!(now_agreeing.is_empty(), "known disagreements that now agree (take them off the list and docs/VALIDATION.md):\n{}", now_agreeing.join("\n"));
    assert!(agreement >= MIN_AGREEMENT, "only {:.2}% of the cases agree", agreement * 100.0);
}
