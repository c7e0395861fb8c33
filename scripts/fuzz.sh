#!/usr/bin/env bash
# Runs the fuzz targets of fuzz/ one after the other, each for a fixed time, at the lowest CPU
# priority, one job each, and prints libFuzzer's final figures for each.
#   scripts/fuzz.sh                 every target, 600 s each
#   scripts/fuzz.sh bgp_decode ...  the named targets
#   FUZZ_SECONDS=60 scripts/fuzz.sh a shorter run
# Needs the nightly toolchain (`rustup toolchain install nightly`); installs the pinned
# cargo-fuzz (scripts/pins/cargo-fuzz.txt) into $FERROLB_TOOLS_DIR/bin. New inputs go to
# fuzz/corpus/<target> and libFuzzer's output to fuzz/logs/<target>.log (neither committed);
# crashes to fuzz/artifacts/<target>: minimise them (`cargo +nightly fuzz tmin`), add them to
# fuzz/seeds/<target>/ and fix the code — `cargo test` replays the seeds on stable.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_DIR=${FERROLB_TOOLS_DIR:-/opt/ferrolb-tools}
SECONDS_EACH=${FUZZ_SECONDS:-600}
version=$(grep -v '^#' scripts/pins/cargo-fuzz.txt | head -n1)

log() { printf '[fuzz] %s\n' "$*" >&2; }

if ! "$TOOLS_DIR/bin/cargo-fuzz" --version 2>/dev/null | grep -qx "cargo-fuzz $version"; then
  log "installing cargo-fuzz $version into $TOOLS_DIR"
  cargo install --locked --version "$version" cargo-fuzz --root "$TOOLS_DIR"
fi
export PATH=$TOOLS_DIR/bin:$PATH

cd fuzz
if [[ $# -gt 0 ]]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log "$t: building"
  nice -n 19 cargo +nightly fuzz build "$t"
  log "$t: fuzzing for ${SECONDS_EACH}s (log: fuzz/logs/$t.log)"
  # With -jobs libFuzzer runs the job in a child process that writes fuzz-<job>.log.
  rm -f fuzz-0.log
  status=0
  nice -n 19 cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
    -jobs=1 -workers=1 -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
    >"logs/$t.log" 2>&1 || status=$?
  if [[ -f fuzz-0.log ]]; then
    cat fuzz-0.log >>"logs/$t.log"
    rm -f fuzz-0.log
  fi
  grep -E '^#[0-9]+ +(DONE|pulse)|^stat::|^Done [0-9]+ runs|SUMMARY|panicked' "logs/$t.log" | tail -n 12 || true
  log "$t: exit $status; corpus $(find "corpus/$t" -type f | wc -l) files;" \
    "crashes: $(find "artifacts/$t" -type f 2>/dev/null | wc -l)"
done
