#!/bin/sh
# What a caller's token and an OIDC JWT cost (issue 24): the checks alone, and a call
# end to end.
#
#   cargo build --release && sh bench/tokens-bench.sh
#
# 1. `Callers::admit` (hash the token, look it up, its view of the target) with 1 and
#    1,000 tokens in the file: the ignored unit test `bench_admit`, release profile.
# 2. p50 of sequential `tools/call echo` on one keep-alive connection (Python
#    `http.client`: its own cost is the same on both sides) against mcp-echo on a port
#    without `auth` and on one with `auth = { tokens = true }`; the difference is what
#    the guard, the caller's filter and the audit line add.
# 3. `jwt::verify` (ES256, EdDSA; keys held) alone: the ignored unit test `bench_verify`;
#    and the same calls on a port with `auth.oidc`, a provider served by Python on
#    127.0.0.1 (a P-256 key made here, its JWKS, an ES256 token signed with
#    `cryptography`): what the JWT check adds per call (a token once checked is
#    remembered by its hash).
# MCPCTL names the binary (default: target/release/mcpctl, the plain release build).
set -eu
cd "$(dirname "$0")/.."
MCPCTL=${MCPCTL:-$PWD/target/release/mcpctl}
WORK=$(mktemp -d)
trap '"$MCPCTL" -f "$WORK/mcpctl.toml" daemon stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# UNIT=0 skips the checks alone (the end-to-end part needs no build beyond MCPCTL).
if [ "${UNIT:-1}" != 0 ]; then
  echo "== the checks alone"
  cargo test -q --release --lib bench_admit -- --ignored --nocapture 2>/dev/null | grep '^admit:'
  cargo test -q --release --lib bench_verify -- --ignored --nocapture 2>/dev/null | grep '^verify:'
fi

OPEN=$(free_port); TOKENS=$(free_port); OIDC=$(free_port); IDP=$(free_port)
# The provider: discovery and JWKS of a key made now; the token it signed in $WORK/jwt.
python3 - "$IDP" "$OIDC" "$WORK/jwt" <<'PY' &
import base64, http.server, json, sys, time
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives import hashes
port, aud_port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
key = ec.generate_private_key(ec.SECP256R1())
nums = key.public_key().public_numbers()
jwk = {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
       "x": b64(nums.x.to_bytes(32, "big")), "y": b64(nums.y.to_bytes(32, "big"))}
issuer = f"http://127.0.0.1:{port}"
head = b64(json.dumps({"alg": "ES256", "kid": "k1", "typ": "JWT"}).encode())
claims = {"iss": issuer, "aud": f"http://127.0.0.1:{aud_port}/mcp", "sub": "bench",
          "scope": "mcp:all", "exp": int(time.time()) + 3600}
body = b64(json.dumps(claims).encode())
r, s = utils.decode_dss_signature(key.sign(f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256())))
open(out, "w").write(f"{head}.{body}.{b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}")
docs = {"/.well-known/openid-configuration": {"issuer": issuer, "jwks_uri": f"{issuer}/jwks"},
        "/jwks": {"keys": [jwk]}}
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        doc = json.dumps(docs.get(self.path, {})).encode()
        self.send_response(200 if self.path in docs else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(doc)))
        self.end_headers(); self.wfile.write(doc)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
IDP_PID=$!
trap 'kill $IDP_PID 2>/dev/null; "$MCPCTL" -f "$WORK/mcpctl.toml" daemon stop >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do [ -s "$WORK/jwt" ] && break; sleep 0.1; done
ECHO=$(dirname "$MCPCTL")/mcp-echo
cat > "$WORK/mcpctl.toml" <<TOML
version = 1
[servers.open]
command = "$ECHO"
port = $OPEN
[servers.guarded]
command = "$ECHO"
port = $TOKENS
auth = { tokens = true }
[servers.oidc]
command = "$ECHO"
port = $OIDC
auth = { oidc = { issuer = "http://127.0.0.1:$IDP", audience = "http://127.0.0.1:$OIDC/mcp", scopes = { "mcp:all" = ["*"] } } }
TOML
export XDG_CONFIG_HOME="$WORK/xdg"
TOKEN=$("$MCPCTL" -f "$WORK/mcpctl.toml" token create bench --allow 'guarded/echo' 2>/dev/null)
"$MCPCTL" -f "$WORK/mcpctl.toml" apply >/dev/null
echo "== a call end to end (p50 of 3000 sequential calls a side, after 300 unmeasured)"
python3 - "$OPEN" "$TOKENS" "$TOKEN" "$OIDC" "$(cat "$WORK/jwt")" <<'PY'
import http.client, json, statistics, sys, time
# The two ports in alternating rounds, so the machine's drift (other work on two
# cores, the daemon's polling) falls on both alike.
def session(port, token):
    conn = http.client.HTTPConnection("127.0.0.1", int(port))
    headers = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "b", "version": "1"}}}
    conn.request("POST", "/mcp", json.dumps(init), headers)
    r = conn.getresponse(); r.read()
    headers["mcp-session-id"] = r.getheader("mcp-session-id")
    return conn, headers
body = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}})
def calls(conn, headers, n, out):
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/mcp", body, headers)
        r = conn.getresponse(); r.read()
        assert r.status == 200, r.status
        if out is not None:
            out.append((time.perf_counter() - t) * 1e6)
sides = {"open": session(sys.argv[1], None), "tokens": session(sys.argv[2], sys.argv[3]),
         "oidc": session(sys.argv[4], sys.argv[5])}
times = {side: [] for side in sides}
for side in sides:
    calls(*sides[side], 300, None)
for _ in range(20):
    for side in sides:
        calls(*sides[side], 150, times[side])
o, t, j = (statistics.median(times[s]) for s in ("open", "tokens", "oidc"))
print(f"no auth: p50 {o:.0f} us; callers' tokens: p50 {t:.0f} us ({t - o:+.0f} us); "
      f"OIDC JWT: p50 {j:.0f} us ({j - o:+.0f} us) (20 alternating rounds of 150 calls each)")
PY
