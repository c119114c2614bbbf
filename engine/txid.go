package engine

import (
	"fmt"
	"strconv"
	"strings"
)

// TxID is a CCF transaction id: the view of the sequencer that wrote the
// entry and its seqno, which is also its JetStream stream sequence.
type TxID struct {
	View  uint64
	Seqno uint64
}

func (t TxID) String() string {
	return strconv.FormatUint(t.View, 10) + "." + strconv.FormatUint(t.Seqno, 10)
}

// ParseTxID parses "view.seqno"; both parts are positive decimal integers.
func ParseTxID(s string) (TxID, error) {
	v, q, ok := strings.Cut(s, ".")
	if !ok {
		return TxID{}, Errorf(KindInvalid, "InvalidTransactionId", "transaction id %q is not view.seqno", s)
	}
	view, err1 := parsePositive(v)
	seq, err2 := parsePositive(q)
	if err1 != nil || err2 != nil {
		return TxID{}, Errorf(KindInvalid, "InvalidTransactionId", "transaction id %q is not view.seqno", s)
	}
	return TxID{View: view, Seqno: seq}, nil
}

func parsePositive(s string) (uint64, error) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("bad number %q", s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad number %q", s)
	}
	return n, nil
}
