package bounded

import "testing"

func TestEvictsOldestFirst(t *testing.T) {
	c := New[int, string](3)
	for i := range 5 {
		c.Put(i, string(rune('a'+i)))
	}
	if c.Len() != 3 {
		t.Fatalf("len %d", c.Len())
	}
	for i, want := range []bool{false, false, true, true, true} {
		if _, ok := c.Get(i); ok != want {
			t.Fatalf("key %d present=%v", i, ok)
		}
	}
	c.Put(4, "E") // overwrite keeps the size
	if v, _ := c.Get(4); v != "E" || c.Len() != 3 {
		t.Fatalf("overwrite: %q len %d", v, c.Len())
	}
	c.Put(5, "f")
	if _, ok := c.Get(2); ok {
		t.Fatal("oldest survived")
	}
}
