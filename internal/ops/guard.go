package ops

import (
	"crypto/subtle"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// RequestHeader is the header every request that changes state (or reads
// internals) carries when the listener has no token. A browser cannot add
// a custom header to a cross-site request without a CORS preflight, which
// this server never answers, so a web page cannot forge such a request.
const RequestHeader = "X-Capisync-Request"

// Guard decides who may use the endpoints that change state (POST
// /dlq/retry, /dlq/drop) or expose internals (/debug/pprof):
//
//   - with a token configured, a request must give it as
//     "Authorization: Bearer TOKEN";
//   - without one, only a loopback listener serves them, and only to
//     requests that carry RequestHeader and whose Origin, when a browser
//     sent one, is the listener itself.
//
// Read-only endpoints (/healthz, /readyz, /status, /metrics, GET /dlq) are
// open to whoever reaches the listener.
type Guard struct {
	Token    string // empty: no token
	Loopback bool   // the listener accepts connections from this host only
}

// IsLoopback reports whether a listen address (host:port) binds only
// loopback addresses: 127.0.0.0/8, ::1 or localhost. An empty host (all
// interfaces) is not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// allow reports whether r may use a guarded endpoint, and if not the status
// and message to answer with.
func (g Guard) allow(r *http.Request) (int, string) {
	if g.Token != "" {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(g.Token)) != 1 {
			return http.StatusUnauthorized, "this endpoint needs the http.token of the config, as Authorization: Bearer TOKEN"
		}
		return 0, ""
	}
	if !g.Loopback {
		return http.StatusForbidden, "this endpoint is served on a non-loopback listener only with http.token set in the config"
	}
	if r.Header.Get(RequestHeader) == "" {
		return http.StatusForbidden, "requests that change state need the header " + RequestHeader + ": 1 (capisync's own commands send it)"
	}
	if !sameOrigin(r) {
		return http.StatusForbidden, "cross-site request refused"
	}
	return 0, ""
}

// sameOrigin reports whether a browser's Origin and Sec-Fetch-Site (when
// given) say the request comes from the listener's own pages.
func sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		return true // not a browser's cross-origin request
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// guard wraps h with g.
func (g Guard) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if code, msg := g.allow(r); code != 0 {
			http.Error(w, msg, code)
			return
		}
		h.ServeHTTP(w, r)
	})
}
