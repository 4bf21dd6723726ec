package ops

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/capisync/capisync/state"
)

// countingDLQ records the dead-letter commands that got through.
type countingDLQ struct{ retried, dropped int }

func (c *countingDLQ) DeadLetters(string) ([]state.DeadLetter, error) { return nil, nil }
func (c *countingDLQ) RetryDead(string, []uint64) (int, error)        { c.retried++; return 1, nil }
func (c *countingDLQ) DropDead(string, []uint64) (int, error)         { c.dropped++; return 1, nil }

// TestGuard: state-changing endpoints and /debug/pprof need the token, or,
// without one, a loopback listener and a request no browser can forge
// cross-site; read-only endpoints stay open.
func TestGuard(t *testing.T) {
	const token = "s3cret-http-token"
	type req struct {
		method, path string
		header       map[string]string
	}
	ours := map[string]string{RequestHeader: "1"}
	tests := []struct {
		name  string
		guard Guard
		req   req
		want  int
	}{
		{"loopback, capisync's own request", Guard{Loopback: true}, req{"POST", "/dlq/drop?all=1", ours}, 200},
		{"loopback, text/plain form post from a web page", Guard{Loopback: true}, req{"POST", "/dlq/drop?all=1", map[string]string{"Content-Type": "text/plain", "Origin": "http://evil.example"}}, 403},
		{"loopback, no header", Guard{Loopback: true}, req{"POST", "/dlq/retry?all=1", nil}, 403},
		{"loopback, header but another origin", Guard{Loopback: true}, req{"POST", "/dlq/drop?all=1", map[string]string{RequestHeader: "1", "Origin": "http://evil.example"}}, 403},
		{"loopback, header but cross-site fetch", Guard{Loopback: true}, req{"POST", "/dlq/drop?all=1", map[string]string{RequestHeader: "1", "Sec-Fetch-Site": "cross-site"}}, 403},
		{"loopback, same origin", Guard{Loopback: true}, req{"POST", "/dlq/drop?all=1", map[string]string{RequestHeader: "1", "Origin": "http://example.com"}}, 200},
		{"loopback, pprof", Guard{Loopback: true}, req{"GET", "/debug/pprof/", ours}, 200},
		{"loopback, pprof from a page elsewhere", Guard{Loopback: true}, req{"GET", "/debug/pprof/", map[string]string{"Sec-Fetch-Site": "cross-site"}}, 403},
		{"all interfaces, no token", Guard{}, req{"POST", "/dlq/drop?all=1", ours}, 403},
		{"all interfaces, no token, pprof", Guard{}, req{"GET", "/debug/pprof/", ours}, 403},
		{"all interfaces, no token, status is open", Guard{}, req{"GET", "/status", nil}, 200},
		{"all interfaces, no token, readyz is open", Guard{}, req{"GET", "/readyz", nil}, 200},
		{"token, none given", Guard{Token: token}, req{"POST", "/dlq/retry?all=1", ours}, 401},
		{"token, wrong one", Guard{Token: token}, req{"POST", "/dlq/retry?all=1", map[string]string{"Authorization": "Bearer nope"}}, 401},
		{"token, right one", Guard{Token: token}, req{"POST", "/dlq/retry?all=1", map[string]string{"Authorization": "Bearer " + token}}, 200},
		{"token, pprof with it", Guard{Token: token}, req{"GET", "/debug/pprof/", map[string]string{"Authorization": "Bearer " + token}}, 200},
		{"token, loopback does not excuse it", Guard{Token: token, Loopback: true}, req{"POST", "/dlq/drop?all=1", ours}, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dlq := &countingDLQ{}
			srv := &Server{Status: func(time.Duration) (Report, error) { return Report{}, nil }, DLQ: dlq, Guard: tt.guard}
			r := httptest.NewRequest(tt.req.method, tt.req.path, strings.NewReader(""))
			for k, v := range tt.req.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			srv.Handler().ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Fatalf("%s %s: %d %s, want %d", tt.req.method, tt.req.path, w.Code, w.Body, tt.want)
			}
			if changed := dlq.retried + dlq.dropped; (changed > 0) != (tt.want == 200 && tt.req.method == "POST") {
				t.Errorf("dead-letter commands run: %d", changed)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9464": true, "127.0.0.2:1": true, "[::1]:9464": true, "localhost:9464": true,
		":9464": false, "0.0.0.0:9464": false, "[::]:9464": false, "10.0.0.5:9464": false, "example.com:80": false,
	} {
		if got := IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}
