package pipeline

import (
	"github.com/capisync/capisync/connectors/metacapi"
	"github.com/capisync/capisync/state"
)

func toState(outcomes []metacapi.Outcome) []state.Outcome {
	out := make([]state.Outcome, len(outcomes))
	for i, o := range outcomes {
		so := state.Outcome{Seq: o.Seq, Reason: o.Reason, Attempts: o.Attempts}
		switch o.Status {
		case metacapi.Delivered:
			so.Status = state.Delivered
		case metacapi.DeadLettered:
			so.Status = state.DeadLettered
		default:
			so.Status = state.Deferred
		}
		if o.Err != nil {
			so.Code, so.Subcode, so.Message, so.FBTraceID = o.Err.Code, o.Err.Subcode, o.Err.Message, o.Err.FBTraceID
			if o.Err.UserMsg != "" {
				so.Message += ": " + o.Err.UserMsg
			}
		}
		out[i] = so
	}
	return out
}
