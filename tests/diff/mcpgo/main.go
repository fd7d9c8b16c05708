// SPDX-License-Identifier: Apache-2.0

// mcpgo: an MCP server that reads messages as mark3labs/mcp-go does, for the tests.
//
//	mcpgo stdio --log FILE            a stdio server (mcpfence run -- mcpgo stdio ...)
//	mcpgo http --listen ADDR --log FILE
//	                                  Streamable HTTP (POST any path) on ADDR
//	mcpgo diff                        the differential tier's decoder: cases in, what runs out
//
// --log: one JSON line per tools/call read, {"tool": NAME, "ran": BOOL}, written before the
// call is answered. diff reads {"id", "plane": "stdio"|"http", "data": BASE64} lines and writes
// {"id", "calls": [NAME...]} lines: the tools/call each one makes the server run, in order
// (the name read, whether or not a tool has that name).
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

func logTo(path string) func(string, bool, map[string]any) {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mcpgo:", err)
		os.Exit(1)
	}
	return func(tool string, ran bool, _ map[string]any) {
		b, _ := json.Marshal(map[string]any{"tool": tool, "ran": ran})
		f.Write(append(b, '\n'))
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: mcpgo stdio|http|diff [--listen ADDR] [--log FILE]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (http)")
	logPath := fs.String("log", "", "file to log each tools/call to")
	fs.Parse(os.Args[2:])
	s := &Server{onCall: logTo(*logPath)}
	switch os.Args[1] {
	case "stdio":
		s.ServeStdio(os.Stdin, os.Stdout)
	case "http":
		l, err := net.Listen("tcp", *listen)
		if err != nil {
			fmt.Fprintln(os.Stderr, "mcpgo:", err)
			os.Exit(1)
		}
		fmt.Printf("listening on %s\n", l.Addr())
		(&http.Server{Handler: s}).Serve(l)
	case "diff":
		if err := diff(); err != nil {
			fmt.Fprintln(os.Stderr, "mcpgo diff:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintln(os.Stderr, "mcpgo: unknown mode", os.Args[1])
		os.Exit(2)
	}
}

type diffCase struct {
	ID    any    `json:"id"`
	Plane string `json:"plane"`
	Data  string `json:"data"`
}

// diff runs each case through the server: stdio from a reader, HTTP through Go's own net/http
// server on a unix socket (its request parsing and framing are part of what is compared).
func diff() error {
	var mu sync.Mutex
	var calls []string
	s := &Server{onCall: func(tool string, _ bool, _ map[string]any) {
		mu.Lock()
		calls = append(calls, tool)
		mu.Unlock()
	}}
	dir, err := os.MkdirTemp("", "mcpgo-diff-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "http.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	go (&http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}).Serve(l)

	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 1 {
			var c diffCase
			if jerr := json.Unmarshal(line, &c); jerr != nil {
				return jerr
			}
			data, derr := base64.StdEncoding.DecodeString(c.Data)
			if derr != nil {
				return derr
			}
			mu.Lock()
			calls = []string{}
			mu.Unlock()
			if c.Plane == "stdio" {
				s.ServeStdio(bytesReader(data), io.Discard)
			} else if herr := httpCase(sock, data); herr != nil {
				return herr
			}
			mu.Lock()
			b, _ := json.Marshal(map[string]any{"id": c.ID, "calls": calls})
			mu.Unlock()
			out.Write(append(b, '\n'))
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func bytesReader(b []byte) io.Reader { return &sliceReader{b} }

// httpCase sends the bytes on one connection, ends the sending side and reads until the server
// closes: every request on it has then been handled.
func httpCase(sock string, data []byte) error {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		c.Write(data)
		c.(*net.UnixConn).CloseWrite()
	}()
	io.Copy(io.Discard, c)
	return nil
}
