"""The check itself, free of WebAssembly bindings so it runs (and is unit-tested) on plain CPython.

Every `llm_providers.<name>.model` must be one of the models listed in this plugin's namespace,
`plugins.python-validator.allowed_models`. Without that list nothing can be checked, which is
reported as a warning (the change still applies) rather than blocking every configuration.
"""

import re
from typing import Any, List, NamedTuple, Optional

NAMESPACE = "plugins.python-validator"
ALLOWED_MODELS_PATH = NAMESPACE + ".allowed_models"

# A key the host accepts in an issue path: letters, digits, `_` and `-`.
KEY_SEGMENT = re.compile(r"^[A-Za-z0-9_-]+$")


class Finding(NamedTuple):
    path: str
    message: str
    is_error: bool


def check(config: Any, namespace: Any) -> List[Finding]:
    """`config` is the plugin's view of the configuration, `namespace` its own namespace (both parsed JSON)."""
    providers = config.get("llm_providers") if isinstance(config, dict) else None
    if not isinstance(providers, dict) or not providers:
        return []

    allowed = namespace.get("allowed_models") if isinstance(namespace, dict) else None
    if allowed is None:
        return [Finding(
            ALLOWED_MODELS_PATH,
            f"{ALLOWED_MODELS_PATH} is missing: the models of {len(providers)} llm_providers "
            "entries are not checked (set it to the list of models this deployment may use)",
            False,
        )]
    if not isinstance(allowed, list) or not all(isinstance(m, str) for m in allowed):
        return [Finding(ALLOWED_MODELS_PATH,
                        f"{ALLOWED_MODELS_PATH} must be a list of model names (found {_show(allowed)})",
                        True)]

    findings = []
    for name in sorted(providers):
        provider = providers[name]
        if not isinstance(provider, dict) or "model" not in provider:
            continue
        model = provider["model"]
        path = _provider_path(name, "model")
        shown_allowed = ", ".join(allowed) if allowed else "(none)"
        if not isinstance(model, str):
            findings.append(Finding(path, f"{path} must be a model name (found {_show(model)})", True))
        elif model not in allowed:
            findings.append(Finding(
                path,
                f"{path} = {model!r} is not an allowed model (allowed: {shown_allowed}; "
                f"list kept in {ALLOWED_MODELS_PATH})",
                True,
            ))
    return findings


def _provider_path(name: str, field: str) -> str:
    # A provider name the host cannot address (say, with a dot) is reported on the table itself.
    return f"llm_providers.{name}.{field}" if KEY_SEGMENT.match(name) else "llm_providers"


def _show(value: Optional[Any]) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
