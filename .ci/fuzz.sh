#!/usr/bin/env bash
# Coverage-guided fuzzing of the gateway's parsers, bounded: builds the
# cargo-fuzz targets in fuzz/ on stable Rust (no sanitizer, so no nightly)
# and runs each for FUZZ_SECONDS (20 by default), from the committed corpus.
# Any crash, invariant panic, leak of time (-timeout) or of memory
# (-rss_limit_mb) fails the script; the input that did it is written to
# fuzz/artifacts/TARGET/ (gitignored). See docs/fuzzing.md.
#
#   bash .ci/fuzz.sh                 every target, FUZZ_SECONDS each
#   bash .ci/fuzz.sh topics seed_query   only those
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${FUZZ_SECONDS:-20}"
# Inputs are requests and MQTT messages: 4 KiB holds every shape.
max_len="${FUZZ_MAX_LEN:-4096}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version "^0.13"
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi

started=$SECONDS
# `cargo fuzz build` takes one target, or none for all of them.
if [ $# -eq 0 ]; then
  cargo fuzz build --fuzz-dir fuzz --sanitizer none
else
  for t in "${targets[@]}"; do cargo fuzz build --fuzz-dir fuzz --sanitizer none "$t"; done
fi
echo "fuzz: built in $((SECONDS - started))s"

# New inputs found here go to a scratch corpus, so a run never dirties the
# committed one; it is read as the second, read-only corpus directory.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t" "fuzz/artifacts/$t"
  echo "fuzz: $t for ${seconds}s"
  if ! cargo fuzz run --fuzz-dir fuzz --sanitizer none "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$t/" 2>"$scratch/$t.log"; then
    failed+=("$t")
    grep -m 1 -A 1 'panicked at' "$scratch/$t.log" || true
    tail -n 20 "$scratch/$t.log"
  fi
  grep -E '^stat::number_of_executed_units|^Done' "$scratch/$t.log" | tr '\n' ' '
  echo
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets clean for ${seconds}s each, $((SECONDS - started))s in all"
