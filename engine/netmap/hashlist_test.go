package netmap

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
)

// The kept hash list is a sorted multiset whose bytes are the JSON list's
// items: checked against a sorted slice over random inserts and removes,
// duplicates and removes of absent hashes included.
func TestHashListAgreesWithSortedSlice(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	pool := make([]string, 40)
	for i := range pool {
		s := sha256.Sum256([]byte{byte(i)})
		pool[i] = hex.EncodeToString(s[:])
	}
	var l hashList
	var want []string
	for range 2000 {
		h := pool[rng.IntN(len(pool))]
		if rng.IntN(2) == 0 {
			l.insert(h)
			want = append(want, h)
			slices.Sort(want)
		} else {
			l.remove(h)
			if i, ok := slices.BinarySearch(want, h); ok {
				want = slices.Delete(want, i, i+1)
			}
		}
		if got := l.strings(); !slices.Equal(got, want) {
			t.Fatalf("list %v, want %v", got, want)
		}
		var enc []byte
		if len(l.b) > 0 {
			enc = l.b[1:]
		}
		if wantJSON, _ := json.Marshal(append([]string{}, want...)); string(append(append([]byte("["), enc...), ']')) != string(wantJSON) {
			t.Fatalf("items %s do not make the JSON list %s", enc, wantJSON)
		}
	}
}
