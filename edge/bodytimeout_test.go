package edge

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSilentBodyLosesItsConnection: a client that sends its headers and a
// few bytes of a body, then nothing, loses its connection after the body
// idle timeout instead of holding it and the app's request; a body that
// keeps coming, however slowly in all, and ordinary requests, go through.
func TestSilentBodyLosesItsConnection(t *testing.T) {
	t.Parallel()
	e, _ := newAppEdge(t, &logSink{})
	e.srv.router.bodyIdle = 2 * time.Second
	s := e.site("upload", 1, map[string]string{"server.js": `require('http').createServer((q, r) => {
  let n = 0; q.on('data', c => n += c.length); q.on('end', () => r.end('got ' + n));
}).listen(process.env.PORT, process.env.HOST);`})
	s.Start = "node server.js"
	e.activate(s)
	addr := e.serveTCP()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: upload.localhost\r\nContent-Length: 100\r\n\r\nabc")
	c.SetReadDeadline(time.Now().Add(time.Minute))
	if _, err := io.Copy(io.Discard, c); err != nil {
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("a silent body kept its connection")
		}
	}

	// A body sent in pieces, each within the timeout, is read whole.
	d, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fmt.Fprintf(d, "POST / HTTP/1.1\r\nHost: upload.localhost\r\nContent-Length: 8\r\nConnection: close\r\n\r\n")
	for _, piece := range []string{"ab", "cd", "ef", "gh"} {
		time.Sleep(100 * time.Millisecond) // slower in all than the timeout, never silent for as long
		io.WriteString(d, piece)
	}
	resp, err := http.ReadResponse(bufio.NewReader(d), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "got 8") {
		t.Fatalf("a body sent in pieces: %d %q", resp.StatusCode, body)
	}
}
