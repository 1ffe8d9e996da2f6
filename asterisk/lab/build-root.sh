#!/usr/bin/env bash
# Builds the PBX lab root: a minimal Debian sid tree holding Asterisk 22, sipp
# and baresip, for machines without Docker. Needs root (debootstrap, chroot).
# Usage: build-root.sh ROOT   (prints one "step N/5: ..." line per stage)
set -euo pipefail
root="${1:?usage: build-root.sh ROOT}"
packages="asterisk asterisk-modules sip-tester baresip"

# The mirror this machine already uses, never a hard-coded host.
mirror=$(bash "$(dirname "$0")/debian-mirror.sh") || { echo "build-root: no Debian mirror found" >&2; exit 2; }

if ! command -v debootstrap >/dev/null; then
  echo "step 0/5: installing debootstrap on the host"
  apt-get install -y -qq debootstrap >/dev/null || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
fi

tmp="$root.partial"
for dir in "$tmp" "$root"; do
  mountpoint -q "$dir/proc" 2>/dev/null && umount -l "$dir/proc"
done
rm -rf --one-file-system "$tmp"
mkdir -p "$tmp"
cleanup() { mountpoint -q "$tmp/proc" && umount "$tmp/proc" || true; }
trap cleanup EXIT

echo "step 1/5: debootstrap sid (minbase) from $mirror"
debootstrap --variant=minbase sid "$tmp" "$mirror" >"$tmp.log" 2>&1 || { tail -20 "$tmp.log" >&2; exit 1; }

echo "step 2/5: apt sources and hosts"
echo "deb $mirror sid main" >"$tmp/etc/apt/sources.list"
# Asterisk resolves the machine's own name at start; without this it asks DNS off the machine.
printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost\n' "$(hostname)" >"$tmp/etc/hosts"
mount -t proc proc "$tmp/proc"

echo "step 3/5: apt-get update"
chroot "$tmp" apt-get -o Acquire::Check-Valid-Until=false update -qq >>"$tmp.log" 2>&1 || { tail -20 "$tmp.log" >&2; exit 1; }

echo "step 4/5: installing $packages"
chroot "$tmp" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $packages >>"$tmp.log" 2>&1 \
  || { tail -20 "$tmp.log" >&2; exit 1; }
chroot "$tmp" apt-get clean

echo "step 5/5: finishing"
umount "$tmp/proc"
# Distribution config is replaced by the project's own at each start.
rm -rf "$tmp/etc/asterisk"
mkdir -p "$tmp/etc/asterisk"
chroot "$tmp" asterisk -V >"$tmp/VERSION"
rm -rf --one-file-system "$root"
mv "$tmp" "$root"
rm -f "$tmp.log"
echo "built $(cat "$root/VERSION") in $root"
