#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The differential tier's Python decoder: the standard library's json, as the MCP Python SDK's
servers are fed (Debian's python3, standard library only).

    /usr/bin/python3 tests/diff/py_ref.py < cases.jsonl > seen.jsonl

In: {"id", "plane": "stdio" | "http", "data": BASE64} lines; out: {"id", "calls": [NAME...]}.
stdio: the SDK's stdio_server wraps stdin in a TextIOWrapper (UTF-8, errors replaced) with
universal newlines, so a bare CR ends a line as LF and CRLF do, and a last line without a newline
is read too; each line goes to json.loads (NaN, Infinity and lone surrogates accepted, the last of
duplicate keys wins). HTTP: requests framed as h11 frames them (uvicorn's default parser; a model
with its rules, not h11 itself: a request line of a token method, lines ending in CRLF or LF,
Content-Length or chunked bodies), the SDK's Streamable HTTP transport takes the body as bytes and calls
json.loads on them, which detects UTF-16 and UTF-32 and a UTF-8 BOM by itself; the content type
must name application/json (split on ';' then ','), the Accept header both application/json and
text/event-stream. The message is then classified as the SDK's pydantic models do: a request has
"jsonrpc": "2.0", a string or integer id and a string method (extra keys allowed); a tools/call
request's params need a string name and, if present, an object of arguments. A batch is not a
message for v1 servers.
"""
import base64
import io
import json
import re
import sys

MAX_BODY = 4 * 1024 * 1024
# h11's request line (uvicorn's default parser): a token, a target, the version
REQUEST_LINE = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+) ([\x21-\x7e]+) HTTP/1\.[01]")


def is_int(v):
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, float) and v == v and v not in (float("inf"), float("-inf"))
        and v.is_integer())


def call_of(msg):
    """The tool a server runs for one decoded message, or None."""
    if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
        return None
    ident, method = msg.get("id"), msg.get("method")
    if not isinstance(method, str) or not (isinstance(ident, str) or is_int(ident)):
        return None  # not a request (a notification or a response runs no tool)
    if method != "tools/call":
        return None
    params = msg.get("params")
    if not isinstance(params, dict) or not isinstance(params.get("name"), str):
        return None
    args = params.get("arguments")
    if args is not None and not isinstance(args, dict):
        return None
    return params["name"]


def loads(data):
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        return None


def stdio_calls(data):
    calls = []
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace")
    for line in text:
        name = call_of(loads(line))
        if name is not None:
            calls.append(name)
    return calls


def read_line(buf, pos):
    end = buf.find(b"\n", pos)
    if end < 0:
        return None, len(buf)
    return buf[pos:end].rstrip(b"\r"), end + 1


def http_calls(data):
    """Pipelined HTTP/1.1 requests, as an ASGI server hands each body to the SDK."""
    calls, pos = [], 0
    while pos < len(data):
        line, pos = read_line(data, pos)
        m = REQUEST_LINE.fullmatch(line) if line is not None else None
        if not m:
            break  # a server answers 400 and closes
        headers = {}
        while True:
            h, pos = read_line(data, pos)
            if h is None:
                return calls
            if not h:
                break
            if b":" not in h:
                return calls
            k, v = h.split(b":", 1)
            k = k.strip().lower().decode("latin-1")
            if k in headers and k in ("content-length", "content-type"):
                return calls  # servers refuse such requests
            headers[k] = v.strip().decode("latin-1")
        if "transfer-encoding" in headers:
            body, pos = chunked(data, pos)
            if body is None:
                return calls
        else:
            try:
                n = int(headers.get("content-length", "0"))
            except ValueError:
                return calls
            if n < 0 or pos + n > len(data):
                return calls
            body, pos = data[pos:pos + n], pos + n
        if m.group(1) != b"POST":
            continue  # the SDK reads messages from POSTs only (methods are case-sensitive)
        ctype = headers.get("content-type", "")
        parts = [p.strip() for p in ctype.split(";")[0].split(",")]
        accept = [a.strip() for a in headers.get("accept", "").split(",")]
        if "application/json" not in parts:
            continue
        if not any(a.startswith("application/json") for a in accept) or \
                not any(a.startswith("text/event-stream") for a in accept):
            continue
        if len(body) > MAX_BODY:
            continue
        name = call_of(loads(body))
        if name is not None:
            calls.append(name)
    return calls


def chunked(data, pos):
    body = b""
    while True:
        line, pos = read_line(data, pos)
        if line is None:
            return None, pos
        try:
            size = int(line.split(b";")[0], 16)
        except ValueError:
            return None, pos
        if size == 0:
            while True:
                t, pos = read_line(data, pos)
                if t is None:
                    return None, pos
                if not t:
                    return body, pos
        if pos + size + 2 > len(data):
            return None, pos
        body += data[pos:pos + size]
        pos += size + 2


def main():
    out = sys.stdout
    for line in sys.stdin:
        if not line.strip():
            continue
        c = json.loads(line)
        data = base64.b64decode(c["data"])
        calls = stdio_calls(data) if c["plane"] == "stdio" else http_calls(data)
        out.write(json.dumps({"id": c["id"], "calls": calls}) + "\n")


if __name__ == "__main__":
    main()
