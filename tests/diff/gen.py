#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The differential tier's generated corpus: variants of each attack class on the bytes of a
tools/call, written deterministically (same input, same cases, same order).

A case is a dict {"id", "class", "plane", "data"}: plane "stdio" is the bytes a client writes to
a server's stdin, plane "http" the bytes it sends on one TCP connection. Most variants are one
JSON-RPC message and become a case of each plane (a line; a POST with a plain head); the
HTTP-only classes vary the head. The tool a policy would deny is "get-env"; the hostile variants
try to make mcpfence read "echo" (or nothing, or no call) where a server reads "get-env".

    /usr/bin/python3 tests/diff/gen.py [--count]      # the cases as JSON lines, or per class
"""
import base64
import gzip
import json
import sys
import zlib

DENIED, ALLOWED = "get-env", "echo"
ACCEPT = b"application/json, text/event-stream"


def js(v):
    """Compact JSON of a Python value, as bytes (non-ASCII kept as UTF-8)."""
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


def obj(*pairs):
    """An object from (key, value) pairs: keys are written as given (raw JSON string content,
    escapes allowed), values are raw JSON bytes. Duplicates and any order are possible."""
    out = []
    for k, v in pairs:
        k = k.encode() if isinstance(k, str) else k
        out.append(b'"' + k + b'":' + v)
    return b"{" + b",".join(out) + b"}"


def params(name=DENIED, args=b'{"message":"hi"}', extra=()):
    pairs = [("name", js(name))]
    if args is not None:
        pairs.append(("arguments", args))
    return obj(*pairs, *extra)


def call(name=DENIED, ident=b"1", method=b'"tools/call"', par=None, extra=(), before=()):
    par = params(name) if par is None else par
    return obj(*before, ("jsonrpc", b'"2.0"'), ("id", ident), ("method", method),
               ("params", par), *extra)


def head(body, ctype=b"application/json", extra=b"", path=b"/mcp", cl=None, accept=ACCEPT):
    h = b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if ctype is not None:
        h += b"Content-Type: " + ctype + b"\r\n"
    if accept is not None:
        h += b"Accept: " + accept + b"\r\n"
    h += extra
    h += b"Content-Length: " + str(len(body) if cl is None else cl).encode() + b"\r\n\r\n"
    return h


def post(body, **kw):
    return head(body, **kw) + body


class Corpus:
    def __init__(self):
        self.cases = []
        self.seen = set()

    def add(self, cls, name, plane, data):
        cid = "%s/%s/%s" % (cls, name, plane)
        if cid in self.seen:
            raise SystemExit("gen.py: two cases named " + cid)
        self.seen.add(cid)
        self.cases.append({"id": cid, "class": cls, "plane": plane, "data": data})

    def msg(self, cls, name, body, planes=("stdio", "http")):
        """One message (or batch) body: a line on stdio, a POST body on HTTP."""
        if "stdio" in planes:
            self.add(cls, name, "stdio", body + b"\n")
        if "http" in planes:
            self.add(cls, name, "http", post(body))


# --- key spellings ---------------------------------------------------------------------------

def spellings(key):
    """Spellings of key that some server's key matching takes for it, and escaped exact ones."""
    out = {}
    out["upper"] = key.upper()
    out["title"] = key[:1].upper() + key[1:]
    out["alt"] = "".join(c.upper() if i % 2 else c for i, c in enumerate(key))
    out["last-upper"] = key[:-1] + key[-1].upper()
    for letter, sub, tag in (("s", "\u017f", "long-s"), ("k", "\u212a", "kelvin"),
                             ("i", "\u0131", "dotless-i"), ("i", "\u0130", "dotted-I"),
                             ("S", "\u017f", "long-s-up")):
        if letter in key:
            out[tag] = key.replace(letter, sub, 1)
    out["esc-upper"] = "\\u%04X" % ord(key[0].upper()) + key[1:]
    out["esc-mid-upper"] = key[:1] + "\\u%04X" % ord(key[1].upper()) + key[2:]
    out["esc-fold"] = key[:-1] + ("\\u017f" if key[-1] == "s" else "\\u%04x" % ord(key[-1].upper()))
    return out


def escaped(key):
    """The same key with escapes: servers decode them before matching."""
    return {"esc-first": "\\u%04x" % ord(key[0]) + key[1:],
            "esc-all": "".join("\\u%04x" % ord(c) for c in key),
            "esc-last": key[:-1] + "\\u%04X" % ord(key[-1])}


