package handlers

import "testing"

func TestIfNoneMatch(t *testing.T) {
	const etag = "abc123"
	for _, tc := range []struct {
		values []string
		match  bool
		bad    bool
	}{
		{nil, false, false},
		{[]string{`"abc123"`}, true, false},
		{[]string{`W/"abc123"`}, true, false},
		{[]string{`"other", "abc123"`}, true, false},
		{[]string{`"other"`}, false, false},
		{[]string{`"other"`, `"abc123"`}, true, false},
		{[]string{`*`}, true, false},
		{[]string{`abc123`}, false, true},
		{[]string{`"abc`}, false, true},
		{[]string{`"a b"`}, false, true},
		{[]string{`""`}, false, false},
		{[]string{`"abc123",`}, true, false},
		{[]string{`, ,`}, false, false},
	} {
		match, err := ifNoneMatch(tc.values, etag)
		if match != tc.match || (err != nil) != tc.bad {
			t.Errorf("%q: match %v err %v, want match %v bad %v", tc.values, match, err, tc.match, tc.bad)
		}
	}
}

// FuzzIfNoneMatch: any header value either parses or is a typed 400, and
// a header naming the ETag always matches.
func FuzzIfNoneMatch(f *testing.F) {
	for _, s := range []string{`"abc"`, `W/"abc", "def"`, `*`, `abc`, `"`, ``, `"a""b"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		_, err := ifNoneMatch([]string{v}, "e")
		if err != nil && Status(err) != 400 {
			t.Fatalf("%q: %v is not a 400", v, err)
		}
		if err == nil {
			if m, err := ifNoneMatch([]string{v + `, "e"`}, "e"); err != nil || !m {
				t.Fatalf("%q + the etag: %v %v", v, m, err)
			}
		}
	})
}
