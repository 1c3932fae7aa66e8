"""Drives mcpctl's gateway with the official MCP Python SDK (mcp 2.x).

    python client.py URL MODE        MODE: 2026-07-28 | legacy | auto

With MCPCTL_TEST_BEARER set, every request carries it as `Authorization: Bearer`.

Lists tools, calls `echo`, then calls `confirm`, whose server asks the client to
confirm (an elicitation: a server request for legacy, input_required for modern).
Prints one JSON object with what it saw; exits 0 only if every step gave the
expected answer.
"""

import asyncio
import json
import os
import sys

from mcp import types
from mcp.client import Client


async def confirm(_context, params):
    return types.ElicitResult(action="accept", content={"yes": True, "asked": params.message})


async def main(url: str, mode: str) -> int:
    seen = {"mode": mode}
    server = url
    bearer = os.environ.get("MCPCTL_TEST_BEARER")
    if bearer:
        import httpx2
        from mcp.client.streamable_http import streamable_http_client

        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {bearer}"})
        server = streamable_http_client(url, http_client=http)
    async with Client(server, mode=mode, elicitation_callback=confirm) as client:
        seen["protocol_version"] = client.session.protocol_version
        tools = await client.list_tools()
        seen["tools"] = sorted(t.name for t in tools.tools)
        echoed = await client.call_tool("echo", {"text": f"sdk {mode}"})
        seen["echo"] = echoed.content[0].text if echoed.content else None
        confirmed = await client.call_tool("confirm", {"text": "it"})
        seen["confirm"] = confirmed.content[0].text if confirmed.content else None
        seen["confirm_error"] = bool(confirmed.is_error)
    ok = (
        "echo" in seen["tools"]
        and seen["echo"] == f"sdk {mode}"
        and seen["confirm"] is not None
        and seen["confirm"].startswith("accept ")
        and '"yes":true' in seen["confirm"].replace(" ", "")
    )
    seen["ok"] = ok
    print(json.dumps(seen))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
