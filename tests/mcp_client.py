"""A real MCP client (the official Python SDK) for tests/mcp.rs.

Usage: mcp_client.py CALLS.json COMMAND [ARG...]

Starts COMMAND as an MCP server over stdio, initializes, lists the tools,
calls each tool that CALLS.json lists ([{"name": ..., "arguments": {...}}])
in order, and prints one JSON object per line for each step, flushed, so a
test can follow along while a call (`ask`) blocks.
"""

import asyncio
import json
import os
import sys

try:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client
except ImportError as e:
    sys.exit(f"the Python MCP SDK is missing ({e}): `pip install mcp` (.ci/run installs it)")


def emit(obj):
    print(json.dumps(obj), flush=True)


async def main():
    calls_path, command, *args = sys.argv[1:]
    with open(calls_path) as f:
        calls = json.load(f)
    # The SDK passes a bare environment unless told; a task's server needs
    # the task's (TT_TASK_ID, REDIS_URL, ...), as agent CLIs give it.
    params = StdioServerParameters(command=command, args=args, env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            emit({"initialized": init.server_info.name, "protocol": init.protocol_version})
            tools = await session.list_tools()
            emit({
                "tools": [
                    {"name": t.name, "description": t.description, "schema": t.input_schema}
                    for t in tools.tools
                ]
            })
            for call in calls:
                r = await session.call_tool(call["name"], call.get("arguments", {}))
                text = "\n".join(c.text for c in r.content if getattr(c, "type", "") == "text")
                emit({
                    "tool": call["name"],
                    "is_error": bool(r.is_error),
                    "text": text,
                    "structured": r.structured_content,
                })
    emit({"done": True})


asyncio.run(main())
