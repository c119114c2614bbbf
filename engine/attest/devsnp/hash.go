package devsnp

import "crypto/sha512"

func sha384(b []byte) []byte {
	sum := sha512.Sum384(b)
	return sum[:]
}
