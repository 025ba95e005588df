"""A stand-in for the `claude` CLI that speaks real stream-json (tests install it on PATH).

The behaviour comes from markers in the prompt (read from stdin, as the executor
sends it), or from FAKE_CLAUDE_MODE:

  fake:success (default)   init, text, a tool call and its result, result/success, exit 0
  fake:is_error            result with is_error true (error_during_execution), exit 1
  fake:max_turns           result subtype error_max_turns, is_error true, exit 0
  fake:crash               init, then a message on stderr and exit 3, no result line
  fake:garbage             lines that are not JSON, exit 0, no result line
  fake:hang                init, a child `sleep` in the same process group, then sleeps forever
  fake:stubborn            like hang, but ignores SIGTERM (needs SIGKILL)
  fake:sleep=N             works N seconds (emitting a line every 0.2 s), then succeeds
  fake:write=PATH          on success, also writes PATH (relative to the cwd)
  fake:auth                not logged in, as claude 2.x says it: an assistant line with
                           error "authentication_failed", a result with subtype "success"
                           and is_error true, exit 1
  fake:mcp                 reads every --mcp-config, starts its `jetpack` server with the
                           MCP SDK's stdio client and calls `memory store` (a learning
                           naming the task), as a real agent would; fails if it cannot
  fake:mcp=progress        the same, calling `task progress` on its own task instead
                           (renews its claim, as the agent the server speaks for)

An option it does not know gets claude's own usage error (stderr, exit 1, no JSON).

FAKE_CLAUDE_LOG: append {"event": "start"|"done", "task": ..., "pid": ...} lines there.
FAKE_CLAUDE_PIDS: write the pids of this process and its child there (hang modes).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid


def expand(value):
    """``${VAR}`` and ``${VAR:-default}`` from our environment, as Claude Code expands them."""

    def one(match):
        name, default = match.group(1), match.group(2)
        if default is None:
            return os.environ.get(name, match.group(0))  # unset: left as written
        return os.environ.get(name) or default

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", one, value)


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(event):
    path = os.environ.get("FAKE_CLAUDE_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(
                json.dumps(
                    {
                        "event": event,
                        "task": os.environ.get("JETPACK_TASK_ID"),
                        "pid": os.getpid(),
                        "time": time.time(),
                    }
                )
                + "\n"
            )


def mcp_configs(args):
    """The values after --mcp-config (files or inline JSON), as Claude Code reads them."""
    out = []
    if "--mcp-config" in args:
        for value in args[args.index("--mcp-config") + 1 :]:
            if value.startswith("--"):
                break
            if value.lstrip().startswith("{"):
                text = value
            else:
                with open(value) as fh:
                    text = fh.read()
            out.append(json.loads(text))
    return out


def call_jetpack_tool(config, tool, arguments):
    """Start the config's `jetpack` server the way Claude Code does; call one tool."""
    import asyncio

    from mcp.client.client import Client
    from mcp.client.stdio import StdioServerParameters, stdio_client

    entry = config["mcpServers"]["jetpack"]
    params = StdioServerParameters(
        command=entry["command"],
        args=list(entry.get("args", [])),
        env={**os.environ, **{k: expand(v) for k, v in entry.get("env", {}).items()}},
    )

    async def run():
        async with Client(stdio_client(params, errlog=sys.stderr), mode="legacy") as client:
            result = await client.call_tool(tool, arguments)
        return result.is_error, "".join(getattr(b, "text", "") for b in result.content)

    return asyncio.run(run())


KNOWN_OPTIONS = {
    "-p", "--print", "--output-format", "--verbose", "--model", "--permission-mode",
    "--allowedTools", "--disallowedTools", "--max-turns", "--max-budget-usd", "--mcp-config",
    "--append-system-prompt", "--version",
}  # fmt: skip


