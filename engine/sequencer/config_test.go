package sequencer

import (
	"errors"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string // "" when valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"smallest batch", func(c *Config) { c.MaxBatch = 2 }, ""},
		{"largest batch", func(c *Config) { c.MaxBatch = 1000 }, ""},
		{"batch of one", func(c *Config) { c.MaxBatch = 1 }, "MaxBatch"},
		{"batch of 5000", func(c *Config) { c.MaxBatch = 5000 }, "MaxBatch"},
		{"no batch bytes", func(c *Config) { c.MaxBatchBytes = 0 }, "MaxBatchBytes"},
		{"no queue", func(c *Config) { c.QueueSize = 0 }, "QueueSize"},
		{"huge queue", func(c *Config) { c.QueueSize = 1_000_001 }, "QueueSize"},
		{"sign every 0", func(c *Config) { c.SignEvery = 0 }, "SignEvery"},
		{"no attempts", func(c *Config) { c.MaxAttempts = 0 }, "MaxAttempts"},
		{"no linger", func(c *Config) { c.Linger = 0 }, ""},
		{"negative linger", func(c *Config) { c.Linger = -time.Millisecond }, "Linger"},
		{"long linger", func(c *Config) { c.Linger = 2 * time.Second }, "Linger"},
		{"sign interval 0", func(c *Config) { c.SignInterval = 0 }, "SignInterval"},
		{"sign interval 1h", func(c *Config) { c.SignInterval = time.Hour }, ""},
		{"sign interval 2 days", func(c *Config) { c.SignInterval = 48 * time.Hour }, "SignInterval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			tc.edit(&c)
			err := c.Validate()
			var re *RangeError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("valid config refused: %v", err)
			case tc.field != "" && (!errors.As(err, &re) || re.Field != tc.field):
				t.Fatalf("got %v, want a RangeError on %s", err, tc.field)
			}
		})
	}
}
