#!/bin/bash
# The install and the Debian package (docs/operations.md, "Installing"):
#   1. `meson install --destdir` from the build: binaries, unit (its Exec lines naming
#      the installed paths), helpers, every example config, every doc, where the build's
#      prefix says; the same again configured for the package's paths (/usr, /etc).
#   2. the .deb, built from this build (debian/rules' SLUICE_PREBUILT_BUILD_DIR path, no
#      second compile): its file list, dependencies and maintainer scripts.
#   3. `dpkg -i`: nothing starts, the build's binaries are untouched; then the service runs
#      with an example config (net_tap ports) at /etc/sluice/sluice.json: with systemctl
#      where systemd is PID 1, else the installed binary exactly as the unit's
#      ExecStartPre=/ExecStart=/ExecReload= lines say. Traffic crosses it, a reload
#      (SIGHUP) applies, SIGTERM stops it cleanly.
# The package is purged on exit (it_on_exit), so later tests and reruns start clean.
# Installs for real: run it where a throwaway install is fine (CI, a test VM).
set -euo pipefail

source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

CONF=/etc/sluice/sluice.json
# Written before the package is installed, removed after it is purged: a run killed in
# between leaves it, and the next run then knows the package and the config are its own.
MARKER=/var/lib/sluice-test-package.installed
# A service a killed run left running (before it_init, which wants the HTTP port free).
if [[ -f $MARKER ]]; then
  for pid in $(pgrep -f "^/usr/bin/sluice --config $CONF\$" || true); do kill -KILL "$pid" || true; done
fi

it_init pkg 9247
ensure_packages # debhelper and the build dependencies: dpkg-buildpackage checks them
require_cmd meson ninja dpkg dpkg-deb dpkg-buildpackage dh python3
TEST_START=$SECONDS
# The build's install options while this test points them at the package's paths.
SAVED_OPTIONS=$SLUICE_BUILD/.test-package-saved-options

have_systemd() { [[ $(cat /proc/1/comm 2>/dev/null) == systemd ]]; }

build_option() { # name
  meson introspect --buildoptions "$SLUICE_BUILD" | jq -r --arg n "$1" '.[] | select(.name == $n) | .value'
}

# Names of the executables the build installs (meson's install: true), whatever app/ has.
installed_executables() {
  meson introspect --targets "$SLUICE_BUILD" |
    jq -r '.[] | select(.type == "executable" and .installed) | .install_filename[]' | xargs -r -n1 basename
}

restore_build_options() {
  [[ -f $SAVED_OPTIONS ]] || return 0
  local args
  read -r -a args <"$SAVED_OPTIONS"
  meson configure "$SLUICE_BUILD" "${args[@]}" >/dev/null && ninja -C "$SLUICE_BUILD" build.ninja >/dev/null &&
    rm -f "$SAVED_OPTIONS"
}

remove_package() {
  if [[ -n $SLUICE_PID ]] && kill -0 "$SLUICE_PID" 2>/dev/null; then
    kill -TERM "$SLUICE_PID"
    timeout 30 tail --pid="$SLUICE_PID" -f /dev/null || kill -KILL "$SLUICE_PID"
  fi
  if have_systemd; then
    systemctl stop sluice 2>/dev/null
    systemctl reset-failed sluice 2>/dev/null
  fi
  dpkg --purge sluice || true
  if [[ -f $MARKER ]]; then
    rm -f "$CONF"
    rmdir /etc/sluice 2>/dev/null || true
  fi
  if have_systemd; then systemctl daemon-reload || true; fi
  rm -f "$MARKER"
}

# ---------------------------------------------------------------- leftovers, preconditions

restore_build_options || fail "cannot restore $SLUICE_BUILD's install options from $SAVED_OPTIONS"
if [[ -f $MARKER ]]; then
  it_log "purging the sluice package and config a killed run of this test left"
  remove_package
fi
if dpkg-query -W -f='${Status}' sluice 2>/dev/null | grep -q "ok installed\|config-files"; then
  fail "the sluice package is installed, and not by this test: it installs and purges sluice, so remove it first (dpkg --purge sluice)"
fi
[[ ! -e $CONF ]] || fail "$CONF exists: this test writes its own there; move it away first"
for f in /usr/bin/sluice /usr/bin/sluice-hostcheck; do
  [[ ! -e $f ]] || fail "$f exists outside any package: installing the .deb would overwrite it"
