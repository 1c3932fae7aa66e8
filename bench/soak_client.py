"""The clients of `bench/soak`: one session on one of five paths, and a worker that
makes a session's share of the calls and tells how each ended. Standard library only."""

import http.client
import json
import random
import socket
import time

MODERN = "2026-07-28"
LEGACY = "2025-06-18"
PATHS = ["mcp-2025", "mcp-2026", "sse", "endpoint-2025", "endpoint-2026"]
CLIENT_TIMEOUT = 60.0  # no answer within this is a lost call (call_timeout is 3 s)
HANGUP_EVERY = 400  # a client hangs up at random about once in this many calls


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Failed(Exception):
    """A call that ended in an error (the transport or the server said so)."""


class Lost(Exception):
    """A call that got nothing back within CLIENT_TIMEOUT."""


def rpc(id_, method, params, modern):
    if modern:
        params = dict(params)
        params["_meta"] = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "soak", "version": "1"},
        }
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}


def parse_body(resp, body):
    """The JSON-RPC messages of an answer, JSON or an SSE stream."""
    kind = resp.getheader("content-type", "")
    text = body.decode("utf-8", "replace")
    if "text/event-stream" in kind:
        out = []
        for block in text.split("\n\n"):
            data = "\n".join(
                line[5:].lstrip() for line in block.split("\n") if line.startswith("data:")
            )
            if data:
                out.append(json.loads(data))
        return out
    return [json.loads(text)] if text.strip() else []


