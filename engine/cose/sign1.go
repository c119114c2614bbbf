package cose

import (
	"bytes"
	"fmt"
	"math"

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
// code InvalidCOSE.
func DecodeSign1(raw []byte) (*Sign1, error) {
	if len(raw) == 0 || raw[0] != 0xd2 {
		return nil, invalidCOSE("not a tagged COSE_Sign1 (CBOR tag 18)")
	}
	var tag cbor.RawTag
	if err := engine.CBORDecode.Unmarshal(raw, &tag); err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidCOSE, err, "not well-formed CBOR")
	}
	if len(tag.Content) == 0 || tag.Content[0] != 0x84 {
		return nil, invalidCOSE("COSE_Sign1 must be an array of four items")
	}
	var items []cbor.RawMessage
	if err := engine.CBORDecode.Unmarshal(tag.Content, &items); err != nil || len(items) != 4 {
		return nil, invalidCOSE("COSE_Sign1 must be an array of four items")
	}
	m := &Sign1{}
	var err error
	if m.Protected, err = decodeByteString(items[0]); err != nil {
		return nil, invalidCOSE("protected header: %v", err)
	}
	if majorType(items[1]) != majorMap {
		return nil, invalidCOSE("unprotected header is not a map")
	}
	if m.Unprotected, err = DecodeHeader(items[1]); err != nil {
		return nil, invalidCOSE("unprotected header: %v", engine.AsError(err).Message)
	}
	if !bytes.Equal(items[2], []byte{0xf6}) {
		if m.Payload, err = decodeByteString(items[2]); err != nil {
			return nil, invalidCOSE("payload: %v", err)
		}
	}
	if m.Signature, err = decodeByteString(items[3]); err != nil {
		return nil, invalidCOSE("signature: %v", err)
	}
	return m, nil
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
// protected header (RFC 9052 §3).
func DecodeHeader(raw []byte) (Header, error) {
	if len(raw) == 0 {
		return Header{}, nil
	}
	if majorType(raw) != majorMap {
		return nil, invalidCOSE("header is not a map")
	}
	var m map[any]cbor.RawMessage
	if err := engine.CBORDecode.Unmarshal(raw, &m); err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeInvalidCOSE, err, "header map")
	}
	h := make(Header, len(m))
	for k, v := range m {
		label, ok := normalizeLabel(k)
		if !ok {
			return nil, invalidCOSE("header label %v is neither an integer nor text", k)
		}
		h[label] = v
	}
	return h, nil
}

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
	var v string
	if err := engine.CBORDecode.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("bad text string")
	}
	return v, nil
}

// DecodeBytes decodes a CBOR byte string in shortest form.
func DecodeBytes(raw cbor.RawMessage) ([]byte, error) { return decodeByteString(raw) }

func decodeByteString(raw []byte) ([]byte, error) {
	if majorType(raw) != majorBytes {
		return nil, fmt.Errorf("not a byte string")
	}
	var v []byte
	if err := engine.CBORDecode.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("bad byte string")
	}
	if v == nil {
		v = []byte{}
	}
	// Shortest-form length, so re-encoding reproduces the signed bytes.
	if !bytes.Equal(appendBytes(nil, v), raw) {
		return nil, fmt.Errorf("byte string length is not in shortest form")
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
