// Package bounded owns a small concurrency-safe cache with a fixed number of
// entries and least-recently-added eviction: enough to keep the results of
// expensive pure checks (certificate parsing, chain validation) for the
// issuers that send most requests, without growing with hostile input.
package bounded

import "sync"

// Cache maps keys to values, holding at most its capacity.
type Cache[K comparable, V any] struct {
	mu    sync.Mutex
	cap   int
	items map[K]V
	order []K // ring of insertion order
	next  int
}

// New returns a cache holding at most capacity entries.
func New[K comparable, V any](capacity int) *Cache[K, V] {
	capacity = max(capacity, 1)
	return &Cache[K, V]{cap: capacity, items: make(map[K]V, capacity), order: make([]K, 0, capacity)}
}

// Get returns the value for k.
func (c *Cache[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.items[k]
	return v, ok
}

// Put stores v under k, evicting the oldest entry when full.
func (c *Cache[K, V]) Put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		c.items[k] = v
		return
	}
	if len(c.order) < c.cap {
		c.order = append(c.order, k)
	} else {
		delete(c.items, c.order[c.next])
		c.order[c.next] = k
		c.next = (c.next + 1) % c.cap
	}
	c.items[k] = v
}

// Len is the number of entries.
func (c *Cache[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items)
}
