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
		{"fill to 1", func(c *Config) { c.FillTo = 1 }, ""},
		{"fill to 0", func(c *Config) { c.FillTo = 0 }, "FillTo"},
		{"fill to 1001", func(c *Config) { c.FillTo = 1001 }, "FillTo"},
		{"never fill", func(c *Config) { c.FillWait = -1 }, ""},
		{"fill wait 2s", func(c *Config) { c.FillWait = 2 * time.Second }, "FillWait"},
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

func TestFillDefaults(t *testing.T) {
	if c := (Config{MaxBatch: 8}).WithDefaults(); c.FillTo != 7 || c.FillWait != DefaultConfig().FillWait {
		t.Fatalf("FillTo %d, FillWait %s: want the batch limit less the signature, and the default wait", c.FillTo, c.FillWait)
	}
	if c := (Config{FillWait: -1}).WithDefaults(); c.FillWait != -1 {
		t.Fatalf("a negative FillWait (never hold) became %s", c.FillWait)
	}
}
