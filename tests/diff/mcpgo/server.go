// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
)

// Server answers as an mcp-go server with two tools: "echo", and "get-env", which shows the
// environment (what a policy would keep from an agent). Every tools/call it reads is reported to
// onCall (the tool's name, and whether a tool of that name ran) before anything is answered.
type Server struct {
	mu     sync.Mutex
	onCall func(tool string, ran bool, args map[string]any)
}

func (s *Server) call(o Outcome) (any, *rpcError) {
	ran := o.Tool == "echo" || o.Tool == "get-env"
	s.mu.Lock()
	if s.onCall != nil {
		s.onCall(o.Tool, ran, o.Arguments)
	}
	s.mu.Unlock()
	switch o.Tool {
	case "echo":
		msg, _ := o.Arguments["message"].(string)
		return toolText("Echo: " + msg), nil
	case "get-env":
		env := os.Environ()
		sort.Strings(env)
		return toolText(strings.Join(env, "\n")), nil
	}
	return nil, &rpcError{Code: -32602, Message: "tool '" + o.Tool + "' not found: tool not found"}
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func toolText(text string) map[string]any {
	return map[string]any{"content": []any{map[string]any{"type": "text", "text": text}}}
}

// answer is the JSON-RPC answer to one message, or nil when there is none (notifications).
func (s *Server) answer(o Outcome) any {
	var result any
	var rerr *rpcError
	switch {
	case o.Err == errParse:
		rerr = &rpcError{Code: -32700, Message: "Failed to parse message"}
	case o.Err != nil:
		rerr = &rpcError{Code: -32600, Message: o.Err.Error()}
	case o.Notify:
		return nil
	case o.Call:
		result, rerr = s.call(o)
	case o.Method == "initialize":
		result = map[string]any{
			"protocolVersion": "2025-06-18",
			"capabilities":    map[string]any{"tools": map[string]any{}},
			"serverInfo":      map[string]any{"name": "mcpgo-ref", "version": "1"},
		}
	case o.Method == "ping":
		result = map[string]any{}
	case o.Method == "tools/list":
		schema := map[string]any{"type": "object"}
		result = map[string]any{"tools": []any{
			map[string]any{"name": "echo", "inputSchema": schema},
			map[string]any{"name": "get-env", "inputSchema": schema},
		}}
	default:
		rerr = &rpcError{Code: -32601, Message: "Method " + o.Method + " not found"}
	}
	msg := map[string]any{"jsonrpc": "2.0", "id": o.ID}
	if rerr != nil {
		msg["error"] = rerr
	} else {
		msg["result"] = result
	}
	return msg
}

// ServeStdio reads lines as mcp-go's StdioServer does (bufio ReadString('\n'): the newline is
// part of the line, a last line without one is never read) and answers each.
func (s *Server) ServeStdio(in io.Reader, out io.Writer) {
	r := bufio.NewReader(in)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if a := s.answer(StdioMessage([]byte(line))); a != nil {
			b, _ := json.Marshal(a)
			out.Write(append(b, '\n'))
		}
	}
}

// ServeHTTP is a Streamable HTTP endpoint read as mcp-go's StreamableHTTPServer reads a POST:
// the media type must be application/json (its parameters, charset included, are not looked
// at), the body is read as bytes (UTF-8), one message per POST, answered as JSON.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodDelete:
		w.WriteHeader(http.StatusOK)
		return
	default:
		http.Error(w, "Method not allowed", http.StatusMethodNotAllowed)
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		http.Error(w, "Invalid content type: must be 'application/json'", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "read request body error", http.StatusBadRequest)
		return
	}
	a := s.answer(HTTPMessage(body))
	if a == nil {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a)
}