done
it_on_exit restore_build_options
it_on_exit remove_package

DEV_SUMS=$(sha256sum "$SLUICE_BIN" "$SLUICE_HOSTCHECK_BIN")

# ---------------------------------------------------------------- 1. meson install

# Files a `meson install` of the build must have put under STAGE, for its configured
# prefix; sets UNIT to the installed unit (under STAGE).
check_install_tree() { # stage
  local stage=$1 prefix bindir sysconfdir libexecdir datadir unitdir f name
  prefix=$(build_option prefix)
  bindir=$prefix/$(build_option bindir)
  sysconfdir=$(build_option sysconfdir)
  [[ $sysconfdir == /* ]] || sysconfdir=$prefix/$sysconfdir
  libexecdir=$prefix/$(build_option libexecdir)
  datadir=$prefix/$(build_option datadir)
  unitdir=$(build_option systemd_unit_dir)
  if [[ -z $unitdir ]]; then
    unitdir=$(pkg-config --define-variable=root_prefix="$prefix" --variable=systemd_system_unit_dir systemd 2>/dev/null) ||
      unitdir=$prefix/lib/systemd/system
  fi
  it_log "checking the install under $stage: prefix $prefix, config $sysconfdir/sluice, unit in $unitdir"

  # sluice, sluice-hostcheck and every other executable the build installs (sluicectl).
  for name in sluice sluice-hostcheck $(installed_executables); do
    [[ -x $stage$bindir/$name && -f $stage$bindir/$name ]] || fail "$bindir/$name is not installed (or not executable) under $stage"
  done
  if [[ -f $SLUICE_ROOT/tools/completion/sluicectl.bash ]]; then
    [[ -f $stage$datadir/bash-completion/completions/sluicectl ]] ||
      fail "sluicectl's bash completion is not at $datadir/bash-completion/completions/sluicectl"
  fi
  for name in hugepages.sh bind-nic.sh; do
    [[ -x $stage$libexecdir/sluice/$name ]] || fail "$libexecdir/sluice/$name is not installed executable"
  done
  "$stage$libexecdir/sluice/hugepages.sh" --help >/dev/null || fail "the installed hugepages.sh --help fails"
  for f in "$SLUICE_ROOT"/conf/*.json; do
    cmp -s "$f" "$stage$datadir/sluice/examples/${f##*/}" || fail "example ${f##*/} is not installed at $datadir/sluice/examples/"
  done
  cmp -s "$SLUICE_ROOT/README.md" "$stage$datadir/doc/sluice/README.md" || fail "README.md is not installed at $datadir/doc/sluice/"
  for f in "$SLUICE_ROOT"/docs/*.md; do
    cmp -s "$f" "$stage$datadir/doc/sluice/docs/${f##*/}" || fail "doc ${f##*/} is not installed at $datadir/doc/sluice/docs/"
  done
  [[ -f $stage$datadir/doc/sluice/docs/monitoring/sluice-alerts.yml ]] || fail "docs/monitoring/ is not installed"
  assert_installed_links "$stage$datadir/doc/sluice"
  [[ -d $stage$sysconfdir/sluice ]] || fail "$sysconfdir/sluice (the config's directory) is not created"
  [[ ! -e $stage$sysconfdir/sluice/sluice.json ]] || fail "meson install must not install $sysconfdir/sluice/sluice.json (the admin's file)"

  UNIT=$stage$unitdir/sluice.service
  [[ -f $UNIT ]] || fail "the unit is not installed at $unitdir/sluice.service; under $stage: $(cd "$stage" && find . -name '*.service')"
  ! grep -n '@SLUICE' "$UNIT" || fail "$UNIT has unsubstituted @SLUICE_...@ placeholders"
  local want_start="$bindir/sluice --config $sysconfdir/sluice/sluice.json"
  assert_eq "$(sed -n 's/^ExecStart=//p' "$UNIT")" "$want_start" "ExecStart= of the unit for prefix $prefix"
  assert_contains "$(grep '^ExecStartPre=' "$UNIT")" "exec $want_start --check-config" "the unit's check-config ExecStartPre="
  assert_contains "$(grep '^ExecStartPre=' "$UNIT")" "+$libexecdir/sluice/hugepages.sh reserve \${SLUICE_HUGEPAGES} --at-least" \
    "the unit's hugepages ExecStartPre="
  assert_eq "$(sed -n 's/^ExecReload=//p' "$UNIT")" '/bin/kill -HUP $MAINPID' "ExecReload= (SIGHUP)"
  assert_eq "$(sed -n 's/^Restart=//p' "$UNIT")" on-failure "Restart="
  assert_eq "$(sed -n 's/^ConditionPathExists=//p' "$UNIT")" "$sysconfdir/sluice/sluice.json" "ConditionPathExists="
  assert_eq "$(sed -n 's/^Documentation=//p' "$UNIT")" "file:$datadir/doc/sluice/docs/operations.md" "Documentation="
  [[ -f $stage$datadir/doc/sluice/docs/operations.md ]] || fail "the unit's Documentation= file is not installed"
}

# Every relative link of the installed docs (README.md, docs/, drivers-config/) resolves in
# the installed tree, as it does in the repository; docs/dev/ (design notes, not installed)
# is the one place they may point outside it.
assert_installed_links() { # docdir
  local broken
  broken=$(python3 - "$1" <<'PY'
import os, re, sys
root = sys.argv[1]
for dirpath, _, names in os.walk(root):
    for name in names:
        if not name.endswith(".md"):
            continue
        path = os.path.join(dirpath, name)
        for target in re.findall(r"\]\(([^)#\s]+)", open(path, encoding="utf-8").read()):
            resolved = os.path.normpath(os.path.join(dirpath, target))
            if re.match(r"[a-z]+:", target) or resolved.startswith(os.path.join(root, "docs", "dev") + "/"):
                continue
            if not os.path.exists(resolved):
                print(f"{os.path.relpath(path, root)} -> {target}")
PY
  ) || fail "the installed docs' link check did not run"
  [[ -z $broken ]] || fail "installed docs link to files that are not installed:"$'\n'"$broken"
  it_log "ok: every relative link of the installed docs resolves"
}

it_log "1. meson install from $SLUICE_BUILD"
meson install -C "$SLUICE_BUILD" --no-rebuild --destdir "$IT_TMP/stage" >"$IT_TMP/meson-install.log" 2>&1 ||
  fail "meson install --destdir failed: $(tail -20 "$IT_TMP/meson-install.log")"
check_install_tree "$IT_TMP/stage"

# The package's paths, in the same build: the prefix reaches only the installed files.
it_log "configuring $SLUICE_BUILD for the package's paths (restored on exit)"
printf -- '--prefix=%s --sysconfdir=%s -Dsystemd_unit_dir=%s\n' "$(build_option prefix)" "$(build_option sysconfdir)" \
  "$(build_option systemd_unit_dir)" >"$SAVED_OPTIONS"
meson configure "$SLUICE_BUILD" --prefix=/usr --sysconfdir=/etc -Dsystemd_unit_dir=/lib/systemd/system >/dev/null ||
  fail "meson configure $SLUICE_BUILD --prefix=/usr failed"
ninja -C "$SLUICE_BUILD" build.ninja >/dev/null || fail "regenerating $SLUICE_BUILD for --prefix=/usr failed"
STALE=$(ninja -C "$SLUICE_BUILD" -n | grep -c '^\[' || true)
((STALE == 0)) || it_log "warning: $STALE build step(s) out of date in $SLUICE_BUILD: the package takes the binaries as they are"
meson install -C "$SLUICE_BUILD" --no-rebuild --destdir "$IT_TMP/stage-usr" >"$IT_TMP/meson-install-usr.log" 2>&1 ||
  fail "meson install --destdir (prefix /usr) failed: $(tail -20 "$IT_TMP/meson-install-usr.log")"
check_install_tree "$IT_TMP/stage-usr"
[[ -f $IT_TMP/stage-usr/lib/systemd/system/sluice.service ]] || fail "prefix /usr: the unit is not in /lib/systemd/system"

# ---------------------------------------------------------------- 2. the .deb

it_log "2. dpkg-buildpackage from the build in $SLUICE_BUILD"
DEB_START=$SECONDS
SRC=$IT_TMP/src/sluice
mkdir -p "$SRC"
# Only debian/ is read when the binaries come from the build (the build knows its sources).
cp -a "$SLUICE_ROOT/debian" "$SRC/"
(cd "$SRC" && SLUICE_PREBUILT_BUILD_DIR=$SLUICE_BUILD DEB_BUILD_OPTIONS=noddebs \
  timeout 600 dpkg-buildpackage -b -uc -us) >"$IT_TMP/dpkg-buildpackage.log" 2>&1 ||
  fail "dpkg-buildpackage failed: $(tail -40 "$IT_TMP/dpkg-buildpackage.log")"
restore_build_options || fail "cannot restore $SLUICE_BUILD's install options"
DEB=$IT_TMP/src/sluice_0.1.0-1_amd64.deb
[[ -f $DEB ]] || fail "no $DEB after dpkg-buildpackage: $(ls "$IT_TMP/src")"
it_log "ok: built $(basename "$DEB") in $((SECONDS - DEB_START)) s ($(du -k "$DEB" | cut -f1) KiB)"

CONTENTS=$(dpkg-deb -c "$DEB" | awk '{print $6}')
for f in ./usr/bin/sluice ./usr/bin/sluice-hostcheck ./lib/systemd/system/sluice.service \
  ./usr/libexec/sluice/hugepages.sh ./usr/libexec/sluice/bind-nic.sh \
  ./usr/share/sluice/examples/xconnect-tap.json ./usr/share/sluice/examples/router-af_packet.json \
  ./usr/share/doc/sluice/docs/operations.md ./usr/share/doc/sluice/README.md ./usr/share/doc/sluice/copyright \
  ./usr/share/doc/sluice/drivers-config/net_tap.md ./etc/default/sluice ./etc/sluice/; do
  grep -qxF "$f" <<<"$CONTENTS" || fail "the .deb does not contain $f; it has:
$CONTENTS"
done
for name in $(installed_executables); do
  grep -qxF "./usr/bin/$name" <<<"$CONTENTS" || fail "the .deb has no /usr/bin/$name, which the build installs"
done
if [[ -f $SLUICE_ROOT/tools/completion/sluicectl.bash ]]; then
  grep -qxF ./usr/share/bash-completion/completions/sluicectl <<<"$CONTENTS" || fail "the .deb has no sluicectl completion"
fi
! grep -qxF ./etc/sluice/sluice.json <<<"$CONTENTS" || fail "the .deb must not ship /etc/sluice/sluice.json (the admin writes it)"
! grep -q '^./usr/local' <<<"$CONTENTS" || fail "the .deb has files under /usr/local"
it_log "ok: dpkg-deb -c lists the binaries, unit, helpers, examples and docs ($(grep -vc '/$' <<<"$CONTENTS") files)"

assert_eq "$(dpkg-deb -f "$DEB" Version)" 0.1.0-1 "package version"
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
for d in librte-eal23 librte-ethdev23 librte-mempool-ring23 librte-net-af-packet23 librte-net-tap23; do
  assert_contains "$DEPENDS" "$d" "Depends"
done
dpkg-deb -e "$DEB" "$IT_TMP/control"
assert_contains "$(cat "$IT_TMP/control/conffiles")" /etc/default/sluice "conffiles"
# dh_installsystemd --no-start: enabled on install, never started or restarted by it.
assert_contains "$(cat "$IT_TMP/control/postinst")" "deb-systemd-helper" "postinst (enables the unit)"
! grep -nE 'deb-systemd-invoke .*(start|restart)' "$IT_TMP/control/postinst" ||
  fail "the postinst starts or restarts the service; an appliance must not start before it is configured"
assert_contains "$(cat "$IT_TMP/control/prerm")" "deb-systemd-invoke stop sluice.service" "prerm (stops the service on remove)"
[[ ! -f $IT_TMP/control/preinst ]] || ! grep -n 'deb-systemd-invoke' "$IT_TMP/control/preinst" ||
  fail "the preinst stops the service on upgrade; an upgrade must leave it forwarding"

# ---------------------------------------------------------------- 3. install, run, reload, stop

it_log "3. dpkg -i"
touch "$MARKER"
dpkg -i "$DEB" >"$IT_TMP/dpkg-i.log" 2>&1 || fail "dpkg -i failed: $(tail -20 "$IT_TMP/dpkg-i.log")"
assert_eq "$(dpkg-query -W -f='${Status}' sluice)" "install ok installed" "package status"
assert_eq "$(dpkg -S /usr/bin/sluice | cut -d: -f1)" sluice "owner of /usr/bin/sluice"
assert_eq "$(sha256sum "$SLUICE_BIN" "$SLUICE_HOSTCHECK_BIN")" "$DEV_SUMS" "the build's binaries after dpkg -i (sha256)"
! ldd /usr/bin/sluice | grep 'not found' || fail "the installed sluice misses shared libraries"
assert_contains "$(/usr/bin/sluice --version)" "sluice 0.1.0" "/usr/bin/sluice --version"
/usr/bin/sluice-hostcheck --help >/dev/null || fail "/usr/bin/sluice-hostcheck --help fails"
[[ -d /etc/sluice && -z $(ls -A /etc/sluice) ]] || fail "/etc/sluice should exist, empty, after install: $(ls -la /etc/sluice 2>&1)"
sleep 1
! pgrep -a -f '^/usr/bin/sluice( |$)' || fail "something runs /usr/bin/sluice right after dpkg -i; the package must start nothing"
if have_systemd; then
  assert_eq "$(systemctl is-active sluice || true)" inactive "systemctl is-active sluice after dpkg -i"
  assert_eq "$(systemctl is-enabled sluice || true)" enabled "systemctl is-enabled sluice after dpkg -i"
fi
UNIT=/lib/systemd/system/sluice.service
# systemd's own check of the installed unit (works without systemd running).
if command -v systemd-analyze >/dev/null; then
  VERIFY=$(timeout 60 systemd-analyze verify "$UNIT" 2>&1) || fail "systemd-analyze verify $UNIT: $VERIFY"
  ! grep -F sluice.service <<<"$VERIFY" || fail "systemd-analyze verify $UNIT complains"
  it_log "ok: systemd-analyze verify $UNIT"
fi

# An installed example with this test's taps, HTTP port and file prefix.
jq --arg fp "$IT_FP" --argjson port "$IT_PORT" --arg w "iface=${IT_NS}w0" --arg e "iface=${IT_NS}e0" \
  --argjson huge "$([[ -n ${SLUICE_EAL_HUGE:-} ]] && echo false || echo true)" '
  .eal.file_prefix = $fp | .eal.hugepages = $huge | .control.http.port = $port |
  .ports[0].devargs = $w | .ports[1].devargs = $e | .logging.level = "info"' \
  /usr/share/sluice/examples/xconnect-tap.json >"$CONF" || fail "cannot write $CONF from the installed example"
it_log "config: $(jq -c . "$CONF")"

wait_traffic() {
  topo_tap_attach "$IT_NS" 20 || fail "the tap ports ${IT_NS}w0/${IT_NS}e0 never appeared"
  wait_ping 10.99.0.2 20
  ping_ok 10.99.0.2 -c 20 -i 0.05
}

# Reload with a changed logging.level; LOGS prints the service's log so far.
reload_and_check() { # how-to-reload...
  jq '.logging.level = "debug"' "$CONF" >"$CONF.new" && mv "$CONF.new" "$CONF"
  "$@" || fail "reload command failed: $*"
  local deadline=$((SECONDS + 20))
  until logs | grep -q "reload of $CONF: applied"; do
    ((SECONDS < deadline)) || fail "no 'reload of $CONF: applied' in the log 20 s after the reload; log: $(logs | tail -20)"
    sleep 0.3
  done
  assert_eq "$(stats_get /config | jq -r .logging.level)" debug "logging.level in /config after the reload"
  it_log "ok: reload applied: $(logs | grep "reload of $CONF" | tail -1)"
}

if have_systemd; then
  it_log "systemd is PID 1: systemctl start sluice"
  SINCE=$(date '+%Y-%m-%d %H:%M:%S')
  logs() { journalctl -u sluice --since "$SINCE" -o cat --no-pager; }
  systemctl daemon-reload
  timeout 90 systemctl start sluice || fail "systemctl start sluice failed: $(systemctl status sluice --no-pager 2>&1 | tail -20)"
  assert_eq "$(systemctl is-active sluice)" active "systemctl is-active sluice"
  MAIN=$(systemctl show -p MainPID --value sluice)
  assert_eq "$(readlink "/proc/$MAIN/exe")" /usr/bin/sluice "the service's executable"
  wait_for_http "$IT_HTTP" "$MAIN" 40 || fail "the service does not answer http://$IT_HTTP/health: $(logs | tail -20)"
  wait_traffic
  reload_and_check timeout 30 systemctl reload sluice
  assert_eq "$(systemctl show -p MainPID --value sluice)" "$MAIN" "MainPID after the reload (no restart)"
  timeout 60 systemctl stop sluice || fail "systemctl stop sluice failed"
  assert_eq "$(systemctl show -p Result --value sluice)" success "the service's Result after stop"
  assert_eq "$(systemctl show -p ExecMainStatus --value sluice)" 0 "the service's exit status"
  # journald may write the last lines a moment after the stop returns.
  deadline=$((SECONDS + 10))
  until logs | grep -q "shutdown complete"; do
    ((SECONDS < deadline)) || fail "no 'shutdown complete' in the journal 10 s after the stop: $(logs | tail -20)"
    sleep 0.5
  done
  logs | grep -Eq "mempool [^ ]+: all [0-9]+ mbufs returned" || fail "no 'all N mbufs returned' in the journal"
  it_log "ok: stopped cleanly: $(logs | grep -Eo 'mempool [^ ]+: all [0-9]+ mbufs returned' | tail -1)"
  # Removing the package stops a running service (debian/sluice.prerm).
  timeout 90 systemctl start sluice || fail "systemctl start sluice (again) failed"
  wait_for_http "$IT_HTTP" "$(systemctl show -p MainPID --value sluice)" 40 || fail "the service did not come back"
  timeout 120 dpkg -r sluice >"$IT_TMP/dpkg-r.log" 2>&1 || fail "dpkg -r sluice failed: $(tail -20 "$IT_TMP/dpkg-r.log")"
  assert_eq "$(systemctl is-active sluice || true)" inactive "systemctl is-active sluice after dpkg -r"
  ! pgrep -a -f '^/usr/bin/sluice( |$)' || fail "sluice still runs after dpkg -r"
else
  it_log "PID 1 is $(cat /proc/1/comm), not systemd: running the unit's Exec lines from $UNIT"
  SLUICE_LOG=$IT_TMP/service.log
  logs() { cat "$SLUICE_LOG"; }
  # What systemd would give them: Environment=, then EnvironmentFile= (optional with "-").
  unit_env() {
    local line file
    while read -r line; do export "${line#Environment=}"; done < <(grep '^Environment=' "$UNIT")
    while read -r file; do
      file=${file#EnvironmentFile=}
      if [[ $file == -* ]]; then file=${file#-}; [[ -f $file ]] || continue; fi
      set -a; source "$file"; set +a
    done < <(grep '^EnvironmentFile=' "$UNIT")
  }
  unit_env
  mapfile -t PRE < <(sed -n 's/^ExecStartPre=//p' "$UNIT")
  START=$(sed -n 's/^ExecStart=//p' "$UNIT")
  RELOAD=$(sed -n 's/^ExecReload=//p' "$UNIT")
  ((${#PRE[@]} == 2)) || fail "expected 2 ExecStartPre= lines in $UNIT, found ${#PRE[@]}"
  for cmd in "${PRE[@]}"; do
    cmd=${cmd#[-+!@:]}  # systemd's prefixes: sandbox and failure handling, not the command
    it_log "ExecStartPre: $cmd"
    (eval "$cmd") >>"$IT_TMP/prestart.log" 2>&1 || fail "ExecStartPre failed: $cmd: $(tail -10 "$IT_TMP/prestart.log")"
  done
  it_log "ExecStart: $START"
  (eval "exec $START") >"$SLUICE_LOG" 2>&1 </dev/null &
  SLUICE_PID=$!
  wait_for_http "$IT_HTTP" "$SLUICE_PID" 40 || fail "the installed sluice does not answer http://$IT_HTTP/health"
  assert_eq "$(readlink "/proc/$SLUICE_PID/exe")" /usr/bin/sluice "the running executable"
  wait_traffic
  it_log "ExecReload: $RELOAD"
  reload_and_check env MAINPID="$SLUICE_PID" bash -c "$RELOAD"
  kill -0 "$SLUICE_PID" || fail "sluice died after the reload"
  assert_eq "$(sed -n 's/^KillSignal=//p' "$UNIT")" SIGTERM "the unit's KillSignal"
  stop_sluice TERM
fi

assert_eq "$(sha256sum "$SLUICE_BIN" "$SLUICE_HOSTCHECK_BIN")" "$DEV_SUMS" "the build's binaries at the end (sha256)"
it_log "PASS: install, package, service (package test took $((SECONDS - TEST_START)) s)"
