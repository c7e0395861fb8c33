#!/usr/bin/env bash
# Build the ferrolb OCI image (ferrolb-controller + ferrolb-speaker, FROM scratch) without a
# container daemon, from deploy/Containerfile:
#   1. release build of both binaries, statically linked (glibc +crt-static);
#      a binary that still needs shared libraries gets exactly those copied in beside it;
#   2. buildah builds the Containerfile over target/image/context/ in a private store
#      (target/image/storage, vfs driver: nothing outside target/ is touched);
#   3. the image is written as an OCI archive target/image/ferrolb-<version>.oci.tar, tagged
#      <version> inside, and its manifest digest is printed (also in
#      target/image/ferrolb-<version>.digest).
# BUILDER=docker builds the same Containerfile with `docker build` instead (and loads it into
# the local daemon as ghcr.io/ferrolb/ferrolb:<version>).
# Run as root (buildah's store), on Debian with Rust; scripts/install-test-deps.sh installs
# buildah.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[build-image] %s\n' "$*" >&2; }

VERSION=$(awk -F'"' '/^\[workspace.package\]/{p=1} p && /^version *=/{print $2; exit}' Cargo.toml)
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then
  REVISION="$REVISION-dirty"
fi
REPOSITORY=${IMAGE_REPOSITORY:-ghcr.io/ferrolb/ferrolb}
TARGET=x86_64-unknown-linux-gnu
OUT=target/image
ARCHIVE=$OUT/ferrolb-$VERSION.oci.tar

log "release build of ferrolb-controller and ferrolb-speaker ($TARGET, +crt-static)"
# --target keeps the static build apart from target/release (build scripts and proc macros
# stay dynamic: RUSTFLAGS then applies to the target only).
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target "$TARGET" -p ferrolb-controller -p ferrolb-speaker

rm -rf "$OUT/context"
mkdir -p "$OUT/context/rootfs"
for bin in ferrolb-controller ferrolb-speaker; do
  src=target/$TARGET/release/$bin
  install -m 0755 "$src" "$OUT/context/rootfs/$bin"
  if readelf -d "$src" 2>/dev/null | grep -q '(NEEDED)'; then
    # Not fully static: copy exactly the libraries the loader resolves, and the loader.
    log "$bin is dynamically linked; copying its shared libraries"
    while read -r lib; do
      [[ -n $lib ]] || continue
      mkdir -p "$OUT/context/rootfs$(dirname "$lib")"
      cp -L "$lib" "$OUT/context/rootfs$lib"
    done < <(ldd "$src" | awk '/=> \//{print $3} /^\s*\//{print $1}')
  else
    log "$bin: statically linked ($(du -h "$src" | cut -f1))"
  fi
done

if [[ ${BUILDER:-buildah} == docker ]]; then
  docker build -f deploy/Containerfile \
    --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" \
    -t "$REPOSITORY:$VERSION" "$OUT/context"
  log "built $REPOSITORY:$VERSION in the docker daemon"
  exit 0
fi

command -v buildah >/dev/null || { log "error: buildah is missing: run scripts/install-test-deps.sh"; exit 1; }
STORE=(--root "$PWD/$OUT/storage" --runroot "$PWD/$OUT/runroot" --storage-driver vfs)
rm -rf "$OUT/storage" "$OUT/runroot"
buildah "${STORE[@]}" build --quiet --isolation chroot \
  -f deploy/Containerfile \
  --build-arg VERSION="$VERSION" --build-arg REVISION="$REVISION" \
  --timestamp 0 \
  -t "$REPOSITORY:$VERSION" "$OUT/context" >/dev/null
rm -f "$ARCHIVE"
buildah "${STORE[@]}" push --quiet --digestfile "$OUT/ferrolb-$VERSION.digest" \
  "$REPOSITORY:$VERSION" "oci-archive:$ARCHIVE:$VERSION"
# The store is only a means to the archive; drop it (vfs keeps full copies).
buildah "${STORE[@]}" rmi --all >/dev/null 2>&1 || true
rm -rf "$OUT/storage" "$OUT/runroot"

size_archive=$(stat -c %s "$ARCHIVE")
uncompressed=$(du -sb "$OUT/context/rootfs" | cut -f1)
log "image $REPOSITORY:$VERSION (revision $REVISION)"
log "archive $ARCHIVE: $(awk -v b="$size_archive" 'BEGIN{printf "%.1f MB", b/1e6}') compressed," \
    "$(awk -v b="$uncompressed" 'BEGIN{printf "%.1f MB", b/1e6}') unpacked"
echo "digest $(cat "$OUT/ferrolb-$VERSION.digest")"
