package panel

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"

	"minivercel/creds"
	"minivercel/schema"
)

// The live-log websocket at /ws.
//
// Client → server:
//
//	{"type":"auth","token":"..."}                         (when not authenticated by ?token= or cookie)
//	{"type":"subscribe_build","build_id":N,"after_seq":S} (after_seq optional: skip lines ≤ S)
//	{"type":"unsubscribe_build","build_id":N}
//
// Server → client:
//
//	{"type":"ready","user":"name"}
//	{"type":"status","build_id":N,"status":"running","final":false}
//	    (sent on subscribe and on each change; "final":true comes once, after
//	    the build's last line: nothing follows it for that build)
//	{"type":"log","build_id":N,"seq":S,"line":"..."}
//	{"type":"dropped","build_id":N,"count":C}   (C lines were not sent: this client was too slow)
//	{"type":"error","error":"...","build_id":N}
//
// A build never waits for a websocket client: each connection has a bounded
// queue, and lines that do not fit within wsFullWait are counted and
// reported as "dropped".

const (
	// wsQueueLogs bounds the log lines waiting for one slow connection.
	wsQueueLogs = 1024
	// wsMaxSubscriptions bounds the goroutines one connection can start.
	wsMaxSubscriptions = 64
	// wsAuthTimeout is how long an anonymous connection may take to send
	// its auth message.
	wsAuthTimeout = 10 * time.Second
	// wsWriteTimeout cuts off a client that stopped reading altogether.
	wsWriteTimeout = 10 * time.Second
	// wsPingEvery keeps idle connections alive through proxies; wsPongWait
	// is how long a silent client is kept.
	wsPingEvery = 30 * time.Second
	wsPongWait  = 75 * time.Second
	// wsMaxMessage bounds a client message: they are small JSON objects.
	wsMaxMessage = 8 << 10
)

// wsFullWait is how long a full queue may hold a subscription before its
// lines are dropped: long enough for a burst of output (npm install) to drain
// to a client that reads, short enough that a stalled client costs little.
// Server.fullWait holds it, so that a test can change it for its own server.
const wsFullWait = time.Second

// wsUserKey and wsBadCredentialKey carry the upgrade request's
// authentication into the websocket handler.
const (
	wsUserKey          = "ws_user"
	wsBadCredentialKey = "ws_bad_credential"
)

// wsIn is any message a client sends.
type wsIn struct {
	Type     string `json:"type"`
	Token    string `json:"token"`
	BuildID  int64  `json:"build_id"`
	AfterSeq int    `json:"after_seq"`
}

type wsReady struct {
	Type string `json:"type"`
	User string `json:"user"`
}

type wsStatus struct {
	Type    string             `json:"type"`
	BuildID int64              `json:"build_id"`
	Status  schema.BuildStatus `json:"status"`
	// Final marks the end of a build's stream. The status sent on subscribe
	// to a finished build is already "succeeded", but its lines follow it:
	// a client must wait for Final to know it has them all.
	Final bool `json:"final"`
}

type wsLog struct {
	Type    string `json:"type"`
	BuildID int64  `json:"build_id"`
	Seq     int    `json:"seq"`
	Line    string `json:"line"`
}

type wsDropped struct {
	Type    string `json:"type"`
	BuildID int64  `json:"build_id"`
	Count   int    `json:"count"`
}

type wsError struct {
	Type    string `json:"type"`
	Error   string `json:"error"`
	BuildID int64  `json:"build_id,omitempty"`
}

// wsRoutes mounts the live-log websocket.
func (s *Server) wsRoutes(app *fiber.App) {
	hub := &wsHub{conns: map[*websocket.Conn]struct{}{}}
	// fasthttp forgets hijacked connections, so Shutdown would leave them
	// open: close them when the panel shuts down.
	app.Hooks().OnShutdown(func() error { hub.closeAll(); return nil })
	app.Get("/ws", s.wsUpgrade, websocket.New(func(c *websocket.Conn) { s.serveWS(hub, c) }, websocket.Config{
		HandshakeTimeout: 10 * time.Second,
		WriteBufferSize:  16 << 10,
	}))
}

