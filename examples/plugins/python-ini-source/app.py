"""Potter Config source plugin in Python (world `source`), built with potter-config-sdk.

Reads the INI files of its granted directory (`/data` in the sandbox): `<stem>.ini` with
`[section]` and `key = value` lines becomes `ini.<stem>.<section>.<key>`. Values that read as
JSON scalars (`42`, `true`, `1.5`) become numbers and booleans; the rest stay text. The change
token is each file's name, size and modification time, so an unchanged folder costs one listing.
"""

import configparser
import json
import os

from potter_config_sdk import export_source, log

DATA = "/data"


def _files():
    return sorted(name for name in os.listdir(DATA) if name.endswith(".ini"))


def _scalar(text: str):
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, bool)) else text


def load(environment: str) -> dict:
    layer = {}
    for name in _files():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            with open(os.path.join(DATA, name), encoding="utf-8") as handle:
                parser.read_file(handle, source=name)
        except configparser.Error as error:
            # configparser names the file and line; the host adds the plugin's name.
            raise ValueError(f"{name}: {error}") from None
        sections = {section: {key: _scalar(value) for key, value in parser.items(section)} for section in parser.sections()}
        layer[name[: -len(".ini")]] = sections
    log("debug", f"{len(layer)} INI file(s) for {environment}")
    return {"ini": layer}


def change_token():
    stats = [(name, os.stat(os.path.join(DATA, name))) for name in _files()]
    return ";".join(f"{name}:{stat.st_size}:{stat.st_mtime_ns}" for name, stat in stats)


WitWorld = export_source(load, change_token=change_token)
