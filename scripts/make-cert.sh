#!/usr/bin/env bash
# Make a self-signed TLS certificate for `signaling-server --cert --key`, so browsers on
# other machines can reach the page over https (they only allow the camera on https or
# on localhost).
#
# usage: scripts/make-cert.sh [DIR] [HOST_OR_IP]
#   DIR         where cert.pem and key.pem go (default: certs/)
#   HOST_OR_IP  an extra name or address the certificate is valid for, e.g. this
#               machine's LAN address 192.168.1.20 or myhost.local; localhost and
#               127.0.0.1 are always included.
set -euo pipefail

usage() { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
if (($# > 2)); then usage >&2; exit 2; fi

dir=${1:-certs}
extra=${2:-}
command -v openssl >/dev/null || { echo "make-cert: openssl is not installed" >&2; exit 1; }

san="DNS:localhost,IP:127.0.0.1,IP:::1"
cn=localhost
if [[ -n $extra ]]; then
    if [[ $extra =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || $extra =~ ^[0-9A-Fa-f:]+:[0-9A-Fa-f:.]*$ ]]; then
        san="$san,IP:$extra"
    elif [[ $extra =~ ^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$ ]]; then
        san="$san,DNS:$extra"
        cn=$extra
    else
        echo "make-cert: $extra is neither a hostname nor an IP address" >&2
        exit 2
    fi
fi

mkdir -p "$dir"
(
    umask 077
    openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 825 \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" \
        -subj "/CN=$cn" \
        -addext "subjectAltName=$san" \
        -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
        -addext "extendedKeyUsage=serverAuth" 2>/dev/null
)
chmod 644 "$dir/cert.pem"
echo "make-cert: wrote $dir/cert.pem and $dir/key.pem (valid for $san)"
echo "run: signaling-server --host 0.0.0.0 --cert $dir/cert.pem --key $dir/key.pem"
