package ops

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/capisync/capisync/state"
)

//go:embed page/status.html
var pageFS embed.FS

// pageTmpl is the status page: server-rendered, its CSS inline, no script
// (a meta refresh while the daemon runs).
var pageTmpl = template.Must(template.New("status.html").Funcs(template.FuncMap{
	"deref": func(b *bool) bool { return b != nil && *b },
	"ago":   func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
	"pct":   func(f float64) string { return strconv.FormatFloat(100*f, 'f', 0, 64) + "%" },
	"sum": func(xs []int64) int64 {
		var n int64
		for _, x := range xs {
			n += x
		}
		return n
	},
	"last": func(xs []int64) int64 {
		if len(xs) == 0 {
			return 0
		}
		return xs[len(xs)-1]
	},
	"chart":    hourlyChart,
	"unpaused": func(reason string) string { return strings.TrimPrefix(reason, "paused: ") },
}).ParseFS(pageFS, "page/status.html"))

// PageData is what the status page shows: the report, the latest dead
// letters, the last events sent, and whether the page may act on dead
// letters (with its CSRF token).
type PageData struct {
	Report
	MatchKeys   []string
	DeadLetters []state.DeadLetter
	Recent      [][]byte
	CanAct      bool
	NeedToken   bool
	CSRF        string
}

// maxPageDeadLetters is how many dead letters the page lists.
const maxPageDeadLetters = 20

// WritePage renders the status page.
func WritePage(w io.Writer, d PageData) error {
	d.MatchKeys = MatchKeys
	if n := len(d.DeadLetters); n > maxPageDeadLetters {
		d.DeadLetters = d.DeadLetters[n-maxPageDeadLetters:]
	}
	// Newest first.
	for i, j := 0, len(d.DeadLetters)-1; i < j; i, j = i+1, j-1 {
		d.DeadLetters[i], d.DeadLetters[j] = d.DeadLetters[j], d.DeadLetters[i]
	}
	var buf bytes.Buffer
	if err := pageTmpl.Execute(&buf, d); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// hourlyChart draws 24 hourly counts as a small inline SVG bar chart.
func hourlyChart(xs []int64) template.HTML {
	const w, h, bw = 120, 24, 5
	var peak int64 = 1
	for _, x := range xs {
		peak = max(peak, x)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="events per hour, last 24 hours">`, w, h, w, h)
	for i, x := range xs {
		bh := int(float64(x) / float64(peak) * (h - 1))
		if x > 0 && bh == 0 {
			bh = 1
		}
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="#1a73e8"><title>%d</title></rect>`, i*bw, h-bh, bw-1, bh, x)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// pageAuth makes and checks the page's CSRF tokens: an HMAC of a random
// key made when the daemon starts, so a form from another site (or an
// earlier run) cannot be replayed.
type pageAuth struct{ key []byte }

func newPageAuth() pageAuth {
	k := make([]byte, 32)
	rand.Read(k)
	return pageAuth{key: k}
}

func (a pageAuth) token() string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte("capisync status page"))
	return hex.EncodeToString(m.Sum(nil))
}

func (a pageAuth) valid(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(a.token())) == 1
}

// canAct reports whether the page may retry or drop dead letters: on a
// loopback listener, or with a token (which the form then asks for).
func (g Guard) canAct() bool { return g.Loopback || g.Token != "" }

// servePage is GET /.
func (s *Server) servePage(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rep, err := s.Status(DefaultWindow)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	d := PageData{Report: rep, CanAct: s.Guard.canAct(), NeedToken: s.Guard.Token != "", CSRF: s.auth.token()}
	if d.DeadLetters, err = s.DLQ.DeadLetters(""); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if s.Recent != nil {
		d.Recent = s.Recent()
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	WritePage(w, d)
}

// pageDLQ is POST /ui/dlq: the page's retry and drop buttons. A
// same-origin form with the page's CSRF token, on a loopback listener or
// with http.token given in the form.
func (s *Server) pageDLQ(w http.ResponseWriter, r *http.Request) {
	if !s.Guard.canAct() {
		http.Error(w, "the status page acts on dead letters only on a loopback listener or with http.token", http.StatusForbidden)
		return
	}
	if !sameOrigin(r) || !s.auth.valid(r.FormValue("csrf")) {
		http.Error(w, "cross-site or stale form refused", http.StatusForbidden)
		return
	}
	if s.Guard.Token != "" && subtle.ConstantTimeCompare([]byte(r.FormValue("token")), []byte(s.Guard.Token)) != 1 {
		http.Error(w, "wrong http.token", http.StatusUnauthorized)
		return
	}
	id, err := strconv.ParseUint(r.FormValue("id"), 10, 64)
	if err != nil {
		http.Error(w, "id is not a number", http.StatusBadRequest)
		return
	}
	op := s.DLQ.RetryDead
	if r.FormValue("op") == "drop" {
		op = s.DLQ.DropDead
	}
	if _, err := op(r.FormValue("destination"), []uint64{id}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
