#!/bin/bash
# Builds Sluice and runs every test: the GoogleTest unit tests (each case counts),
# the fuzz smoke run (tests/fuzz/run.sh, one test) and every
# tests/integration/test_*.sh (each under a timeout, log in build/test-logs/NAME.log).
#
#   tools/test.sh              everything
#   tools/test.sh FILTER...    only the tests whose name contains a FILTER (names: unit,
#                              unit-hostcheck, fuzz, integration/NAME for tests/integration/test_NAME.sh:
#                              "xconnect" runs both cross-connect tests, "integration" all
#                              integration tests; the sanitizer build's tests, asan/unit
#                              and asan/NAME, only when a FILTER says "asan": "asan" runs
#                              them all)
#
# Needs root (DPDK, hugepages, network namespaces). The last line of output is
# "N passed, N failed"; the exit status is non-zero when anything failed. A test that
# cannot run (missing tool, missing file) is a failure, never a silent skip.
#
#   TEST_TIMEOUT   seconds per integration test (default 300)
#   FUZZ_TIMEOUT   seconds for the fuzz run, build included (default 1500)
#   UNIT_TIMEOUT   seconds for the unit-test executable (default 600)
#   ASAN_TESTS     the integration tests run from the sanitizer build too (default
#                  "router_af_packet firewall_af_packet")
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
build_start=$SECONDS
if (build_sluice); then
  log "build ok: $SLUICE_BIN ($((SECONDS - build_start))s)"
else
  failed build "$((SECONDS - build_start))s, see $SLUICE_BUILD/ninja.log"
  show_tail "$SLUICE_BUILD/ninja.log" 40
  # Whatever still builds (the appliance and sluicectl) keeps the integration tests meaningful.
  ninja -C "$SLUICE_BUILD" app/sluice app/sluicectl >>"$SLUICE_BUILD/ninja.log" 2>&1 || true
fi

# ---------------------------------------------------------------- unit tests

# One GoogleTest executable under tests/unit/, each case counted: sluice-unit-tests (label
# "unit"), or another such as sluice-hostcheck-tests (no EAL, its own process).
run_unit() { # [executable label]
  local label=${2:-unit}
  local exe=$SLUICE_BUILD/tests/unit/${1:-sluice-unit-tests} json=$LOG_DIR/$label.json log=$LOG_DIR/$label.log rc=0
  log "unit tests: $exe"
  if [[ ! -x $exe ]]; then
    failed "$label" "no unit-test executable at $exe"
    return
  fi
  rm -f "$json"
  timeout -k 10 "$UNIT_TIMEOUT" "$exe" --gtest_output="json:$json" --gtest_color=no >"$log" 2>&1 || rc=$?
  if [[ ! -s $json ]] || ! jq -e . "$json" >/dev/null 2>&1; then
    failed "$label" "exit status $rc and no JSON report$( ((rc == 124)) && echo ": timed out after ${UNIT_TIMEOUT}s")"
    show_tail "$log" 40
    return
  fi
  local cases unit_pass=0 unit_fail=0 name status
  # One line per case: "pass NAME", "fail NAME", "skip NAME" (a skip counts as a failure).
  cases=$(jq -r '.testsuites[] as $s | $s.testsuite[] |
    (if (.failures // []) | length > 0 then "fail"
     elif .result == "SKIPPED" then "skip"
     elif .status == "NOTRUN" or .result == "SUPPRESSED" then "disabled"
     else "pass" end) + " " + $s.name + "." + .name' "$json")
  while read -r status name; do
    [[ -n $status ]] || continue
    case $status in
      pass) unit_pass=$((unit_pass + 1)); PASSED=$((PASSED + 1)) ;;
      disabled) ;;
      skip) unit_fail=$((unit_fail + 1)); failed "$label $name" "skipped: a test that cannot run is a failure" ;;
      *) unit_fail=$((unit_fail + 1)); failed "$label $name" "see $log" ;;
    esac
  done <<<"$cases"
  if ((unit_fail > 0)); then
    grep -E '^\[  FAILED  \]|Failure|error:' "$log" | head -40 | sed 's/^/    | /'
  fi
  if ((rc != 0 && unit_fail == 0)); then
    failed "$label" "exit status $rc though no case failed"
    show_tail "$log" 30
  fi
  printf 'PASS %s: %d case(s) passed\n' "$label" "$unit_pass"
  ((unit_fail == 0)) || printf '%s: %d case(s) failed\n' "$label" "$unit_fail"
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

# ---------------------------------------------------------------- integration

run_integration() { # script
  local script=$1 name log rc=0 start
  name=$(basename "$script" .sh)
  name=${name#test_}
  log=$LOG_DIR/$name.log
  start=$SECONDS
  log "integration: $name"
  timeout -k 15 "$TEST_TIMEOUT" bash "$script" >"$log" 2>&1 </dev/null || rc=$?
  if ((rc == 0)); then
    pass "$name ($((SECONDS - start))s)"
  else
    local why="see $log"
    ((rc == 124)) && why="timed out after ${TEST_TIMEOUT}s, see $log"
    failed "$name" "$why"
    show_tail "$log" 25
  fi
}

# ---------------------------------------------------------------- sanitizers

# The AddressSanitizer + UBSan build (tools/lib/sanitize.sh, build-asan): its unit tests
# (asan/unit, each case counted) and ASAN_TESTS' integration tests (asan/NAME) with
# SLUICE_BUILD pointing at it. A sanitizer report fails the test even when the test
# itself passed. Selected by no FILTER, or by a FILTER that says "asan".
asan_selected() { # name
  ((${#FILTERS[@]} == 0)) && return 0
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
