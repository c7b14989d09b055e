package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// rawConn is one keep-alive HTTP/1.1 connection that writes requests built by the caller
// and reads the answer without allocating: the load generator shares two cores with Lupa and
// PostgreSQL, and net/http's client spends several times more CPU per request (a goroutine
// hand-off per request and a header map per answer). Requests are never pipelined.
type rawConn struct {
	addr string
	c    net.Conn
	r    *bufio.Reader
	body []byte // the last answer's body, reused
}

func newRawConn(addr string) *rawConn { return &rawConn{addr: addr, body: make([]byte, 0, 16<<10)} }

func (c *rawConn) close() {
	if c.c != nil {
		_ = c.c.Close()
		c.c = nil
	}
}

// do sends one request (all of it, headers and body) and returns the status and body.
// On any error the connection is closed; the next call dials again. POSTs are not retried:
// a transport error counts as a failed request.
func (c *rawConn) do(req []byte) (int, []byte, error) {
	if c.c == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return 0, nil, err
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		c.c = conn
		if c.r == nil {
			c.r = bufio.NewReaderSize(conn, 32<<10)
		} else {
			c.r.Reset(conn)
		}
	}
	_ = c.c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := c.c.Write(req); err != nil {
		c.close()
		return 0, nil, err
	}
	status, closeAfter, err := c.readResponse()
	if err != nil {
		c.close()
		return 0, nil, err
	}
	if closeAfter {
		c.close()
	}
	return status, c.body, nil
}

var (
	errBadResponse = errors.New("malformed HTTP response")
	hdrLength      = []byte("content-length:")
	hdrEncoding    = []byte("transfer-encoding:")
	hdrConnection  = []byte("connection:")
)

func (c *rawConn) readResponse() (status int, closeAfter bool, err error) {
	line, err := c.r.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	// HTTP/1.1 201 Created
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, false, errBadResponse
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, errBadResponse
	}
	length, chunked := -1, false
	for {
		line, err = c.r.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		switch {
		case hasPrefixFold(line, hdrLength):
			length, err = strconv.Atoi(string(bytes.TrimSpace(line[len(hdrLength):])))
			if err != nil {
				return 0, false, errBadResponse
			}
		case hasPrefixFold(line, hdrEncoding):
			chunked = bytes.Contains(bytes.ToLower(line), []byte("chunked"))
		case hasPrefixFold(line, hdrConnection):
			closeAfter = bytes.Contains(bytes.ToLower(line), []byte("close"))
		}
	}
	c.body = c.body[:0]
	switch {
	case status == 204 || status == 304 || (status >= 100 && status < 200):
	case chunked:
		err = c.readChunked()
	case length >= 0:
		err = c.readN(length)
	default:
		// No length: the body runs to the end of the connection.
		var b bytes.Buffer
		_, err = io.Copy(&b, c.r)
		c.body = append(c.body, b.Bytes()...)
		closeAfter = true
	}
	return status, closeAfter, err
}

func (c *rawConn) readN(n int) error {
	if cap(c.body) < n {
		c.body = make([]byte, 0, n)
	}
	start := len(c.body)
	c.body = c.body[:start+n]
	_, err := io.ReadFull(c.r, c.body[start:])
	return err
}

func (c *rawConn) readChunked() error {
	for {
		line, err := c.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil {
			return errBadResponse
		}
		if n == 0 {
			// Trailers, then the blank line.
			for {
				line, err := c.r.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		if err := c.readN(int(n)); err != nil {
			return err
		}
		if _, err := c.r.Discard(2); err != nil { // CRLF after the chunk
			return err
		}
	}
}

func hasPrefixFold(s, prefix []byte) bool {
	return len(s) >= len(prefix) && bytes.EqualFold(s[:len(prefix)], prefix)
}

// reqBuilder appends an HTTP/1.1 request to a reusable buffer.
type reqBuilder struct{ b []byte }

func (r *reqBuilder) start(method, target, host string) {
	r.b = append(r.b[:0], method...)
	r.b = append(r.b, ' ')
	r.b = append(r.b, target...)
	r.b = append(r.b, " HTTP/1.1\r\nHost: "...)
	r.b = append(r.b, host...)
	r.b = append(r.b, "\r\nUser-Agent: lupa-loadtest\r\n"...)
}

func (r *reqBuilder) header(name, value string) {
	r.b = append(r.b, name...)
	r.b = append(r.b, ": "...)
	r.b = append(r.b, value...)
	r.b = append(r.b, "\r\n"...)
}

// headerParts writes a header whose value is the concatenation of parts, without building
// the string first.
func (r *reqBuilder) headerParts(name string, parts ...[]byte) {
	r.b = append(r.b, name...)
	r.b = append(r.b, ": "...)
	for _, p := range parts {
		r.b = append(r.b, p...)
	}
	r.b = append(r.b, "\r\n"...)
}

// body ends the headers and appends the body (which may be given in pieces).
func (r *reqBuilder) body(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if n > 0 {
		r.b = append(r.b, "Content-Length: "...)
		r.b = strconv.AppendInt(r.b, int64(n), 10)
		r.b = append(r.b, "\r\n"...)
	}
	r.b = append(r.b, "\r\n"...)
	for _, p := range parts {
		r.b = append(r.b, p...)
	}
	return r.b
}

func statusError(status int, body []byte) error {
	if len(body) > 300 {
		body = body[:300]
	}
	return fmt.Errorf("HTTP %d: %s", status, body)
}
