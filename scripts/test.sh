#!/usr/bin/env bash
# The README's test command: installs missing Debian dependencies, builds PermFS and runs every
# test (unit, crash, fault, stress, integration) with CTest.
#   PERMFS_PRESET=default|debug|asan|tsan  (default: default)
#   PERMFS_CRASH_STATES=N   crash states the crash harness checks (default: CI tier)
#   PERMFS_SANITIZERS=1     also build and test the asan and tsan presets
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
JOBS=${JOBS:-$(nproc)}
run_preset() {
  local preset=$1
  echo "=== preset $preset: configure and build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$JOBS"
  echo "=== preset $preset: test"
  ctest --preset "$preset" -j "$JOBS" --timeout 1800 "${CTEST_ARGS[@]}"
}
CTEST_ARGS=()
run_preset "${PERMFS_PRESET:-default}"
if [ "${PERMFS_SANITIZERS:-0}" = 1 ]; then
  CTEST_ARGS=(-LE "slow")
  run_preset asan
  run_preset tsan
fi
