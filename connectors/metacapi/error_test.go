package metacapi

import (
	"net/http"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   Kind
	}{
		{500, `{"error":{"code":2,"is_transient":true}}`, Transient},
		{503, `<html>gateway</html>`, Transient},
		{400, `{"error":{"code":1}}`, Transient},
		{400, `{"error":{"code":341}}`, Transient},
		{400, `{"error":{"code":368}}`, Transient},
		{400, `{"error":{"code":9999,"is_transient":true}}`, Transient},
		{400, `{"error":{"code":4}}`, Throttled},
		{400, `{"error":{"code":17}}`, Throttled},
		{400, `{"error":{"code":32}}`, Throttled},
		{400, `{"error":{"code":613}}`, Throttled},
		{400, `{"error":{"code":80003}}`, Throttled},
		{400, `{"error":{"code":80004}}`, Throttled},
		{429, ``, Throttled},
		{400, `{"error":{"code":190,"error_subcode":463}}`, Auth},
		{401, `{"error":{"code":190}}`, Auth},
		{400, `{"error":{"code":10}}`, Auth},
		{400, `{"error":{"code":102}}`, Auth},
		{400, `{"error":{"code":200}}`, Auth},
		{400, `{"error":{"code":294}}`, Auth},
		{400, `{"error":{"code":100,"error_subcode":33}}`, Auth},
		{403, `Forbidden`, Auth},
		{400, `{"error":{"code":100,"error_subcode":2804003}}`, Invalid},
		// Code 100 is about an event only with a 2804xxx subcode; without
		// one (appsecret_proof missing, say) it refuses the request.
		{400, `{"error":{"code":100,"message":"API calls from the server require an appsecret_proof argument"}}`, Auth},
		{400, `{"error":{"code":3,"message":"Application does not have the capability to make this API call."}}`, Auth},
		{400, `{"error":{"code":100,"error_subcode":2804019}}`, Invalid},
		{400, `{"error":{"code":100,"error_subcode":1487390}}`, Invalid},
		{413, ``, Invalid},
	}
	for _, tt := range tests {
		e := classify(tt.status, http.Header{}, []byte(tt.body))
		if e.Kind != tt.want {
			t.Errorf("HTTP %d %s: %s, want %s", tt.status, tt.body, e.Kind, tt.want)
		}
	}
	h := http.Header{}
	h.Set("Retry-After", "7")
	if e := classify(429, h, nil); e.RetryAfter().Seconds() != 7 {
		t.Errorf("Retry-After = %s", e.RetryAfter())
	}
}
