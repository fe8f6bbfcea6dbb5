# The AddressSanitizer + UndefinedBehaviorSanitizer build of Sluice (build-asan) and the
# environment its binaries run in; tools/test.sh's asan/* tests use it. Source
# tools/lib/common.sh first.
#
#   SLUICE_ASAN_BUILD   the sanitizer build directory (default $SLUICE_ROOT/build-asan)
#
# The build: gcc, -O1 -g1 (line numbers in the reports, a third of -O2 -g's compile
# time), ASan + UBSan (meson's b_sanitize), only the appliance and sluicectl, and the
# unit tests when they run. Every finding is fatal: ASan's are by design, UBSan's through halt_on_error=1
# (rather than -fno-sanitize-recover, which would make tests/sanitize/ubsan.supp's
# suppressions impossible), LeakSanitizer's at every process's exit (detect_leaks=1).

SLUICE_ASAN_BUILD=${SLUICE_ASAN_BUILD:-$SLUICE_ROOT/build-asan}
SLUICE_ASAN_MESON_ARGS=(
  -Dbuildtype=plain "-Dcpp_args=['-O1','-g1','-fno-omit-frame-pointer']"
  -Db_sanitize=address,undefined -Db_lundef=false -Dtests=true
)
# What the integration tests need; the unit tests add tests/unit/sluice-unit-tests.
SLUICE_ASAN_APP_TARGETS=(app/sluice app/sluicectl)
SLUICE_ASAN_UNIT_TARGET=tests/unit/sluice-unit-tests
SLUICE_ASAN_SUPP=$SLUICE_ROOT/tests/sanitize

# Configures build-asan once and builds TARGETs; the log is build-asan/ninja.log.
asan_build() { # target...
  if [[ ! -f $SLUICE_ASAN_BUILD/build.ninja ]]; then
    log "meson setup $SLUICE_ASAN_BUILD ${SLUICE_ASAN_MESON_ARGS[*]}"
    meson setup "$SLUICE_ASAN_BUILD" "$SLUICE_ROOT" "${SLUICE_ASAN_MESON_ARGS[@]}" \
      >"$SLUICE_ROOT/meson-asan-setup.log" 2>&1 || { tail -20 "$SLUICE_ROOT/meson-asan-setup.log"; return 1; }
    rm -f "$SLUICE_ROOT/meson-asan-setup.log"
  fi
  ninja -C "$SLUICE_ASAN_BUILD" "$@" >"$SLUICE_ASAN_BUILD/ninja.log" 2>&1
}

# Exports the sanitizers' options for the processes started after it: every report goes
# to REPORT_DIR/report.PID rather than stderr (the integration tests keep Sluice's log in
# a temporary directory they remove), and every report is fatal. asan_env_off undoes it.
asan_env() { # report_dir
  mkdir -p "$1"
  local common="log_path=$1/report:print_summary=1:symbolize=1"
  export ASAN_OPTIONS="$common:detect_leaks=1:halt_on_error=1:abort_on_error=0"
  export LSAN_OPTIONS="$common:suppressions=$SLUICE_ASAN_SUPP/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="$common:halt_on_error=1:print_stacktrace=1:suppressions=$SLUICE_ASAN_SUPP/ubsan.supp"
}

asan_env_off() { unset ASAN_OPTIONS LSAN_OPTIONS UBSAN_OPTIONS; }

# Prints every sanitizer report in REPORT_DIR and every report line in the LOGs; returns
# 0 when there is one (a finding), 1 when there is none.
asan_findings() { # report_dir [log...]
  local dir=$1 found=1 f
  shift
  for f in "$dir"/report.*; do
    [[ -s $f ]] || continue
    found=0
    printf '    --- %s ---\n' "$f"
    head -n 60 "$f" | sed 's/^/    | /'
  done
  for f in "$@"; do
    [[ -f $f ]] || continue
    if grep -q -E 'runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer' "$f"; then
      found=0
      printf '    --- sanitizer lines in %s ---\n' "$f"
      grep -E 'runtime error:|ERROR: AddressSanitizer|ERROR: LeakSanitizer|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer' "$f" | head -n 20 | sed 's/^/    | /'
    fi
  done
  return $found
}
