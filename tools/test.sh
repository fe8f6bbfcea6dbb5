#!/bin/bash
# Builds Sluice and runs every test: the GoogleTest unit tests (each case counts),
# the fuzz smoke run (tests/fuzz/run.sh, one test), the benchmark harness's self-test
# (tools/bench --self-test, one test: its rules for valid rows and verdicts) and every
# tests/integration/test_*.sh (each under a timeout, log in build/test-logs/NAME.log).
#
#   tools/test.sh              everything
#   tools/test.sh FILTER...    only the tests whose name contains a FILTER (names: unit,
#                              unit-hostcheck, fuzz, bench-selftest, integration/NAME for tests/integration/test_NAME.sh:
#                              "xconnect" runs both cross-connect tests, "integration" all
#                              integration tests; the sanitizer build's tests, asan/unit
#                              and asan/NAME, only when a FILTER says "asan": "asan" runs
#                              them all)
#
# Needs root (DPDK, hugepages, network namespaces). The last line of output is
# "N passed, N failed"; the exit status is non-zero when anything failed. A test that
# cannot run (missing tool, missing file) is a failure, never a silent skip. After a
# failed build, a test whose executable did not build fails unrun ("stale"): nothing left
# by an earlier build counts. A disabled unit case (DISABLED_) fails unless
# tests/unit/disabled.txt lists it with a reason.
#
#   TEST_TIMEOUT   seconds per integration test (default 300; a test's own
#                  "# test-timeout: SECONDS" line in its first 10 lines, if larger, wins)
#   FUZZ_TIMEOUT   seconds for the fuzz run, build included (default 1500)
#   UNIT_TIMEOUT   seconds for the unit-test executable (default 600)
#   ASAN_TESTS     the integration tests run from the sanitizer build too (default
#                  "router_af_packet firewall_af_packet")
#   SLUICE_ASAN    1: a run without FILTER also runs the sanitizer build's tests (asan/...;
#                  a FILTER with "asan" selects them too); off by default for now
set -uo pipefail

source "$(dirname "$0")/lib/common.sh"
source "$(dirname "$0")/lib/sanitize.sh"

TEST_TIMEOUT=${TEST_TIMEOUT:-300}
FUZZ_TIMEOUT=${FUZZ_TIMEOUT:-1500}
UNIT_TIMEOUT=${UNIT_TIMEOUT:-600}
FILTERS=("$@")
LOG_DIR=$SLUICE_BUILD/test-logs
PASSED=0
FAILED=0
FAILED_NAMES=()

