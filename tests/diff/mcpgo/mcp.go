// SPDX-License-Identifier: Apache-2.0

// Package main reads MCP messages as mark3labs/mcp-go and the servers built on it do: Go's
// encoding/json into the same struct shapes, in the same order, with the same checks. A JSON key
// matches a struct field without regard to case under Unicode simple folding ("NAME", "paramſ",
// the Kelvin sign for k), the last key that matches wins, and invalid UTF-8 in strings becomes
// U+FFFD. Standard library only: the tests build it with Debian's golang-go, offline.
package main

import (
	"encoding/json"
	"errors"
)

// Meta is the _meta object (mcp-go's Meta reads any object into its fields).
type Meta struct {
	ProgressToken    any
	AdditionalFields map[string]any
}

func (m *Meta) UnmarshalJSON(data []byte) error {
	raw := map[string]any{}
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	m.ProgressToken = raw["progressToken"]
	delete(raw, "progressToken")
	m.AdditionalFields = raw
	return nil
}

// RequestParams is mcp-go's params of a request in general.
type RequestParams struct {
	Meta *Meta `json:"_meta,omitempty"`
}

// Request is mcp-go's mcp.Request, embedded in every request type.
type Request struct {
	Method string        `json:"method"`
	Params RequestParams `json:"params,omitempty"`
}

// CallToolParams is mcp-go's mcp.CallToolParams.
type CallToolParams struct {
	Name      string `json:"name"`
	Arguments any    `json:"arguments,omitempty"`
	Meta      *Meta  `json:"_meta,omitempty"`
}

// CallToolRequest is mcp-go's mcp.CallToolRequest: its Params hides the embedded Request's.
type CallToolRequest struct {
	Request
	Params CallToolParams `json:"params"`
}

// baseMessage is what MCPServer.HandleMessage reads first, to route a message.
type baseMessage struct {
	JSONRPC string `json:"jsonrpc"`
	Method  string `json:"method"`
	ID      any    `json:"id,omitempty"`
	Result  any    `json:"result,omitempty"`
}

// Outcome is what the server does with one message.
type Outcome struct {
	Tool      string         // the tool it runs, when Call
	Call      bool           // a tools/call it executes
	Arguments map[string]any // the call's arguments, when they are an object
	ID        any
	Method    string
	Err       error // why it does nothing (parse error, invalid request, ...)
	Notify    bool  // a notification or a response: nothing to answer
}

var (
	errParse   = errors.New("parse error")
	errVersion = errors.New("invalid JSON-RPC version")
	errInvalid = errors.New("invalid request")
)

// HandleMessage routes one message as mcp-go's MCPServer.HandleMessage does.
func HandleMessage(message []byte) Outcome {
	var base baseMessage
	if err := json.Unmarshal(message, &base); err != nil {
		return Outcome{Err: errParse}
	}
	o := Outcome{ID: base.ID, Method: base.Method}
	if base.JSONRPC != "2.0" {
		o.Err = errVersion
		return o
	}
	if base.ID == nil {
		o.Notify = true // a notification: handled, never answered
		return o
	}
	if base.Result != nil {
		o.Notify = true // a response to a request of the server's
		return o
	}
	if base.Method != "tools/call" {
		return o
	}
	var req CallToolRequest
	if err := json.Unmarshal(message, &req); err != nil {
		o.Err = errInvalid
		return o
	}
	o.Call = true
	o.Tool = req.Params.Name
	if args, ok := req.Params.Arguments.(map[string]any); ok {
		o.Arguments = args
	}
	return o
}

// StdioMessage is StdioServer.processMessage: the line must be JSON, then it is routed.
func StdioMessage(line []byte) Outcome {
	var raw json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return Outcome{Err: errParse}
	}
	return HandleMessage(raw)
}

// HTTPMessage is StreamableHTTPServer.handlePost after the content type check: the body is read
// once as a possible response (a sampling answer: no method, an id, a result or an error), then
// routed.
func HTTPMessage(body []byte) Outcome {
	var m struct {
		ID     json.RawMessage `json:"id"`
		Result json.RawMessage `json:"result,omitempty"`
		Error  json.RawMessage `json:"error,omitempty"`
		Method string          `json:"method,omitempty"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return Outcome{Err: errParse}
	}
	if m.Method == "" && m.ID != nil && (m.Result != nil || m.Error != nil) {
		return Outcome{Notify: true}
	}
	return HandleMessage(body)
}
