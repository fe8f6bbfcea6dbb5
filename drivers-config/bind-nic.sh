#!/usr/bin/env bash
# Binds PCI NICs to vfio-pci for Sluice, gives them back to their kernel driver, and
# shows where every network device stands. A thin, careful wrapper round DPDK's
# dpdk-devbind.py: it refuses to take away an interface the host is using (link up,
# addresses or routes) unless --force, and --dry-run prints what it would do.
#
#   drivers-config/bind-nic.sh status
#   drivers-config/bind-nic.sh bind   DEVICE... [--driver vfio-pci] [--force] [--dry-run]
#   drivers-config/bind-nic.sh unbind DEVICE... [--to DRIVER]      [--force] [--dry-run]
#
# DEVICE is a PCI address (0000:01:00.0 or 01:00.0) or a kernel interface name (enp1s0f0).

set -euo pipefail

readonly STATE_DIR=/run/sluice/bind-nic  # the driver each device had before `bind`
readonly SYSFS_PCI=/sys/bus/pci/devices

usage() {
  cat <<'EOF'
Usage: bind-nic.sh status
       bind-nic.sh bind DEVICE... [--driver DRIVER] [--force] [--dry-run]
       bind-nic.sh unbind DEVICE... [--to DRIVER] [--force] [--dry-run]

  status   every network PCI device: driver, interface, link, addresses, IOMMU group,
           NUMA node; whether vfio-pci is loaded and an IOMMU is on
  bind     load vfio-pci and bind DEVICE to it (--driver uio_pci_generic/igb_uio too)
  unbind   release DEVICE from its driver and give it back to the kernel driver it
           had before `bind` (remembered in /run/sluice/bind-nic), or --to DRIVER

DEVICE: PCI address (0000:01:00.0, 01:00.0) or kernel interface name (enp1s0f0).

  --force    also take a device whose interface is up or has addresses or routes
             (the host loses that interface; never do this to your SSH link)
  --dry-run  print the commands instead of running them (no root needed)

Examples:
  bind-nic.sh status
  bind-nic.sh bind 0000:01:00.0 0000:01:00.1 --dry-run
  bind-nic.sh bind enp1s0f0 enp1s0f1
  bind-nic.sh unbind 0000:01:00.0 0000:01:00.1
EOF
}

