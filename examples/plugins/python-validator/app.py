"""Potter Config validator plugin in Python (world `validator`), built with potter-config-sdk.

`potter-plugin build` (from the SDK) runs componentize-py against the WIT bundled in the SDK;
`export_validator` turns `validate(view, config)` into the component's export.
"""

from potter_config_sdk import Config, Issue, View, export_validator, log, namespace_config

import rules


def validate(view: View, config: Config):
    findings = rules.check(config.root(), namespace_config())
    if findings:
        log("debug", f"{len(findings)} issue(s) in view {view.environment}/{view.service or '-'}")
    return [Issue(f.path, f.message, f.is_error) for f in findings]


WitWorld = export_validator(validate)