def gen_fold(c):
    """Keys that differ by case or by a fold some server's matching makes."""
    for key, real, hostile, where in (
            ("name", js(ALLOWED), js(DENIED), "params"),
            ("arguments", b'{"message":"hi"}', b'{"message":"other"}', "params"),
            ("method", b'"tools/list"', b'"tools/call"', "msg"),
            ("params", params(ALLOWED), params(DENIED), "msg"),
            ("id", b"1", b"null", "msg"),
            ("jsonrpc", b'"2.0"', b'"2.0"', "msg"),
            ("result", None, b"{}", "msg"),
            ("error", None, b'{"code":1,"message":"x"}', "msg")):
        for tag, spelled in sorted(spellings(key).items()):
            for place in ("alone", "before", "after"):
                if real is None and place != "alone":
                    continue
                if where == "params":
                    other = [("arguments", b'{"message":"hi"}')] if key == "name" else \
                        [("name", js(ALLOWED))]
                    pairs = other + [(key, real)]
                else:
                    core = {"jsonrpc": b'"2.0"', "id": b"1", "method": b'"tools/call"',
                            "params": params(DENIED)}
                    if real is not None:
                        core[key] = real
                    pairs = list(core.items())
                if place == "alone":
                    pairs = [p for p in pairs if p[0] != key] + [(spelled, hostile)]
                elif place == "before":
                    pairs = [(spelled, hostile)] + pairs
                else:
                    pairs = pairs + [(spelled, hostile)]
                body = obj(*pairs)
                if where == "params":
                    body = call(par=body)
                c.msg("fold", "%s-%s-%s" % (key, tag, place), body)
    # folded keys where no server matches them: inside arguments, deeper objects
    for tag, spelled in sorted(spellings("name").items()):
        c.msg("fold", "in-arguments-" + tag,
              call(par=params(ALLOWED, args=obj((spelled, js(DENIED))))))
        c.msg("fold", "in-meta-" + tag,
              call(par=params(ALLOWED, extra=(("_meta", obj((spelled, js(DENIED)))),))))
    # the Kelvin sign folds to k for Go: no key that matters has a k, but params may hold some
    for key in ("task", "_meta"):
        for tag, spelled in sorted(spellings(key).items()):
            c.msg("fold", "params-%s-%s" % (key.strip("_"), tag),
                  call(par=params(DENIED, extra=((spelled, b"{}"),))))
    # a folded key in one element of a batch
    c.msg("fold", "batch-element", b"[" + call(ALLOWED) + b"," +
          call(par=obj(("name", js(ALLOWED)), ("NAME", js(DENIED))), ident=b"2") + b"]")


def gen_dup(c):
    """Duplicate keys, in every position and spelling: servers take the last one (Go merges
    objects that repeat)."""
    for key in ("name",):
        for tag, spelled in [("plain", key)] + sorted(escaped(key).items()):
            c.msg("dup", "name-%s-last-denied" % tag,
                  call(par=obj(("name", js(ALLOWED)), ("arguments", b"{}"), (spelled, js(DENIED)))))
            c.msg("dup", "name-%s-first-denied" % tag,
                  call(par=obj((spelled, js(DENIED)), ("arguments", b"{}"), ("name", js(ALLOWED)))))
            c.msg("dup", "name-%s-null-last" % tag,
                  call(par=obj(("name", js(DENIED)), (spelled, b"null"))))
            c.msg("dup", "name-%s-number-last" % tag,
                  call(par=obj(("name", js(DENIED)), (spelled, b"1"))))
    for tag, spelled in [("plain", "method")] + sorted(escaped("method").items()):
        c.msg("dup", "method-%s-list-then-call" % tag,
              obj(("jsonrpc", b'"2.0"'), ("id", b"1"), ("method", b'"tools/list"'),
                  ("params", params(DENIED)), (spelled, b'"tools/call"')))
        c.msg("dup", "method-%s-call-then-list" % tag,
              obj(("jsonrpc", b'"2.0"'), ("id", b"1"), (spelled, b'"tools/call"'),
                  ("params", params(DENIED)), ("method", b'"tools/list"')))
    for tag, spelled in [("plain", "params")] + sorted(escaped("params").items()):
        c.msg("dup", "params-%s-object-object" % tag,
              call(par=params(ALLOWED), extra=((spelled, params(DENIED)),)))
        c.msg("dup", "params-%s-merge" % tag,
              call(par=obj(("name", js(DENIED))), extra=((spelled, obj(("arguments", b"{}"))),)))
        c.msg("dup", "params-%s-then-null" % tag,
              call(par=params(DENIED), extra=((spelled, b"null"),)))
        c.msg("dup", "params-%s-scalar-first" % tag,
              obj(("jsonrpc", b'"2.0"'), ("id", b"1"), ("method", b'"tools/call"'),
                  (spelled, b'"x"'), ("params", params(DENIED))))
        c.msg("dup", "params-%s-array-last" % tag,
              call(par=params(DENIED), extra=((spelled, b'["echo"]'),)))
    for tag, spelled in [("plain", "id")] + sorted(escaped("id").items()):
        c.msg("dup", "id-%s" % tag, call(extra=((spelled, b"2"),)))
        c.msg("dup", "id-%s-null-last" % tag, call(extra=((spelled, b"null"),)))
    for tag, spelled in [("plain", "jsonrpc")] + sorted(escaped("jsonrpc").items()):
        c.msg("dup", "jsonrpc-%s" % tag, call(extra=((spelled, b'"1.0"'),)))
    c.msg("dup", "result-twice", obj(("jsonrpc", b'"2.0"'), ("id", b"1"), ("result", b"{}"),
                                    ("result", b"{}")))
    c.msg("dup", "in-arguments", call(par=params(ALLOWED, args=b'{"a":1,"a":2}')))
    c.msg("dup", "in-meta", call(par=params(ALLOWED, extra=(("_meta", b'{"k":1,"k":2}'),))))
    c.msg("dup", "batch-element",
          b"[" + call(ALLOWED) + b"," + call(par=obj(("name", js(ALLOWED)), ("name", js(DENIED))),
                                             ident=b"2") + b"]")


