"""{{name}}: a Potter Config validator. Edit the rule; the manifest's `prefixes` say which keys
it receives (plus its own namespace `plugins.{{name}}`)."""

from potter_config_sdk import Config, Issue, View, export_validator


def validate(view: View, config: Config):
    if view.environment == "production" and config.get("app.debug") is True:
        return [Issue.error("app.debug", "debug must be off in production")]
    return []


WitWorld = export_validator(validate)
