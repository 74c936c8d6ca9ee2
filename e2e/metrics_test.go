package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// TestMetrics: with --metrics-addr, /metrics on that listener counts what
// a user did: a push built and activated, a site's pages served and a
// missing one answered 404, each under the project's name; requests for
// unknown hosts count nowhere.
func TestMetrics(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	s := startServer(t, fmt.Sprintf("MINIVERCEL_METRICS_ADDR=127.0.0.1:%d", port))
	r := newRepo(t, "main", map[string]string{"index.html": "<h1>measured</h1>"})
	s.mustPush(r, "gauge")
	for range 3 {
		if code, body := s.get("gauge.localhost", "/"); code != 200 || !strings.Contains(body, "measured") {
			t.Fatalf("site = %d %q", code, body)
		}
	}
	if code, _ := s.get("gauge.localhost", "/missing.png"); code != 404 {
		t.Fatalf("missing path = %d, want 404", code)
	}
	s.get("nosuch.localhost", "/")

	resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	text, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v\n%s", resp.StatusCode, err, text)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(text)))
	if err != nil {
		t.Fatalf("parse /metrics: %v\n%s", err, text)
	}
	sample := func(name string, labels map[string]string) *dto.Metric {
		for _, m := range families[name].GetMetric() {
			got := map[string]string{}
			for _, l := range m.Label {
				got[l.GetName()] = l.GetValue()
			}
			if fmt.Sprint(got) == fmt.Sprint(labels) {
				return m
			}
		}
		t.Errorf("no %s%v in /metrics:\n%s", name, labels, text)
		return &dto.Metric{}
	}
	if n := sample("minivercel_http_requests_total", map[string]string{"project": "gauge", "code": "2xx"}).GetCounter().GetValue(); n != 3 {
		t.Errorf("2xx requests of gauge = %v, want 3", n)
	}
	if n := sample("minivercel_http_requests_total", map[string]string{"project": "gauge", "code": "4xx"}).GetCounter().GetValue(); n != 1 {
		t.Errorf("4xx requests of gauge = %v, want 1", n)
	}
	if n := sample("minivercel_http_response_bytes_total", map[string]string{"project": "gauge"}).GetCounter().GetValue(); n < 3*float64(len("<h1>measured</h1>")) {
		t.Errorf("bytes sent for gauge = %v, want at least three pages", n)
	}
	if n := sample("minivercel_builds_total", map[string]string{"result": "succeeded"}).GetCounter().GetValue(); n != 1 {
		t.Errorf("succeeded builds = %v, want 1", n)
	}
	if n := sample("minivercel_activation_duration_seconds", map[string]string{"result": "succeeded"}).GetHistogram().GetSampleCount(); n != 1 {
		t.Errorf("activation duration samples = %v, want 1", n)
	}
	for _, m := range families["minivercel_http_requests_total"].GetMetric() {
		for _, l := range m.Label {
			if l.GetName() == "project" && l.GetValue() != "gauge" {
				t.Errorf("a request for no project was counted: %v", m.Label)
			}
		}
	}
	// Read from the database at the scrape: no custom domain, the build
	// queue known and empty.
	if n := sample("minivercel_certificates", map[string]string{"status": "issued"}).GetGauge().GetValue(); n != 0 {
		t.Errorf("issued certificates = %v, want 0", n)
	}
	if n := sample("minivercel_queue_jobs", map[string]string{"queue": "default", "state": "available"}).GetGauge().GetValue(); n != 0 {
		t.Errorf("builds waiting = %v, want 0", n)
	}
}
