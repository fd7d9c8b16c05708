#!/usr/bin/env bash
# `make demo`: the built-in example, a real SDK client and server-everything under
# policies/demo.json, with a readable transcript.  Usage: tests/e2e/demo.sh build/mcpfence
set -eu
cd "$(dirname "$0")/../.."
MCPFENCE_BIN=$(realpath "${1:-build/mcpfence}") exec node tests/e2e/demo.mjs
