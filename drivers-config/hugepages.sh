#!/usr/bin/env bash
# Hugepages for Sluice (DPDK): reserve N pages of 2 MiB or 1 GiB, mount hugetlbfs,
# show where they stand, and print the lines that make a reservation survive a reboot.
#
#   drivers-config/hugepages.sh status
#   drivers-config/hugepages.sh reserve N [--size 2M|1G] [--node N] [--at-least] [--mount DIR] [--dry-run]
#   drivers-config/hugepages.sh persist N [--size 2M|1G]
#
# Sluice needs eal.memory_mb of them (default 512 MiB: 256 pages of 2 MiB), on the
# NUMA node of its NICs. Without hugepages it still runs with "hugepages": false
# (EAL --no-huge), slower and with no IOVA-contiguous memory, so not with vfio-pci NICs.

set -euo pipefail

usage() {
  cat <<'EOF'
Usage: hugepages.sh status
       hugepages.sh reserve N [--size 2M|1G] [--node N] [--at-least] [--mount DIR] [--dry-run]
       hugepages.sh persist N [--size 2M|1G]

  status   pages per size and NUMA node (total, free, reserved), hugetlbfs mounts,
           and the DPDK processes (file prefixes) holding pages
  reserve  set the number of N pages of --size (default 2M) system-wide or on one
           --node, and mount hugetlbfs (default /dev/hugepages for 2M,
           /dev/hugepages1G for 1G). Checks how many the kernel really gave.
  persist  print the sysctl, fstab and kernel command line lines that make N pages
           permanent (writes nothing)

  --at-least  reserve: only raise the count, never lower it (for boot/service scripts
              on hosts where something else may want more)
  --dry-run   print the commands instead of running them

Examples:
  hugepages.sh status
  hugepages.sh reserve 512              # 1 GiB of 2 MiB pages
  hugepages.sh reserve 2 --size 1G      # 1 GiB pages: best at boot, see persist
  hugepages.sh persist 1024
EOF
}

warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

dry_run=false
at_least=false
size=2M
node=""
mount_dir=""

run() {
  if $dry_run; then
    printf '+ %s\n' "$*"
  else
    "$@"
  fi
}

# Writes $2 into file $1 (or prints it under --dry-run).
write_value() {
  if $dry_run; then
    printf '+ echo %s > %s\n' "$2" "$1"
  else
    echo "$2" >"$1"
  fi
}

size_kb() {
  case ${1^^} in
    2M | 2MB | 2048K | 2048KB) echo 2048 ;;
    1G | 1GB | 1024M | 1048576K | 1048576KB) echo 1048576 ;;
    *) die "--size must be 2M or 1G, got '$1'" ;;
  esac
}

human() { # kB
  if (($1 >= 1048576 && $1 % 1048576 == 0)); then echo "$(($1 / 1048576))G"; else echo "$(($1 / 1024))M"; fi
}

pages_dir() { # kB [node]
  if [[ -n ${2:-} ]]; then
    echo "/sys/devices/system/node/node$2/hugepages/hugepages-$1kB"
  else
    echo "/sys/kernel/mm/hugepages/hugepages-$1kB"
  fi
}

read_count() { cat "$1/$2" 2>/dev/null || echo 0; }

