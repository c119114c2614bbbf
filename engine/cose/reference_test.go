package cose

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/gavelhq/gavel/engine"
)

// The decoders before they shared the input's bytes: each item decoded by
// the CBOR library and copied. The fuzz tests below hold the zero-copy
// decoders to the same answers.

func refDecodeSign1(raw []byte) (*Sign1, error) {
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
	if m.Protected, err = refDecodeByteString(items[0]); err != nil {
		return nil, invalidCOSE("protected header: %v", err)
	}
	if majorType(items[1]) != majorMap {
		return nil, invalidCOSE("unprotected header is not a map")
	}
	if m.Unprotected, err = refDecodeHeader(items[1]); err != nil {
		return nil, invalidCOSE("unprotected header: %v", engine.AsError(err).Message)
	}
	if !bytes.Equal(items[2], []byte{0xf6}) {
		if m.Payload, err = refDecodeByteString(items[2]); err != nil {
			return nil, invalidCOSE("payload: %v", err)
		}
	}
	if m.Signature, err = refDecodeByteString(items[3]); err != nil {
		return nil, invalidCOSE("signature: %v", err)
	}
	return m, nil
}

func refDecodeHeader(raw []byte) (Header, error) {
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

func refDecodeByteString(raw []byte) ([]byte, error) {
	if majorType(raw) != majorBytes {
		return nil, errString("not a byte string")
	}
	var v []byte
	if err := engine.CBORDecode.Unmarshal(raw, &v); err != nil {
		return nil, errString("bad byte string")
	}
	if v == nil {
		v = []byte{}
	}
	if !bytes.Equal(appendBytes(nil, v), raw) {
		return nil, errString("byte string length is not in shortest form")
	}
	return v, nil
}

func refDecodeText(raw cbor.RawMessage) (string, error) {
	if majorType(raw) != majorText {
		return "", errString("not a text string")
	}
	var v string
	if err := engine.CBORDecode.Unmarshal(raw, &v); err != nil {
		return "", errString("bad text string")
	}
	return v, nil
}

func sameHeader(a, b Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// addStatementSeeds seeds f with a signed statement and hand-made edge
// cases (testdata/fuzz/FuzzDecodeSign1Reference holds FuzzParseStatement's
// corpus).
func addStatementSeeds(f *testing.F) {
	raw, _ := signed(f, ES256)
	f.Add(raw)
	for _, s := range [][]byte{
		{0xd2, 0x84, 0x40, 0xa0, 0xf6, 0x40},
		{0xd2, 0x84, 0x58, 0x00, 0xa0, 0x40, 0x40},
		{0xd2, 0x84, 0x40, 0xa2, 0x01, 0x40, 0x01, 0x40, 0x40, 0x40},
		{0xd2, 0x84, 0x40, 0xa1, 0x62, 0xc3, 0x28, 0x40, 0x40, 0x40},
		{0xd2, 0x84, 0x40, 0xa1, 0x3b, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x40, 0x40},
		{0xd2, 0x84, 0x5b, 0, 0, 0, 0, 0, 0, 0, 1, 0x00, 0xa0, 0x40, 0x40},
	} {
		f.Add(s)
	}
}

func FuzzDecodeSign1Reference(f *testing.F) {
	addStatementSeeds(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gerr := DecodeSign1(raw)
		want, werr := refDecodeSign1(raw)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("DecodeSign1 = %v, the reference = %v", gerr, werr)
		}
		if gerr != nil {
			if codeOf(gerr) != CodeInvalidCOSE {
				t.Fatalf("DecodeSign1 error %v is not InvalidCOSE", gerr)
			}
			return
		}
		if !bytes.Equal(got.Protected, want.Protected) || !bytes.Equal(got.Payload, want.Payload) ||
			(got.Payload == nil) != (want.Payload == nil) || !bytes.Equal(got.Signature, want.Signature) ||
			!sameHeader(got.Unprotected, want.Unprotected) {
			t.Fatalf("DecodeSign1 = %+v, the reference = %+v", got, want)
		}
		gd, err := ClaimsDigest(raw)
		if err != nil {
			t.Fatal(err)
		}
		want.Unprotected = nil
		enc, err := want.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if gd != sha256.Sum256(enc) {
			t.Fatal("ClaimsDigest is not the SHA-256 of the message with an empty unprotected header")
		}
	})
}

func FuzzDecodeHeaderReference(f *testing.F) {
	for _, s := range [][]byte{
		{0xa0}, {0xa1, 0x01, 0x26}, {0xa1, 0x63, 'a', 'b', 'c', 0x40}, {0xa2, 0x01, 0x26, 0x01, 0x27},
		{0xa1, 0x62, 0xc3, 0x28, 0x00}, {0xa1, 0xf9, 0x3c, 0x00, 0x01}, {0xa1, 0x1b, 0xff, 0, 0, 0, 0, 0, 0, 0, 0x00},
		{0xa1, 0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00}, {0xa1, 0x01}, {0xa1, 0x01, 0x26, 0x00},
		{0xbf, 0x01, 0x26, 0xff}, {0xa1, 0x18, 0x21, 0x82, 0x41, 0x00, 0x41, 0x01},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gerr := DecodeHeader(raw)
		want, werr := refDecodeHeader(raw)
		if (gerr == nil) != (werr == nil) {
			t.Fatalf("DecodeHeader = %v, the reference = %v", gerr, werr)
		}
		if gerr != nil {
			if codeOf(gerr) != CodeInvalidCOSE {
				t.Fatalf("DecodeHeader error %v is not InvalidCOSE", gerr)
			}
			return
		}
		if !sameHeader(got, want) {
			t.Fatalf("DecodeHeader = %v, the reference = %v", got, want)
		}
	})
}

func FuzzDecodeStringsReference(f *testing.F) {
	for _, s := range [][]byte{
		{0x40}, {0x41, 0x00}, {0x58, 0x17}, {0x58, 0x18}, {0x59, 0x00, 0xff}, {0x41}, {0x41, 0x00, 0x00},
		{0x5f, 0x41, 0x00, 0xff}, {0x5c}, {0x60}, {0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0x61, 'a'}, {0x62, 0xc3, 0x28}, {0x78, 0x01, 'a'}, {0x7f, 0x61, 'a', 0xff},
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, gerr := DecodeBytes(raw)
		want, werr := refDecodeByteString(raw)
		if (gerr == nil) != (werr == nil) || !bytes.Equal(got, want) || (gerr == nil && got == nil) {
			t.Fatalf("DecodeBytes = %x, %v; the reference = %x, %v", got, gerr, want, werr)
		}
		gs, gerr := DecodeText(raw)
		ws, werr := refDecodeText(raw)
		if (gerr == nil) != (werr == nil) || gs != ws {
			t.Fatalf("DecodeText = %q, %v; the reference = %q, %v", gs, gerr, ws, werr)
		}
	})
}
