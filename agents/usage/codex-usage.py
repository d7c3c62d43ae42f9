#!/usr/bin/env python3
"""Runs `codex exec --json` and reports its usage to asynccode as it goes.

Codex prints one JSON event per line; after every finished turn this prints the usage so far:
    {"asynccode_usage": {"input_tokens": N, "output_tokens": N}}
so a task's `--budget` can stop Codex mid-run. At the end it prints Codex's last message (the pull
request's description).

In the ASYNCCODE_CONFIG file:
    codex:
      command: ["/opt/asynccode/agents/usage/codex-usage.py", "--full-auto"]
      costPerToken: 0.000005
      maxTokens: 2000000
Extra arguments go to `codex exec`. Set ASYNCCODE_CODEX to another program name or path if needed.
"""
import json
import os
import subprocess
import sys


def main() -> int:
    program = os.environ.get("ASYNCCODE_CODEX", "codex")
    prompt = sys.stdin.read()
    try:
        process = subprocess.Popen([program, "exec", "--json", *sys.argv[1:], "-"],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    except FileNotFoundError:
        print(f"codex-usage: {program} is not installed or not on PATH", file=sys.stderr)
        return 127
    process.stdin.write(prompt)
    process.stdin.close()
    tokens_in = tokens_out = 0
    last_message = ""
    for line in process.stdout:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict):
            continue
        item = event.get("item") or {}
        if event.get("type") == "item.completed" and item.get("type") == "agent_message":
            last_message = item.get("text") or last_message
        if event.get("type") == "turn.completed":
            usage = event.get("usage") or {}
            tokens_in += int(usage.get("input_tokens") or 0)
            tokens_out += int(usage.get("output_tokens") or 0)
            print(json.dumps({"asynccode_usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}), flush=True)
    code = process.wait()
    print(last_message)
    print(json.dumps({"asynccode_usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}))
    return code


if __name__ == "__main__":
    sys.exit(main())
