package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
)

// apiCall sends a JSON request to the API through the edge (base-domain host).
func (s *server) apiCall(t *testing.T, method, path, token, body string) (int, map[string]any, string) {
	t.Helper()
	req, _ := http.NewRequest(method, fmt.Sprintf("http://127.0.0.1:%d%s", s.httpPort, path), strings.NewReader(body))
	req.Host = "localhost"
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw strings.Builder
	var obj map[string]any
	dec := json.NewDecoder(resp.Body)
	var v any
	if err := dec.Decode(&v); err == nil {
		b, _ := json.Marshal(v)
		raw.Write(b)
		obj, _ = v.(map[string]any)
	}
	return resp.StatusCode, obj, raw.String()
}

// TestAPIAndGitOverHTTP: an operator sets a password and makes an API token
// with the CLI; the API (reached through the edge on the base-domain host)
// logs in, lists a project pushed over SSH, and refuses requests without
// credentials; the token pushes over HTTP like SSH does, build log included.
func TestAPIAndGitOverHTTP(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	r := newRepo(t, "main", map[string]string{"index.html": "over ssh"})
	s.mustPush(r, "site")
	cmd := exec.Command(binary, "admin", "user", "set-password", "admin", "--password-stdin", "--data-dir", s.dataDir)
	cmd.Stdin = strings.NewReader("correct horse battery\n")
	if out, code := runCmd(t, cmd); code != 0 {
		t.Fatalf("set-password: %d %s", code, out)
	}
	if code, _, raw := s.apiCall(t, "POST", "/api/auth/login", "", `{"username":"admin","password":"wrong password"}`); code != 401 {
		t.Fatalf("login with a wrong password = %d %s", code, raw)
	}
	code, obj, raw := s.apiCall(t, "POST", "/api/auth/login", "", `{"username":"admin","password":"correct horse battery"}`)
	jwt, _ := obj["token"].(string)
	if code != 200 || jwt == "" {
		t.Fatalf("login = %d %s", code, raw)
	}
	if code, _, raw := s.apiCall(t, "GET", "/api/projects", "", ""); code != 401 || !strings.Contains(raw, "error") {
		t.Fatalf("projects without credentials = %d %s", code, raw)
	}
	if code, _, raw := s.apiCall(t, "GET", "/api/projects", jwt, ""); code != 200 || !strings.Contains(raw, `"site"`) {
		t.Fatalf("projects = %d %s", code, raw)
	}

	tokenCmd := exec.Command(binary, "admin", "token", "create", "--name", "ci", "--data-dir", s.dataDir)
	out, err := tokenCmd.Output()
	token := strings.TrimSpace(string(out))
	if err != nil || !strings.HasPrefix(token, "mvt_") {
		t.Fatalf("token create: %v %q", err, out)
	}
	if code, _, raw := s.apiCall(t, "GET", "/api/projects/site", token, ""); code != 200 || !strings.Contains(raw, `"site"`) {
		t.Fatalf("project with the API token = %d %s", code, raw)
	}

	h := newRepo(t, "main", map[string]string{"index.html": "over http"})
	url := fmt.Sprintf("http://git:%s@localhost:%d/web.git", token, s.httpPort)
	push := exec.Command("git", "push", url, "HEAD:main")
	push.Dir = h.dir
	push.Env = append(gitEnv(), "GIT_TERMINAL_PROMPT=0")
	out2, code2 := runCmd(t, push)
	if code2 != 0 || !strings.Contains(out2, "remote: -----> Build") || !strings.Contains(out2, "Production: http://web.localhost") {
		t.Fatalf("push over HTTP: exit %d\n%s", code2, out2)
	}
	s.waitBody("web.localhost", "/", "over http")

	bad := exec.Command("git", "push", fmt.Sprintf("http://git:mvt_wrong@localhost:%d/web.git", s.httpPort), "HEAD:main")
	bad.Dir = h.dir
	bad.Env = append(gitEnv(), "GIT_TERMINAL_PROMPT=0")
	if out, code := runCmd(t, bad); code == 0 {
		t.Fatalf("push with a wrong token succeeded:\n%s", out)
	}
	if out, code := s.cli(t, "admin", "token", "list"); code != 0 || !strings.Contains(out, "ci") {
		t.Errorf("token list: %d %s", code, out)
	}
}
