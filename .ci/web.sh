#!/usr/bin/env bash
# The TypeScript client and the browser console: the generated stubs and the
# bundle the gateway embeds must match their sources (both are committed),
# the TypeScript must typecheck, and the console must work in Chromium
# against a real demo gateway. Assumes target/debug/thingcall-server is
# current (.ci/run runs `cargo test --workspace` first).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
web=clients/web

# Fresh dependencies when there are none, or the lock changed since the last install.
if [ ! -f "$web/node_modules/.package-lock.json" ] \
  || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
fi
export PATH="$root/$web/node_modules/.bin:$PATH"

# Fails when `paths` differ from the commit, including files that appeared.
unchanged() {
  if ! git diff --exit-code --stat -- "$@" || [ -n "$(git status --porcelain -- "$@")" ]; then
    git status --short -- "$@"
    echo "web: $* differ from the commit; $1 is generated: regenerate it and commit" >&2
    exit 1
  fi
}

(cd "$web" && buf generate)
unchanged "$web/src/gen"
(cd "$web" && node console/build.mjs)
unchanged server/console
(cd "$web" && tsc --noEmit)

if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
# The console test clears a device's retained presence with mosquitto_pub.
if ! command -v mosquitto_pub >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq mosquitto-clients >/dev/null
fi
if [ ! -x "${THINGCALL_SERVER_BIN:-target/debug/thingcall-server}" ]; then
  echo "web: no ${THINGCALL_SERVER_BIN:-target/debug/thingcall-server}; run cargo build -p thingcall-server first" >&2
  exit 1
fi
# The tests start their own gateways and kill them on any exit. The client
# package in Node first, then the console in Chromium, whose screenshot
# goes to a scratch path, so CI does not rewrite docs/console.png.
node "$web/test/client.test.mjs"
shot="$(mktemp -d)/console.png"
CONSOLE_SCREENSHOT="$shot" node "$web/test/console.test.mjs"
rm -rf "$(dirname "$shot")"
