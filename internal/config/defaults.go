package config

import (
	"strings"
	"time"
)

// Defaults, in one place.
const (
	DefaultStatePath       = "./capisync.db"
	DefaultShutdownTimeout = 30 * time.Second
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
		t, ok := sourceType(s.Type)
		if !ok {
			continue // validation names the type
		}
		if t.DefaultSchema != "" {
			for i, tname := range s.Tables.Names {
				if !strings.Contains(tname, ".") {
					s.Tables.Names[i] = t.DefaultSchema + "." + tname
				}
			}
		}
		if s.Options == nil && t.Options != nil {
			s.Options = t.Options()
		}
		if t.Defaults != nil {
			p := keyPath("sources", name)
			t.Defaults(name, s, func(key string) bool { return c.has(keyPath(p, key)) })
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
			if t, ok := sourceType(src.Type); ok && t.DefaultSchema != "" && r.Table != "" && !strings.Contains(r.Table, ".") {
				r.Table = t.DefaultSchema + "." + r.Table
			}
		}
	}
}
