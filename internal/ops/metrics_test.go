package ops

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/capisync/capisync/connectors/metacapi"
)

// TestObserveSettle: outcomes are counted per destination and event name;
// an event settled after more than one attempt, or deferred, was retried.
func TestObserveSettle(t *testing.T) {
	m := NewMetrics(func() (Gauges, error) { return Gauges{}, nil })
	m.ObserveSettle("meta", []metacapi.Outcome{
		{EventName: "Lead", Status: metacapi.Delivered, Attempts: 1},
		{EventName: "Lead", Status: metacapi.Delivered, Attempts: 3},
		{EventName: "Purchase", Status: metacapi.Delivered, Attempts: 1},
		{EventName: "Purchase", Status: metacapi.DeadLettered, Attempts: 2},
		{EventName: "Lead", Status: metacapi.Deferred},
	})
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"delivered Lead", value(m.delivered.WithLabelValues("meta", "Lead")), 2},
		{"delivered Purchase", value(m.delivered.WithLabelValues("meta", "Purchase")), 1},
		{"dead-lettered Purchase", value(m.deadLettered.WithLabelValues("meta", "Purchase")), 1},
		{"retried Lead", value(m.retried.WithLabelValues("meta", "Lead")), 2},
		{"retried Purchase", value(m.retried.WithLabelValues("meta", "Purchase")), 1},
	} {
		if c.got != c.want {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
}

func value(c prometheus.Counter) float64 {
	var pb dto.Metric
	c.Write(&pb)
	return pb.GetCounter().GetValue()
}
