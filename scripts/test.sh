#!/usr/bin/env bash
# The README's test command: installs missing Debian dependencies, builds PermFS and runs every
# test (unit, crash, fault, stress, integration) with CTest.
#   PERMFS_PRESET=default|debug|asan|tsan  (default: default)
#   PERMFS_CRASH_STATES=N   crash states the crash harness checks (default: CI tier). The asan and
#                           tsan presets set their own smaller tier on the crash tests (CTest
#                           ENVIRONMENT, see SANITIZER_ENV in tests/*/CMakeLists.txt), which
#                           takes precedence there.
#   PERMFS_SANITIZERS=1     also build and test the asan and tsan presets (after the preset
#                           above; a sanitizer preset already run as PERMFS_PRESET is not rerun)
#   PERMFS_SANITIZER_CTEST_ARGS  extra ctest arguments for the sanitizer presets (unset:
#                           -LE qemu: the qemu tests boot a freestanding kernel that is built
#                           without sanitizers, so they would only repeat the first preset's run)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
JOBS=${JOBS:-$(nproc)}
run_preset() {
  local preset=$1
  shift
  echo "=== preset $preset: configure and build"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$JOBS"
  echo "=== preset $preset: test"
  ctest --preset "$preset" -j "$JOBS" --timeout 1800 "$@"
}
main_preset=${PERMFS_PRESET:-default}
run_preset "$main_preset"
if [ "${PERMFS_SANITIZERS:-0}" = 1 ]; then
  read -r -a sanitizer_args <<< "${PERMFS_SANITIZER_CTEST_ARGS--LE qemu}"
  for preset in asan tsan; do
    [ "$preset" = "$main_preset" ] && continue
    run_preset "$preset" "${sanitizer_args[@]}"
  done
fi
