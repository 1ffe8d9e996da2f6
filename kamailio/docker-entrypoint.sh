#!/bin/sh
# Renders kamailio.cfg and the dispatcher list from the environment, then runs
# Kamailio in the foreground, logging to stderr.
#   ASTERISKS   the Asterisks' SIP addresses, host:port, separated by spaces (required)
#   SIP_BIND    SIP_PORT   where Kamailio listens (UDP)
set -eu
: "${ASTERISKS:?set ASTERISKS (the Asterisks calls are spread over: host:port host:port ...)}"
dir=/run/kamailio
mkdir -p "$dir"
n=0
: >"$dir/dispatcher.list"
for asterisk in $ASTERISKS; do
  n=$((n + 1))
  echo "1 sip:$asterisk 8 0 duid=asterisk-$n" >>"$dir/dispatcher.list"
done
escape() { printf '%s' "$1" | sed 's/[&|\\]/\\&/g'; }
sed -e "s|@SIP_BIND@|$(escape "$SIP_BIND")|g" -e "s|@SIP_PORT@|$(escape "$SIP_PORT")|g" \
    -e "s|@DISPATCHER_LIST@|$dir/dispatcher.list|g" -e "s|@CTL_SOCKET@|$dir/kamailio_ctl|g" \
    /usr/local/share/voicecall-kamailio/kamailio.cfg >"$dir/kamailio.cfg"
if grep -q '@[A-Z_]*@' "$dir/kamailio.cfg"; then
  echo "docker-entrypoint: kamailio.cfg has a placeholder this entrypoint does not fill: $(grep -o '@[A-Z_]*@' "$dir/kamailio.cfg" | sort -u | tr '\n' ' ')" >&2
  exit 2
fi
echo "docker-entrypoint: spreading calls to $SIP_BIND:$SIP_PORT over $n Asterisk(s): $ASTERISKS"
exec kamailio -f "$dir/kamailio.cfg" -DD -E -m 64 -M 8 -Y "$dir"
