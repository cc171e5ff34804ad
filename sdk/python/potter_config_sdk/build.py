"""``potter-plugin``: build a Potter Config plugin from a Python project.

    potter-plugin build [DIR] [--app MODULE] [--world WORLD] [-o OUT.wasm]
    potter-plugin bindings OUT_DIR [--world WORLD]     # wit_world for an editor
    potter-plugin wit                                  # where the bundled WIT is

``build`` reads the one ``<name>.plugin.toml`` in DIR (default ``.``): the world is its ``kind``
(``validator`` or ``source``; ``--world`` for ``validator-with-namespace`` and
``source-with-namespace``) and the output ``DIR/<name>.wasm``. It runs componentize-py (installed
with this package) against the bundled WIT, with DIR and this package on the module search path.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import List, Optional, Tuple

from . import wit_dir

WORLDS = ("validator", "source", "validator-with-namespace", "source-with-namespace")


def _componentize_py() -> str:
    """componentize-py of this package's environment (else the first on PATH)."""
    beside = os.path.join(os.path.dirname(sys.executable), "componentize-py")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("componentize-py")
    if not found:
        sys.exit("potter-plugin: componentize-py is not installed (pip install potter-config-sdk installs it)")
    return found


def read_manifest(directory: str) -> Tuple[str, str, str]:
    """(path, name, kind) of the one ``*.plugin.toml`` in ``directory``."""
    manifests = sorted(name for name in os.listdir(directory) if name.endswith(".plugin.toml"))
    if len(manifests) != 1:
        found = ", ".join(manifests) or "none"
        sys.exit(f"potter-plugin: {directory} must hold exactly one <name>.plugin.toml (found: {found})")
    path = os.path.join(directory, manifests[0])
    with open(path, "rb") as file:
        text = file.read()
    try:
        import tomllib

        manifest = tomllib.loads(text.decode("utf-8"))
    except ImportError:  # Python < 3.11: the two top-level strings the build needs
        manifest = dict(re.findall(r'^(name|kind)\s*=\s*"([^"]*)"', text.decode("utf-8"), re.MULTILINE))
    except Exception as error:
        sys.exit(f"potter-plugin: {path}: {error}")
    name, kind = manifest.get("name"), manifest.get("kind")
    if not name or kind not in ("validator", "source"):
        sys.exit(f'potter-plugin: {path}: needs name = "..." and kind = "validator" or "source"')
    if manifests[0] != f"{name}.plugin.toml":
        sys.exit(f"potter-plugin: {path}: the file must be named {name}.plugin.toml (after its name)")
    return path, name, kind


def _sdk_search_path(scratch: str) -> str:
    """A folder holding only this package's modules, for the component's search path (the whole
    site-packages would bundle the build toolchain too)."""
    target = os.path.join(scratch, "potter_config_sdk")
    os.makedirs(target)
    here = os.path.dirname(os.path.abspath(__file__))
    for name in os.listdir(here):
        if name.endswith(".py") and name != "build.py":
            shutil.copy(os.path.join(here, name), target)
    return scratch


def build(directory: str, app: str, world: Optional[str], out: Optional[str]) -> str:
    _, name, kind = read_manifest(directory)
    world = world or kind
    if world not in WORLDS:
        sys.exit(f"potter-plugin: unknown world {world!r} (one of {', '.join(WORLDS)})")
    if not world.startswith(kind):
        sys.exit(f"potter-plugin: world {world!r} does not match the manifest's kind {kind!r}")
    if not os.path.isfile(os.path.join(directory, f"{app}.py")):
        sys.exit(f"potter-plugin: {os.path.join(directory, app + '.py')} not found (--app names the module that defines WitWorld)")
    out = out or os.path.join(directory, f"{name}.wasm")
    with tempfile.TemporaryDirectory() as scratch:
        command = [
            _componentize_py(), "-d", wit_dir(), "-w", world, "componentize",
            "-p", directory, "-p", _sdk_search_path(scratch), app, "-o", out + ".tmp",
        ]
        result = subprocess.run(command, stdout=subprocess.DEVNULL)
        if result.returncode != 0:
            sys.exit(f"potter-plugin: componentize-py failed (exit {result.returncode}); command: {' '.join(command)}")
    os.replace(out + ".tmp", out)
    return out


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="potter-plugin", description="Build Potter Config plugins written in Python.")
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", help="build DIR's plugin into a component")
    build_parser.add_argument("directory", nargs="?", default=".")
    build_parser.add_argument("--app", default="app", help="the module defining WitWorld (default: app)")
    build_parser.add_argument("--world", choices=WORLDS, help="default: the manifest's kind")
    build_parser.add_argument("-o", "--out", help="default: DIR/<name>.wasm")
    bindings_parser = commands.add_parser("bindings", help="write the generated wit_world package (for an editor)")
    bindings_parser.add_argument("out_dir")
    bindings_parser.add_argument("--world", choices=WORLDS, default="validator")
    commands.add_parser("wit", help="print the folder of the bundled WIT")
    args = parser.parse_args(argv)
    if args.command == "build":
        print(build(args.directory, args.app, args.world, args.out))
    elif args.command == "bindings":
        subprocess.run([_componentize_py(), "-d", wit_dir(), "-w", args.world, "bindings", args.out_dir], check=True)
    else:
        print(wit_dir())


if __name__ == "__main__":
    main()
