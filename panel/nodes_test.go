package panel

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"minivercel/schema/schematest"
)

// TestAPINodes: an administrator gets every node with its state, measured
// by the database's clock; anyone else gets 403 and no node.
func TestAPINodes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, false, nil)
	var empty []nodeJSON
	e.call("GET", "/api/nodes", nil, http.StatusOK, &empty)
	if empty == nil || len(empty) != 0 {
		t.Fatalf("no nodes: %#v, want []", empty)
	}

	schematest.Nodes(t, e.store)
	var got []nodeJSON
	e.call("GET", "/api/nodes", nil, http.StatusOK, &got)
	if len(got) != 3 {
		t.Fatalf("nodes = %+v", got)
	}
	states := map[string]string{}
	for _, n := range got {
		states[n.ID] = n.State
	}
	if states["web-1"] != "live" || states["build-1"] != "stale" || states["old-1"] != "stopped" {
		t.Fatalf("states = %v", states)
	}
	web := got[2]
	if web.ID != "web-1" || !slices.Equal(web.Roles, []string{"gitd", "edge", "panel"}) || web.Address != "10.0.0.1" ||
		web.Version != "v1.4.0" || time.Since(web.LastSeen) > time.Minute || web.StartedAt.IsZero() {
		t.Fatalf("web-1 = %+v", web)
	}

	_, devToken := e.user("dev", false)
	code, data, _ := e.request("GET", "/api/nodes", devToken, nil)
	var refusal apiError
	json.Unmarshal(data, &refusal)
	if code != http.StatusForbidden || !strings.Contains(refusal.Error, "administrator") || strings.Contains(string(data), "web-1") {
		t.Fatalf("non-admin: %d %s", code, data)
	}
}

// TestNodesPage: the page lists the nodes with their state for an
// administrator, whose navigation links to it; a user who is not one has no
// link and is refused the page.
func TestNodesPage(t *testing.T) {
	t.Parallel()
	env := newPageEnv(t)
	b := env.loggedIn()
	r := b.get("/nodes")
	if r.code != http.StatusOK {
		t.Fatalf("GET /nodes = %d", r.code)
	}
	mustContain(t, r.body, "No node has registered yet", `<a href="/nodes" aria-current="page">Nodes</a>`)

	schematest.Nodes(t, env.store)
	r = b.get("/nodes")
	mustContain(t, r.body, `data-node="web-1"`, "gitd, edge, panel", "10.0.0.1", "v1.3.0",
		`data-state="live"`, `data-state="stale"`, `data-state="stopped"`, "1m ago")
	for id, state := range map[string]string{"web-1": "live", "build-1": "stale", "old-1": "stopped"} {
		row := r.body[strings.Index(r.body, `data-node="`+id+`"`):]
		row = row[:strings.Index(row, "</tr>")]
		mustContain(t, row, `data-state="`+state+`"`)
	}
	if r := b.get("/"); !strings.Contains(r.body, `href="/nodes"`) {
		t.Error("the administrator's navigation has no link to the nodes")
	}

	member := env.loggedInAs("member", false)
	if r := member.get("/"); r.code != http.StatusOK || strings.Contains(r.body, `href="/nodes"`) {
		t.Errorf("a member's dashboard = %d, links to the nodes: %v", r.code, strings.Contains(r.body, `href="/nodes"`))
	}
	r = member.get("/nodes")
	if r.code != http.StatusForbidden || strings.Contains(r.body, "web-1") {
		t.Fatalf("a member's GET /nodes = %d:\n%s", r.code, r.body)
	}
	mustContain(t, r.body, "Only an administrator can see the server&#39;s nodes.")
}