// wsUpgrade authenticates the upgrade request from ?token= or the session
// cookie. A request without credentials is still upgraded: it may send an
// auth message, and a refused one learns why over the socket.
func (s *Server) wsUpgrade(c *fiber.Ctx) error {
	if !websocket.IsWebSocketUpgrade(c) {
		return fiber.NewError(fiber.StatusUpgradeRequired, "this is a websocket endpoint")
	}
	if tok := c.Query("token"); tok != "" {
		u, err := s.auth.Authenticate(c.UserContext(), tok)
		if err != nil && !errors.Is(err, creds.ErrBadCredentials) {
			return err
		}
		if err != nil {
			c.Locals(wsBadCredentialKey, true)
		} else {
			c.Locals(wsUserKey, u)
		}
		return c.Next()
	}
	// Cross-site websocket hijacking: browsers attach cookies to websocket
	// handshakes from any origin, and a deployed app on a sibling subdomain
	// is even the same site. The cookie counts only when the page that
	// opened the socket is the panel itself.
	if cookie := c.Cookies(sessionCookie); cookie != "" {
		origin := c.Get(fiber.HeaderOrigin)
		if origin == "" || sameHost(origin, c.Hostname()) {
			if u, err := s.auth.Authenticate(c.UserContext(), cookie); err == nil {
				c.Locals(wsUserKey, u)
			} else if !errors.Is(err, creds.ErrBadCredentials) {
				return err
			}
		}
	}
	return c.Next()
}

// wsHub tracks open connections so Shutdown can close them.
type wsHub struct {
	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
}

func (h *wsHub) add(c *websocket.Conn) {
	h.mu.Lock()
	h.conns[c] = struct{}{}
	h.mu.Unlock()
}

// remove must run before the handler returns: the library reuses Conn
// values afterwards.
func (h *wsHub) remove(c *websocket.Conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

func (h *wsHub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.conns {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"),
			time.Now().Add(time.Second))
		_ = c.NetConn().Close()
	}
}

// wsConn is one authenticated connection: its outbox and subscriptions.
type wsConn struct {
	s    *Server
	conn *websocket.Conn
	out  *outbox

	mu   sync.Mutex
	subs map[int64]wsSub
	gen  uint64
}

type wsSub struct {
	cancel context.CancelFunc
	gen    uint64
}

func (s *Server) serveWS(hub *wsHub, conn *websocket.Conn) {
	hub.add(conn)
	defer hub.remove(conn)
	defer conn.Close()
	conn.SetReadLimit(wsMaxMessage)

	u, ok := s.wsAuthenticate(conn)
	if !ok {
		_ = conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
		_ = conn.WriteJSON(wsError{Type: "error", Error: "unauthorized"})
		_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "unauthorized"),
			time.Now().Add(time.Second))
		return
	}

	ctx, cancel := context.WithCancel(context.Background())
	w := &wsConn{s: s, conn: conn, out: newOutbox(wsQueueLogs), subs: map[int64]wsSub{}}
	var writer sync.WaitGroup
	writer.Go(func() {
		w.writeLoop(ctx)
		// A dead writer means a dead client: stop reading too.
		_ = conn.NetConn().Close()
	})
	defer writer.Wait()
	defer cancel() // stops the subscriptions and the writer

	w.out.push(0, wsReady{Type: "ready", User: u.Name})
	_ = conn.SetReadDeadline(time.Now().Add(wsPongWait))
	conn.SetPongHandler(func(string) error { return conn.SetReadDeadline(time.Now().Add(wsPongWait)) })
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			if websocket.IsUnexpectedCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) && ctx.Err() == nil {
				s.log.Debug("websocket read", "user", u.Name, "err", err)
			}
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(wsPongWait))
		// Replies to a client's own messages are never dropped, so a client
		// that sends without reading would make them pile up: cut it off.
		if w.out.replies() > wsMaxReplies {
			s.log.Debug("websocket closed: client does not read its replies", "user", u.Name)
			return
		}
		var m wsIn
		if err := json.Unmarshal(data, &m); err != nil {
			w.out.push(0, wsError{Type: "error", Error: "messages must be JSON objects"})
			continue
		}
		w.handle(ctx, m)
	}
}

// wsAuthenticate returns the connection's user: from the upgrade request, or
// from a first {"type":"auth"} message.
func (s *Server) wsAuthenticate(conn *websocket.Conn) (schema.User, bool) {
	if u, ok := conn.Locals(wsUserKey).(schema.User); ok {
		return u, true
	}
	if bad, _ := conn.Locals(wsBadCredentialKey).(bool); bad {
		return schema.User{}, false
	}
	_ = conn.SetReadDeadline(time.Now().Add(wsAuthTimeout))
	_, data, err := conn.ReadMessage()
	if err != nil {
		return schema.User{}, false
	}
	var m wsIn
	if json.Unmarshal(data, &m) != nil || m.Type != "auth" {
		return schema.User{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), wsAuthTimeout)
	defer cancel()
	u, err := s.auth.Authenticate(ctx, strings.TrimSpace(m.Token))
	if err != nil {
		if !errors.Is(err, creds.ErrBadCredentials) {
			s.log.Error("authenticate websocket", "err", err)
		}
		return schema.User{}, false
	}
	return u, true
}

