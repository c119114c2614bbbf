package cose

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
)

// Sign1 is a decoded COSE_Sign1 (RFC 9052 §4.2). Protected, Payload and
// Signature are kept as the exact bytes that were signed.
type Sign1 struct {
	// Protected is the serialized protected header map (the byte string's
	// contents), as it enters the Sig_structure.
	Protected []byte
	// Unprotected is the unprotected header map.
	Unprotected Header
	// Payload is nil when the payload is detached (CBOR null).
	Payload []byte
	// Signature is the raw signature.
	Signature []byte
}

// ProtectedHeader decodes Protected.
func (m *Sign1) ProtectedHeader() (Header, error) { return DecodeHeader(m.Protected) }

// Encode returns the tagged COSE_Sign1.
func (m *Sign1) Encode() ([]byte, error) {
	uhdr, err := m.Unprotected.Encode()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 16+len(m.Protected)+len(uhdr)+len(m.Payload)+len(m.Signature))
	b = append(b, 0xd2, 0x84) // tag 18, array(4)
	b = appendBytes(b, m.Protected)
	b = append(b, uhdr...)
	if m.Payload == nil {
		b = append(b, 0xf6)
	} else {
		b = appendBytes(b, m.Payload)
	}
	return appendBytes(b, m.Signature), nil
}

// DecodeSign1 decodes a tagged COSE_Sign1 strictly: tag 18 in its one-byte
// form, a four-item array, shortest-form byte string lengths, header maps
// without duplicate labels, no trailing bytes. Errors are *engine.Error with
// code InvalidCOSE. Protected, Payload, Signature and the unprotected
// header's values share raw's bytes (capped, so an append copies): a
// statement is parsed once per request, and copying it was most of that.
func DecodeSign1(raw []byte) (*Sign1, error) {
	if len(raw) == 0 || raw[0] != 0xd2 {
		return nil, invalidCOSE("not a tagged COSE_Sign1 (CBOR tag 18)")
	}
	if err := engine.CBORDecode.Wellformed(raw); err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidCOSE, err, "not well-formed CBOR")
	}
	// Well-formed from here on: every item is complete, of definite length.
	if len(raw) < 2 || raw[1] != 0x84 {
		return nil, invalidCOSE("COSE_Sign1 must be an array of four items")
	}
	rest := raw[2:]
	m := &Sign1{}
	var err error
	if m.Protected, rest, err = cutByteString(rest); err != nil {
		return nil, invalidCOSE("protected header: %v", err)
	}
	if majorType(rest) != majorMap {
		return nil, invalidCOSE("unprotected header is not a map")
	}
	n := itemLen(rest)
	if m.Unprotected, err = decodeHeader(rest[:n:n]); err != nil {
		return nil, invalidCOSE("unprotected header: %v", engine.AsError(err).Message)
	}
	rest = rest[n:]
	if rest[0] == 0xf6 {
		rest = rest[1:]
	} else if m.Payload, rest, err = cutByteString(rest); err != nil {
		return nil, invalidCOSE("payload: %v", err)
	}
	if m.Signature, _, err = cutByteString(rest); err != nil {
		return nil, invalidCOSE("signature: %v", err)
	}
	return m, nil
}

// itemLen is the length of the data item b starts with; b must be
// well-formed CBOR without indefinite lengths (CBORDecode forbids them).
func itemLen(b []byte) int {
	off := 0
	for items := uint64(1); items > 0; items-- {
		major, ai := b[off]>>5, b[off]&0x1f
		off++
		v := uint64(ai)
		switch ai {
		case 24:
			v, off = uint64(b[off]), off+1
		case 25:
			v, off = uint64(binary.BigEndian.Uint16(b[off:])), off+2
		case 26:
			v, off = uint64(binary.BigEndian.Uint32(b[off:])), off+4
		case 27:
			v, off = binary.BigEndian.Uint64(b[off:]), off+8
		}
		switch major {
		case majorBytes, majorText:
			off += int(v)
		case majorArray:
			items += v
		case majorMap:
			items += 2 * v
		case majorTag:
			items++
		}
	}
	return off
}

// cutByteString splits b into the contents of the byte string it starts
// with and what follows; the length must be in shortest form, so that
// re-encoding reproduces the signed bytes.
func cutByteString(b []byte) (v, rest []byte, err error) {
	if majorType(b) != majorBytes {
		return nil, nil, errString("not a byte string")
	}
	v, rest, ok := cutString(b)
	switch {
	case !ok:
		return nil, nil, errString("bad byte string")
	case len(b)-len(rest)-len(v) != headLen(uint64(len(v))):
		return nil, nil, errString("byte string length is not in shortest form")
	}
	return v, rest, nil
}

