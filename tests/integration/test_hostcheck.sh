#!/bin/bash
# sluice-hostcheck, the real binary: on prepared --root trees (a host that passes, one
# that fails, one with malformed files) in both outputs with their exit codes; usage
# errors exit 2; and once on this host (/), where it must run and print valid JSON.
# No data plane, no netns, no hugepages taken: it_init (which wants the appliance) is not
# called; the temp dir is this script's own.
set -euo pipefail
source "$(dirname "$0")/../../tools/lib/common.sh"
source "$(dirname "$0")/lib.sh"

require_cmd jq timeout
[[ -x $SLUICE_HOSTCHECK_BIN ]] ||
  fail "no sluice-hostcheck at $SLUICE_HOSTCHECK_BIN (ninja -C $SLUICE_BUILD app/sluice-hostcheck/sluice-hostcheck)"
IT_TMP=$(mktemp -d /tmp/sluice-it-hck.XXXXXX)
trap '[[ ${IT_KEEP:-0} == 1 ]] || rm -rf "$IT_TMP"' EXIT
HC=$SLUICE_HOSTCHECK_BIN
n_checks=$("$HC" --help | sed -n 's/^Checks: //p' | tr ',' '\n' | grep -c .)
assert_eq "$n_checks" 20 "checks listed by --help"

# ---- a prepared tree: 4 CPUs, workers 2-3 isolated, 1024 free 2 MiB pages, a vfio-pci NIC
# (IOMMU group 7) and an af_packet port on eth1 (kernel NIC 0000:00:04.0), tuned sysctls.
put() { mkdir -p "$(dirname "$1")" && printf '%s\n' "$2" >"$1"; }
good_tree() { # dir
  local r=$1 cpu
  put "$r/proc/meminfo" "Hugepagesize:       2048 kB"
  put "$r/proc/mounts" "hugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0"
  put "$r/proc/cmdline" "root=/dev/vda1 isolcpus=2-3 nohz_full=2-3 rcu_nocbs=2-3"
  put "$r/proc/1/comm" systemd
  put "$r/proc/interrupts" " 24:   1   0   0   0  IO-APIC   5-edge      ACPI:Ged"
  put "$r/proc/irq/24/smp_affinity_list" 0-1
  put "$r/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages" 1024
  put "$r/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages" 1024
  put "$r/sys/devices/system/node/node0/cpulist" 0-3
  put "$r/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages" 1024
  put "$r/sys/devices/system/node/node0/hugepages/hugepages-2048kB/free_hugepages" 1024
  put "$r/sys/devices/system/cpu/online" 0-3
  for cpu in 2 3; do
    put "$r/sys/devices/system/cpu/cpu$cpu/cpufreq/scaling_governor" performance
    put "$r/sys/devices/system/cpu/cpu$cpu/cpuidle/state0/latency" 0
    put "$r/sys/devices/system/cpu/cpu$cpu/cpuidle/state0/disable" 0
  done
  pci_dev "$r" 0000:01:00.0 vfio-pci 7
  pci_dev "$r" 0000:00:04.0 e1000e 3
  mkdir -p "$r/sys/devices/pci0000:00/0000:00:04.0/net/eth1/queues/rx-0" "$r/sys/class/net"
  ln -s ../../devices/pci0000:00/0000:00:04.0/net/eth1 "$r/sys/class/net/eth1"
  ln -s ../../../0000:00:04.0 "$r/sys/devices/pci0000:00/0000:00:04.0/net/eth1/device"
  put "$r/sys/devices/pci0000:00/0000:00:04.0/msi_irqs/40" msix
  put "$r/proc/irq/40/smp_affinity_list" 0
  put "$r/proc/sys/net/core/rmem_max" 16777216
  put "$r/proc/sys/net/core/wmem_max" 16777216
  put "$r/proc/sys/net/core/netdev_max_backlog" 16384
  put "$r/proc/sys/net/core/somaxconn" 4096
}
pci_dev() { # root address driver iommu_group
  local r=$1 dev=$1/sys/devices/pci0000:00/$2
  mkdir -p "$dev" "$r/sys/bus/pci/drivers/$3" "$r/sys/bus/pci/devices" "$r/sys/kernel/iommu_groups/$4/devices"
  put "$dev/numa_node" 0
  ln -sfn "../../../bus/pci/drivers/$3" "$dev/driver"
  ln -sfn "../../../kernel/iommu_groups/$4" "$dev/iommu_group"
  ln -sfn "../../../../devices/pci0000:00/$2" "$r/sys/kernel/iommu_groups/$4/devices/$2"
  ln -sfn "../../../devices/pci0000:00/$2" "$r/sys/bus/pci/devices/$2"
}

