#!/bin/sh
# Installs a toolwarden build into a fresh prefix, then builds tests/c_consumer against it twice
# (with find_package and with pkg-config) and runs both programs. Any failure fails the test.
#
#   usage: run.sh BUILD_DIR WORK_DIR LIBDIR POLICY
#   (LIBDIR is CMAKE_INSTALL_LIBDIR, relative to the prefix, e.g. lib)
set -eu
if [ $# -ne 4 ]; then
  echo "usage: $0 BUILD_DIR WORK_DIR LIBDIR POLICY" >&2
  exit 2
fi
build_dir=$1
work=$2
libdir=$3
policy=$4
here=$(cd "$(dirname "$0")" && pwd)
prefix=$work/prefix

rm -rf "$work"
mkdir -p "$work"
echo "== install into $prefix"
cmake --install "$build_dir" --prefix "$prefix"
test -f "$prefix/include/toolwarden.h"
test -f "$prefix/$libdir/pkgconfig/toolwarden.pc"
test -f "$prefix/$libdir/cmake/toolwarden/toolwardenConfig.cmake"

echo "== only tw_* is exported"
exported=$(nm -D --defined-only "$prefix/$libdir/libtoolwarden.so" | awk '{print $3}' | sed 's/@.*//')
others=$(printf '%s\n' "$exported" | grep -v '^tw_' | grep -v '^TOOLWARDEN_0$' || true)
if [ -n "$others" ]; then
  echo "libtoolwarden.so exports more than tw_*:" >&2
  printf '%s\n' "$others" | head -20 >&2
  exit 1
fi
printf '%s\n' "$exported" | grep -qx tw_session_decide

echo "== find_package(toolwarden)"
generator=
if command -v ninja >/dev/null 2>&1; then generator="-G Ninja"; fi
# shellcheck disable=SC2086
cmake -S "$here" -B "$work/cmake-build" $generator -DCMAKE_PREFIX_PATH="$prefix"
cmake --build "$work/cmake-build"

echo "== pkg-config"
flags=$(PKG_CONFIG_PATH="$prefix/$libdir/pkgconfig" pkg-config --cflags --libs toolwarden)
echo "pkg-config --cflags --libs toolwarden: $flags"
# shellcheck disable=SC2086
cc -std=c99 -Wall -Wextra -Wpedantic -Werror -o "$work/consumer-pkg-config" "$here/consumer.c" $flags

echo "== run both"
LD_LIBRARY_PATH="$prefix/$libdir" "$work/cmake-build/consumer" "$policy"
LD_LIBRARY_PATH="$prefix/$libdir" "$work/consumer-pkg-config" "$policy"
echo "c_consumer: ok"