def gen_escape(c):
    """Escapes servers decode: \\/ and \\u in methods, names, keys and values."""
    methods = {"slash": b'"tools\\/call"', "u-slash": b'"tools\\u002fcall"',
               "u-all": b'"' + b"".join(b"\\u%04x" % ord(ch) for ch in "tools/call") + b'"',
               "u-upper": b'"tools\\u002Fcall"', "u-t": b'"\\u0074ools/call"'}
    for tag, m in sorted(methods.items()):
        c.msg("escape", "method-" + tag, call(method=m))
    names = {"u-dash": b'"get\\u002denv"', "u-g": b'"\\u0067et-env"',
             "u-all": b'"' + b"".join(b"\\u%04x" % ord(ch) for ch in DENIED) + b'"',
             "slash": b'"get\\/env"', "quote": b'"get\\"env"', "backslash": b'"get\\\\env"',
             "pair": b'"get-env\\ud83d\\ude00"', "nbsp": b'"get-env\\u00a0"',
             "tab": b'"get-env\\t"', "ls": b'"get-env\\u2028"'}
    for tag, n in sorted(names.items()):
        c.msg("escape", "name-" + tag, call(par=obj(("name", n), ("arguments", b"{}"))))
    keys = {"name": "n\\u0061me", "params": "p\\u0061rams", "method": "m\\u0065thod",
            "arguments": "\\u0061rguments"}
    for key, spelled in sorted(keys.items()):
        body = call()
        body = body.replace(b'"' + key.encode() + b'":', b'"' + spelled.encode() + b'":', 1)
        c.msg("escape", "key-" + key, body)
    c.msg("escape", "escaped-quote-in-arguments",
          call(ALLOWED, par=params(ALLOWED, args=b'{"x":"\\",\\"name\\":\\"get-env"}')))
    c.msg("escape", "backslash-before-quote",
          call(par=params(ALLOWED, args=b'{"x":"\\\\","name":"get-env"}')))