def main():
    args = sys.argv[1:]
    if "--version" in args:
        print("9.9.9 (Fake Claude Code)")
        return 0
    unknown = [a for a in args if a.startswith("-") and a not in KNOWN_OPTIONS]
    if unknown:
        print(f"error: unknown option '{unknown[0]}'", file=sys.stderr)
        return 1
    if "-p" not in args and "--print" not in args:
        print("fake claude supports only -p", file=sys.stderr)
        return 2
    if "stream-json" in args and "--verbose" not in args:
        print(
            "Error: When using --print, --output-format=stream-json requires --verbose",
            file=sys.stderr,
        )
        return 1
    prompt = sys.stdin.read()
    # Only the task's own section counts: memories and errors quoted later in the
    # prompt may mention other tasks' markers.
    section = re.search(r"^## Task .*?(?=^## |\Z)", prompt, re.S | re.M)
    own = section.group(0) if section else prompt
    markers = dict(re.findall(r"fake:(\w+)(?:=([\w./-]+))?", own))
    mode = os.environ.get("FAKE_CLAUDE_MODE")
    if mode:
        markers.setdefault(mode, "")
    session = str(uuid.uuid4())
    log("start")
    emit(
        {
            "type": "system",
            "subtype": "init",
            "cwd": os.getcwd(),
            "session_id": session,
            "tools": ["Bash", "Edit", "Read", "Write"],
            "mcp_servers": [],
            "model": "claude-fake-1",
            "permissionMode": "acceptEdits",
            "apiKeySource": "none",
        }
    )
    if "auth" in markers:
        text = "Not logged in \u00b7 Please run /login"
        emit(
            {
                "type": "assistant",
                "message": {
                    "id": str(uuid.uuid4()),
                    "model": "<synthetic>",
                    "role": "assistant",
                    "type": "message",
                    "content": [{"type": "text", "text": text}],
                },
                "parent_tool_use_id": None,
                "session_id": session,
                "error": "authentication_failed",
            }
        )
        emit(
            {
                "type": "result",
                "subtype": "success",
                "is_error": True,
                "api_error_status": None,
                "duration_ms": 559,
                "duration_api_ms": 0,
                "num_turns": 1,
                "result": text,
                "session_id": session,
                "total_cost_usd": 0,
            }
        )
        return 1
    if "crash" in markers:
        print("Error: fake crash (ECONNRESET)", file=sys.stderr)
        return 3
    if "mcp" in markers:
        configs = [c for c in mcp_configs(args) if "jetpack" in c.get("mcpServers", {})]
        if not configs:
            print("Error: no jetpack MCP server configured", file=sys.stderr)
            return 4
        task_id = os.environ.get("JETPACK_TASK_ID")
        if markers["mcp"] == "progress":
            tool, arguments = "task", {"action": "progress", "id": task_id, "percent": 50}
        else:
            content = f"learned via MCP while on {task_id}"
            tool, arguments = "memory", {"action": "store", "content": content, "task": task_id}
        is_error, text = call_jetpack_tool(configs[0], tool, arguments)
        emit(
            {
                "type": "user",
                "session_id": session,
                "parent_tool_use_id": None,
                "message": {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_mcp", "content": text}
                    ],
                },
            }
        )
        if is_error:
            print(f"Error: jetpack tool failed: {text}", file=sys.stderr)
            return 5
    if "garbage" in markers:
        for line in ("<html>502 Bad Gateway</html>", "{not json", "[1, 2", "\x00\x01"):
            sys.stdout.write(line + "\n")
        sys.stdout.flush()
        return 0
    if "hang" in markers or "stubborn" in markers:
        if "stubborn" in markers:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "1000"])
        pids = os.environ.get("FAKE_CLAUDE_PIDS")
        if pids:
            with open(pids, "w") as fh:
                fh.write(f"{os.getpid()} {child.pid}\n")
        while True:
            time.sleep(1000)
    if "sleep" in markers:
        end = time.time() + float(markers["sleep"] or 1)
        while time.time() < end:
            emit(
                {
                    "type": "assistant",
                    "session_id": session,
                    "parent_tool_use_id": None,
                    "message": {
                        "role": "assistant",
                        "content": [{"type": "text", "text": "working..."}],
                    },
                }
            )
            time.sleep(0.2)
    tool_id = "toolu_" + uuid.uuid4().hex[:12]
    emit(
        {
            "type": "assistant",
            "session_id": session,
            "parent_tool_use_id": None,
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-fake-1",
                "content": [
                    {"type": "text", "text": "I will make the change."},
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "Edit",
                        "input": {"file_path": "src/app.py", "old_string": "a", "new_string": "b"},
                    },
                ],
                "usage": {"input_tokens": 10, "output_tokens": 5},
            },
        }
    )
    emit(
        {
            "type": "user",
            "session_id": session,
            "parent_tool_use_id": None,
            "message": {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "edited"}],
            },
        }
    )
    emit({"type": "stream_event_unknown", "session_id": session, "detail": "kept as raw"})
    if "is_error" in markers:
        emit(
            {
                "type": "result",
                "subtype": "error_during_execution",
                "is_error": True,
                "duration_ms": 12,
                "duration_api_ms": 10,
                "num_turns": 1,
                "result": "API Error: overloaded",
                "session_id": session,
                "total_cost_usd": 0.001,
            }
        )
        return 1
    if "max_turns" in markers:
        emit(
            {
                "type": "result",
                "subtype": "error_max_turns",
                "is_error": True,
                "duration_ms": 12,
                "duration_api_ms": 10,
                "num_turns": 3,
                "session_id": session,
                "total_cost_usd": 0.002,
            }
        )
        return 0
    if markers.get("write"):
        target = os.path.join(os.getcwd(), markers["write"])
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        with open(target, "w") as fh:
            fh.write(f"written for {os.environ.get('JETPACK_TASK_ID')}\n")
    emit(
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "duration_ms": 25,
            "duration_api_ms": 20,
            "num_turns": 2,
            "result": "Changed src/app.py; tests pass.",
            "session_id": session,
            "total_cost_usd": 0.0123,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }
    )
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