// cutString splits b into the contents of the definite-length byte or
// text string it starts with and what follows.
func cutString(b []byte) (v, rest []byte, ok bool) {
	ai := b[0] & 0x1f
	n, head := uint64(ai), 1
	switch {
	case ai < 24:
	case ai <= 27:
		head += 1 << (ai - 24)
		if len(b) < head {
			return nil, nil, false
		}
		n = 0
		for _, c := range b[1:head] {
			n = n<<8 | uint64(c)
		}
	default:
		return nil, nil, false
	}
	if n > uint64(len(b)-head) {
		return nil, nil, false
	}
	end := head + int(n)
	return b[head:end:end], b[end:], true
}

// SigStructure is the Signature1 Sig_structure of RFC 9052 §4.4 with an
// empty external AAD: the bytes a COSE_Sign1 signature covers.
func SigStructure(protected, payload []byte) []byte {
	b := appendSigStructureHead(make([]byte, 0, 24+len(protected)+len(payload)), protected, len(payload))
	return append(b, payload...)
}

// Header is a COSE header map. Labels are int64 or string; use Get and Set,
// which normalise any Go integer label to int64.
type Header map[any]cbor.RawMessage

// DecodeHeader decodes a serialized header map; an empty input is an empty
// protected header (RFC 9052 §3). The values share raw's bytes (capped).
func DecodeHeader(raw []byte) (Header, error) {
	if len(raw) == 0 {
		return Header{}, nil
	}
	if majorType(raw) != majorMap {
		return nil, invalidCOSE("header is not a map")
	}
	if err := engine.CBORDecode.Wellformed(raw); err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidCOSE, err, "header map")
	}
	return decodeHeader(raw)
}

// decodeHeader decodes the well-formed map raw: labels are integers or
// text, each at most once.
func decodeHeader(raw []byte) (Header, error) {
	_, pairs, head := cborHead(raw)
	h := make(Header, pairs)
	rest := raw[head:]
	for range pairs {
		k := itemLen(rest)
		label, ok := decodeLabel(rest[:k])
		if !ok {
			return nil, invalidCOSE("header label %x is neither an integer nor text", truncateBytes(rest[:k]))
		}
		rest = rest[k:]
		v := itemLen(rest)
		if _, dup := h[label]; dup {
			return nil, invalidCOSE("header map: duplicate label %v", label)
		}
		if err := checkLeadingTags(rest[:v]); err != nil {
			return nil, invalidCOSE("header map: label %v: %v", label, err)
		}
		h[label] = cbor.RawMessage(rest[:v:v])
		rest = rest[v:]
	}
	return h, nil
}

// checkLeadingTags refuses a value whose outer tags are CBOR's built-in
// ones (RFC 8949 §3.4) on content of the wrong type, as the CBOR library
// does when it decodes a value.
func checkLeadingTags(b []byte) error {
	for majorType(b) == majorTag {
		_, tag, head := cborHead(b)
		b = b[head:]
		next := majorType(b)
		switch {
		case tag == 0 && next != majorText:
			return errString("tag 0 must hold text")
		case tag == 1 && next != majorUint && next != majorNegint && (b[0] < 0xf9 || b[0] > 0xfb):
			return errString("tag 1 must hold an integer or a float")
		case (tag == 2 || tag == 3) && next != majorBytes:
			return errString("tags 2 and 3 must hold a byte string")
		}
	}
	return nil
}

// cborHead reads the head of the well-formed item b starts with: its
// major type, argument and the head's length.
func cborHead(b []byte) (major byte, arg uint64, head int) {
	major, ai := b[0]>>5, b[0]&0x1f
	if ai < 24 {
		return major, uint64(ai), 1
	}
	head = 1 + 1<<(ai-24)
	for _, c := range b[1:head] {
		arg = arg<<8 | uint64(c)
	}
	return major, arg, head
}

// decodeLabel reads a well-formed header label: an integer that fits an
// int64, or valid UTF-8 text.
func decodeLabel(b []byte) (any, bool) {
	major, arg, head := cborHead(b)
	switch {
	case major == majorUint && arg <= math.MaxInt64:
		return int64(arg), true
	case major == majorNegint && arg <= math.MaxInt64:
		return -1 - int64(arg), true
	case major == majorText && utf8.Valid(b[head:]):
		return string(b[head:]), true
	}
	return nil, false
}

func truncateBytes(b []byte) []byte { return b[:min(len(b), 16)] }

// Encode returns the core-deterministic encoding of h (an empty map for nil).
func (h Header) Encode() ([]byte, error) {
	if len(h) == 0 {
		return []byte{0xa0}, nil
	}
	b, err := engine.CBOR.Marshal(map[any]cbor.RawMessage(h))
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidCOSE, err, "header does not encode")
	}
	return b, nil
}

