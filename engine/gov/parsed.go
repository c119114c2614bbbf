package gov

import "sync"

// parsedRecords keeps decoded records by their exact bytes: every request
// decodes its member's record, the service configuration and the budget,
// which change rarely. Decoding is pure, so a kept value is the decoded
// one; values are copied out, never shared for writing.
type parsedRecords[T any] struct {
	mu sync.Mutex
	m  map[string]T
}

// maxParsedRecords bounds each cache, past which it starts again, and
// maxParsedBytes the records kept (larger ones are decoded each time).
const (
	maxParsedRecords = 1024
	maxParsedBytes   = 16 << 10
)

func (c *parsedRecords[T]) get(raw []byte) (T, bool) {
	c.mu.Lock()
	v, ok := c.m[string(raw)]
	c.mu.Unlock()
	return v, ok
}

func (c *parsedRecords[T]) put(raw []byte, v T) {
	if len(raw) > maxParsedBytes {
		return
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxParsedRecords {
		c.m = map[string]T{}
	}
	c.m[string(raw)] = v
	c.mu.Unlock()
}
