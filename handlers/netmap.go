package handlers

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// NetworkMap is the Corda side: signed NodeInfos, acceptances of parameter
// updates, and the signed map and parameters. A Service that implements it
// gets the /network-map routes and the gavel.submit.node.{info,ack}
// subjects.
type NetworkMap interface {
	// PublishNodeInfo checks a signed NodeInfo and commits it; the answer
	// is {"node_info_hash", "txid"}.
	PublishNodeInfo(ctx context.Context, signed []byte) ([]byte, error)
	// AckParameters checks a node's signed acceptance of the pending
	// update and commits it; the answer is {"hash", "txid"}.
	AckParameters(ctx context.Context, signed []byte) ([]byte, error)
	// SignedMap is the current map, signed, with its ETag.
	SignedMap(ctx context.Context) (SignedMap, error)
	// NodeInfo is a signed NodeInfo by hash (KindNotFound if none).
	NodeInfoByHash(ctx context.Context, hash string) ([]byte, error)
	// NodeInfos are the signed NodeInfos of every node in the map.
	NodeInfos(ctx context.Context) ([]HashedBytes, error)
	// SignedParameters is a parameters set by hash, signed by the
	// network-map key (KindNotFound if none).
	SignedParameters(ctx context.Context, hash string) ([]byte, error)
	// Acceptances lists who accepted hash ("": the pending update).
	Acceptances(ctx context.Context, hash string) (Acceptances, error)
}

// SignedMap is GET /network-map's body and caching headers.
type SignedMap struct {
	Body   []byte // COSE_Sign1
	ETag   string // hex digest of the signed Sig_structure, unquoted: it follows the payload
	MaxAge time.Duration
}

// HashedBytes is a signed object and its hash.
type HashedBytes struct {
	Hash   string `json:"hash"`
	Signed []byte `json:"signed"` // base64 in JSON
}

// Acceptances is GET /network-map/acceptances' answer.
type Acceptances struct {
	Hash     string     `json:"hash"`
	Accepted []Accepted `json:"accepted"`
	Pending  []string   `json:"pending"` // node ids that published and have not accepted
}

// Accepted is one acceptance.
type Accepted struct {
	NodeID string `json:"node_id"`
	TxID   string `json:"txid"`
}

// Subjects of the network map over NATS request/reply.
const (
	SubjectNodeInfo = "gavel.submit.node.info"
	SubjectNodeAck  = "gavel.submit.node.ack"
)

// CodeInvalidIfNoneMatch is the code of a malformed If-None-Match.
const CodeInvalidIfNoneMatch = "InvalidIfNoneMatch"

func (h *HTTP) netmapRoutes(mux *http.ServeMux, nm NetworkMap) {
	mux.HandleFunc("POST /network-map/publish", h.postCOSE(nm.PublishNodeInfo))
	mux.HandleFunc("POST /network-map/ack-parameters", h.postCOSE(nm.AckParameters))
	mux.HandleFunc("GET /network-map", func(w http.ResponseWriter, r *http.Request) { h.getMap(w, r, nm) })
	mux.HandleFunc("GET /network-map/node-info/{hash}", func(w http.ResponseWriter, r *http.Request) {
		h.byHash(w, r, nm.NodeInfoByHash)
	})
	mux.HandleFunc("GET /network-map/network-parameters/{hash}", func(w http.ResponseWriter, r *http.Request) {
		h.byHash(w, r, nm.SignedParameters)
	})
	mux.HandleFunc("GET /network-map/node-infos", func(w http.ResponseWriter, r *http.Request) {
		infos, err := nm.NodeInfos(r.Context())
		if err != nil {
			h.fail(w, err)
			return
		}
		h.writeJSON(w, map[string][]HashedBytes{"node_infos": infos})
	})
	mux.HandleFunc("GET /network-map/acceptances", func(w http.ResponseWriter, r *http.Request) {
		hash := r.URL.Query().Get("hash")
		if hash != "" && !isHash(hash) {
			h.fail(w, errBadHash(hash))
			return
		}
		a, err := nm.Acceptances(r.Context(), hash)
		if err != nil {
			h.fail(w, err)
			return
		}
		h.writeJSON(w, a)
	})
}

func (h *HTTP) postCOSE(call func(context.Context, []byte) ([]byte, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, ok := h.readCOSE(w, r, h.limits.MaxGovBytes)
		if !ok {
			return
		}
		res, err := call(r.Context(), body)
		if err != nil {
			h.fail(w, err)
			return
		}
		writeJSONBytes(w, http.StatusOK, res)
	}
}

func (h *HTTP) getMap(w http.ResponseWriter, r *http.Request, nm NetworkMap) {
	m, err := nm.SignedMap(r.Context())
	if err != nil {
		h.fail(w, err)
		return
	}
	match, err := ifNoneMatch(r.Header.Values("If-None-Match"), m.ETag)
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("ETag", `"`+m.ETag+`"`)
	w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(int(m.MaxAge/time.Second)))
	if match {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeCOSE(w, m.Body)
}

func (h *HTTP) byHash(w http.ResponseWriter, r *http.Request, get func(context.Context, string) ([]byte, error)) {
	hash := r.PathValue("hash")
	if !isHash(hash) {
		h.fail(w, errBadHash(hash))
		return
	}
	b, err := get(r.Context(), hash)
	if err != nil {
		h.fail(w, err)
		return
	}
	writeCOSE(w, b)
}

func writeCOSE(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", contentTypeCOSE)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// ifNoneMatch reports whether the If-None-Match values match etag: "*" or
// a list of quoted entity tags, weak or strong (RFC 9110 weak comparison).
// Anything else is a typed error.
func ifNoneMatch(values []string, etag string) (bool, error) {
	match := false
	for _, v := range values {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if t == "" {
				continue // RFC 9110: empty list elements are ignored
			}
			if t == "*" {
				match = true
				continue
			}
			t = strings.TrimPrefix(t, "W/")
			if len(t) < 2 || t[0] != '"' || t[len(t)-1] != '"' || strings.ContainsAny(t[1:len(t)-1], "\" \t") {
				return false, engine.Errorf(engine.KindInvalid, CodeInvalidIfNoneMatch,
					"If-None-Match must be * or a list of quoted entity tags, not %q", v)
			}
			if t[1:len(t)-1] == etag {
				match = true
			}
		}
	}
	return match, nil
}

func isHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func errBadHash(s string) error {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return engine.Errorf(engine.KindInvalid, "InvalidHash", "%q is not a hash: 64 lowercase hex characters", s)
}

// netmapSubjects are the NATS routes of the network map.
func netmapSubjects(nm NetworkMap) map[string]func(context.Context, []byte) ([]byte, error) {
	return map[string]func(context.Context, []byte) ([]byte, error){
		SubjectNodeInfo: nm.PublishNodeInfo,
		SubjectNodeAck:  nm.AckParameters,
	}
}