def gen_shape(c):
    """Messages whose shape servers read otherwise than a naive reader."""
    c.msg("shape", "name-in-arguments", call(par=params(ALLOWED, args=obj(("name", js(DENIED))))))
    c.msg("shape", "name-only-in-arguments",
          call(par=obj(("arguments", obj(("name", js(DENIED)))))))
    c.msg("shape", "params-in-params", call(par=params(ALLOWED, extra=(("params", params(DENIED)),))))
    c.msg("shape", "method-in-params", obj(("jsonrpc", b'"2.0"'), ("id", b"1"), ("method", b'"tools/list"'),
                                          ("params", obj(("method", b'"tools/call"'),
                                                         ("name", js(DENIED))))))
    c.msg("shape", "method-and-result", call(extra=(("result", b"{}"),)))
    c.msg("shape", "method-and-null-result", call(extra=(("result", b"null"),)))
    c.msg("shape", "method-and-error", call(extra=(("error", b'{"code":1,"message":"x"}'),)))
    c.msg("shape", "result-before-method", call(before=(("result", b"{}"),)))
    c.msg("shape", "params-array", call(par=js([DENIED])))
    c.msg("shape", "params-string", call(par=js(DENIED)))
    c.msg("shape", "params-null", call(par=b"null"))
    for tag, v in (("number", b"1"), ("null", b"null"), ("object", b'{"a":"get-env"}'),
                   ("array", b'["get-env"]'), ("true", b"true"), ("empty", b'""')):
        c.msg("shape", "name-" + tag, call(par=obj(("name", v))))
    for tag, v in (("null", b"null"), ("float", b"1.0"), ("exp", b"1e0"), ("neg-zero", b"-0"),
                   ("object", b"{}"), ("array", b"[1]"), ("true", b"true"),
                   ("big", b"123456789012345678901234567890"), ("string", b'"x"'),
                   ("string-lt", b'"<a>"'), ("string-esc", b'"\\u0041"')):
        c.msg("shape", "id-" + tag, call(ident=v))
    c.msg("shape", "no-id", obj(("jsonrpc", b'"2.0"'), ("method", b'"tools/call"'),
                                ("params", params(DENIED))))
    c.msg("shape", "no-jsonrpc", obj(("id", b"1"), ("method", b'"tools/call"'),
                                     ("params", params(DENIED))))
    c.msg("shape", "jsonrpc-1", call(extra=()).replace(b'"2.0"', b'"1.0"', 1))
    c.msg("shape", "jsonrpc-number", call(extra=()).replace(b'"2.0"', b"2.0", 1))
    c.msg("shape", "method-number", call(method=b"1"))
    c.msg("shape", "method-case", call(method=b'"TOOLS/CALL"'))
    c.msg("shape", "method-space", call(method=b'"tools/call "'))
    c.msg("shape", "method-nul", call(method=b'"tools/call\\u0000"'))
    c.msg("shape", "name-nul", call(par=obj(("name", b'"get-env\\u0000"'))))
    c.msg("shape", "name-long", call(par=obj(("name", js("g" * 200)))))
    c.msg("shape", "method-long", call(method=js("tools/call" + "x" * 60)))
    c.msg("shape", "top-string", js("tools/call"))
    c.msg("shape", "top-number", b"1")
    c.msg("shape", "top-null", b"null")
    c.msg("shape", "empty-object", b"{}")
    c.msg("shape", "arguments-array", call(par=params(DENIED, args=b"[1]")))
    c.msg("shape", "arguments-string", call(par=params(DENIED, args=b'"x"')))
    c.msg("shape", "meta-string", call(par=params(DENIED, extra=(("_meta", b'"x"'),))))
    c.msg("shape", "task", call(par=params(DENIED, extra=(("task", b'{"ttl":1}'),))))
    c.msg("shape", "proto", call(par=params(ALLOWED, extra=(("__proto__", obj(("name", js(DENIED)))),))))
    c.msg("shape", "proto-only", call(par=obj(("__proto__", obj(("name", js(DENIED)))))))
    c.msg("shape", "constructor", call(par=obj(("constructor", obj(("name", js(DENIED)))))))
    c.msg("shape", "notification-call", obj(("jsonrpc", b'"2.0"'), ("method", b'"tools/call"'),
                                            ("params", params(DENIED))))
    c.msg("shape", "response-with-params", obj(("jsonrpc", b'"2.0"'), ("id", b"1"),
                                               ("result", b"{}"), ("params", params(DENIED))))
    c.msg("shape", "other-method", call(method=b'"prompts/get"'))
    c.msg("shape", "list-with-name", call(method=b'"tools/list"'))


def gen_batch(c):
    a, d = call(ALLOWED), call(DENIED, ident=b"2")
    for tag, body in (
            ("two", b"[" + a + b"," + d + b"]"),
            ("denied-last", b"[" + a + b"," + a.replace(b'"id":1', b'"id":3') + b"," + d + b"]"),
            ("one", b"[" + d + b"]"),
            ("nested", b"[[" + d + b"]]"),
            ("nested-second", b"[" + a + b",[" + d + b"]]"),
            ("empty", b"[]"),
            ("number-element", b"[1," + d + b"]"),
            ("string-element", b'["x",' + d + b"]"),
            ("null-element", b"[null," + d + b"]"),
            ("response-and-call", b'[{"jsonrpc":"2.0","id":9,"result":{}},' + d + b"]"),
            ("notification-call", b'[{"jsonrpc":"2.0","method":"tools/call","params":' +
             params(DENIED) + b"}]"),
            ("nine", b"[" + b",".join([a] * 8 + [d]) + b"]"),
            ("trailing-comma", b"[" + a + b"," + d + b",]"),
            ("in-arguments", call(ALLOWED, par=params(ALLOWED, args=b"[" + d + b"]"))),
            ("spaces", b"[ " + a + b" , " + d + b" ]"),
            ("newline-inside", b"[" + a + b",\n" + d + b"]")):
        c.msg("batch", tag, body)


