"""A legacy HTTP+SSE MCP server built with the official Python SDK, on $PORT.

mcpctl runs it as a `transport = "sse"` server on an inner port and proxies it.
"""

import os

from mcp.server.mcpserver import MCPServer

server = MCPServer("py-sse")


@server.tool()
def echo(text: str) -> str:
    """Returns its `text` argument."""
    return text


if __name__ == "__main__":
    server.run(transport="sse", host="127.0.0.1", port=int(os.environ["PORT"]))
