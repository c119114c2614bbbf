package netmap

import (
	"fmt"
	"strings"
	"unicode"
)

// x500Order is the order of a legal name's attributes in its normal form,
// Corda's CordaX500Name.toString order.
var x500Order = []string{"CN", "OU", "O", "L", "ST", "C"}

// NormalizeLegalName checks a legal name as Corda's CordaX500Name does —
// attributes from CN, OU, O, L, ST, C, each at most once, O, L and C
// required, C two capital letters — and returns its normal form, in which
// two spellings of one name are equal.
func NormalizeLegalName(name string) (string, error) {
	attrs := map[string]string{}
	for part := range strings.SplitSeq(name, ",") {
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return "", fmt.Errorf("%q is not an attribute=value pair", strings.TrimSpace(part))
		}
		if !isX500Attr(k) {
			return "", fmt.Errorf("attribute %q is not one of CN, OU, O, L, ST, C", k)
		}
		if _, dup := attrs[k]; dup {
			return "", fmt.Errorf("attribute %s appears twice", k)
		}
		if v == "" {
			return "", fmt.Errorf("attribute %s is empty", k)
		}
		for _, r := range v {
			if unicode.IsControl(r) || strings.ContainsRune(`=,"\+;<>`, r) {
				return "", fmt.Errorf("attribute %s contains %q", k, r)
			}
		}
		attrs[k] = v
	}
	for _, k := range []string{"O", "L", "C"} {
		if attrs[k] == "" {
			return "", fmt.Errorf("attribute %s is required", k)
		}
	}
	if c := attrs["C"]; len(c) != 2 || c[0] < 'A' || c[0] > 'Z' || c[1] < 'A' || c[1] > 'Z' {
		return "", fmt.Errorf("country %q is not two capital letters", attrs["C"])
	}
	var b strings.Builder
	for _, k := range x500Order {
		if v, ok := attrs[k]; ok {
			if b.Len() > 0 {
				b.WriteString(", ")
			}
			b.WriteString(k + "=" + v)
		}
	}
	return b.String(), nil
}

func isX500Attr(k string) bool {
	for _, a := range x500Order {
		if a == k {
			return true
		}
	}
	return false
}

// validJavaName reports whether s is a dotted sequence of Java identifiers,
// Corda's isPackageValid (also the shape of a contract class name).
func validJavaName(s string) bool {
	if s == "" || strings.HasSuffix(s, ".") {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return false
		}
		for i, r := range tok {
			start := unicode.IsLetter(r) || r == '_' || r == '$'
			if !start && (i == 0 || !unicode.IsDigit(r)) {
				return false
			}
		}
	}
	return true
}

// packagesOverlap returns two packages of which one is a subpackage of the
// other (Corda's noPackageOverlap), or ok=false. Keys of a map are distinct.
func packagesOverlap(pkgs []string) (a, b string, ok bool) {
	set := make(map[string]bool, len(pkgs))
	for _, p := range pkgs {
		set[p] = true
	}
	for _, p := range pkgs {
		for i := len(p) - 1; i > 0; i-- {
			if p[i] == '.' && set[p[:i]] {
				return p[:i], p, true
			}
		}
	}
	return "", "", false
}