def gen_whitespace(c):
    """Whitespace, line ends and framing of lines: where a line ends is parser-dependent."""
    a, d = call(ALLOWED), call(DENIED, ident=b"2")
    spaced = d.replace(b'":', b'": ').replace(b",", b", ")
    for tag, data in (
            ("crlf", d + b"\r\n"),
            ("cr-cr-lf", d + b"\r\r\n"),
            ("bare-cr-between-tokens", d.replace(b'"params"', b'\r"params"') + b"\n"),
            ("bare-cr-then-call", a + b"\r" + d + b"\n"),
            ("bare-cr-line-end", a + b"\r"),
            ("cr-only-lines", a + b"\r" + d + b"\r"),
            ("two-on-a-line", a + d + b"\n"),
            ("two-on-a-line-space", a + b" " + d + b"\n"),
            ("split-across-lines", d.replace(b'"params"', b'\n"params"') + b"\n"),
            ("split-call-in-second", a[:-1] + b",\n" + d + b"\n"),
            ("leading-spaces", b"   \t" + d + b"\n"),
            ("trailing-spaces", d + b" \t \n"),
            ("spaced-tokens", spaced + b"\n"),
            ("tabs", d.replace(b",", b",\t") + b"\n"),
            ("form-feed", d.replace(b",", b",\f", 1) + b"\n"),
            ("vertical-tab", d.replace(b",", b",\v", 1) + b"\n"),
            ("nbsp", d.replace(b",", b",\xc2\xa0", 1) + b"\n"),
            ("line-sep", d.replace(b",", b",\xe2\x80\xa8", 1) + b"\n"),
            ("nel", d.replace(b",", b",\xc2\x85", 1) + b"\n"),
            ("nul-after", d + b"\x00\n"),
            ("nul-before", b"\x00" + d + b"\n"),
            ("blank-lines", b"\n\n\r\n" + d + b"\n\n"),
            ("no-newline-at-end", d),
            ("allowed-then-denied", a + b"\n" + d + b"\n"),
            ("cr-in-string", d.replace(b'"hi"', b'"h\ri"') + b"\n"),
            ("escaped-cr-in-string", d.replace(b'"hi"', b'"h\\ri"') + b"\n")):
        c.add("whitespace", tag, "stdio", data)
    for tag, body in (("crlf-inside", d.replace(b",", b",\r\n")),
                      ("bare-cr-inside", d.replace(b",", b",\r")),
                      ("leading-ws", b" \r\n\t" + d), ("trailing-ws", d + b"\r\n \t"),
                      ("trailing-value", d + b" " + a), ("two-values", a + d),
                      ("trailing-nul", d + b"\x00"), ("form-feed", d.replace(b",", b",\f", 1))):
        c.add("whitespace", tag, "http", post(body))


def gen_bom(c):
    d = call(DENIED)
    for tag, data in (("utf8", b"\xef\xbb\xbf" + d), ("utf8-twice", b"\xef\xbb\xbf\xef\xbb\xbf" + d),
                      ("utf16le", b"\xff\xfe" + d.decode().encode("utf-16-le")),
                      ("utf16be", b"\xfe\xff" + d.decode().encode("utf-16-be")),
                      ("utf16le-nobom", d.decode().encode("utf-16-le")),
                      ("utf32le-nobom", d.decode().encode("utf-32-le")),
                      ("in-the-middle", d[:1] + b"\xef\xbb\xbf" + d[1:]),
                      ("after-value", d + b"\xef\xbb\xbf")):
        c.msg("bom", tag, data)
    c.add("bom", "second-line", "stdio", call(ALLOWED) + b"\n\xef\xbb\xbf" + d + b"\n")


def gen_number(c):
    for tag, v in (("nan", b"NaN"), ("inf", b"Infinity"), ("neg-inf", b"-Infinity"),
                   ("big-exp", b"1e400"), ("tiny", b"1e-400"), ("big-int", b"9" * 40),
                   ("neg-zero", b"-0"), ("leading-zero", b"01"), ("plus", b"+1"),
                   ("hex", b"0x10"), ("dot", b".5"), ("trailing-dot", b"1."),
                   ("2^53+1", b"9007199254740993")):
        c.msg("number", "arg-" + tag, call(par=params(DENIED, args=obj(("n", v)))))
        c.msg("number", "id-" + tag, call(ident=v))
        c.msg("number", "top-" + tag, b"[" + v + b"," + call(DENIED) + b"]")


def gen_unicode(c):
    """Lone surrogates, invalid UTF-8 and what decoders replace them with."""
    d = call(DENIED)
    for tag, n in (("lone-high", b'"get-env\\ud800"'), ("lone-low", b'"get-env\\udc00"'),
                   ("high-high", b'"get-env\\ud800\\ud800"'),
                   ("raw-surrogate", b'"get-env\xed\xa0\x80"'),
                   ("invalid-ff", b'"get-env\xff"'), ("invalid-c0", b'"get-env\xc0\xaf"'),
                   ("truncated", b'"get-env\xe2\x82"'), ("latin1", b'"g\xe9t-env"'),
                   ("replacement", b'"get-env\xef\xbf\xbd"'),
                   ("replacement-esc", b'"get-env\\ufffd"'),
                   ("noncharacter", b'"get-env\xef\xbf\xbe"'),
                   ("overlong-slash", b'"tools\xc0\xafcall"')):
        c.msg("unicode", "name-" + tag, call(par=obj(("name", n))))
    for tag, k in (("invalid", b"nam\xff"), ("surrogate", b"nam\\udc00"),
                   ("raw-surrogate", b"nam\xed\xb0\x80")):
        c.msg("unicode", "key-" + tag,
              call(par=obj(("name", js(ALLOWED)), (k, js(DENIED)))))
    c.msg("unicode", "invalid-in-arguments", call(par=params(DENIED, args=b'{"x":"\xff"}')))
    c.msg("unicode", "surrogate-in-arguments",
          call(par=params(DENIED, args=b'{"x":"\\ud800"}')))
    c.msg("unicode", "method-invalid", call(method=b'"tools/call\xff"'))
    c.msg("unicode", "fullwidth-name", call(par=obj(("name", js("\uff47et-env")))))
    c.msg("unicode", "combining-name", call(par=obj(("name", js("get-env\u0301")))))


