"""Drives `mcpctl connect NAME` with the official MCP Python SDK's stdio client (mcp 2.x).

    python stdio_client.py MODE CLIENTS COMMAND [ARGS...]

Launches COMMAND ARGS CLIENTS times (each its own stdio bridge process) and, while
every client is connected, has each list tools, call `echo`, `whoami` (the pid of the
server process that answered) and `confirm` (the server asks its client to confirm:
an elicitation for legacy, input_required for modern). XDG_CONFIG_HOME and
MCPCTL_IDENTITY are passed on (the SDK gives its servers only a few variables).
Prints one JSON object; exits 0 only if every client got the expected answers.
"""

import asyncio
import json
import os
import sys
from contextlib import AsyncExitStack

from mcp import types
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters


async def confirm(_context, params):
    return types.ElicitResult(action="accept", content={"yes": True, "asked": params.message})


async def main(mode: str, clients: int, command: list[str]) -> int:
    env = {k: os.environ[k] for k in ("XDG_CONFIG_HOME", "MCPCTL_IDENTITY") if k in os.environ}
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    seen = {"mode": mode, "clients": []}
    async with AsyncExitStack() as stack:
        opened = [
            await stack.enter_async_context(Client(params, mode=mode, elicitation_callback=confirm))
            for _ in range(clients)
        ]
        for i, client in enumerate(opened):
            one = {"protocol_version": client.session.protocol_version}
            tools = await client.list_tools()
            one["tools"] = sorted(t.name for t in tools.tools)
            echoed = await client.call_tool("echo", {"text": f"stdio {mode} {i}"})
            one["echo"] = echoed.content[0].text if echoed.content else None
            who = await client.call_tool("whoami", {})
            one["whoami"] = who.content[0].text if who.content else None
            confirmed = await client.call_tool("confirm", {"text": "it"})
            one["confirm"] = confirmed.content[0].text if confirmed.content else None
            one["ok"] = (
                "echo" in one["tools"]
                and one["echo"] == f"stdio {mode} {i}"
                and one["confirm"] is not None
                and one["confirm"].startswith("accept ")
            )
            seen["clients"].append(one)
    ok = len(seen["clients"]) == clients and all(c["ok"] for c in seen["clients"])
    seen["ok"] = ok
    print(json.dumps(seen))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:])))
