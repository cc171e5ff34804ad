#!/usr/bin/env bash
# Builds {{name}}, trusts this project's development key in ROOT's trust store, signs the plugin
# with it and copies module, manifest and signature into ROOT/plugins/. The key is for
# development: sign with your own, operator-approved key for any shared or production tree.
#
#   ./install.sh ROOT      (POTTER_CONFIG names the potter-config binary; default: the one on PATH)
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 CONFIG_ROOT" >&2; exit 2; }
mkdir -p "$1/plugins"
root="$(cd "$1" && pwd)"
potter="${POTTER_CONFIG:-potter-config}"
cd "$(dirname "${BASH_SOURCE[0]}")"

{{build}}

# Trusted and signed before the files land, so a running host watching the folder loads the
# plugin on arrival instead of refusing a half-copied or not-yet-trusted one.
"$potter" --root "$root" plugin trust dev-key.pub
"$potter" --root "$root" plugin sign {{name}}.wasm --key dev-key.key
cp {{name}}.plugin.toml {{name}}.wasm {{name}}.wasm.sig "$root/plugins/"
"$potter" --root "$root" plugin verify "$root/plugins/{{name}}.wasm"
