"""Potter Config plugins in Python: typed helpers over the `potter:config@0.2.0` WIT.

A validator::

    from potter_config_sdk import Config, Issue, export_validator

    def validate(view, config: Config):
        if view.environment == "production" and config.get("app.debug") is True:
            return [Issue.error("app.debug", "debug must be off in production")]
        return []

    WitWorld = export_validator(validate)

A source::

    from potter_config_sdk import export_source

    def load(environment: str) -> dict:
        return {"inventory": {"environment": environment}}

    WitWorld = export_source(load, poll_interval_ms=5000)

Build with ``potter-plugin build`` (see ``potter_config_sdk.build``). The helpers import the
generated ``wit_world`` bindings only when called, so plain logic modules that use ``Config`` and
``Issue`` unit-test on ordinary CPython.
"""

import json
from typing import Any, Callable, Iterable, List, Optional

__all__ = [
    "Config",
    "Issue",
    "View",
    "log",
    "environment",
    "namespace_config",
    "export_validator",
    "export_source",
    "export_namespace",
    "wit_dir",
]

_MISSING = object()


def wit_dir() -> str:
    """The folder holding the bundled ``potter-config.wit``."""
    import os

    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "wit")


class Config:
    """The configuration a plugin receives: only its manifest's prefixes and ``plugins.<name>``."""

    def __init__(self, tree: Any):
        self._tree = tree

    @classmethod
    def parse(cls, text: str) -> "Config":
        return cls(json.loads(text))

    def root(self) -> Any:
        """The whole tree (a ``dict``)."""
        return self._tree

    def get(self, dotted: str, default: Any = None) -> Any:
        """The value at a dotted key path (numbers index lists), or ``default`` when absent."""
        node = self._tree
        for segment in dotted.split(".") if dotted else []:
            if isinstance(node, dict) and segment in node:
                node = node[segment]
            elif isinstance(node, list) and segment.isdigit() and int(segment) < len(node):
                node = node[int(segment)]
            else:
                return default
        return node


class View:
    """The view being validated (``environment``, and ``service`` or None)."""

    def __init__(self, environment: str, service: Optional[str] = None):
        self.environment = environment
        self.service = service

    def __repr__(self) -> str:
        return f"View({self.environment!r}, {self.service!r})"


class Issue:
    """One problem: a dotted path under your prefixes (or ``plugins.<name>``) and a message."""

    def __init__(self, path: str, message: str, is_error: bool = True):
        self.path = path
        self.message = message
        self.is_error = is_error

    @classmethod
    def error(cls, path: str, message: str) -> "Issue":
        """An error: the change that produced the view is rejected."""
        return cls(path, message, True)

    @classmethod
    def warning(cls, path: str, message: str) -> "Issue":
        """A warning: reported, the change is applied."""
        return cls(path, message, False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Issue) and (self.path, self.message, self.is_error) == (other.path, other.message, other.is_error)

    def __repr__(self) -> str:
        kind = "error" if self.is_error else "warning"
        return f"Issue.{kind}({self.path!r}, {self.message!r})"

    def _to_wit(self):
        from wit_world.imports import types

        severity = types.Severity.ERROR if self.is_error else types.Severity.WARNING
        return types.Issue(self.path, self.message, severity)


_LEVELS = ("trace", "debug", "info", "warn", "error")


def log(level: str, message: str) -> None:
    """A line in the host's log, tagged with the plugin's name (``level``: trace ... error)."""
    from wit_world.imports import host

    if level not in _LEVELS:
        raise ValueError(f"log level must be one of {', '.join(_LEVELS)}, not {level!r}")
    host.log(getattr(host.LogLevel, level.upper()), message)


def environment() -> str:
    """The environment the current call is about."""
    from wit_world.imports import host

    return host.environment()


def namespace_config() -> Any:
    """This plugin's own namespace ``plugins.<name>`` (``{}`` when absent)."""
    from wit_world.imports import host

    return json.loads(host.namespace_config())


def export_validator(validate: Callable[[View, Config], Iterable[Issue]]):
    """The ``WitWorld`` class of world ``validator``: assign it to ``WitWorld`` in your app module."""
    import wit_world

    class WitWorld(wit_world.WitWorld):
        def validate(self, view, config: str) -> List[Any]:
            issues = validate(View(view.environment, view.service), Config.parse(config))
            return [issue._to_wit() for issue in issues]

    return WitWorld


def export_source(
    load: Callable[[str], Any],
    poll_interval_ms: int = 0,
    change_token: Optional[Callable[[], Optional[str]]] = None,
):
    """The ``WitWorld`` class of world ``source``.

    ``load(environment)`` returns the layer (a ``dict``, serialised to JSON) or raises; the
    exception's message is reported with the plugin's name and the manifest's ``on_error`` applies.
    ``change_token()`` should be cheap (metadata, not contents); None reloads on every poll.
    """
    import wit_world
    from componentize_py_types import Err

    class WitWorld(wit_world.WitWorld):
        def load(self, environment: str) -> str:
            try:
                layer = load(environment)
            except Exception as error:  # the host reports it; the plugin keeps running
                raise Err(str(error) or type(error).__name__)
            return json.dumps(layer)

        def poll_interval_ms(self) -> int:
            return poll_interval_ms

        def change_token(self) -> Optional[str]:
            return change_token() if change_token else None

    return WitWorld


def export_namespace(defaults: Any = None, on_config_changed: Optional[Callable[[Any], None]] = None):
    """The ``Namespace`` class of the ``*-with-namespace`` worlds: assign it to ``Namespace`` in
    your app module. ``defaults`` fills ``plugins.<name>`` at the defaults level;
    ``on_config_changed(namespace)`` is called with its new content after each change to it."""
    from wit_world import exports

    class Namespace(exports.Namespace):
        def defaults(self) -> str:
            return json.dumps(defaults if defaults is not None else {})

        def on_config_changed(self, config: str) -> None:
            if on_config_changed:
                on_config_changed(json.loads(config))

    return Namespace
