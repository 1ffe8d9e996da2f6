#!/bin/sh
# Renders @NAME@ placeholders in the PBX config from the environment, then
# runs Asterisk in the foreground. Refuses to start with a placeholder unset.
set -eu
: "${ARI_PASSWORD:?set ARI_PASSWORD (the ARI password the voice-call service uses)}"
: "${LAB_PHONE_PASSWORD:=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
export LAB_PHONE_PASSWORD
mkdir -p /etc/asterisk
# ARI records bridges (a recorded call after a transfer) here; the package does not make it.
mkdir -p /var/spool/asterisk/recording
for f in /usr/local/share/voicecall-asterisk/*; do
  out="/etc/asterisk/$(basename "$f")"
  cp "$f" "$out"
  for name in $(grep -o '@[A-Z_]*@' "$f" | sort -u | tr -d @); do
    value=$(printenv "$name") || { echo "docker-entrypoint: $name is not set (used in $(basename "$f"))" >&2; exit 2; }
    escaped=$(printf '%s' "$value" | sed 's/[&|\\]/\\&/g')
    sed -i "s|@$name@|$escaped|g" "$out"
  done
done
exec asterisk -f -n -C /etc/asterisk/asterisk.conf
