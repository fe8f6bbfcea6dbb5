#!/bin/bash
# Every start-up failure a new user meets ends in one error line that names the cause
# and the fix, exit status 1, and nothing left running: an af_packet interface that
# does not exist, more lcores than the host has, more hugepage memory than is free,
# no PCI device at the address, a PCI device bound to a kernel driver, a tap name
# already taken, the HTTP port taken. (The EAL file prefix in use: test_eal_override.)
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

it_init ise 9248
base=$SLUICE_ROOT/conf/xconnect-af_packet.json
[[ -f $base ]] || fail "no $base"

# Runs Sluice on `base` changed by a jq filter; asserts exit 1, the error line, and that
# no Sluice of this test's prefix is left.
expect_refusal() { # what jq-filter regex [eal args...]
  local what=$1 filter=$2 regex=$3 cfg=$IT_TMP/cfg.json
  shift 3
  jq ".eal.file_prefix = \"$IT_FP\" | .control.http.port = $IT_PORT | $filter" "$base" >"$cfg"
  local cmd=("$SLUICE_BIN" --config "$cfg")
  (($# > 0)) && cmd+=(-- "$@")
  assert_exit 1 "$what" -- "${cmd[@]}"
  local line
  line=$(grep -E " (error|critical) " "$IT_TMP/out" "$IT_TMP/err" | grep -v " dpdk: " | tail -1 || true)
  [[ $line =~ $regex ]] || fail "$what: the last error line does not match /$regex/:
$line
--- output:
$(tail -n 15 "$IT_TMP/out" "$IT_TMP/err")"
  ! grep -q "EAL initialisation failed: Success" "$IT_TMP/out" "$IT_TMP/err" || fail "$what: 'Success' as the cause"
  ! pgrep -f -- "--file-prefix $IT_FP( |$)" >/dev/null || fail "$what: a Sluice is still running"
  it_log "ok: $what: ${line#* error }"
}

eal=()
[[ -n ${SLUICE_EAL_HUGE:-} ]] && eal+=("$SLUICE_EAL_HUGE")

expect_refusal "an af_packet interface that does not exist" \
  '.ports[0].devargs = "iface=ise-nosuch" | .ports[1].devargs = "iface=lo"' \
  "port west: device 'net_af_packet0' was not probed by DPDK: interface 'ise-nosuch' \(devargs iface=\) does not exist: create it" \
  "${eal[@]}"

cpus=$(nproc)
expect_refusal "lcores the host does not have" ".eal.lcores = \"0-$((cpus + 3))\"" \
  "EAL lcores 0-$((cpus + 3)): CPU\(s\) $cpus-$((cpus + 3)) are not usable here: this host lets Sluice run on .* set eal.lcores within those" \
  "${eal[@]}"

if [[ -z ${SLUICE_EAL_HUGE:-} ]]; then
  expect_refusal "more hugepage memory than is free" '.eal.memory_mb = 1000000' \
    "eal.memory_mb 1000000 asks for more hugepage memory than is free: .* lower eal.memory_mb, or reserve more: drivers-config/hugepages.sh reserve [0-9]+ --at-least"
else
  fail "the hugepage case needs hugepages (this run has $SLUICE_EAL_HUGE)"
fi

# A PCI address no device has (domain ffff does not exist).
expect_refusal "no PCI device at the address" \
  '.ports[0].device = "ffff:00:1f.7" | del(.ports[0].devargs) | .ports[1].devargs = "iface=lo"' \
  "port west: device 'ffff:00:1f.7' was not probed by DPDK: there is no PCI device ffff:00:1f.7 on this host" \
  "${eal[@]}"

# A PCI device a kernel driver holds (this host's disk or balloon, say; never a network
# device, whose PMD might try it): DPDK only looks at it, never takes it from its driver.
kernel_dev=""
for d in /sys/bus/pci/devices/*; do
  [[ $(cat "$d/class" 2>/dev/null) == 0x02* ]] && continue
  drv=$(basename "$(readlink "$d/driver" 2>/dev/null)" 2>/dev/null || true)
  [[ -n $drv && $drv != vfio-pci && $drv != uio_pci_generic && $drv != igb_uio ]] && { kernel_dev=$(basename "$d"); break; }
done
[[ -n $kernel_dev ]] || fail "no PCI device bound to a kernel driver on this host to try"
expect_refusal "a PCI device bound to a kernel driver ($kernel_dev, $drv)" \
  ".ports[0].device = \"$kernel_dev\" | del(.ports[0].devargs) | .ports[1].devargs = \"iface=lo\"" \
  "PCI device $kernel_dev is bound to the kernel driver '$drv', which DPDK cannot use: bind it to vfio-pci: drivers-config/bind-nic.sh bind $kernel_dev" \
  "${eal[@]}"

# A tap name another interface has.
ip link add "${IT_NS}busy" type bridge
it_on_exit "ip link del ${IT_NS}busy 2>/dev/null || true"
expect_refusal "a tap name already taken" \
  ".ports[0].device = \"net_tap0\" | .ports[0].devargs = \"iface=${IT_NS}busy\" | .ports[1].device = \"net_tap1\" | .ports[1].devargs = \"iface=${IT_NS}t1\"" \
  "interface '${IT_NS}busy' already exists .*so net_tap cannot create it: delete it or choose another iface=" \
  "${eal[@]}"

# The HTTP port taken by another program.
"$SLUICE_PY" -c "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1', $IT_PORT)); s.listen(); time.sleep(60)" &
holder=$!
it_on_exit "kill $holder 2>/dev/null || true"
deadline=$((SECONDS + 10))
until ss -Hltn "sport = :$IT_PORT" | grep -q .; do
  ((SECONDS < deadline)) || fail "the port holder did not listen on $IT_PORT"
  sleep 0.1
done
expect_refusal "the HTTP port taken" '.ports[0].devargs = "iface=lo" | .ports[1].devargs = "iface=lo"' \
  "control.http: cannot listen on 127.0.0.1:$IT_PORT" "${eal[@]}"
kill "$holder" 2>/dev/null || true