def gen_nesting(c):
    deep = b"[" * 200 + b"]" * 200
    c.msg("nesting", "deep-arguments", call(par=params(DENIED, args=obj(("x", deep)))))
    deeper = b'{"a":' * 3000 + b"1" + b"}" * 3000
    c.msg("nesting", "very-deep-arguments", call(par=params(DENIED, args=obj(("x", deeper)))))
    c.msg("nesting", "deep-before-params",
          obj(("jsonrpc", b'"2.0"'), ("id", b"1"), ("x", b"[" * 129 + b"]" * 129),
              ("method", b'"tools/call"'), ("params", params(DENIED))))
    c.msg("nesting", "unclosed", call(DENIED)[:-1])
    c.msg("nesting", "extra-close", call(DENIED) + b"}")
    big = obj(("x", js("a" * 70000)))
    c.msg("nesting", "large-body", call(par=params(DENIED, args=big)))


def gen_charset(c):
    """HTTP bodies in the charsets a Content-Type can declare (body-parser and the SDK's SSE
    transport decode by it, through iconv-lite; the others read UTF-8 bytes)."""
    plain = call(DENIED)
    # UTF-7: "tools+AC8-call" is tools/call and "get+AC0-env" get-env once decoded; as UTF-8 they
    # are other names
    utf7 = call(ALLOWED, method=b'"tools+AC8-call"').replace(
        b'"name":"echo"', b'"name":"get+AC0-env"')
    utf7_name = call("get+AC0-env")
    for tag, ct in (("utf-7", b"utf-7"), ("UTF-7", b"UTF-7"), ("quoted-utf-7", b'"utf-7"'),
                    ("utf7", b"utf7"), ("unicode-1-1-utf-7", b"unicode-1-1-utf-7"),
                    ("csUnicode11UTF7", b"csUnicode11UTF7")):
        for form in (b"application/json; charset=", b"application/json;charset=",
                     b"application/json ; charset="):
            ftag = {b"application/json; charset=": "", b"application/json;charset=": "-nospace",
                    b"application/json ; charset=": "-spaced"}[form]
            c.add("charset", tag + ftag + "-method", "http", post(utf7, ctype=form + ct))
            c.add("charset", tag + ftag + "-name", "http", post(utf7_name, ctype=form + ct))
    for tag, ct, body in (
            ("utf8", b"utf8", plain), ("UTF8", b"UTF8", plain), ("utf-8", b"utf-8", plain),
            ("UTF-8", b"UTF-8", plain), ("quoted-utf-8", b'"utf-8"', plain),
            ("utf-16le", b"utf-16le", plain.decode().encode("utf-16-le")),
            ("utf-16", b"utf-16", b"\xff\xfe" + plain.decode().encode("utf-16-le")),
            ("utf-16be", b"utf-16be", plain.decode().encode("utf-16-be")),
            ("ucs-2", b"ucs-2", plain.decode().encode("utf-16-le")),
            ("latin1", b"latin1", plain), ("iso-8859-1", b"iso-8859-1", plain),
            ("ascii", b"us-ascii", plain), ("cp1252", b"windows-1252", plain),
            ("utf-32", b"utf-32", plain.decode().encode("utf-32")),
            ("cesu8", b"cesu8", plain), ("binary", b"binary", plain),
            ("base64", b"base64", base64.b64encode(plain)),
            ("hex", b"hex", plain.hex().encode()),
            ("unknown", b"klingon", plain), ("empty", b"", plain),
            ("latin1-name", b"latin1", plain.replace(b'"get-env"', b'"get-env\xe9"')),
            ("utf8-then-utf7", b"utf-8; charset=utf-7", utf7),
            ("utf7-then-utf8", b"utf-7; charset=utf-8", utf7)):
        c.add("charset", tag, "http", post(body, ctype=b"application/json; charset=" + ct))
    for tag, ct in (("in-quoted-param", b'application/json; x="; charset=utf-7"'),
                    ("quoted-param-then", b'application/json; x="a;b"; charset=utf-7'),
                    ("param-before", b"application/json; x=1; charset=utf-7"),
                    ("param-only", b"application/json; x=1"),
                    ("charset-upper-key", b"application/json; CHARSET=utf-7"),
                    ("charset-spaces", b"application/json; charset = utf-7"),
                    ("charset-trailing-semicolon", b"application/json; charset=utf-8;"),
                    ("charset-tab", b"application/json;\tcharset=utf-7"),
                    ("utf8-space-after", b"application/json; charset=utf-8 "),
                    ("utf8-quoted-space", b'application/json; charset="utf-8 "'),
                    ("long", b"application/json; charset=utf-8; " + b"x" * 40 + b"=1"),
                    ("backslash-quoted", b'application/json; charset="utf\\-7"')):
        c.add("charset", tag, "http", post(utf7, ctype=ct))
    c.add("charset", "two-content-types", "http",
          post(utf7, extra=b"Content-Type: application/json; charset=utf-7\r\n"))