config=$IT_TMP/sluice.json
cat >"$config" <<'JSON'
{
  "eal": { "lcores": "1-3", "memory_mb": 1024 },
  "ports": [
    { "name": "wan", "device": "0000:01:00.0", "pipeline": ["parse", { "stage": "xconnect", "peer": "lan" }] },
    { "name": "lan", "device": "net_af_packet0", "devargs": "iface=eth1",
      "pipeline": ["parse", { "stage": "xconnect", "peer": "wan" }] }
  ]
}
JSON

verdict() { # json id
  jq -r --arg id "$2" '[.checks[] | select(.id == $id) | .verdict] | if length == 1 then .[0] else "count \(length)" end' "$1"
}
fix_of() { jq -r --arg id "$2" '.checks[] | select(.id == $id) | .fix' "$1"; }

# ---- a host that passes: exit 0, every check pass or skip (nic.rss: af_packet has none)
good=$IT_TMP/good
good_tree "$good"
assert_exit 0 "good tree, table" -- "$HC" --config "$config" --root "$good"
table=$(cat "$IT_TMP/out")
assert_contains "$table" "sluice-hostcheck: root $good, against $config" "table header"
grep -Eq '^hugepages\.free +pass +2048 MiB free \(2M 1024/1024 free\), the config needs 1024 MiB$' <<<"$table" ||
  fail "good tree: no aligned hugepages.free pass line in:
$table"
assert_eq "$(tail -1 <<<"$table")" "19 pass, 0 warn, 0 fail, 1 skip" "good tree summary line"
assert_eq "$(grep -cE '^[a-z._]+ +(pass|warn|fail|skip) ' <<<"$table")" 20 "one table line per check"
assert_exit 0 "good tree, --json" -- "$HC" --config "$config" --root "$good" --json
cp "$IT_TMP/out" "$IT_TMP/good.json"
jq -e . "$IT_TMP/good.json" >/dev/null || fail "good tree: --json printed no JSON: $(head -c 800 "$IT_TMP/good.json")"
assert_eq "$(jq -c '.summary' "$IT_TMP/good.json")" '{"fail":0,"pass":19,"skip":1,"warn":0}' "good tree JSON summary"
assert_eq "$(jq '.checks | length' "$IT_TMP/good.json")" 20 "good tree JSON checks"
assert_eq "$(jq -r '[.checks[] | select(.verdict == "skip") | .id] | join(",")' "$IT_TMP/good.json")" nic.rss "the one skip"
assert_eq "$(jq -r '[.checks[] | keys | join(",")] | unique | join(" ")' "$IT_TMP/good.json")" "finding,fix,id,verdict" \
  "each check's keys"
assert_eq "$(verdict "$IT_TMP/good.json" pci.driver)" pass "good tree pci.driver"

