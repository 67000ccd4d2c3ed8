#!/bin/sh
# End-to-end tests of `toolwarden mcp` against real MCP servers from npm.
#
#   sh tests/e2e/mcp/run.sh BUILD_DIR TOOLWARDEN_BINARY
#
# Installs the pinned packages (package-lock.json) into BUILD_DIR/mcp-e2e with `npm ci`, skipped when
# that node_modules already matches the lock, copies the test scripts there and runs them. Nothing is
# written into the source tree.
#
# Exit status: 0 all passed, 1 a test failed (or the setup failed), 2 usage, 77 skipped because node,
# npm or the npm registry is not available (with TOOLWARDEN_REQUIRE_NPM=1 that is a failure, 1).
set -u

if [ $# -ne 2 ]; then
  echo "usage: sh $0 BUILD_DIR TOOLWARDEN_BINARY" >&2
  exit 2
fi
case $0 in
  */*) here=${0%/*} ;;
  *) here=. ;;
esac
here=$(cd "$here" && pwd) || exit 1
build=$1
toolwarden=$2
case $toolwarden in
  /*) ;;
  *) toolwarden=$(pwd)/$toolwarden ;;
esac

skip() {
  echo "mcp_e2e: SKIPPED: npm registry unreachable ($1)"
  if [ "${TOOLWARDEN_REQUIRE_NPM:-0}" = 1 ]; then
    exit 1
  fi
  exit 77
}

command -v node >/dev/null 2>&1 || skip "node is not installed"
command -v npm >/dev/null 2>&1 || skip "npm is not installed"
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || node_major=0
if [ "$node_major" -lt 20 ]; then
  skip "node $(node --version 2>/dev/null) is older than the v20 the pinned packages need"
fi
if [ ! -x "$toolwarden" ]; then
  echo "mcp_e2e: $toolwarden is not an executable" >&2
  exit 1
fi

dir=$build/mcp-e2e
mkdir -p "$dir" || exit 1
dir=$(cd "$dir" && pwd) || exit 1

# Copy a file from here into $dir unless it is already there, unchanged.
sync_file() {
  if ! cmp -s "$here/$1" "$dir/$1"; then
    cp "$here/$1" "$dir/$1" || exit 1
  fi
}
sync_file package.json
sync_file package-lock.json

# node_modules matches the lock when the stamp, a copy of the lock written after a good `npm ci`, is
# the same file.
stamp=$dir/node_modules/.toolwarden-e2e-lock
if ! cmp -s "$dir/package-lock.json" "$stamp" || ! cmp -s "$dir/package.json" "$stamp.package"; then
  # A quick look at the registry first: `npm ci` against an unreachable one retries for minutes.
  if command -v timeout >/dev/null 2>&1; then
    ping_cmd="timeout 60 npm ping --fetch-timeout=20000 --fetch-retries=0"
  else
    ping_cmd="npm ping --fetch-timeout=20000 --fetch-retries=0"
  fi
  if ! (cd "$dir" && $ping_cmd) >"$dir/npm-ping.log" 2>&1; then
    registry=$(cd "$dir" && npm config get registry 2>/dev/null)
    reason=$(grep -m 1 'FetchError' "$dir/npm-ping.log" || grep -m 1 'npm error' "$dir/npm-ping.log" ||
             tail -n 1 "$dir/npm-ping.log")
    skip "npm ping $registry failed: ${reason#npm error }; log: $dir/npm-ping.log"
  fi
  echo "mcp_e2e: npm ci in $dir"
  if ! (cd "$dir" && npm ci --no-audit --no-fund) >"$dir/npm-ci.log" 2>&1; then
    cat "$dir/npm-ci.log"
    echo "mcp_e2e: FAILED: npm ci failed in $dir (log above, also in $dir/npm-ci.log)"
    exit 1
  fi
  cp "$dir/package-lock.json" "$stamp" && cp "$dir/package.json" "$stamp.package" || exit 1
fi

for f in "$here"/*.mjs "$here"/*.py; do
  sync_file "$(basename "$f")"
done

cd "$dir" || exit 1
NODE_PATH=$dir/node_modules
export NODE_PATH
exec node "$dir/mcp_e2e.mjs" --toolwarden "$toolwarden" ${MCP_E2E_ARGS:-}