def gen_media(c):
    d = call(DENIED)
    for tag, ct in (("text-plain", b"text/plain"), ("json-rpc", b"application/json-rpc"),
                    ("form", b"application/x-www-form-urlencoded"),
                    ("list-json-first", b"application/json, text/plain"),
                    ("list-json-second", b"text/plain, application/json"),
                    ("upper", b"APPLICATION/JSON"), ("mixed", b"Application/Json"),
                    ("trailing-space", b"application/json "), ("semicolon", b"application/json;"),
                    ("jsonx", b"application/jsonx"), ("star", b"application/*"),
                    ("suffix", b"application/vnd.mcp+json"), ("merge-patch", b"application/merge-patch+json"),
                    ("space-before-slash", b"application /json"), ("empty", b""),
                    ("text-json", b"text/json"), ("json-seq", b"application/json-seq")):
        c.add("media", tag, "http", post(d, ctype=ct))
    c.add("media", "none", "http", post(d, ctype=None))
    c.add("media", "no-accept", "http", post(d, accept=None))
    c.add("media", "accept-json-only", "http", post(d, accept=b"application/json"))


def gen_encoding(c):
    d = call(DENIED)
    # body-parser inflates gzip and deflate (and br); a reader of the raw bytes sees binary
    for tag, enc, body in (("gzip", b"gzip", gzip.compress(d, mtime=0)),
                           ("x-gzip", b"x-gzip", gzip.compress(d, mtime=0)),
                           ("deflate", b"deflate", zlib.compress(d)),
                           ("identity", b"identity", d), ("GZIP", b"GZIP", gzip.compress(d, mtime=0)),
                           ("unknown", b"klingon", d), ("empty", b"", d),
                           ("gzip-identity", b"gzip, identity", gzip.compress(d, mtime=0))):
        c.add("encoding", tag, "http", post(body, extra=b"Content-Encoding: " + enc + b"\r\n"))


