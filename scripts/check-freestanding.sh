#!/usr/bin/env bash
# Compiles every core-layer source (src/{util,block,format,alloc,journal,btree,store,fs,shell})
# the way a kernel build would: -ffreestanding -fno-exceptions -fno-rtti, and checks that each
# project file includes only the standard headers DEVELOPERS.md allows, compiler intrinsics,
# and other project headers. Exit status 0 = clean.
set -euo pipefail
CXX=${1:-c++}
cd "$(dirname "$0")/.."
CORE_DIRS="src/port src/util src/block src/format src/journal src/alloc src/btree src/volume src/store src/fs src/shell"
ALLOWED='^(cstdint|cstddef|new|type_traits|span|optional|variant|tuple|utility|concepts|compare|array|atomic|vector|string|nmmintrin\.h|smmintrin\.h|wmmintrin\.h|immintrin\.h|cpuid\.h|arm_acle\.h)$'
fail=0
files=$(find $CORE_DIRS -maxdepth 2 \( -name '*.h' -o -name '*.cc' \) 2>/dev/null | sort)
for f in $files; do
  while IFS= read -r inc; do
    if ! [[ "$inc" =~ $ALLOWED ]]; then
      echo "freestanding_check: $f includes <$inc>, which core layers may not use"
      fail=1
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*<\([^>]*\)>.*/\1/p' "$f")
done
count=0
for f in $(printf '%s\n' $files | grep '\.cc$'); do
  if ! "$CXX" -std=c++20 -ffreestanding -fno-exceptions -fno-rtti -fsyntax-only -Wall -Werror \
       -Isrc "$f"; then
    echo "freestanding_check: $f does not compile freestanding"
    fail=1
  fi
  count=$((count + 1))
done
# Every header must also stand alone (header-only code is otherwise never compiled here).
for f in $(printf '%s\n' $files | grep '\.h$'); do
  if ! printf '#include "%s"\n' "${f#src/}" | "$CXX" -std=c++20 -ffreestanding -fno-exceptions \
       -fno-rtti -fsyntax-only -Wall -Werror -Isrc -x c++ -; then
    echo "freestanding_check: $f does not compile freestanding on its own"
    fail=1
  fi
  count=$((count + 1))
done
if [ $fail -ne 0 ]; then
  echo "freestanding_check: FAILED"
  exit 1
fi
echo "freestanding_check: $count core sources and headers compile freestanding with allowed headers only"
