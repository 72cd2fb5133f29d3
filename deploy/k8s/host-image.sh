#!/usr/bin/env bash
# Builds the Kubernetes host image: our wasmCloud host (orders-host: wasmcloud-host 0.27.1 on our
# Wasmtime, serving the HTTP server, messaging and key-value in its process) as an OCI image, in
# place of upstream's ghcr.io/wasmcloud/wasmcloud, which runs upstream's Wasmtime and none of our
# capabilities. The operator runs it as it runs upstream's: command `wasmcloud`, its settings in
# WASMCLOUD_* variables and observability flags (host/wasmcloudhostconfig.yaml `image`).
#
#   deploy/k8s/host-image.sh ARCHIVE   writes the image to ARCHIVE, an OCI archive (push.sh
#                                      builds it into build/k8s/ and pushes it)
#
# The image holds the host binary `make build` made (for this machine's architecture), the C
# libraries it links (from this machine: Debian 12's glibc), the CA bundle for registries over TLS,
# an unprivileged user and /tmp, where the host unpacks what it pulls. Nothing else: no shell.
# Built with umoci (Debian package `umoci`), which needs no container engine or daemon.
set -euo pipefail
K8S=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$K8S/../.." && pwd)
source "$ROOT/scripts/env.sh"
archive=${1:?usage: host-image.sh ARCHIVE}
host=$RELEASE/orders-host
[[ -x $host ]] || { echo "no host binary at $host: run make build first" >&2; exit 1; }
command -v umoci >/dev/null || { echo "umoci is missing: apt-get install umoci" >&2; exit 1; }

declare -A OCI_ARCH=([x86_64]=amd64 [aarch64]=arm64)
arch=${OCI_ARCH[$(uname -m)]:?no OCI architecture known for $(uname -m)}
# The unprivileged user the host runs as (the distroless images' `nonroot`).
uid=65532

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
layout=$work/layout
umoci init --layout "$layout"
umoci new --image "$layout:host"
umoci unpack --rootless --image "$layout:host" "$work/bundle" >/dev/null
rootfs=$work/bundle/rootfs

# The operator's container command is `wasmcloud`, found on PATH.
install -D -m 0755 "$host" "$rootfs/usr/local/bin/wasmcloud"
strip "$rootfs/usr/local/bin/wasmcloud"
# The dynamic loader and every library the host links, at the paths the binary names.
for library in $(ldd "$host" | grep -o '/[^ ]*'); do
  install -D -m 0755 "$(readlink -f "$library")" "$rootfs$library"
done
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/tmp:/sbin/nologin\n' \
  "$uid" "$uid" >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:%s:\n' "$uid" >"$rootfs/etc/group"
install -d -m 1777 "$rootfs/tmp"

umoci repack --image "$layout:host" "$work/bundle" >/dev/null
version=$("$host" --version | awk '{print $2}')
umoci config --image "$layout:host" --architecture "$arch" --os linux \
  --config.entrypoint wasmcloud --config.user "$uid:$uid" --config.workingdir /tmp \
  --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.env TMPDIR=/tmp \
  --config.label org.opencontainers.image.title=orders-host \
  --config.label "org.opencontainers.image.version=$version" \
  --config.label "org.opencontainers.image.description=wasmCloud host (wasmcloud-host 0.27.1) with the orders lattice's built-in capabilities"
umoci gc --layout "$layout"

mkdir -p "$(dirname "$archive")"
tar -C "$layout" -cf "$archive.partial" .
mv "$archive.partial" "$archive"
say "wrote $archive ($(du -h "$archive" | cut -f1), linux/$arch, orders-host $version)"