say() { printf '%s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

dry_run=false
force=false
driver=vfio-pci
restore_to=""

# Runs a command, or prints it under --dry-run.
run() {
  if $dry_run; then
    printf '+ %s\n' "$*"
  else
    "$@"
  fi
}

# PCI address ("0000:01:00.0") of a PCI address or interface name.
resolve() {
  local dev=$1 link pci
  if [[ $dev =~ ^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]]; then
    dev=0000:$dev
  fi
  if [[ $dev =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]]; then
    dev=${dev,,}
    [[ -e $SYSFS_PCI/$dev ]] || die "no PCI device $dev (see: bind-nic.sh status)"
    echo "$dev"
    return
  fi
  [[ -e /sys/class/net/$dev ]] || die "'$dev' is neither a PCI address nor a network interface"
  link=$(readlink -f "/sys/class/net/$dev/device" 2>/dev/null) || link=""
  # The PCI function is the last PCI-address component of the device path (virtio
  # NICs sit one level below theirs: .../0000:00:03.0/virtio0).
  pci=$(tr / '\n' <<<"$link" | grep -E '^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$' | tail -n 1)
  [[ -n $pci ]] ||
    die "interface $dev is not a PCI device (a virtual interface needs a vdev instead: see drivers-config/README.md)"
  echo "$pci"
}

current_driver() { # pci
  local link
  link=$(readlink "$SYSFS_PCI/$1/driver" 2>/dev/null) || { echo none; return; }
  basename "$link"
}

# Kernel interfaces backed by PCI function $1 (also those one level below it, as virtio's).
interfaces_of() { # pci
  local pci_dir ifc dev_path
  pci_dir=$(readlink -f "$SYSFS_PCI/$1")
  for ifc in /sys/class/net/*; do
    dev_path=$(readlink -f "$ifc/device" 2>/dev/null) || continue
    [[ $dev_path == "$pci_dir" || $dev_path == "$pci_dir"/* ]] && basename "$ifc"
  done
  return 0
}

# Why the host still needs interface $1, one reason a line; nothing when it is idle.
in_use_reasons() {
  local ifc=$1 addrs routes
  if ip -o link show dev "$ifc" 2>/dev/null | grep -q '[<,]UP[,>]'; then
    echo "$ifc is up"
  fi
  addrs=$(ip -o addr show dev "$ifc" scope global 2>/dev/null | awk '{print $4}' | paste -sd' ' -)
  [[ -n $addrs ]] && echo "$ifc has addresses: $addrs"
  routes=$( { ip -4 route show dev "$ifc"; ip -6 route show dev "$ifc" | grep -v '^fe80::/64'; } 2>/dev/null |
    awk '{print $1}' | paste -sd' ' -)
  [[ -n $routes ]] && echo "$ifc carries routes: $routes"
  if ip route show default 2>/dev/null | grep -qw "dev $ifc"; then
    echo "$ifc carries the DEFAULT route (your SSH session may use it)"
  fi
  return 0
}

# Refuses (unless --force) to take a device whose kernel interface is in use.
check_not_in_use() { # pci
  local pci=$1 ifc reasons=()
  while read -r ifc; do
    [[ -n $ifc ]] || continue
    mapfile -t -O "${#reasons[@]}" reasons < <(in_use_reasons "$ifc")
  done < <(interfaces_of "$pci")
  ((${#reasons[@]} == 0)) && return 0
  local reason
  for reason in "${reasons[@]}"; do say "  $pci: $reason"; done
  if $force; then
    warn "$pci is in use; going ahead because of --force"
  else
    die "$pci is in use by the host; take it down first (ip link set IFACE down; ip addr flush dev IFACE) or add --force"
  fi
}

iommu_on() { [[ -n $(ls -A /sys/kernel/iommu_groups 2>/dev/null) ]]; }

ensure_driver_loaded() { # driver
  local drv=$1
  [[ -d /sys/bus/pci/drivers/$drv ]] && return 0
  case $drv in
    vfio-pci) run modprobe vfio-pci ;;
    uio_pci_generic) run modprobe uio_pci_generic ;;
    igb_uio) run modprobe igb_uio || die "igb_uio is out of tree (dpdk-kmods); prefer vfio-pci" ;;
    *) run modprobe "$drv" ;;
  esac
}

cmd_status() {
  local pci drv ifcs ifc link addrs group node vendor
  printf '%-13s %-16s %-12s %-6s %-30s %-6s %-4s %s\n' PCI DRIVER IFACE LINK ADDRESSES IOMMU NUMA DEVICE
  for pci in "$SYSFS_PCI"/*; do
    [[ $(cat "$pci/class" 2>/dev/null) == 0x02* ]] || continue  # 0x02xxxx: network controller
    pci=$(basename "$pci")
    drv=$(current_driver "$pci")
    ifcs=$(interfaces_of "$pci" | paste -sd, -)
    link=-
    addrs=-
    if [[ -n $ifcs ]]; then
      ifc=${ifcs%%,*}
      link=$(cat "/sys/class/net/$ifc/operstate" 2>/dev/null || echo "?")
      addrs=$(ip -o addr show dev "$ifc" scope global 2>/dev/null | awk '{print $4}' | paste -sd' ' -)
      [[ -n $addrs ]] || addrs=-
      ip route show default 2>/dev/null | grep -qw "dev $ifc" && addrs="$addrs (default route)"
    fi
    group=$(basename "$(readlink "$SYSFS_PCI/$pci/iommu_group" 2>/dev/null)" 2>/dev/null || true)
    node=$(cat "$SYSFS_PCI/$pci/numa_node" 2>/dev/null || echo -)
    vendor=$(lspci -s "$pci" 2>/dev/null | cut -d' ' -f2- | cut -c1-40)
    printf '%-13s %-16s %-12s %-6s %-30s %-6s %-4s %s\n' "$pci" "$drv" "${ifcs:--}" "$link" "$addrs" \
      "${group:--}" "$node" "${vendor:-?}"
  done
  echo
  if [[ -d /sys/bus/pci/drivers/vfio-pci ]]; then echo "vfio-pci: loaded"; else echo "vfio-pci: not loaded (bind loads it)"; fi
  if iommu_on; then
    echo "IOMMU: on ($(find /sys/kernel/iommu_groups -mindepth 1 -maxdepth 1 | wc -l) groups)"
  elif [[ $(cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode 2>/dev/null) == Y ]]; then
    echo "IOMMU: off; vfio no-IOMMU mode is ENABLED (unsafe: devices can DMA anywhere)"
  else
    echo "IOMMU: off. vfio-pci needs one: boot with intel_iommu=on iommu=pt (or amd_iommu=on),"
    echo "       or, on a VM without vIOMMU, enable vfio's unsafe no-IOMMU mode (see drivers-config/vfio-pci.md)"
  fi
  local f
  for f in "$STATE_DIR"/*.driver; do
    [[ -e $f ]] && echo "remembered: $(basename "$f" .driver) was on $(cat "$f") before bind"
  done
  return 0
}

cmd_bind() {
  local dev pci drv pcis=()
  (($#)) || die "bind: which device? (see: bind-nic.sh status)"
  $dry_run || [[ $(id -u) -eq 0 ]] || die "bind needs root (or try --dry-run)"
  command -v dpdk-devbind.py >/dev/null || die "dpdk-devbind.py not found: apt-get install dpdk"
  # Every device is checked before anything changes.
  for dev in "$@"; do
    pci=$(resolve "$dev")
    if [[ $(current_driver "$pci") == "$driver" ]]; then
      say "$pci: already on $driver"
      continue
    fi
    check_not_in_use "$pci"
    pcis+=("$pci")
  done
  ((${#pcis[@]})) || return 0
  if [[ $driver == vfio-pci ]] && ! iommu_on &&
    [[ $(cat /sys/module/vfio/parameters/enable_unsafe_noiommu_mode 2>/dev/null) != Y ]]; then
    warn "no IOMMU is on: vfio-pci will refuse the device. See drivers-config/vfio-pci.md"
  fi
  ensure_driver_loaded "$driver"
  for pci in "${pcis[@]}"; do
    drv=$(current_driver "$pci")
    if [[ $drv != none ]]; then
      run mkdir -p "$STATE_DIR"
      if $dry_run; then
        printf '+ echo %s > %s\n' "$drv" "$STATE_DIR/$pci.driver"
      else
        echo "$drv" >"$STATE_DIR/$pci.driver"
      fi
    fi
    say "$pci: $drv -> $driver"
    # dpdk-devbind.py refuses "Active" devices on its own; we checked already, or
    # were told to go ahead.
    run dpdk-devbind.py --bind="$driver" "${devbind_force[@]}" "$pci"
  done
}

cmd_unbind() {
  local dev pci drv to
  (($#)) || die "unbind: which device? (see: bind-nic.sh status)"
  $dry_run || [[ $(id -u) -eq 0 ]] || die "unbind needs root (or try --dry-run)"
  command -v dpdk-devbind.py >/dev/null || die "dpdk-devbind.py not found: apt-get install dpdk"
  for dev in "$@"; do
    pci=$(resolve "$dev")
    drv=$(current_driver "$pci")
    check_not_in_use "$pci"
    to=$restore_to
    [[ -z $to && -f $STATE_DIR/$pci.driver ]] && to=$(cat "$STATE_DIR/$pci.driver")
    if [[ $drv != none ]]; then
      say "$pci: unbinding from $drv"
      run dpdk-devbind.py --unbind "${devbind_force[@]}" "$pci"
    fi
    if [[ -n $to ]]; then
      say "$pci: giving it back to $to"
      run dpdk-devbind.py --bind="$to" "$pci"
      run rm -f "$STATE_DIR/$pci.driver"
    else
      say "$pci: left without a driver (no remembered kernel driver; use --to DRIVER)"
    fi
  done
}

command=""
devices=()
while (($#)); do
  case $1 in
    status | bind | unbind)
      [[ -z $command ]] || die "one command at a time"
      command=$1
      ;;
    --driver) driver=${2:?--driver needs a name}; shift ;;
    --driver=*) driver=${1#*=} ;;
    --to) restore_to=${2:?--to needs a driver name}; shift ;;
    --to=*) restore_to=${1#*=} ;;
    --force) force=true ;;
    -n | --dry-run) dry_run=true ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option: $1" ;;
    *) devices+=("$1") ;;
  esac
  shift
done

devbind_force=()
$force && devbind_force=(--force)

case $command in
  status) cmd_status ;;
  bind) cmd_bind "${devices[@]}" ;;
  unbind) cmd_unbind "${devices[@]}" ;;
  "") usage >&2; exit 2 ;;
esac