// handle answers one client message.
func (w *wsConn) handle(ctx context.Context, m wsIn) {
	switch m.Type {
	case "subscribe_build":
		w.subscribe(ctx, m.BuildID, m.AfterSeq)
	case "unsubscribe_build":
		w.mu.Lock()
		if sub, ok := w.subs[m.BuildID]; ok {
			sub.cancel()
			delete(w.subs, m.BuildID)
		}
		w.mu.Unlock()
	case "auth":
		// Already authenticated: a panel that always sends it is fine.
	default:
		w.out.push(0, wsError{Type: "error", Error: "unknown message type " + strconv.Quote(m.Type)})
	}
}

func (w *wsConn) subscribe(ctx context.Context, id int64, after int) {
	if id <= 0 {
		w.out.push(0, wsError{Type: "error", Error: "build_id must name a build"})
		return
	}
	w.mu.Lock()
	_, dup := w.subs[id]
	full := len(w.subs) >= wsMaxSubscriptions
	w.mu.Unlock()
	if dup {
		return // the running subscription already delivers every line
	}
	if full {
		w.out.push(id, wsError{Type: "error", BuildID: id, Error: "too many subscriptions on one connection"})
		return
	}
	b, err := w.s.store.BuildByID(ctx, id)
	if errors.Is(err, schema.ErrNotFound) {
		w.out.push(id, wsError{Type: "error", BuildID: id, Error: "build not found"})
		return
	}
	if err != nil {
		w.s.log.Error("read build for websocket", "build", id, "err", err)
		w.out.push(id, wsError{Type: "error", BuildID: id, Error: "internal error"})
		return
	}
	w.out.push(id, wsStatus{Type: "status", BuildID: id, Status: b.Status})

	sctx, cancel := context.WithCancel(ctx)
	w.mu.Lock()
	w.gen++
	gen := w.gen
	w.subs[id] = wsSub{cancel: cancel, gen: gen}
	w.mu.Unlock()
	go func() {
		defer w.endSub(id, gen)
		w.follow(sctx, id, max(after, 0), b.Status)
	}()
}

// endSub forgets a subscription that ended by itself, unless a newer one for
// the same build replaced it.
func (w *wsConn) endSub(id int64, gen uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if sub, ok := w.subs[id]; ok && sub.gen == gen {
		sub.cancel()
		delete(w.subs, id)
	}
}

// follow copies a build's events into the outbox until the build ends or ctx
// does. Lines the broker skipped for this follower reach the client as a
// "dropped" count. A stream closed without a Done event is followed again,
// skipping what was already passed on, so the client never sees a line
// twice.
func (w *wsConn) follow(ctx context.Context, id int64, last int, status schema.BuildStatus) {
	retry := 0
	dropping := false
	for {
		events, err := w.s.logs.Follow(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				w.s.log.Error("follow build for websocket", "build", id, "err", err)
				w.out.push(id, wsError{Type: "error", BuildID: id, Error: "cannot follow this build"})
			}
			return
		}
		progressed := false
		for ev := range events {
			// After unsubscribe nothing more may reach the client, even
			// events already buffered in the stream.
			if ctx.Err() != nil {
				return
			}
			if ev.Done {
				w.out.push(id, wsStatus{Type: "status", BuildID: id, Status: ev.Status, Final: true})
				return
			}
			if ev.Seq <= last {
				continue
			}
			if status == schema.BuildQueued {
				// Lines only come from a running build; the store said
				// queued when the client subscribed.
				status = schema.BuildRunning
				w.out.push(id, wsStatus{Type: "status", BuildID: id, Status: status})
			}
			last, progressed = ev.Seq, true
			if ev.Skipped > 0 {
				// The broker skipped lines for this follower: the client
				// hears of them as of its own queue's drops.
				w.out.drop(id, ev.Skipped)
				continue
			}
			// Once a line was dropped, the next ones are dropped without
			// waiting until there is room again: a stalled client must not
			// make this goroutine crawl (the broker would cut it off).
			wait := time.Duration(w.s.fullWait.Load())
			if dropping {
				wait = 0
			}
			dropping = !w.out.pushLog(ctx, id, wsLog{Type: "log", BuildID: id, Seq: ev.Seq, Line: ev.Line}, wait)
		}
		if ctx.Err() != nil {
			return
		}
		if progressed {
			retry = 0
			continue
		}
		// Closed with nothing new: a store error, or the build is gone.
		// Back off instead of spinning.
		if _, err := w.s.store.BuildByID(ctx, id); errors.Is(err, schema.ErrNotFound) {
			w.out.push(id, wsError{Type: "error", BuildID: id, Error: "build not found"})
			return
		}
		retry++
		select {
		case <-ctx.Done():
			return
		case <-time.After(min(50*time.Millisecond<<min(retry, 7), 5*time.Second)):
		}
	}
}

