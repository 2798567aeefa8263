#!/usr/bin/env bash
# TLS on the gateway's port with the tools callers use: grpcurl -cacert,
# curl --cacert (with an API key, and with a client certificate), buf curl
# over gRPC-web on https, and a certificate reload on SIGHUP. The
# certificates are made here with openssl, like an operator would.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q -p thingcall-server -p thingcall-cli
buf=${BUF:-.ci/node/node_modules/.bin/buf}
bin=${CARGO_TARGET_DIR:-target}/debug
work=$(mktemp -d)
log="$work/gateway.log"
server=
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "tls-smoke: $*" >&2; echo "--- gateway log" >&2; cat "$log" >&2; exit 1; }
# Bounded polling: a readiness probe of a separate process, not test synchronisation.
wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  fail "timed out waiting for $what"
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

cd "$work"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=smoke CA" -keyout ca-key.pem -out ca.pem 2>/dev/null
leaf() { # name, CN, extra openssl x509 args...
  local name=$1 cn=$2; shift 2
  openssl req -newkey rsa:2048 -nodes -subj "/CN=$cn" -keyout "$name-key.pem" -out "$name.csr" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 -out "$name.pem" "$@" 2>/dev/null
}
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
leaf server "gateway one" -extfile san.ext
printf 'extendedKeyUsage=clientAuth\n' > client.ext
leaf client "smoke-admin" -extfile client.ext
key="tc_$(openssl rand -hex 24)"
echo "smoke sha256:$(printf %s "$key" | sha256sum | cut -d' ' -f1)" > api-keys
cd - >/dev/null

port=$(free_port); mqtt=$(free_port)
"$bin/thingcall-server" --listen "127.0.0.1:$port" --embedded-broker-listen "127.0.0.1:$mqtt" --demo 1 \
  --tls-cert "$work/server.pem" --tls-key "$work/server-key.pem" --tls-client-ca "$work/ca.pem" \
  --api-keys "$work/api-keys" >"$log" 2>&1 &
server=$!
url="https://localhost:$port"
online() { curl -sf --cacert "$work/ca.pem" -H "x-api-key: $key" "$url/v1/devices/demo-1" | grep -q '"online":true'; }
wait_for "demo-1 online over https" online

out=$(grpcurl -cacert "$work/ca.pem" -H "x-api-key: $key" -d '{"target":"demo-1","method":"echo","payload":"aGk="}' "localhost:$port" thingcall.v1.DeviceGateway/Invoke)
echo "$out" | grep -q '"payload": "aGk="' || fail "grpcurl -cacert: $out"
out=$(grpcurl -cacert "$work/ca.pem" -d '{"target":"demo-1","method":"echo"}' "localhost:$port" thingcall.v1.DeviceGateway/Invoke 2>&1 || true)
echo "$out" | grep -q 'Unauthenticated' || fail "grpcurl without a key: $out"

out=$(curl -s --cacert "$work/ca.pem" -H "x-api-key: $key" -XPOST "$url/v1/devices/demo-1/methods/echo" -d '{"payload":"tls"}')
echo "$out" | grep -q '"payload":"tls"' || fail "curl --cacert with a key: $out"
out=$(curl -s --cacert "$work/ca.pem" --cert "$work/client.pem" --key "$work/client-key.pem" "$url/v1/devices")
echo "$out" | grep -q '"demo-1"' || fail "curl with a client certificate: $out"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/ca.pem" "$url/v1/devices")
[ "$code" = 401 ] || fail "curl with no credentials: $code"

out=$("$buf" curl --protocol grpcweb --cacert "$work/ca.pem" -H "x-api-key: $key" \
  --schema proto --data '{"target":"demo-1","method":"echo","payload":"aGk="}' \
  "$url/thingcall.v1.DeviceGateway/Invoke")
echo "$out" | grep -q '"payload": "aGk="' || fail "buf curl gRPC-web over https: $out"

# The CLI: --cacert with a token, and a client certificate alone.
out=$(THINGCALL_TOKEN="$key" "$bin/thingcall" --server "$url" --cacert "$work/ca.pem" invoke demo-1 echo --payload cli)
[ "$out" = cli ] || fail "thingcall --cacert with THINGCALL_TOKEN: $out"
out=$("$bin/thingcall" --server "$url" --cacert "$work/ca.pem" --cert "$work/client.pem" --key "$work/client-key.pem" devices)
echo "$out" | grep -q demo-1 || fail "thingcall --cert/--key: $out"

# SIGHUP: the new certificate for new connections.
served_cn() { openssl s_client -connect "127.0.0.1:$port" -servername localhost -CAfile "$work/ca.pem" </dev/null 2>/dev/null | openssl x509 -noout -subject; }
served_cn | grep -q 'gateway one' || fail "served: $(served_cn)"
(cd "$work" && leaf server "gateway two" -extfile san.ext)
kill -HUP "$server"
wait_for "the reload" grep -q "TLS certificate reloaded" "$log"
served_cn | grep -q 'gateway two' || fail "after SIGHUP: $(served_cn)"
echo "tls-smoke: ok"