cmd_status() {
  local dir kb n total free rsvd surplus nodedir any=false
  printf '%-6s %-6s %8s %8s %8s %8s %10s\n' SIZE NODE TOTAL FREE RESERVED SURPLUS MEMORY
  for dir in /sys/kernel/mm/hugepages/hugepages-*kB; do
    [[ -d $dir ]] || continue
    any=true
    kb=${dir##*hugepages-}
    kb=${kb%kB}
    total=$(read_count "$dir" nr_hugepages)
    free=$(read_count "$dir" free_hugepages)
    rsvd=$(read_count "$dir" resv_hugepages)
    surplus=$(read_count "$dir" surplus_hugepages)
    printf '%-6s %-6s %8s %8s %8s %8s %10s\n' "$(human "$kb")" all "$total" "$free" "$rsvd" "$surplus" \
      "$(human $((total * kb)))"
    for nodedir in /sys/devices/system/node/node*; do
      [[ -d $nodedir/hugepages/hugepages-${kb}kB ]] || continue
      n=${nodedir##*node}
      dir=$nodedir/hugepages/hugepages-${kb}kB
      total=$(read_count "$dir" nr_hugepages)
      printf '%-6s %-6s %8s %8s %8s %8s %10s\n' "" "$n" "$total" "$(read_count "$dir" free_hugepages)" - \
        "$(read_count "$dir" surplus_hugepages)" "$(human $((total * kb)))"
    done
  done
  $any || echo "this kernel has no hugepage support (CONFIG_HUGETLBFS)"
  echo
  echo "hugetlbfs mounts:"
  if ! awk '$3 == "hugetlbfs" {printf "  %s (%s)\n", $2, $4; found = 1} END {exit !found}' /proc/mounts; then
    echo "  none: DPDK needs one (hugepages.sh reserve mounts /dev/hugepages)"
  fi
  echo
  echo "DPDK processes holding hugepages (EAL file prefix: pages in files):"
  local mnt prefix count found=false
  while read -r mnt; do
    for prefix in $(find "$mnt" -maxdepth 1 -type f -name '*map_*' -printf '%f\n' 2>/dev/null | sed 's/map_.*//' | sort -u); do
      count=$(find "$mnt" -maxdepth 1 -type f -name "${prefix}map_*" | wc -l)
      echo "  ${prefix:-rte}: $count file(s) in $mnt"
      found=true
    done
  done < <(awk '$3 == "hugetlbfs" {print $2}' /proc/mounts)
  $found || echo "  none"
}

cmd_reserve() {
  local want=$1 kb dir before got
  [[ $want =~ ^[0-9]+$ ]] || die "reserve: N must be a number of pages, got '$want'"
  $dry_run || [[ $(id -u) -eq 0 ]] || die "reserve needs root (or try --dry-run)"
  kb=$(size_kb "$size")
  dir=$(pages_dir "$kb" "$node")
  [[ -d $dir ]] || die "no $(human "$kb") pages here ($dir missing): the CPU or kernel lacks them${node:+, or node $node does not exist}"
  before=$(read_count "$dir" nr_hugepages)
  if $at_least && ((before >= want)); then
    echo "$(human "$kb") pages${node:+ on node $node}: $before already (>= $want, --at-least)"
  else
    # Pages already handed out stay; asking for fewer only frees the unused ones.
    write_value "$dir/nr_hugepages" "$want"
  fi
  if ! $dry_run && ! { $at_least && ((before >= want)); }; then
    got=$(read_count "$dir" nr_hugepages)
    if ((got < want)); then
      warn "asked for $want pages of $(human "$kb")${node:+ on node $node}, the kernel gave $got (memory is fragmented or short)"
      ((kb == 1048576)) && warn "1 GiB pages are best reserved at boot: see 'hugepages.sh persist $want --size 1G'"
    fi
    echo "$(human "$kb") pages${node:+ on node $node}: $before -> $got ($(human $((got * kb))))"
  fi

  [[ -n $mount_dir ]] || { if ((kb == 2048)); then mount_dir=/dev/hugepages; else mount_dir=/dev/hugepages1G; fi; }
  if awk -v d="$mount_dir" '$2 == d && $3 == "hugetlbfs" {found = 1} END {exit !found}' /proc/mounts; then
    echo "hugetlbfs already mounted on $mount_dir"
  else
    run mkdir -p "$mount_dir"
    run mount -t hugetlbfs -o "pagesize=$(human "$kb")" nodev "$mount_dir"
    $dry_run || echo "mounted hugetlbfs (pagesize=$(human "$kb")) on $mount_dir"
  fi
  if ((kb == 1048576)); then
    echo "note: EAL uses the default page size's mount unless told: add \"--huge-dir\", \"$mount_dir\" to eal.extra_args"
  fi
}

cmd_persist() {
  local want=$1 kb
  [[ $want =~ ^[0-9]+$ ]] || die "persist: N must be a number of pages, got '$want'"
  kb=$(size_kb "$size")
  if ((kb == 2048)); then
    cat <<EOF
# $want x 2 MiB = $(human $((want * kb))) at every boot.

# /etc/sysctl.d/80-sluice-hugepages.conf   (apply now: sysctl --system)
vm.nr_hugepages = $want

# /etc/fstab   (Debian's systemd already mounts /dev/hugepages; add it only if yours does not)
nodev /dev/hugepages hugetlbfs pagesize=2M 0 0

# Or reserve them before memory fragments, on the kernel command line
# (/etc/default/grub: GRUB_CMDLINE_LINUX, then update-grub):
hugepagesz=2M hugepages=$want
EOF
  else
    cat <<EOF
# $want x 1 GiB at every boot. 1 GiB pages must be reserved at boot to be reliable.

# /etc/default/grub, appended to GRUB_CMDLINE_LINUX, then: update-grub && reboot
default_hugepagesz=1G hugepagesz=1G hugepages=$want

# /etc/fstab
nodev /dev/hugepages1G hugetlbfs pagesize=1G 0 0

# and in the Sluice config, if 1G is not the default page size:
#   "eal": { ..., "extra_args": ["--huge-dir", "/dev/hugepages1G"] }
EOF
  fi
}

command=""
count=""
while (($#)); do
  case $1 in
    status | reserve | persist)
      [[ -z $command ]] || die "one command at a time"
      command=$1
      ;;
    --size) size=${2:?--size needs 2M or 1G}; shift ;;
    --size=*) size=${1#*=} ;;
    --node) node=${2:?--node needs a NUMA node number}; shift ;;
    --node=*) node=${1#*=} ;;
    --mount) mount_dir=${2:?--mount needs a directory}; shift ;;
    --mount=*) mount_dir=${1#*=} ;;
    --at-least) at_least=true ;;
    -n | --dry-run) dry_run=true ;;
    -h | --help) usage; exit 0 ;;
    -*) usage >&2; die "unknown option: $1" ;;
    *)
      [[ -z $count ]] || die "unexpected argument: $1"
      count=$1
      ;;
  esac
  shift
done
[[ -z $node || $node =~ ^[0-9]+$ ]] || die "--node must be a number, got '$node'"

case $command in
  status | "") cmd_status ;;
  reserve) cmd_reserve "${count:?reserve needs N, the number of pages}" ;;
  persist) cmd_persist "${count:?persist needs N, the number of pages}" ;;
esac