// writeLoop sends the outbox's messages in order, and pings.
func (w *wsConn) writeLoop(ctx context.Context) {
	ping := time.NewTicker(wsPingEvery)
	defer ping.Stop()
	var batch []any
	for {
		select {
		case <-ctx.Done():
			_ = w.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
				time.Now().Add(time.Second))
			return
		case <-ping.C:
			if err := w.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteTimeout)); err != nil {
				return
			}
			continue
		case <-w.out.wake:
		}
		batch = w.out.take(batch[:0])
		for i, m := range batch {
			_ = w.conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
			if err := w.conn.WriteJSON(m); err != nil {
				return
			}
			batch[i] = nil // let the line's memory go while the batch drains
		}
	}
}

// outbox is a connection's send queue. Log lines beyond its bound wait a
// moment for room (a burst of build output is absorbed), then are dropped and
// counted per build; everything else (statuses, errors) is always queued,
// since a client that misses a final status would wait forever. The count
// reaches the client as a "dropped" message before the next message of that
// build, or when the writer next has room.
type outbox struct {
	mu      sync.Mutex
	items   []any
	logs    int // log lines in items
	max     int
	dropped map[int64]int
	wake    chan struct{} // signals the writer
	room    chan struct{} // closed (and replaced) when the writer takes the queue
}

func newOutbox(max int) *outbox {
	return &outbox{max: max, dropped: map[int64]int{}, wake: make(chan struct{}, 1), room: make(chan struct{})}
}

// wsMaxReplies bounds the messages other than log lines waiting for one client.
const wsMaxReplies = 1024

// replies counts the queued messages that are not log lines.
func (o *outbox) replies() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.items) - o.logs
}

// push queues m, a message about build id (0: none). It never blocks and
// never drops.
func (o *outbox) push(id int64, m any) {
	o.mu.Lock()
	o.append(id, m)
	o.mu.Unlock()
	o.signal()
}

// pushLog queues a log line of build id. When the queue is full it waits up
// to wait for the writer to make room, then drops the line. It reports
// whether the line was queued.
func (o *outbox) pushLog(ctx context.Context, id int64, m any, wait time.Duration) bool {
	var timeout <-chan time.Time
	for {
		o.mu.Lock()
		if o.logs < o.max {
			o.logs++
			o.append(id, m)
			o.mu.Unlock()
			o.signal()
			return true
		}
		if wait <= 0 {
			o.dropped[id]++
			o.mu.Unlock()
			return false
		}
		room := o.room
		o.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(wait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-room:
		case <-timeout:
			wait = 0
		case <-ctx.Done():
			return false
		}
	}
}

// drop counts n lines of build id that were not sent; the client gets the
// count before that build's next message.
func (o *outbox) drop(id int64, n int) {
	o.mu.Lock()
	o.dropped[id] += n
	o.mu.Unlock()
}

// append adds m after the pending drop count of its build. o.mu is held.
func (o *outbox) append(id int64, m any) {
	if n := o.dropped[id]; n > 0 && id != 0 {
		o.items = append(o.items, wsDropped{Type: "dropped", BuildID: id, Count: n})
		delete(o.dropped, id)
	}
	o.items = append(o.items, m)
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// take moves everything queued into buf, the pending drop counts last: every
// drop happened after the lines that were queued.
func (o *outbox) take(buf []any) []any {
	o.mu.Lock()
	defer o.mu.Unlock()
	buf = append(buf, o.items...)
	clear(o.items)
	o.items = o.items[:0]
	o.logs = 0
	for id, n := range o.dropped {
		buf = append(buf, wsDropped{Type: "dropped", BuildID: id, Count: n})
	}
	clear(o.dropped)
	close(o.room)
	o.room = make(chan struct{})
	return buf
}
