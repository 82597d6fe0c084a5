#!/usr/bin/env bash
# Makes this machine able to run `sam local` offline, as `make test-sam-local`
# needs on a fresh CI machine (Debian, root, no systemd, no registry access):
#
#   1. Debian's docker.io, qemu-user-static and busybox-static, installed
#      with apt-get when missing;
#   2. dockerd (vfs storage driver) started in the background unless a
#      daemon already answers; without the userland proxy, so that a
#      published port refuses connections until the container listens
#      (SAM CLI waits for the port to accept, then sends the event once:
#      behind the proxy, the port accepts while the runtime emulator is
#      still starting under QEMU, and the first request fails with 502);
#   3. the arm64 binfmt entry registered (the functions are arm64; QEMU runs
#      them on an x86_64 machine), with the F flag so it works in containers;
#   4. a stand-in for the provided.al2023 base image, built locally from a
#      static busybox (SAM CLI builds its runtime image on top of it and
#      needs only sh, mv, chmod, cp, rm and mkdir; Go bootstraps are static).
#
# It prints the stand-in image's name on its last line. Users with internet
# access need none of this: SAM CLI pulls the official base image.
set -euo pipefail

IMAGE=${SAM_LOCAL_BASE_IMAGE:-license-admin/provided-al2023-standin:local}
DOCKER_LOG=${DOCKER_LOG:-/tmp/license-admin-dockerd.log}

say() { echo "docker-setup: $*" >&2; }

need=()
command -v docker >/dev/null || need+=(docker.io)
command -v dockerd >/dev/null || need+=(docker.io)
[ -x /usr/bin/qemu-aarch64-static ] || need+=(qemu-user-static)
[ -x /bin/busybox ] || [ -x /usr/bin/busybox ] || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    say "missing ${need[*]}: install them (apt-get install -y ${need[*]}) or run as root"
    exit 1
  fi
  say "installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  say "starting dockerd (vfs storage driver, no userland proxy), log in $DOCKER_LOG"
  # dockerd outlives this script: it gets none of the caller's open files
  # beyond the log, or a lock taken around `make` (flock) would stay held
  # until dockerd stops.
  (
    for fd in /proc/self/fd/*; do
      n=${fd##*/}
      if [ "$n" -gt 2 ]; then eval "exec $n>&-" 2>/dev/null || true; fi
    done
    exec nohup dockerd --storage-driver=vfs --userland-proxy=false >"$DOCKER_LOG" 2>&1 </dev/null
  ) &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { say "dockerd did not answer within 60 s:"; tail -20 "$DOCKER_LOG" >&2; exit 1; }
fi

if [ "$(uname -m)" != aarch64 ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -f "$conf" ] || { say "no $conf: is qemu-user-static installed?"; exit 1; }
  grep -v '^#' "$conf" | grep -v '^$' | head -1 >/proc/sys/fs/binfmt_misc/register
  say "registered the arm64 binfmt entry"
fi

if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  say "building the base image stand-in $IMAGE"
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin" "$root/var/task" "$root/var/runtime" "$root/opt" "$root/tmp"
  bb=/bin/busybox; [ -x "$bb" ] || bb=/usr/bin/busybox
  cp "$bb" "$root/bin/busybox"
  for tool in sh mv chmod cp rm mkdir ls cat; do ln -s busybox "$root/bin/$tool"; done
  chmod 1777 "$root/tmp"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' -c 'WORKDIR /var/task' - "$IMAGE" >/dev/null
fi
echo "$IMAGE"
