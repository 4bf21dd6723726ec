package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/capisync/capisync/state"
)

// DeadLetters is the store's dead-letter queue.
type DeadLetters interface {
	DeadLetters(dest string) ([]state.DeadLetter, error)
	RetryDead(dest string, ids []uint64) (int, error)
	DropDead(dest string, ids []uint64) (int, error)
}

// Server serves the operations endpoints.
type Server struct {
	Status  func(window time.Duration) (Report, error)
	DLQ     DeadLetters
	Ready   func() (ok bool, reasons []string)
	Metrics http.Handler // nil: no /metrics
	Logger  *slog.Logger
	// Guard protects the endpoints that change state or expose internals.
	Guard Guard
	// Recent returns the last events sent, for the status page (nil: none).
	Recent func() [][]byte

	auth pageAuth
}

// Handler returns the endpoints: /healthz, /readyz, /status, /metrics,
// GET /dlq, POST /dlq/retry, POST /dlq/drop.
func (s *Server) Handler() http.Handler {
	s.auth = newPageAuth()
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.servePage) // GET only: servePage refuses other methods
	mux.HandleFunc("POST /ui/dlq", s.pageDLQ)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ok, reasons := true, []string(nil)
		if s.Ready != nil {
			ok, reasons = s.Ready()
		}
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:")
			for _, r := range reasons {
				fmt.Fprintln(w, "- "+r)
			}
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		window := DefaultWindow
		if v := r.URL.Query().Get("window"); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				http.Error(w, "window: want a duration such as 24h", http.StatusBadRequest)
				return
			}
			window = d
		}
		rep, err := s.Status(window)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, rep)
	})
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	// Profiles for diagnosing CPU and memory: internals, so guarded.
	mux.Handle("/debug/pprof/", s.Guard.guard(http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/profile", s.Guard.guard(http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/trace", s.Guard.guard(http.HandlerFunc(pprof.Trace)))
	mux.HandleFunc("GET /dlq", func(w http.ResponseWriter, r *http.Request) {
		dl, err := s.DLQ.DeadLetters(r.URL.Query().Get("destination"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, dl)
	})
	dlqOp := func(op func(string, []uint64) (int, error)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			ids, err := parseIDs(r.URL.Query())
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			n, err := op(r.URL.Query().Get("destination"), ids)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			writeJSON(w, map[string]int{"count": n})
		}
	}
	mux.Handle("POST /dlq/retry", s.Guard.guard(dlqOp(s.DLQ.RetryDead)))
	mux.Handle("POST /dlq/drop", s.Guard.guard(dlqOp(s.DLQ.DropDead)))
	return mux
}

// parseIDs reads id=1&id=2 or all=1 (nil ids mean all).
func parseIDs(q map[string][]string) ([]uint64, error) {
	if len(q["all"]) > 0 {
		return nil, nil
	}
	if len(q["id"]) == 0 {
		return nil, errors.New("give id=N (repeatable) or all=1")
	}
	var ids []uint64
	for _, s := range q["id"] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("id %q is not a number", s)
		}
		ids = append(ids, n)
	}
	return ids, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Listen opens the listener for Serve, so that a caller learns at once
// that the address cannot be bound.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("http.listen %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves h on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Info("serving /metrics /healthz /readyz /status", "listen", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Client talks to a running daemon's endpoints.
type Client struct {
	Base  string // http://127.0.0.1:9464
	HTTP  *http.Client
	Token string // http.token, for the endpoints that change state
}

// NewClient returns a client for the daemon listening on addr.
func NewClient(addr, token string) *Client {
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "" || host == "0.0.0.0" || host == "::") {
		addr = net.JoinHostPort("127.0.0.1", port) // listening on every interface: this host's is one
	}
	return &Client{Base: "http://" + addr, HTTP: &http.Client{Timeout: 30 * time.Second}, Token: token}
}

// Status fetches the daemon's report.
func (c *Client) Status(window time.Duration) (Report, error) {
	var r Report
	return r, c.do(http.MethodGet, "/status?window="+window.String(), nil, &r)
}

// DefaultWindow is the match-key coverage window of status reports.
const DefaultWindow = 24 * time.Hour

// DeadLetters fetches dead letters.
func (c *Client) DeadLetters(dest string) ([]state.DeadLetter, error) {
	var dl []state.DeadLetter
	return dl, c.do(http.MethodGet, "/dlq?destination="+dest, nil, &dl)
}

// RetryDead asks the daemon to retry dead letters.
func (c *Client) RetryDead(dest string, ids []uint64) (int, error) {
	return c.op("/dlq/retry", dest, ids)
}

// DropDead asks the daemon to drop dead letters.
func (c *Client) DropDead(dest string, ids []uint64) (int, error) {
	return c.op("/dlq/drop", dest, ids)
}

func (c *Client) op(path, dest string, ids []uint64) (int, error) {
	q := []string{"destination=" + dest}
	if ids == nil {
		q = append(q, "all=1")
	}
	for _, id := range ids {
		q = append(q, "id="+strconv.FormatUint(id, 10))
	}
	var out struct{ Count int }
	err := c.do(http.MethodPost, path+"?"+strings.Join(q, "&"), nil, &out)
	return out.Count, err
}

func (c *Client) do(method, path string, body any, out any) error {
	req, err := http.NewRequest(method, c.Base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set(RequestHeader, "1")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("ask the running daemon at %s: %w", c.Base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var b strings.Builder
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		b.Write(buf[:n])
		return fmt.Errorf("daemon answered %s: %s", resp.Status, strings.TrimSpace(b.String()))
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