# ---- the same host gone wrong: exit 1, and each broken thing named with its fix
bad=$IT_TMP/bad
good_tree "$bad"
put "$bad/proc/mounts" "sysfs /sys sysfs rw 0 0"
put "$bad/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages" 100
put "$bad/proc/cmdline" "root=/dev/vda1 quiet"
put "$bad/proc/irq/24/smp_affinity_list" 0-3
put "$bad/proc/77/comm" irqbalance
put "$bad/sys/devices/system/cpu/cpu3/cpufreq/scaling_governor" powersave
pci_dev "$bad" 0000:01:00.0 ixgbe 7
put "$bad/proc/sys/net/core/rmem_max" 212992
assert_exit 1 "bad tree, --json" -- "$HC" --config "$config" --root "$bad" --json
cp "$IT_TMP/out" "$IT_TMP/bad.json"
for pair in hugepages.mount:fail hugepages.free:fail cpu.isolated:warn cpu.governor:warn irq.affinity:warn \
  irqbalance:warn pci.driver:fail sysctl.rmem_max:warn hugepages.size:pass iommu:pass nic.queues:pass; do
  assert_eq "$(verdict "$IT_TMP/bad.json" "${pair%%:*}")" "${pair#*:}" "bad tree ${pair%%:*}"
done
assert_eq "$(fix_of "$IT_TMP/bad.json" hugepages.mount)" "mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages" \
  "hugepages.mount fix"
assert_eq "$(fix_of "$IT_TMP/bad.json" pci.driver)" "modprobe vfio-pci && dpdk-devbind.py -b vfio-pci 0000:01:00.0" \
  "pci.driver fix"
assert_contains "$(fix_of "$IT_TMP/bad.json" irqbalance)" "systemctl disable --now irqbalance" "irqbalance fix"
assert_contains "$(fix_of "$IT_TMP/bad.json" sysctl.rmem_max)" "sysctl -w net.core.rmem_max=16777216" "rmem_max fix"
assert_eq "$(jq -c '.summary' "$IT_TMP/bad.json")" '{"fail":3,"pass":11,"skip":1,"warn":5}' "bad tree JSON summary"
assert_exit 1 "bad tree, table" -- "$HC" --config "$config" --root "$bad"
assert_eq "$(tail -1 "$IT_TMP/out")" "11 pass, 5 warn, 3 fail, 1 skip" "bad tree summary line"
grep -Eq '^pci\.driver +fail +wan 0000:01:00\.0: bound to the kernel.s ixgbe, which DPDK cannot drive  => fix: modprobe vfio-pci' \
  "$IT_TMP/out" || fail "bad tree: no pci.driver fail line with its fix in: $(cat "$IT_TMP/out")"

# ---- --only: ids and groups, in the table's order
assert_exit 1 "--only" -- "$HC" --config "$config" --root "$bad" --json --only sysctl,pci.driver --only irqbalance
assert_eq "$(jq -r '[.checks[].id] | join(",")' "$IT_TMP/out")" \
  "irqbalance,pci.driver,sysctl.rmem_max,sysctl.wmem_max,sysctl.netdev_max_backlog,sysctl.somaxconn" "--only selection"
assert_exit 0 "--only the passing checks" -- "$HC" --config "$config" --root "$bad" --only iommu,nic

# ---- malformed and missing files: warnings naming the path, never a crash
mal=$IT_TMP/malformed
good_tree "$mal"
printf '\x00\xff garbage' >"$mal/proc/sys/net/core/somaxconn"
put "$mal/proc/meminfo" "Hugepagesize: a lot"
put "$mal/sys/devices/system/cpu/online" "0-"
rm -f "$mal/proc/irq/24/smp_affinity_list"
assert_exit 0 "malformed tree" -- "$HC" --config "$config" --root "$mal" --json
cp "$IT_TMP/out" "$IT_TMP/mal.json"
assert_eq "$(verdict "$IT_TMP/mal.json" sysctl.somaxconn)" warn "malformed somaxconn"
assert_contains "$(jq -r '.checks[] | select(.id == "sysctl.somaxconn") | .finding' "$IT_TMP/mal.json")" \
  "$mal/proc/sys/net/core/somaxconn missing or malformed" "malformed somaxconn finding"
