package config

import (
	"strings"
	"time"
)

// Defaults, in one place.
const (
	DefaultStatePath       = "./capisync.db"
	DefaultShutdownTimeout = 30 * time.Second
	DefaultHeartbeat       = 5 * time.Minute
	DefaultPageSize        = 5000
	DefaultLookback        = time.Minute
	DefaultAPIVersion      = "v24.0"
	DefaultBaseURL         = "https://graph.facebook.com"
	DefaultBatchSize       = 1000
	MaxBatchSize           = 1000 // Meta's limit per request
	DefaultFlushInterval   = time.Second
	DefaultInFlight        = 2
	DefaultTimeout         = 30 * time.Second
	DefaultLeaseTTL        = 10 * time.Second
	DefaultMaxOutbox       = 1_000_000
	DefaultProbeInterval   = 30 * time.Second
	DefaultActionSource    = "system_generated"
)

func (c *Config) applyDefaults() {
	if c.State.Type == "" {
		c.State.Type = StateBolt
	}
	if c.State.Type == StateBolt && c.State.Path == "" {
		c.State.Path = DefaultStatePath
	}
	if c.State.Type == StatePostgres {
		if c.State.Schema == "" {
			c.State.Schema = "capisync"
		}
		if c.State.LeaseTTL.Duration == 0 {
			c.State.LeaseTTL.Duration = DefaultLeaseTTL
		}
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "text"
	}
	if c.ShutdownTimeout.Duration == 0 {
		c.ShutdownTimeout.Duration = DefaultShutdownTimeout
	}
	for name, s := range c.Sources {
		if s == nil {
			s = &Source{}
			c.Sources[name] = s
		}
		if s.Timezone == "" {
			s.Timezone = "UTC"
		}
		if s.Type == TypeMySQLBinlog && s.Initial == "" {
			s.Initial = "skip"
		}
		if s.Type == TypePostgres {
			if s.Slot == "" {
				s.Slot = "capisync_" + identSafe(name)
			}
			if s.Publication == "" {
				s.Publication = "capisync_" + identSafe(name)
			}
			if s.Create == nil {
				t := true
				s.Create = &t
			}
			if s.OldValues == "" {
				s.OldValues = "replica_identity"
			}
			if _, set := c.pos[keyPath(keyPath("sources", name), "heartbeat")]; !set {
				s.Heartbeat.Duration = DefaultHeartbeat
			}
			for i, t := range s.Tables.Names {
				if !strings.Contains(t, ".") {
					s.Tables.Names[i] = "public." + t
				}
			}
		}
		if s.IsPolling() {
			if s.PageSize == 0 {
				s.PageSize = DefaultPageSize
			}
			if s.Initial == "" {
				s.Initial = "baseline"
			}
			if s.Deletes == "" {
				s.Deletes = "none"
			}
			for tname, t := range s.Tables.Tables {
				if _, set := c.pos[keyPath(keyPath(keyPath(keyPath("sources", name), "tables"), tname), "lookback")]; !set {
					t.Lookback.Duration = DefaultLookback
				}
			}
		}
	}
	for _, d := range c.Destinations {
		if d == nil {
			continue
		}
		if d.APIVersion == "" {
			d.APIVersion = DefaultAPIVersion
		}
		if d.BaseURL == "" {
			d.BaseURL = DefaultBaseURL
		}
		if d.BatchSize == 0 {
			d.BatchSize = DefaultBatchSize
		}
		if d.FlushInterval.Duration == 0 {
			d.FlushInterval.Duration = DefaultFlushInterval
		}
		if d.InFlight == 0 {
			d.InFlight = DefaultInFlight
		}
		if d.Timeout.Duration == 0 {
			d.Timeout.Duration = DefaultTimeout
		}
		if d.ProbeInterval.Duration == 0 {
			d.ProbeInterval.Duration = DefaultProbeInterval
		}
		if d.MaxOutbox == 0 {
			d.MaxOutbox = DefaultMaxOutbox
		}
	}
	for i, r := range c.Rules {
		if r == nil {
			r = &Rule{}
			c.Rules[i] = r
		}
		r.Index = i
		if r.ActionSource == "" {
			r.ActionSource = DefaultActionSource
		}
		if src := c.Sources[r.Source]; src != nil {
			if r.DefaultCountry == "" {
				r.DefaultCountry = src.DefaultCountry
			}
			if src.Type == TypePostgres && r.Table != "" && !strings.Contains(r.Table, ".") {
				r.Table = "public." + r.Table
			}
		}
	}
}

// identSafe turns a source name into something usable in a slot name.
func identSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '_'
	}, s)
}