// Get returns the raw value at label.
func (h Header) Get(label any) (cbor.RawMessage, bool) {
	l, ok := normalizeLabel(label)
	if !ok {
		return nil, false
	}
	v, ok := h[l]
	return v, ok
}

// Set stores a raw value at label; it panics on a label that is neither an
// integer nor a string, a programming error.
func (h Header) Set(label any, value cbor.RawMessage) {
	l, ok := normalizeLabel(label)
	if !ok {
		panic(fmt.Sprintf("cose: header label %T", label))
	}
	h[l] = value
}

// Int returns the integer at label; ok is false when the label is absent.
func (h Header) Int(label any) (v int64, ok bool, err error) {
	raw, ok := h.Get(label)
	if !ok {
		return 0, false, nil
	}
	v, err = DecodeInt(raw)
	return v, true, err
}

// Text returns the text string at label.
func (h Header) Text(label any) (v string, ok bool, err error) {
	raw, ok := h.Get(label)
	if !ok {
		return "", false, nil
	}
	v, err = DecodeText(raw)
	return v, true, err
}

// Bytes returns the byte string at label.
func (h Header) Bytes(label any) (v []byte, ok bool, err error) {
	raw, ok := h.Get(label)
	if !ok {
		return nil, false, nil
	}
	v, err = decodeByteString(raw)
	return v, true, err
}

// Map returns the map at label as a Header.
func (h Header) Map(label any) (v Header, ok bool, err error) {
	raw, ok := h.Get(label)
	if !ok {
		return nil, false, nil
	}
	if majorType(raw) != majorMap {
		return nil, true, fmt.Errorf("not a map")
	}
	v, err = DecodeHeader(raw)
	return v, true, err
}

// DecodeInt decodes a CBOR integer that fits in an int64.
func DecodeInt(raw cbor.RawMessage) (int64, error) {
	if mt := majorType(raw); mt != majorUint && mt != majorNegint {
		return 0, fmt.Errorf("not an integer")
	}
	var v int64
	if err := engine.CBORDecode.Unmarshal(raw, &v); err != nil {
		return 0, fmt.Errorf("integer out of range")
	}
	return v, nil
}

// DecodeText decodes a CBOR text string (valid UTF-8).
func DecodeText(raw cbor.RawMessage) (string, error) {
	if majorType(raw) != majorText {
		return "", fmt.Errorf("not a text string")
	}
	v, rest, ok := cutString(raw)
	if !ok || len(rest) != 0 || !utf8.Valid(v) {
		return "", fmt.Errorf("bad text string")
	}
	return string(v), nil
}

// DecodeBytes decodes a CBOR byte string in shortest form.
func DecodeBytes(raw cbor.RawMessage) ([]byte, error) { return decodeByteString(raw) }

func decodeByteString(raw []byte) ([]byte, error) {
	v, rest, err := cutByteString(raw)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errString("bad byte string")
	}
	return v, nil
}

const (
	majorUint   = 0
	majorNegint = 1
	majorBytes  = 2
	majorText   = 3
	majorArray  = 4
	majorMap    = 5
	majorTag    = 6
)

func majorType(raw []byte) int {
	if len(raw) == 0 {
		return -1
	}
	return int(raw[0] >> 5)
}

func normalizeLabel(label any) (any, bool) {
	switch l := label.(type) {
	case int64:
		return l, true
	case int:
		return int64(l), true
	case int32:
		return int64(l), true
	case uint64:
		if l > math.MaxInt64 {
			return nil, false
		}
		return int64(l), true
	case string:
		return l, true
	}
	return nil, false
}

// headLen is the length of a shortest-form CBOR head with argument n.
func headLen(n uint64) int {
	switch {
	case n < 24:
		return 1
	case n <= math.MaxUint8:
		return 2
	case n <= math.MaxUint16:
		return 3
	case n <= math.MaxUint32:
		return 5
	}
	return 9
}

// appendHead appends a CBOR head in shortest form.
func appendHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= math.MaxUint8:
		return append(b, m|24, byte(n))
	case n <= math.MaxUint16:
		return append(b, m|25, byte(n>>8), byte(n))
	case n <= math.MaxUint32:
		return append(b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendBytes(b, data []byte) []byte {
	return append(appendHead(b, majorBytes, uint64(len(data))), data...)
}

func invalidCOSE(format string, args ...any) *engine.Error {
	return engine.Errorf(engine.KindInvalid, CodeInvalidCOSE, format, args...)
}

// arrayItems are the items of the well-formed array raw (a value of a
// decoded header), sharing its bytes.
func arrayItems(raw []byte) [][]byte {
	_, n, head := cborHead(raw)
	items := make([][]byte, 0, min(n, uint64(len(raw))))
	rest := raw[head:]
	for range n {
		k := itemLen(rest)
		items = append(items, rest[:k:k])
		rest = rest[k:]
	}
	return items
}
