#!/usr/bin/env bash
# Install what the network-namespace lab (e2e/src/lab), the image build and the tests
# need: Debian packages (routing daemons, capture tools, buildah/umoci/skopeo for the
# image), then the pinned kubectl, helm and kubernetes-validate (scripts/install-tools.sh).
# Idempotent: when everything is already present it exits in about a second without
# touching apt or npm.
#
# Usage: sudo scripts/install-test-deps.sh        (root required for apt-get)
#        FORCE=1 scripts/install-test-deps.sh      (install even if all tools exist)
#
# Package daemons (bird, frr, keepalived, ...) must not be left running as system
# services: the lab starts its own instances inside namespaces, and a service in
# the root namespace could grab ports or sockets. We install with a temporary
# policy-rc.d that forbids every service start (exit 101), and afterwards stop
# only PIDs whose pidfile belongs to a package service, never processes by name.
set -euo pipefail

PACKAGES=(
  iproute2 bird2 frr gobgpd exabgp arping iputils-ping ndisc6 tcpdump tshark
  socat iptables nftables curl keepalived procps buildah umoci skopeo unzip
)

# One command per package that proves it is installed and usable.
# (package:command; the command is looked up with `command -v` or as a path)
CHECKS=(
  iproute2:ip bird2:bird bird2:birdc frr:/usr/lib/frr/bgpd frr:/usr/lib/frr/zebra frr:vtysh
  gobgpd:gobgpd gobgpd:gobgp exabgp:exabgp arping:arping iputils-ping:ping ndisc6:ndisc6
  tcpdump:tcpdump tshark:tshark socat:socat iptables:iptables nftables:nft curl:curl
  keepalived:keepalived procps:pgrep buildah:buildah umoci:umoci skopeo:skopeo
  unzip:unzip
)

log() { printf '[install-test-deps] %s\n' "$*" >&2; }

have() {
  local c=$1
  if [[ $c == /* ]]; then [[ -x $c ]]; else command -v "$c" >/dev/null 2>&1; fi
}

missing_packages() {
  local entry pkg cmd out=()
  for entry in "${CHECKS[@]}"; do
    pkg=${entry%%:*}; cmd=${entry#*:}
    if ! have "$cmd" || ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      [[ " ${out[*]-} " == *" $pkg "* ]] || out+=("$pkg")
    fi
  done
  # `arping` conflicts with `iputils-arping`; make sure the right one is there.
  if dpkg-query -W -f='${Status}' iputils-arping 2>/dev/null | grep -q 'install ok installed'; then
    [[ " ${out[*]-} " == *" arping "* ]] || out+=("arping")
  fi
  printf '%s\n' "${out[@]-}" | sed '/^$/d'
}

start=$(date +%s)
mapfile -t MISSING < <(missing_packages)
if [[ ${#MISSING[@]} -eq 0 && -z ${FORCE:-} ]]; then
  log "all Debian packages present"
  exec "$(dirname "$0")/install-tools.sh"
fi

if [[ $(id -u) -ne 0 ]]; then
  log "error: must run as root to install: ${MISSING[*]}"
  exit 1
fi

log "missing: ${MISSING[*]:-<forced>}"

export DEBIAN_FRONTEND=noninteractive
# tshark asks whether non-root users may capture; answer "no" up front.
echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections

# Forbid service starts during the install (restored afterwards, even on error).
POLICY=/usr/sbin/policy-rc.d
POLICY_BACKUP=""
if [[ -e $POLICY ]]; then
  POLICY_BACKUP=$(mktemp)
  cp -p "$POLICY" "$POLICY_BACKUP"
fi
restore_policy() {
  if [[ -n $POLICY_BACKUP ]]; then
    cp -p "$POLICY_BACKUP" "$POLICY"; rm -f "$POLICY_BACKUP"
  else
    rm -f "$POLICY"
  fi
}
trap restore_policy EXIT
printf '#!/bin/sh\n# installed by install-test-deps.sh: no service starts during install\nexit 101\n' > "$POLICY"
chmod 755 "$POLICY"

apt-get update -q
apt-get install -y -q --no-install-recommends \
  -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
  "${PACKAGES[@]}"

restore_policy
trap - EXIT

# Belt and braces: if a package service did start anyway (policy-rc.d ignored by a
# maintainer script), stop it by the PID in its own pidfile — never by name.
for pidfile in /run/bird/bird.pid /run/bird.pid /run/frr/watchfrr.pid /run/frr/zebra.pid \
               /run/frr/bgpd.pid /run/frr/staticd.pid /run/frr/mgmtd.pid /run/keepalived.pid \
               /run/gobgpd.pid /run/exabgp/exabgp.pid; do
  [[ -r $pidfile ]] || continue
  pid=$(tr -dc '0-9' < "$pidfile")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || continue
  # A stale pidfile may name a recycled PID: only act if that PID really runs a
  # daemon binary from these packages.
  exe=$(basename "$(readlink "/proc/$pid/exe" 2>/dev/null || true)")
  case $exe in
    bird|watchfrr|zebra|bgpd|staticd|mgmtd|keepalived|gobgpd|python3*) ;;
    *) continue ;;
  esac
  log "stopping package-started daemon pid $pid ($pidfile, $exe)"
  kill -TERM "$pid" 2>/dev/null || true
done

mapfile -t STILL < <(missing_packages)
if [[ ${#STILL[@]} -gt 0 ]]; then
  log "error: still missing after install: ${STILL[*]}"
  exit 1
fi
log "installed in $(( $(date +%s) - start ))s"

exec "$(dirname "$0")/install-tools.sh"