def gen_headers(c):
    """HTTP framing and the 2026-07-28 Mcp-Method / Mcp-Name headers."""
    a, d = call(ALLOWED), call(DENIED, ident=b"2")
    for tag, extra, body in (
            ("mcp-name-agrees", b"Mcp-Method: tools/call\r\nMcp-Name: get-env\r\n", d),
            ("mcp-name-disagrees", b"Mcp-Method: tools/call\r\nMcp-Name: echo\r\n", d),
            ("mcp-method-disagrees", b"Mcp-Method: tools/list\r\n", d),
            ("mcp-name-case", b"Mcp-Name: GET-ENV\r\n", d),
            ("mcp-name-trailing-ws", b"Mcp-Name: get-env     \r\n", d),
            ("mcp-name-twice", b"Mcp-Name: echo\r\nMcp-Name: get-env\r\n", d),
            ("mcp-name-on-batch", b"Mcp-Name: echo\r\n", b"[" + a + b"," + d + b"]"),
            ("mcp-name-lowercase-header", b"mcp-name: echo\r\n", d),
            ("mcp-name-empty", b"Mcp-Name:\r\n", d),
            ("te-chunked-too", b"Transfer-Encoding: chunked\r\n", d),
            ("obs-fold", b"X-A: a\r\n b\r\n", d),
            ("space-before-colon", b"Content-Type : text/plain\r\n", d),
            ("second-content-length", b"Content-Length: 5\r\n", d),
            ("expect", b"Expect: 100-continue\r\n", d),
            ("connection-close", b"Connection: close\r\n", d),
            ("upgrade", b"Connection: upgrade\r\nUpgrade: h2c\r\n", d),
            ("nul-in-value", b"X-A: a\x00b\r\n", d),
            ("del-in-name", b"X-A\x7f: a\r\n", d),
            ("high-byte-value", b"X-A: \xff\r\n", d),
            ("long-header", b"X-A: " + b"a" * 9000 + b"\r\n", d)):
        c.add("headers", tag, "http", post(body, extra=extra))
    # framing: where the body ends, as each side reads it
    short = head(a, cl=len(a)) + a
    c.add("headers", "pipelined", "http", post(a) + post(d))
    c.add("headers", "pipelined-three", "http", post(a) + post(a) + post(d))
    c.add("headers", "smuggle-in-body", "http", head(a + post(d), cl=len(a)) + a + post(d))
    c.add("headers", "cl-short", "http", head(d, cl=len(d) - 10) + d)
    c.add("headers", "cl-long", "http", head(d, cl=len(d) + 10) + d)
    c.add("headers", "cl-zero-with-body", "http", head(d, cl=0) + d)
    c.add("headers", "cl-leading-zeros", "http",
          head(d).replace(b"Content-Length: ", b"Content-Length: 000") + d)
    c.add("headers", "cl-plus", "http", head(d).replace(b"Content-Length: ", b"Content-Length: +") + d)
    c.add("headers", "cl-spaces", "http", head(d).replace(b"Content-Length: ", b"Content-Length:   ") + d)
    c.add("headers", "cl-comma", "http",
          head(d).replace(b"\r\n\r\n", b", " + str(len(d)).encode() + b"\r\n\r\n") + d)
    c.add("headers", "no-cl", "http", head(d).replace(b"Content-Length: %d\r\n" % len(d), b"") + d)
    chunk = b"%x\r\n" % len(d) + d + b"\r\n0\r\n\r\n"
    c.add("headers", "chunked", "http",
          head(d).replace(b"Content-Length: %d\r\n" % len(d), b"Transfer-Encoding: chunked\r\n") + chunk)
    c.add("headers", "chunked-and-cl", "http",
          head(d, extra=b"Transfer-Encoding: chunked\r\n") + chunk)
    c.add("headers", "lf-only", "http", post(d).replace(b"\r\n", b"\n"))
    c.add("headers", "leading-crlf", "http", b"\r\n" + post(d))
    c.add("headers", "http10", "http", post(d).replace(b"HTTP/1.1", b"HTTP/1.0"))
    c.add("headers", "get-with-body", "http", post(d).replace(b"POST ", b"GET ", 1))
    c.add("headers", "lowercase-method", "http", post(d).replace(b"POST ", b"post ", 1))
    c.add("headers", "no-host", "http", post(d).replace(b"Host: 127.0.0.1\r\n", b""))
    c.add("headers", "absolute-uri", "http", post(d).replace(b"POST /mcp", b"POST http://x/mcp"))
    c.add("headers", "incomplete-head", "http", post(d)[:40])
    c.add("headers", "allowed-then-incomplete", "http", post(a) + post(d)[:-5])
    c.add("headers", "garbage-after", "http", post(a) + b"garbage\r\n\r\n")


def gen_packed(c):
    """Several messages in one write: lines on stdio, requests on one connection."""
    a, d = call(ALLOWED), call(DENIED, ident=b"2")
    c.add("packed", "lines", "stdio", a + b"\n" + d + b"\n" + a + b"\n")
    c.add("packed", "bad-line-then-call", "stdio", b"{\n" + d + b"\n")
    c.add("packed", "dup-line-then-call", "stdio", call(par=obj(("name", js(ALLOWED)), ("name", js(DENIED)))) + b"\n" + d + b"\n")
    c.add("packed", "response-then-call", "stdio", b'{"jsonrpc":"2.0","id":5,"result":{}}\n' + d + b"\n")
    c.add("packed", "initialize-then-call", "stdio",
          b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
          b'"capabilities":{},"clientInfo":{"name":"x","version":"1"}}}\n'
          b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n' + d + b"\n")
    c.add("packed", "many", "stdio", b"".join(call(ALLOWED if i % 3 else DENIED, ident=str(i).encode()) + b"\n"
                                             for i in range(20)))


def generate():
    c = Corpus()
    c.msg("basic", "denied", call(DENIED))
    c.msg("basic", "allowed", call(ALLOWED))
    c.msg("basic", "list", obj(("jsonrpc", b'"2.0"'), ("id", b"1"), ("method", b'"tools/list"')))
    for g in (gen_fold, gen_dup, gen_escape, gen_shape, gen_batch, gen_whitespace, gen_bom,
              gen_number, gen_unicode, gen_nesting, gen_charset, gen_media, gen_encoding,
              gen_headers, gen_packed):
        g(c)
    return c.cases


def main():
    cases = generate()
    if "--count" in sys.argv:
        counts = {}
        for k in cases:
            counts[k["class"]] = counts.get(k["class"], 0) + 1
        for k, n in sorted(counts.items()):
            print("%-12s %5d" % (k, n))
        print("%-12s %5d" % ("total", len(cases)))
        return
    for k in cases:
        print(json.dumps({"id": k["id"], "class": k["class"], "plane": k["plane"],
                          "data": base64.b64encode(k["data"]).decode()}))


if __name__ == "__main__":
    main()
