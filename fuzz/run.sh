#!/bin/sh
# Builds the libFuzzer targets with clang and runs each for SECONDS (docs/fuzzing.md).
#
#   fuzz/run.sh [SECONDS] [TARGET...]      # default: 60 seconds, every target
#
# Configures BUILD (default build-fuzz; TOOLWARDEN_FUZZ_BUILD overrides) with clang++ and
# -DTOOLWARDEN_FUZZ=ON, builds the targets, writes the seed corpus (fuzz/make_seeds.py --all) to
# BUILD/fuzz-seeds, then runs the targets one after another, each with its own working corpus
# BUILD/fuzz-corpus/TARGET (new inputs go there) read together with fuzz/regressions/TARGET and the
# seeds. Crashes, leaks, timeouts and out-of-memory inputs are written to BUILD/fuzz-out/TARGET/
# (crash-*, leak-*, timeout-*, oom-*), with libFuzzer's log in BUILD/fuzz-out/TARGET/fuzz-0.log.
# Exits 1 when any target found something. Environment: CXX (default clang++), JOBS (build
# parallelism, default 2), FUZZ_FLAGS (more libFuzzer flags).
set -eu

seconds=${1:-60}
[ $# -gt 0 ] && shift
root=$(cd "$(dirname "$0")/.." && pwd)
build=${TOOLWARDEN_FUZZ_BUILD:-$root/build-fuzz}
targets=${*:-"policy_fuzz progent_import_fuzz decide_fuzz sidecar_fuzz mcp_proxy_fuzz llm_reply_fuzz"}

launcher=""
command -v ccache >/dev/null 2>&1 && launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER="${CXX:-clang++}" $launcher \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOOLWARDEN_FUZZ=ON -DTOOLWARDEN_BUILD_TESTS=OFF \
  -DTOOLWARDEN_BUILD_BENCH=OFF >/dev/null
# shellcheck disable=SC2086
cmake --build "$build" -j "${JOBS:-2}" --target $targets
python3 "$root/fuzz/make_seeds.py" --source "$root" --out "$build/fuzz-seeds" --all

found=0
for target in $targets; do
  corpus=$build/fuzz-corpus/$target
  out=$build/fuzz-out/$target
  mkdir -p "$corpus" "$out"
  extra="-timeout=10"
  case $target in
    policy_fuzz) extra="$extra -dict=$root/fuzz/policy.dict" ;;
    # Each input is a dozen requests, each logged and the log verified: a seed at the 1 MiB body
    # limit takes seconds under the sanitizers on a busy machine, which is not a finding.
    sidecar_fuzz) extra="-timeout=30 -max_len=65536" ;;
  esac
  echo "== $target: ${seconds}s"
  # -jobs=1 runs the fuzzer in a child process writing $out/fuzz-0.log; -workers=1 keeps it to one
  # core. The exit status says whether it found something.
  # shellcheck disable=SC2086
  if (cd "$out" && "$build/$target" "$corpus" "$root/fuzz/regressions/$target" \
        "$build/fuzz-seeds/$target" -max_total_time="$seconds" -jobs=1 -workers=1 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/" \
        $extra ${FUZZ_FLAGS:-}); then
    :
  else
    found=1
  fi
  tail -n 25 "$out/fuzz-0.log" | grep -E '^(#[0-9]+|Done|stat::|==|SUMMARY|artifact_prefix|Test unit)' \
    | tail -n 12 || true
  ls "$out" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true
done
exit $found