selected() { # name
  ((${#FILTERS[@]} == 0)) && return 0
  local f
  for f in "${FILTERS[@]}"; do [[ $1 == *"$f"* ]] && return 0; done
  return 1
}

pass() {
  PASSED=$((PASSED + 1))
  printf 'PASS %s\n' "$1"
}

failed() { # name [detail]
  FAILED=$((FAILED + 1))
  FAILED_NAMES+=("$1")
  printf '\033[31mFAIL\033[0m %s%s\n' "$1" "${2:+ ($2)}"
}

# Prints the tail of a log, indented, after a failure.
show_tail() { # log [lines]
  [[ -f $1 ]] || return 0
  # The test's own verdicts first: the tail is often the Sluice log it dumps.
  if grep -q -m1 -E '^(FAIL|not ok)' "$1"; then
    printf '    --- failures reported in %s ---\n' "$1"
    grep -E '^(FAIL|not ok)' "$1" | head -n 12 | sed 's/^/    ! /'
  fi
  printf '    --- last %s lines of %s ---\n' "${2:-25}" "$1"
  tail -n "${2:-25}" "$1" | sed 's/^/    | /'
}

summary_and_exit() {
  echo
  if ((FAILED > 0)); then
    echo "failed: ${FAILED_NAMES[*]}"
    echo "logs: $LOG_DIR"
  fi
  echo "$PASSED passed, $FAILED failed"
  exit $((FAILED > 0 ? 1 : 0))
}

# ---------------------------------------------------------------- preparation

require_root
ensure_packages jq procps
ensure_hugepages
mkdir -p "$SLUICE_BUILD"

# The unit tests are built with the binary (meson option tests, on by default); an
# existing build directory configured without them is switched on.
if [[ -f $SLUICE_BUILD/build.ninja ]] &&
  [[ $(meson introspect --buildoptions "$SLUICE_BUILD" 2>/dev/null | jq -r '.[] | select(.name == "tests") | .value') == false ]]; then
  log "meson configure $SLUICE_BUILD -Dtests=true"
  meson configure "$SLUICE_BUILD" -Dtests=true >/dev/null || warn "cannot switch on the unit tests in $SLUICE_BUILD"
fi

mkdir -p "$LOG_DIR"
# After a failed build, an executable left by an earlier build is stale: it was built from
# other sources, so its results would be about code that is not there. Each executable a
# test runs is built on its own then; ninja exits 0 for a target only once it is up to
# date with the sources, so those that still build are fresh and their tests run, and the
# tests of any other fail unrun ("stale"). Never an mtime guess: an up-to-date target is
# not relinked and is older than this run.
BUILD_OK=1
STALE_TARGETS=()
build_start=$SECONDS
if (build_sluice); then
  log "build ok: $SLUICE_BIN ($((SECONDS - build_start))s)"
else
  BUILD_OK=0
  failed build "$((SECONDS - build_start))s, see $SLUICE_BUILD/ninja.log"
  show_tail "$SLUICE_BUILD/ninja.log" 40
  for target in app/sluice app/sluicectl app/sluice-hostcheck/sluice-hostcheck \
    tests/unit/sluice-unit-tests tests/unit/sluice-hostcheck-tests; do
    if ninja -C "$SLUICE_BUILD" "$target" >>"$SLUICE_BUILD/ninja.log" 2>&1; then
      log "still builds: $target"
    else
      STALE_TARGETS+=("$target")
      log "does not build (stale if present): $target"
    fi
  done
fi

# Whether TARGET (a path under the build directory) failed to build in this run.
stale_target() { # target
  local t
  for t in "${STALE_TARGETS[@]}"; do [[ $t == "$1" ]] && return 0; done
  return 1
}

# Why integration test SCRIPT cannot run honestly after a failed build (empty: it can).
# Every test starts app/sluice (lib.sh); some also run sluicectl or sluice-hostcheck, and
# test_package installs the whole build.
integration_stale_reason() { # script
  ((BUILD_OK)) && return 0
  if stale_target app/sluice; then
    echo "stale: app/sluice did not build in this run"
  elif [[ $(basename "$1") == test_package.sh ]]; then
    echo "stale: it installs the whole build, which failed"
  elif stale_target app/sluicectl && grep -q SLUICECTL_BIN "$1"; then
    echo "stale: app/sluicectl did not build in this run"
  elif stale_target app/sluice-hostcheck/sluice-hostcheck && grep -q SLUICE_HOSTCHECK_BIN "$1"; then
    echo "stale: sluice-hostcheck did not build in this run"
  fi
}

# ---------------------------------------------------------------- unit tests

# One GoogleTest executable under tests/unit/, each case counted: sluice-unit-tests (label
# "unit"), or another such as sluice-hostcheck-tests (no EAL, its own process).
# "PASS label" only when no case failed and the executable exited 0. A disabled case
# (DISABLED_ prefix, reported by GoogleTest as not run) fails unless UNIT_DISABLED_LIST
# names it with a reason.
UNIT_DISABLED_LIST=$SLUICE_ROOT/tests/unit/disabled.txt

# The reason tests/unit/disabled.txt gives for disabling case NAME ("Suite.Name  reason"
# lines, '#' comments); empty when it is not listed or has no reason.
unit_disabled_reason() { # Suite.Name
  [[ -f $UNIT_DISABLED_LIST ]] || return 0
  awk -v name="$1" '!/^[[:space:]]*(#|$)/ && $1 == name { $1 = ""; sub(/^[[:space:]]+/, ""); print; exit }' \
    "$UNIT_DISABLED_LIST"
}

run_unit() { # [executable label]
  local label=${2:-unit}
  local exe=$SLUICE_BUILD/tests/unit/${1:-sluice-unit-tests} json=$LOG_DIR/$label.json log=$LOG_DIR/$label.log rc=0
  log "unit tests: $exe"
  if stale_target "tests/unit/${1:-sluice-unit-tests}"; then
    failed "$label" "stale: $exe did not build in this run, its cases are not run or counted"
    return
  fi
  if [[ ! -x $exe ]]; then
    failed "$label" "no unit-test executable at $exe"
    return
  fi
  rm -f "$json"
  # A GTEST_* variable from the caller's environment could filter or repeat cases.
  timeout -k 10 "$UNIT_TIMEOUT" env -u GTEST_FILTER -u GTEST_ALSO_RUN_DISABLED_TESTS -u GTEST_REPEAT \
    "$exe" --gtest_output="json:$json" --gtest_color=no >"$log" 2>&1 || rc=$?
  if [[ ! -s $json ]] || ! jq -e . "$json" >/dev/null 2>&1; then
    failed "$label" "exit status $rc and no JSON report$( ((rc == 124)) && echo ": timed out after ${UNIT_TIMEOUT}s")"
    show_tail "$log" 40
    return
  fi
  local cases unit_pass=0 unit_fail=0 unit_disabled=0 name status reason
  # One line per case: "pass NAME", "fail NAME", "skip NAME" (a skip counts as a failure),
  # "disabled NAME" (GoogleTest lists a DISABLED_ case as NOTRUN/SUPPRESSED).
  cases=$(jq -r '.testsuites[] as $s | $s.testsuite[] |
    (if (.failures // []) | length > 0 then "fail"
     elif .result == "SKIPPED" then "skip"
     elif .status == "NOTRUN" or .result == "SUPPRESSED" then "disabled"
     else "pass" end) + " " + $s.name + "." + .name' "$json")
  while read -r status name; do
    [[ -n $status ]] || continue
    case $status in
      pass) unit_pass=$((unit_pass + 1)); PASSED=$((PASSED + 1)) ;;
      disabled)
        unit_disabled=$((unit_disabled + 1))
        reason=$(unit_disabled_reason "$name")
        if [[ -n $reason ]]; then
          printf 'disabled %s %s: %s (tests/unit/disabled.txt)\n' "$label" "$name" "$reason"
        else
          unit_fail=$((unit_fail + 1))
          failed "$label $name" "disabled, and not in tests/unit/disabled.txt with a reason"
        fi
        ;;
      skip) unit_fail=$((unit_fail + 1)); failed "$label $name" "skipped: a test that cannot run is a failure" ;;
      *) unit_fail=$((unit_fail + 1)); failed "$label $name" "see $log" ;;
    esac
  done <<<"$cases"
  if ((unit_fail > 0)); then
    grep -E '^\[  FAILED  \]|Failure|error:' "$log" | head -40 | sed 's/^/    | /'
  fi
  if ((unit_pass == 0 && unit_fail == 0)); then
    failed "$label" "no case ran (see $log)"
  elif ((rc != 0 && unit_fail == 0)); then
    failed "$label" "exit status $rc though no case failed"
    show_tail "$log" 30
  elif ((unit_fail == 0)); then
    printf 'PASS %s: %d case(s) passed, %d disabled (listed in tests/unit/disabled.txt)\n' \
      "$label" "$unit_pass" "$unit_disabled"
  else
    printf '\033[31mFAIL\033[0m %s: %d case(s) failed, %d passed\n' "$label" "$unit_fail" "$unit_pass"
  fi
}

# ---------------------------------------------------------------- fuzz

run_fuzz() {
  local script=$SLUICE_ROOT/tests/fuzz/run.sh log=$LOG_DIR/fuzz.log rc=0
  log "fuzz: $script"
  if [[ ! -f $script ]]; then
    failed fuzz "tests/fuzz/run.sh is missing"
    return
  fi
  if ! command -v clang++ >/dev/null 2>&1 || ! command -v clang >/dev/null 2>&1; then
    failed fuzz "clang/clang++ is not installed (package clang)"
    return
  fi
  timeout -k 10 "$FUZZ_TIMEOUT" bash "$script" >"$log" 2>&1 || rc=$?
  grep -E '^fuzz ' "$log" | sed 's/^/    /'
  if ((rc == 0)); then
    pass fuzz
  else
    failed fuzz "exit status $rc$( ((rc == 124)) && echo ": timed out after ${FUZZ_TIMEOUT}s"), see $log"
    show_tail "$log" 30
  fi
}

# ---------------------------------------------------------------- bench self-test

# The benchmark's own rules (forwarded-based rates, invalid rows, per-round verdicts,
# cycles above testpmd io), without DPDK: a second or less.
run_bench_selftest() {
  local log=$LOG_DIR/bench-selftest.log rc=0
  log "bench self-test: tools/bench --self-test"
  timeout -k 10 120 "$SLUICE_ROOT/tools/bench" --self-test >"$log" 2>&1 || rc=$?
  if ((rc == 0)) && grep -q '^bench self-test: [1-9][0-9]* passed, 0 failed, 0 skipped$' "$log"; then
    pass "bench-selftest ($(grep -o '[0-9]* passed' "$log"))"
  else
    failed bench-selftest "exit status $rc, see $log"
    show_tail "$log" 30
  fi
}

# ---------------------------------------------------------------- integration

run_integration() { # script
  local script=$1 name log rc=0 start
  name=$(basename "$script" .sh)
  name=${name#test_}
  log=$LOG_DIR/$name.log
  start=$SECONDS
  local stale
  stale=$(integration_stale_reason "$script")
  if [[ -n $stale ]]; then
    failed "$name" "not run, $stale"
    return
  fi
  # A test that needs longer says so in a "# test-timeout: SECONDS" line (the larger wins).
  local limit=$TEST_TIMEOUT own
  own=$(sed -nE '1,10s/^# test-timeout: ([0-9]+)$/\1/p' "$script" | head -1)
  [[ -n $own ]] && ((own > limit)) && limit=$own
  log "integration: $name"
  timeout -k 15 "$limit" bash "$script" >"$log" 2>&1 </dev/null || rc=$?
  if ((rc == 0)); then
    pass "$name ($((SECONDS - start))s)"
  else
    local why="see $log"
    ((rc == 124)) && why="timed out after ${limit}s, see $log"
    failed "$name" "$why"
    show_tail "$log" 25
  fi
}

# ---------------------------------------------------------------- sanitizers

# The AddressSanitizer + UBSan build (tools/lib/sanitize.sh, build-asan): its unit tests
# (asan/unit, each case counted) and ASAN_TESTS' integration tests (asan/NAME) with
# SLUICE_BUILD pointing at it. A sanitizer report fails the test even when the test
# itself passed. Selected by a FILTER that says "asan", or by no FILTER with SLUICE_ASAN=1:
# not yet part of a plain run, whose CI budget its ~14-minute build (2 cores, no ccache)
# does not fit until it reuses the fuzz build's objects (docs/reliability.md, Sanitizers).
asan_selected() { # name
  ((${#FILTERS[@]} == 0)) && [[ ${SLUICE_ASAN:-0} == 1 ]] && return 0
  local f
  for f in "${FILTERS[@]}"; do [[ $f == *asan* && $1 == *"$f"* ]] && return 0; done
  return 1
}

run_asan_unit() {
  local reports=$SLUICE_ASAN_BUILD/test-logs/unit.reports start=$SECONDS failed_before=$FAILED
  rm -rf "$reports"
  mkdir -p "$SLUICE_ASAN_BUILD/test-logs/asan"
  asan_env "$reports"
  SLUICE_BUILD=$SLUICE_ASAN_BUILD LOG_DIR=$SLUICE_ASAN_BUILD/test-logs run_unit sluice-unit-tests asan/unit
  asan_env_off
  if asan_findings "$reports" "$SLUICE_ASAN_BUILD/test-logs/asan/unit.log"; then
    failed asan/unit "sanitizer report, see $reports"
  fi
  log "asan/unit: $((SECONDS - start))s$( ((FAILED > failed_before)) && echo ", with failures")"
}

run_asan_integration() { # name
  local name=$1 script=$SLUICE_ROOT/tests/integration/test_$1.sh
  local logs=$SLUICE_ASAN_BUILD/test-logs/asan log reports rc=0 start=$SECONDS
  log=$logs/$name.log reports=$logs/$name.reports
  log "integration (sanitizer build): $name"
  [[ -f $script ]] || { failed "asan/$name" "no $script"; return; }
  rm -rf "$reports"
  mkdir -p "$logs"
  asan_env "$reports"
  SLUICE_BUILD=$SLUICE_ASAN_BUILD timeout -k 15 "$TEST_TIMEOUT" bash "$script" >"$log" 2>&1 </dev/null || rc=$?
  asan_env_off
  if asan_findings "$reports" "$log"; then
    failed "asan/$name" "sanitizer report (the test itself exited $rc), see $reports"
  elif ((rc == 0)); then
    pass "asan/$name ($((SECONDS - start))s)"
  else
    failed "asan/$name" "$( ((rc == 124)) && echo "timed out after ${TEST_TIMEOUT}s, ")see $log"
    show_tail "$log" 25
  fi
}

run_asan() {
  local names=() targets=() name start=$SECONDS
  asan_selected asan/unit && names+=(unit) targets+=("$SLUICE_ASAN_UNIT_TARGET")
  for name in ${ASAN_TESTS:-router_af_packet firewall_af_packet}; do
    asan_selected "asan/$name" && names+=("$name")
  done
  ((${#names[@]} > 0)) || return 0
  [[ ${names[*]} == unit ]] || targets+=("${SLUICE_ASAN_APP_TARGETS[@]}")
  log "sanitizer build: $SLUICE_ASAN_BUILD (${targets[*]})"
  mkdir -p "$SLUICE_ASAN_BUILD"
  if ! asan_build "${targets[@]}"; then
    failed asan/build "$((SECONDS - start))s, see $SLUICE_ASAN_BUILD/ninja.log"
    show_tail "$SLUICE_ASAN_BUILD/ninja.log" 40
    for name in "${names[@]}"; do failed "asan/$name" "not run: the sanitizer build failed"; done
    return
  fi
  log "sanitizer build ok: $((SECONDS - start))s"
  for name in "${names[@]}"; do
    if [[ $name == unit ]]; then run_asan_unit; else run_asan_integration "$name"; fi
  done
  log "sanitizer build and tests: $((SECONDS - start))s"
}

selected unit && run_unit
selected unit-hostcheck && run_unit sluice-hostcheck-tests unit-hostcheck
selected fuzz && run_fuzz
selected bench-selftest && run_bench_selftest

shopt -s nullglob
scripts=("$SLUICE_ROOT"/tests/integration/test_*.sh)
((${#scripts[@]} > 0)) || { selected integration && failed integration "no tests/integration/test_*.sh found"; }
for script in "${scripts[@]}"; do
  name=$(basename "$script" .sh)
  selected "integration/${name#test_}" || continue
  run_integration "$script"
done

run_asan

summary_and_exit
