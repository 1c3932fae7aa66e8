"""Drives an endpoint with `discovery` on with the official MCP Python SDK (mcp 2.x).

    python discovery.py URL

Lists tools (the meta-tools and the `always` one), asks find_tools for b__whoami,
pulls it in with use_tools, waits for the endpoint's notifications/tools/list_changed,
lists again through the SDK's own (evicted) cache and calls the tool. Prints one JSON
object with what it saw; exits 0 only if every step gave the expected answer.
"""

import asyncio
import json
import sys

from mcp import types
from mcp.client import Client


async def main(url: str) -> int:
    seen = {}
    changed = asyncio.Event()

    async def on_message(message):
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with Client(url, mode="legacy", message_handler=on_message) as client:
        first = await client.list_tools()
        seen["first"] = sorted(t.name for t in first.tools)
        found = await client.call_tool("find_tools", {"query": "b__whoami", "limit": 3})
        text = found.content[0].text if found.content else ""
        lines = text.splitlines()[1:]
        seen["found_first"] = lines[0].split(" [")[0] if lines else None
        used = await client.call_tool("use_tools", {"names": ["b__whoami"]})
        seen["use_error"] = bool(used.is_error)
        try:
            await asyncio.wait_for(changed.wait(), 30)
            seen["list_changed"] = True
        except asyncio.TimeoutError:
            seen["list_changed"] = False
        after = await client.list_tools()
        seen["after"] = sorted(t.name for t in after.tools)
        called = await client.call_tool("b__whoami", {})
        seen["called"] = called.content[0].text if called.content else None
    seen["ok"] = (
        seen["first"] == ["a__echo", "find_tools", "use_tools"]
        and seen["found_first"] == "b__whoami"
        and not seen["use_error"]
        and seen["list_changed"]
        and "b__whoami" in seen["after"]
        and bool(seen["called"])
    )
    print(json.dumps(seen))
    return 0 if seen["ok"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1])))