class Session:
    """One client on one path; `call` raises Failed or Lost, or returns the answer."""

    def __init__(self, path, port, ep_port):
        self.path = path
        self.modern = path.endswith("2026")
        self.port = ep_port if path.startswith("endpoint") else port
        self.tool = "soak__echo" if path.startswith("endpoint") else "echo"
        self.conn = None
        self.sid = None
        self.sse = None
        self.endpoint = None

    def close(self):
        for c in (self.conn, self.sse):
            try:
                if c is not None:
                    c.close()
            except OSError:
                pass
        self.conn = self.sse = self.sid = self.endpoint = None

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=CLIENT_TIMEOUT)
        return self.conn

    def _post(self, url, body, headers):
        conn = self._conn()
        try:
            conn.request("POST", url, body=json.dumps(body), headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except socket.timeout as e:
            self.close()
            raise Lost(f"no answer in {CLIENT_TIMEOUT}s") from e
        except (OSError, http.client.HTTPException) as e:
            self.close()
            raise Failed(f"connection: {e!r}") from e
        if resp.getheader("connection", "").lower() == "close":
            self.close()
        return resp, data

    def _headers(self, body):
        h = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
        if self.modern:
            h["MCP-Protocol-Version"] = MODERN
            h["Mcp-Method"] = body["method"]
            if "name" in body["params"]:
                h["Mcp-Name"] = body["params"]["name"]
        elif self.sid:
            h["Mcp-Session-Id"] = self.sid
            h["MCP-Protocol-Version"] = LEGACY
        return h

    def open(self):
        if self.path == "sse":
            return self._open_sse()
        if self.modern:
            return
        init = rpc(0, "initialize", {"protocolVersion": LEGACY, "capabilities": {},
                                     "clientInfo": {"name": "soak", "version": "1"}}, False)
        resp, data = self._post("/mcp", init, self._headers(init))
        sid = resp.getheader("mcp-session-id")
        if resp.status != 200 or not sid:
            self.close()
            raise Failed(f"initialize: HTTP {resp.status} {data[:200]!r}")
        self.sid = sid
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        resp, data = self._post("/mcp", note, self._headers({"method": "", "params": {}}))
        if resp.status >= 300:
            self.close()
            raise Failed(f"initialized: HTTP {resp.status}")

    def _open_sse(self):
        try:
            sse = socket.create_connection(("127.0.0.1", self.port), timeout=CLIENT_TIMEOUT)
            sse.sendall(b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
        except OSError as e:
            raise Failed(f"connection: {e!r}") from e
        self.sse = sse
        self.buf = b""
        head = self._read_until(b"\r\n\r\n")
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            self.close()
            raise Failed(f"/sse: {head[:100]!r}")
        self.chunked = b"chunked" in head.lower()
        self.events = b""
        event, data = self._next_event()
        if event != "endpoint":
            self.close()
            raise Failed(f"/sse first event {event}")
        self.endpoint = data
        init = rpc(0, "initialize", {"protocolVersion": LEGACY, "capabilities": {},
                                     "clientInfo": {"name": "soak", "version": "1"}}, False)
        self._sse_call(init)
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        resp, _ = self._post(self.endpoint, note, {"content-type": "application/json"})
        if resp.status >= 300:
            self.close()
            raise Failed(f"initialized: HTTP {resp.status}")

    def _read_until(self, sep):
        while sep not in self.buf:
            try:
                chunk = self.sse.recv(65536)
            except socket.timeout as e:
                self.close()
                raise Lost("the stream was silent") from e
            except OSError as e:
                self.close()
                raise Failed(f"stream: {e!r}") from e
            if not chunk:
                self.close()
                raise Failed("stream closed")
            self.buf += chunk
        head, self.buf = self.buf.split(sep, 1)
        return head

    def _next_event(self):
        while b"\n\n" not in self.events.replace(b"\r\n", b"\n"):
            if self.chunked:
                size = int(self._read_until(b"\r\n").strip() or b"0", 16)
                while len(self.buf) < size + 2:
                    self._read_more()
                self.events += self.buf[:size]
                self.buf = self.buf[size + 2:]
            else:
                self._read_more()
                self.events += self.buf
                self.buf = b""
        text = self.events.replace(b"\r\n", b"\n")
        block, rest = text.split(b"\n\n", 1)
        self.events = rest
        event, data = "message", []
        for line in block.decode("utf-8", "replace").split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        return event, "\n".join(data)

    def _read_more(self):
        try:
            chunk = self.sse.recv(65536)
        except socket.timeout as e:
            self.close()
            raise Lost("the stream was silent") from e
        except OSError as e:
            self.close()
            raise Failed(f"stream: {e!r}") from e
        if not chunk:
            self.close()
            raise Failed("stream closed")
        self.buf += chunk

    def _sse_call(self, body):
        resp, data = self._post(self.endpoint, body, {"content-type": "application/json"})
        if resp.status >= 300:
            self.close()
            raise Failed(f"HTTP {resp.status} {data[:200]!r}")
        while True:
            event, data = self._next_event()
            if event != "message" or not data:
                continue
            msg = json.loads(data)
            if "id" in msg and "method" not in msg:
                return [msg]

    def call(self, id_, text):
        body = rpc(id_, "tools/call", {"name": self.tool, "arguments": {"text": text}}, self.modern)
        if self.path == "sse":
            msgs = self._sse_call(body)
        else:
            resp, data = self._post("/mcp", body, self._headers(body))
            if resp.status == 404 and self.sid:
                self.close()
                raise Failed("HTTP 404: session gone")
            try:
                msgs = parse_body(resp, data)
            except ValueError as e:
                self.close()
                raise Failed(f"HTTP {resp.status}: not JSON {data[:200]!r}") from e
            if resp.status >= 300 and not msgs:
                self.close()
                raise Failed(f"HTTP {resp.status} {data[:200]!r}")
        answers = [m for m in msgs if "id" in m and "method" not in m]
        if not answers:
            raise Lost("an answer without a response message")
        return answers[-1]


def session_worker(index, quota, port, ep_port, progress, seed, out):
    """One session's calls; the outcome of each goes to `out` at the end."""
    rng = random.Random(seed)
    answered = misrouted = lost = 0
    errors = []  # (monotonic time, path, message)
    lat = []
    path_i = index % len(PATHS)
    sess = None
    done = 0
    while done < quota:
        path = PATHS[path_i]
        if sess is None:
            sess = Session(path, port, ep_port)
            try:
                sess.open()
            except (Failed, Lost, ValueError) as e:
                sess.close()
                sess = None
                # Opening is not a call: wait a moment and try again (a daemon restart).
                errors_open = (time.monotonic(), path, f"open: {e}")
                out.put(("open_error", errors_open))
                time.sleep(0.05)
                continue
        call_id = index * 10_000_000 + done + 1
        text = f"s{index}-c{done}-{rng.getrandbits(32):08x}"
        t0 = time.monotonic()
        try:
            msg = sess.call(call_id, text)
            if msg.get("id") != call_id:
                misrouted += 1
                errors.append((t0, path, f"misrouted: asked id {call_id}, got {str(msg)[:200]}"))
            elif "error" in msg:
                errors.append((t0, path, f"JSON-RPC error {json.dumps(msg['error'])[:200]}"))
            else:
                try:
                    got = msg["result"]["content"][0]["text"]
                except (KeyError, IndexError, TypeError):
                    got = None
                if got == text:
                    answered += 1
                    lat.append(time.monotonic() - t0)
                elif msg.get("result", {}).get("isError"):
                    errors.append((t0, path, f"tool error {str(msg)[:200]}"))
                else:
                    misrouted += 1
                    errors.append((t0, path, f"misrouted: asked {text}, got {str(msg)[:200]}"))
        except Lost as e:
            lost += 1
            errors.append((t0, path, f"LOST: {e}"))
            sess.close()
            sess = None
        except (Failed, ValueError) as e:
            errors.append((t0, path, str(e) if isinstance(e, Failed) else f"bad answer: {e!r}"))
            sess.close()
            sess = None
            time.sleep(0.05)  # as a client would, before it tries again
        done += 1
        progress[index] = done
        if sess is not None and rng.randrange(HANGUP_EVERY) == 0:
            sess.close()  # a client hangs up and comes back, maybe on another path
            sess = None
            path_i = (path_i + 1) % len(PATHS)
    if sess is not None:
        sess.close()
    out.put(("done", index, answered, misrouted, lost, errors, lat))