assert_eq "$(verdict "$IT_TMP/mal.json" hugepages.size)" warn "malformed meminfo"
assert_eq "$(verdict "$IT_TMP/mal.json" cpu.online)" warn "malformed cpu/online"
assert_eq "$(verdict "$IT_TMP/mal.json" irq.affinity)" warn "missing smp_affinity_list"
empty=$IT_TMP/empty
mkdir -p "$empty"
assert_exit 1 "empty root" -- "$HC" --config "$config" --root "$empty" --json
assert_eq "$(jq '.checks | length' "$IT_TMP/out")" 20 "empty root still reports every check"

# ---- without --config: workers on every online CPU but the first, no ports
assert_exit 0 "defaults" -- "$HC" --root "$good" --json
assert_eq "$(jq -r '.config' "$IT_TMP/out")" defaults "defaults source"
assert_eq "$(verdict "$IT_TMP/out" cpu.isolated)" warn "defaults: worker 1 is not isolated (isolcpus=2-3)"
assert_eq "$(verdict "$IT_TMP/out" pci.driver)" skip "defaults: no ports"

# ---- usage errors and unreadable configs exit 2 with a clear message
assert_exit 2 "unknown option" -- "$HC" --bogus
assert_contains "$(cat "$IT_TMP/err")" "--bogus" "unknown-option message"
assert_exit 2 "--only unknown" -- "$HC" --only cpu,frobnicate
assert_contains "$(cat "$IT_TMP/err")" "unknown check 'frobnicate'" "--only message"
assert_exit 2 "missing config" -- "$HC" --config "$IT_TMP/nope.json"
assert_contains "$(cat "$IT_TMP/err")" "$IT_TMP/nope.json: cannot read the config file" "missing config message"
echo '{"eal": {"lcores": "0"}, "ports": []}' >"$IT_TMP/invalid.json"
assert_exit 2 "invalid config" -- "$HC" --config "$IT_TMP/invalid.json"
assert_contains "$(cat "$IT_TMP/err")" "error(s); no check was run" "invalid config message"
assert_exit 2 "--root missing" -- "$HC" --root "$IT_TMP/nowhere"
assert_contains "$(cat "$IT_TMP/err")" "no such directory" "--root message"
assert_exit 0 "--help" -- "$HC" --help
assert_contains "$(cat "$IT_TMP/out")" "Usage: sluice-hostcheck" "--help text"

# ---- this host: it runs (0 or 1), every check reported, JSON valid
rc=0
timeout 60 "$HC" --json >"$IT_TMP/host.json" 2>"$IT_TMP/err" || rc=$?
((rc == 0 || rc == 1)) || fail "on this host: exit $rc, stderr: $(cat "$IT_TMP/err")"
jq -e '(.checks | length == 20) and all(.checks[]; .verdict | IN("pass", "warn", "fail", "skip")) and
  (.summary | .pass + .warn + .fail + .skip == 20)' "$IT_TMP/host.json" >/dev/null ||
  fail "on this host: not the expected JSON: $(head -c 1500 "$IT_TMP/host.json")"
assert_eq "$rc" "$(jq 'if .summary.fail > 0 then 1 else 0 end' "$IT_TMP/host.json")" "exit status matches the fails on this host"
timeout 60 "$HC" --config "$SLUICE_ROOT/conf/xconnect-af_packet.json" >"$IT_TMP/host.txt" 2>&1 || rc=$?
grep -Eq '^[0-9]+ pass, [0-9]+ warn, [0-9]+ fail, [0-9]+ skip$' "$IT_TMP/host.txt" ||
  fail "on this host with conf/xconnect-af_packet.json: no summary line in: $(cat "$IT_TMP/host.txt")"
it_log "ok: this host: $(jq -c .summary "$IT_TMP/host.json")"

echo "test_hostcheck: all checks passed"
