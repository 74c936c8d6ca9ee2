package edge

import (
	"io"
	"net/http"
	"time"
)

// DefaultBodyIdleTimeout is how long a request body may send nothing.
const DefaultBodyIdleTimeout = 60 * time.Second

// idleBody is a request body whose every read must make progress within
// idle: the connection's read deadline moves forward with each read. A
// client that sends its headers and then a body byte by byte, or stops,
// gives up its connection instead of holding it (and a goroutine, and an
// app's request) for ever. Large uploads on slow links keep working: only
// silence counts, not the total time.
type idleBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	idle time.Duration
}

func (b *idleBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(time.Now().Add(b.idle))
	return b.ReadCloser.Read(p)
}

// withBodyTimeout gives r's body, when it has one, the idle timeout.
// Requests without a body (websocket upgrades among them) are left alone:
// a deadline on their connection would outlive the hijack.
func withBodyTimeout(w http.ResponseWriter, r *http.Request, idle time.Duration) {
	if idle <= 0 || r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return
	}
	r.Body = &idleBody{ReadCloser: r.Body, rc: http.NewResponseController(w), idle: idle}
}
