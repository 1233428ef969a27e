#!/usr/bin/env bash
# Installs everything the test suite needs and runs it; ends with "N passed, N failed, N skipped".
# System packages (a real Secret Service for the keyring tests, setpriv for the peer-uid tests,
# bubblewrap for the `credproxy run --sandbox bwrap` tests, a PostgreSQL server for the shared
# store tests) are
# installed with apt when missing; that needs root, as in CI.
set -uo pipefail
cd "$(dirname "$0")/.."

packages=(dbus gnome-keyring util-linux bubblewrap postgresql)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "warning: missing system packages ${missing[*]} (install them as root; their tests will skip outside CI)" >&2
  fi
fi

npm ci --no-audit --no-fund || exit 1
npm run lint || exit 1

results=.vitest-results.json
rm -f "$results"
npx vitest run --reporter=default --reporter=json --outputFile="$results"
status=$?
node -e '
const fs = require("fs");
const file = process.argv[1];
if (!fs.existsSync(file)) { console.log("0 passed, 1 failed"); process.exit(0); }
const r = JSON.parse(fs.readFileSync(file, "utf8"));
const skipped = (r.numPendingTests || 0) + (r.numTodoTests || 0);
// A suite that failed to load counts as a failure even though none of its tests ran.
const brokenSuites = (r.testResults || []).filter((s) => s.status === "failed" && (s.assertionResults || []).length === 0).length;
console.log(`${r.numPassedTests} passed, ${r.numFailedTests + brokenSuites} failed, ${skipped} skipped`);
' "$results"
exit $status
