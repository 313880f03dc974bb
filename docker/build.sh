#!/usr/bin/env bash
# Builds the image zabkeeper:latest from this checkout, with no container registry:
#
#   1. a release build of zabkeeper and zabkeeper-shell (cargo profile `docker`:
#      release without debug info, which the image strips anyway);
#   2. the shared libraries those binaries load (glibc's libc, libm, libgcc_s and the
#      dynamic loader, found with ldd), copied from this machine to the same paths:
#      the image's root filesystem holds nothing the build did not put there;
#   3. busybox from Debian's busybox-static package (apt-get download: only the
#      package registry is needed), for a shell inside the container;
#   4. `docker build` of docker/Dockerfile, which starts FROM scratch.
#
#   docker/build.sh [TAG]      (default zabkeeper:latest)
#
# ZABKEEPER_IMAGE_BINARIES=DIR packages the zabkeeper and zabkeeper-shell already in
# DIR instead of building: scripts/test passes target/debug, the binaries its
# `cargo test --no-run` built (optimised, with debug assertions), so CI compiles
# nothing more for the fault tests.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-zabkeeper:latest}
cache="$root/target/docker-image"
mkdir -p "$cache"

if [ -n "${ZABKEEPER_IMAGE_BINARIES:-}" ]; then
  out=$(cd "$ZABKEEPER_IMAGE_BINARIES" && pwd)
  echo "docker/build.sh: packaging the binaries in $out" >&2
else
  echo "docker/build.sh: release build (cargo profile docker)" >&2
  (cd "$root" && cargo build -q --profile docker --bin zabkeeper --bin zabkeeper-shell)
  out="$root/target/docker"
fi

if [ ! -x "$cache/busybox" ]; then
  echo "docker/build.sh: fetching busybox-static from the Debian archive" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && apt-get download busybox-static >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get download busybox-static; })
  dpkg-deb -x "$tmp"/busybox-static_*.deb "$tmp/x"
  cp "$tmp/x/bin/busybox" "$cache/busybox"
  rm -rf "$tmp"
fi

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/root/usr/local/bin" "$ctx/root/bin" "$ctx/root/etc"
for b in zabkeeper zabkeeper-shell; do
  strip -o "$ctx/root/usr/local/bin/$b" "$out/$b"
  # Every absolute path ldd names (the libraries and the loader), at the same path.
  for lib in $(ldd "$out/$b" | grep -o '/[^ ]*'); do
    mkdir -p "$ctx/root$(dirname "$lib")"
    cp -L "$lib" "$ctx/root$lib"
  done
done
cp "$cache/busybox" "$ctx/root/bin/busybox"
# glibc resolves names itself (files and dns are built into libc since 2.34): files
# first (/etc/hosts), then Docker's DNS.
printf 'hosts: files dns\n' >"$ctx/root/etc/nsswitch.conf"
printf 'root:x:0:0:root:/:/bin/sh\n' >"$ctx/root/etc/passwd"
cp "$root/docker/Dockerfile" "$ctx/Dockerfile"
echo "docker/build.sh: docker build -t $tag" >&2
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null
echo "$tag"
