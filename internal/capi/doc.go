// Package capi holds Meta Conversions API server-event wire types, Meta's
// names (standard events, action sources, user_data keys), and Meta's
// normalize-and-hash rules for user_data. It is pure: no I/O and no imports
// of other capisync packages.
package capi
