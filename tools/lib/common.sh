# Shared by tools/demo.sh, tools/test.sh and the integration tests. Source it; it
# sets no shell options of its own.
#
#   SLUICE_ROOT       the repository
#   SLUICE_BUILD      the meson build directory (default $SLUICE_ROOT/build)
#   SLUICE_BIN        the appliance binary
#   SLUICE_HOSTCHECK_BIN  the host audit (sluice-hostcheck)
#   SLUICECTL_BIN     its HTTP API's command-line client
#   SLUICE_EAL_HUGE   "" when hugepages are ready, "--no-huge" after a fallback

SLUICE_ROOT=${SLUICE_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SLUICE_BUILD=${SLUICE_BUILD:-$SLUICE_ROOT/build}
SLUICE_BIN=$SLUICE_BUILD/app/sluice
SLUICE_HOSTCHECK_BIN=$SLUICE_BUILD/app/sluice-hostcheck/sluice-hostcheck
SLUICECTL_BIN=$SLUICE_BUILD/app/sluicectl
SLUICE_EAL_HUGE=${SLUICE_EAL_HUGE:-}
# The pyenv python on these machines has no scapy; Debian's has.
SLUICE_PY=/usr/bin/python3

# Every Debian package the build, the tests and the demo use.
SLUICE_PACKAGES=(
  build-essential pkg-config meson ninja-build clang
  libdpdk-dev dpdk dpdk-dev
  libboost-program-options-dev nlohmann-json3-dev libspdlog-dev
  libgtest-dev libgmock-dev googletest libcpp-httplib-dev libpcap-dev
  debhelper
  iproute2 ethtool iputils-ping traceroute curl iperf3 hping3 tcpdump socat
  python3 python3-scapy prometheus nftables conntrack
)

log() { printf '\033[1m==>\033[0m %s\n' "$*" >&2; }
warn() { printf '\033[33mwarning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31merror:\033[0m %s\n' "$*" >&2; exit 1; }

require_root() {
  [[ $(id -u) -eq 0 ]] || die "$(basename "$0") needs root (DPDK, hugepages and network namespaces); run it as root"
}

# Installs whatever of SLUICE_PACKAGES (plus any arguments) is missing.
ensure_packages() {
  local missing=() pkg
  for pkg in "${SLUICE_PACKAGES[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || warn "apt-get update failed; trying with the cached package lists"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
    die "apt-get install failed for: ${missing[*]}"
}

# Mounts hugetlbfs and reserves $1 2 MiB pages (default 512 = 1 GiB). Where the
# kernel refuses, falls back to --no-huge with a warning (SLUICE_EAL_HUGE).
ensure_hugepages() {
  local want=${1:-512} free
  mountpoint -q /dev/hugepages || { mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages; } ||
    warn "cannot mount hugetlbfs on /dev/hugepages"
  if (($(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0) < want)); then
    echo "$want" >/proc/sys/vm/nr_hugepages 2>/dev/null || true
  fi
  free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
  if mountpoint -q /dev/hugepages && ((${free:-0} >= 256)); then
    SLUICE_EAL_HUGE=""
  else
    warn "only ${free:-0} free hugepages; running DPDK with --no-huge (slower, same behaviour)"
    SLUICE_EAL_HUGE="--no-huge"
  fi
  export SLUICE_EAL_HUGE
}

# Configures (once) and builds; extra arguments go to `meson setup`.
build_sluice() {
  if [[ ! -f $SLUICE_BUILD/build.ninja ]]; then
    log "meson setup $SLUICE_BUILD"
    meson setup "$SLUICE_BUILD" "$SLUICE_ROOT" "$@" >/dev/null || die "meson setup failed"
  fi
  log "building"
  ninja -C "$SLUICE_BUILD" >"$SLUICE_BUILD/ninja.log" 2>&1 || { tail -50 "$SLUICE_BUILD/ninja.log"; die "build failed"; }
  [[ -x $SLUICE_BIN ]] || die "no binary at $SLUICE_BIN after the build"
}

# Turns off the offloads af_packet cannot honour on a veth (checksums left for the
# peer to fill in, TSO/GRO super-frames) so frames on the wire are real frames.
veth_offloads_off() { # [netns] dev
  local ns=$1 dev=$2 run=()
  [[ -n $ns ]] && run=(ip netns exec "$ns")
  "${run[@]}" ethtool -K "$dev" rx off tx off tso off gso off gro off >/dev/null 2>&1 || true
}

# Two hosts, one subnet, joined only through Sluice:
#   netns ${p}w: ${p}w0 10.99.0.1/24 fd00:99::1/64  <veth>  ${p}w1 (root ns, Sluice port west)
#   netns ${p}e: ${p}e0 10.99.0.2/24 fd00:99::2/64  <veth>  ${p}e1 (root ns, Sluice port east)
# The root-side ends carry no address; Sluice opens them with net_af_packet.
topo_veth_create() { # prefix
  topo_veth_pairs "$1"
  topo_host_up "${1}w" "${1}w0" 1
  topo_host_up "${1}e" "${1}e0" 2
}

# The namespaces ${p}w / ${p}e and their veth pairs, the root-side ends up and quiet;
# the hosts' own set-up is the caller's (topo_host_up, router_host_up).
topo_veth_pairs() { # prefix
  local p=$1 side
  topo_destroy "$p"
  for side in w e; do
    ip netns add "${p}${side}"
    ip link add "${p}${side}0" type veth peer name "${p}${side}1"
    ip link set "${p}${side}0" netns "${p}${side}"
    ip link set "${p}${side}1" up
    veth_offloads_off "" "${p}${side}1"
    # No IPv6 autoconf on the root side: it would send its own packets into Sluice.
    sysctl -qw "net.ipv6.conf.${p}${side}1.disable_ipv6=1" 2>/dev/null || true
  done
}

# Addresses host number $3 on netns $1's interface $2 and brings it up.
topo_host_up() { # netns dev hostnum
  ip -n "$1" link set lo up
  ip -n "$1" addr add "10.99.0.$3/24" dev "$2"
  ip -n "$1" addr add "fd00:99::$3/64" dev "$2" nodad
  ip -n "$1" link set "$2" up
  veth_offloads_off "$1" "$2"
}

# For net_tap: Sluice creates taps ${p}w0/${p}e0 in the root ns; this moves each into
# its own netns and addresses it, as soon as the PMD has created it.
topo_tap_attach() { # prefix [timeout_s]
  local p=$1 deadline=$((SECONDS + ${2:-20})) side
  for side in w e; do
    ip netns add "${p}${side}" 2>/dev/null || true
    until ip link show "${p}${side}0" >/dev/null 2>&1; do
      ((SECONDS < deadline)) || { warn "tap ${p}${side}0 never appeared"; return 1; }
      sleep 0.2
    done
    ip link set "${p}${side}0" netns "${p}${side}"
    topo_host_up "${p}${side}" "${p}${side}0" "$([[ $side == w ]] && echo 1 || echo 2)"
  done
}

topo_destroy() { # prefix
  local p=$1 side
  for side in w e; do
    ip netns del "${p}${side}" 2>/dev/null || true
    ip link del "${p}${side}1" 2>/dev/null || true
  done
}

# Waits until Sluice answers /health on $1 (host:port), or its pid $2 dies.
wait_for_http() { # host:port pid [timeout_s]
  local deadline=$((SECONDS + ${3:-30}))
  while ((SECONDS < deadline)); do
    kill -0 "$2" 2>/dev/null || return 1
    curl -fsS -m 1 "http://$1/health" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
