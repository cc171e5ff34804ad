"""{{name}}: a Potter Config source. `load` returns the layer for an environment; its keys must
lie under the manifest's `prefixes`."""

from potter_config_sdk import export_source


def load(environment: str) -> dict:
    return {"{{prefix}}": {"greeting": f"hello from {{name}} in {environment}"}}


WitWorld = export_source(load)
