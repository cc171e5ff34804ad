//! `potter-config instances`: the hosts sharing the `--store etcd://...` history.

use serde_json::json;

use super::{Cli, Failure, Outcome};
use crate::output::{render, OutputFormat};

pub fn run(cli: &Cli) -> Outcome {
    let Some(instances) = potter_config::instances::list(&cli.options())? else {
        return Err(Failure { code: super::exit::USAGE, message: "the history is not shared, so there is no instance registry: give --store etcd://host:port[/prefix] (or POTTER_STORE)".to_owned() });
    };
    if cli.format == OutputFormat::Text {
        if instances.is_empty() {
            println!("no hosts registered");
        }
        for info in &instances {
            let refusal = info.last_refusal.as_deref().map(|why| format!(" refused: {why}")).unwrap_or_default();
            println!("{:<30} {:<22} version {:<8} plugins [{}]{refusal}", info.id, info.address.as_deref().unwrap_or("-"), info.version, info.plugins.join(", "));
        }
    } else {
        println!("{}", render(&json!({ "instances": instances }), cli.format, "instances").trim_end());
    }
    Ok(())
}
