//! Read-only commands: `get`, `dump`, `explain`, `layers`.

use potter_engine::{Provenance, ViewKey};
use serde_json::{json, Value};

use super::{Cli, Outcome};
use potter_config::Error;
use crate::output::{inline, render, OutputFormat};

fn view_key(cli: &Cli) -> ViewKey {
    ViewKey::new(&cli.environment, cli.service.as_deref(), cli.user.as_deref())
}

pub fn get(cli: &Cli, key: &str, reveal: bool) -> Outcome {
    potter_engine::parse_key_path(key).map_err(Error::from)?;
    let host = cli.open()?;
    let snapshot = host.snapshot();
    let view = host.options().served_view(&snapshot, &view_key(cli))?;
    let value = view.get_ref(key).ok_or_else(|| Error::NotFound(key.to_owned()))?;
    let shown = if reveal {
        potter_config::secret_values::ensure_revealable(view, key).map_err(Error::from)?;
        value.clone()
    } else {
        potter_config::secret_values::redact(view, key, value)
    };
    println!("{}", render(&shown, cli.format, key.rsplit('.').next().unwrap_or(key)).trim_end());
    Ok(())
}

pub fn dump(cli: &Cli) -> Outcome {
    let host = cli.open()?;
    let snapshot = host.snapshot();
    let view = host.options().served_view(&snapshot, &view_key(cli))?;
    let format = if cli.format == OutputFormat::Text { OutputFormat::Yaml } else { cli.format };
    println!("{}", render(&potter_config::secret_values::redact(view, "", view.value()), format, "config").trim_end());
    Ok(())
}

pub fn explain(cli: &Cli, key: &str) -> Outcome {
    potter_engine::parse_key_path(key).map_err(Error::from)?;
    let host = cli.open()?;
    let snapshot = host.snapshot();
    let view = host.options().served_view(&snapshot, &view_key(cli))?;
    let effective = view.get(key).map(|value| potter_config::secret_values::redact(view, key, &value));
    let env_var = potter_config::secret_values::overriding_variable(view, &host.options().env_prefix, key);
    let contributions = view.explain(key);
    // The highest layer: an override that reaches the key decides it, whatever the files say.
    let pinned_by = host.override_of(&cli.environment, key);
    if cli.format == OutputFormat::Json || cli.format == OutputFormat::Yaml || cli.format == OutputFormat::Toml {
        let layers: Vec<Value> = contributions
            .iter()
            .map(|c| {
                let mut layer = serde_json::to_value(Provenance::of(c.layer, c.location)).expect("provenance serializes");
                let fields = layer.as_object_mut().expect("provenance is an object");
                fields.extend([
                    ("status".to_owned(), json!(match c.value { None => "not set", Some(Value::Null) => "deletes", Some(_) => "set" })),
                    ("value".to_owned(), json!(c.value.map(|value| potter_config::secret_values::redact(view, key, value)))),
                    ("won".to_owned(), json!(c.won)),
                ]);
                layer
            })
            .collect();
        let document = json!({
            "key": key,
            "view": view.key().to_string(),
            "value": effective,
            "found": effective.is_some(),
            "env_var": env_var,
            "runtime_override": pinned_by,
            "layers": layers,
        });
        println!("{}", render(&document, cli.format, "explain").trim_end());
    } else {
        match &effective {
            Some(value) => println!("{key} = {}   ({})", inline(value), view.key()),
            None => println!("{key} is not set   ({})", view.key()),
        }
        for (i, c) in contributions.iter().enumerate() {
            let source = Provenance::of(c.layer, c.location).source;
            let said = match c.value {
                None => "—".to_owned(),
                Some(Value::Null) => "null (deletes)".to_owned(),
                Some(value) => inline(&potter_config::secret_values::redact(view, key, value)),
            };
            let mark = if c.won { "  <- wins" } else { "" };
            let shown_source = if c.value.is_some() { source } else { c.layer.source.to_string() };
            println!("  {}. {:<22} {:<45} {}{}", i + 1, c.layer.rank.label(), shown_source, said, mark);
        }
        let environment = &view.key().environment;
        match (&pinned_by, &env_var) {
            (Some(pin), _) => {
                println!("  pinned by the runtime override `{pin}` of {environment} (a `set`, an API write or a rollback): the files do not change it");
                println!("  release with: potter-config --env {environment} overrides release {pin}");
            }
            (None, Some(env_var)) => println!("  override with: {env_var}=<value>"),
            (None, None) => println!("  change with: potter-config --env {environment} secrets set {key} (a secret is never taken from an environment variable)"),
        }
    }
    if effective.is_none() {
        return Err(Error::NotFound(key.to_owned()).into());
    }
    Ok(())
}

pub fn layers(cli: &Cli) -> Outcome {
    let host = cli.open()?;
    let snapshot = host.snapshot();
    let view = host.options().served_view(&snapshot, &view_key(cli))?;
    let rows: Vec<Value> = view
        .layers()
        .iter()
        .map(|layer| {
            json!({
                "name": layer.name,
                "rank": layer.rank,
                "source": layer.source.to_string(),
                "keys": layer.locations.len(),
            })
        })
        .collect();
    if cli.format == OutputFormat::Text {
        println!("layers of {} (lowest precedence first):", view.key());
        for (i, layer) in view.layers().iter().enumerate() {
            println!("  {}. {:<22} {:<40} {} keys", i + 1, layer.rank.label(), layer.source.to_string(), layer.locations.len());
        }
    } else {
        println!("{}", render(&Value::Array(rows), cli.format, "layers").trim_end());
    }
    Ok(())
}
