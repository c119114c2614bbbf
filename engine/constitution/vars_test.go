package constitution

import "strings"

var hex64 = strings.Repeat("0123456789abcdef", 4)
var hex96 = strings.Repeat("0123456789abcdef", 6)
