#!/usr/bin/env bash
# Bounded fuzzing of validation and rendering (`make fuzz`).
#
# Needs cargo-fuzz and a nightly toolchain, and installs them when missing
# (rustup and cargo install; FUZZ_INSTALL=0 skips that). Each target in
# fuzz/ runs for FUZZ_SECONDS (default 60) under libFuzzer, starting from the
# invalid-profile fixtures and the samples, and the executions and any crash
# are printed. If they cannot be installed: the same properties (tests/support/fuzzing.rs) run under
# proptest for PROPTEST_CASES cases (default 20000), in release mode.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
targets=(validate_yaml render_profile)

if ! cargo +nightly fuzz --version >/dev/null 2>&1 && [[ "${FUZZ_INSTALL:-1}" != 0 ]]; then
  echo "fuzz: installing a nightly toolchain and cargo-fuzz (FUZZ_INSTALL=0 skips this)"
  if command -v rustup >/dev/null 2>&1; then
    rustup toolchain install nightly --profile minimal || true
  fi
  cargo install cargo-fuzz --locked || true
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  cases="${PROPTEST_CASES:-20000}"
  echo "fuzz: cargo-fuzz or nightly not available (cargo install cargo-fuzz; rustup toolchain install nightly);"
  echo "fuzz: running the same properties with proptest, $cases cases each"
  PROPTEST_CASES="$cases" cargo test --release --test properties -- --nocapture
  exit 0
fi

status=0
for target in "${targets[@]}"; do
  corpus="fuzz/corpus/$target"
  mkdir -p "$corpus"
  if [[ "$target" == validate_yaml ]]; then
    cp -n tests/fixtures/invalid/*.yaml config/samples/*.yaml "$corpus"/ 2>/dev/null || true
  fi
  log="fuzz/artifacts/$target.log"
  mkdir -p "fuzz/artifacts/$target"
  echo "fuzz: $target for ${seconds}s"
  if (cd fuzz && cargo +nightly fuzz run "$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=4096) >"$log" 2>&1; then
    result="no crash"
  else
    result="CRASH (see $log and fuzz/artifacts/$target/)"
    status=1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  coverage=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  echo "fuzz: $target: ${runs:-?} executions in ${seconds}s, coverage ${coverage:-?} edges, corpus $(ls "$corpus" | wc -l) inputs: $result"
done
exit "$status"
