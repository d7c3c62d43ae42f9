#!/usr/bin/env python3
"""Runs Claude Code in print mode with JSON output and reports its usage to asynccode.

Prints the agent's final text (the pull request's description), then the usage line asynccode reads:
    {"asynccode_usage": {"input_tokens": N, "output_tokens": N}}
Input tokens include the cache reads and writes Claude Code reports.

In the ASYNCCODE_CONFIG file:
    claude:
      command: ["/opt/asynccode/agents/usage/claude-usage.py", "--permission-mode", "acceptEdits"]
      costPerToken: 0.00001
      maxTokens: 2000000
Extra arguments go to `claude`. Set ASYNCCODE_CLAUDE to another program name or path if needed.
"""
import json
import os
import subprocess
import sys


def main() -> int:
    program = os.environ.get("ASYNCCODE_CLAUDE", "claude")
    prompt = sys.stdin.read()
    try:
        done = subprocess.run([program, "-p", "--output-format", "json", *sys.argv[1:]],
                              input=prompt, capture_output=True, text=True)
    except FileNotFoundError:
        print(f"claude-usage: {program} is not installed or not on PATH", file=sys.stderr)
        return 127
    sys.stderr.write(done.stderr)
    try:
        result = json.loads(done.stdout)
    except ValueError:
        sys.stdout.write(done.stdout)
        return done.returncode
    if not isinstance(result, dict):
        sys.stdout.write(done.stdout)
        return done.returncode
    print(result.get("result") or "")
    usage = result.get("usage") or {}
    tokens_in = sum(int(usage.get(key) or 0) for key in
                    ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"))
    tokens_out = int(usage.get("output_tokens") or 0)
    print(json.dumps({"asynccode_usage": {"input_tokens": tokens_in, "output_tokens": tokens_out}}))
    if result.get("is_error"):
        return done.returncode or 1
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
