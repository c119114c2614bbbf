package netmap

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/gavelhq/gavel/engine"
)

// CodeInvalidParameters is the code of every parameters parse or rule error.
const CodeInvalidParameters = "InvalidNetworkParameters"

// DefaultEventHorizon is Corda's default event horizon, used when
// parameters do not name one.
const DefaultEventHorizon = 30 * 24 * time.Hour

// Notary is one notary of the network.
type Notary struct {
	Identity   string `json:"identity"`
	Validating bool   `json:"validating"`
}

// NetworkParameters are the network's parameters with DESIGN.md's names.
// Their canonical JSON (Canonical) is what is signed, served and hashed.
type NetworkParameters struct {
	MinimumPlatformVersion int
	Notaries               []Notary
	MaxMessageSize         int64
	MaxTransactionSize     int64
	ModifiedTime           time.Time
	Epoch                  int64
	EventHorizon           time.Duration
	// WhitelistedContractImplementations: contract class → attachment ids.
	WhitelistedContractImplementations map[string][]string
	// PackageOwnership: package name → owner's public key.
	PackageOwnership map[string]string
}

// canonicalParams is the canonical form: fields in this order, maps sorted
// by key, lists as given, modified_time RFC 3339 UTC, event_horizon in
// whole seconds, no insignificant whitespace, no HTML escaping.
type canonicalParams struct {
	MinimumPlatformVersion             int                 `json:"minimum_platform_version"`
	Notaries                           []Notary            `json:"notaries"`
	MaxMessageSize                     int64               `json:"max_message_size"`
	MaxTransactionSize                 int64               `json:"max_transaction_size"`
	ModifiedTime                       string              `json:"modified_time"`
	Epoch                              int64               `json:"epoch"`
	EventHorizon                       int64               `json:"event_horizon"`
	WhitelistedContractImplementations map[string][]string `json:"whitelisted_contract_implementations"`
	PackageOwnership                   map[string]string   `json:"package_ownership"`
}

// wireParams is what ParseParameters reads: required fields are pointers so
// that absence is seen.
type wireParams struct {
	MinimumPlatformVersion             *int                `json:"minimum_platform_version"`
	Notaries                           *[]wireNotary       `json:"notaries"`
	MaxMessageSize                     *int64              `json:"max_message_size"`
	MaxTransactionSize                 *int64              `json:"max_transaction_size"`
	ModifiedTime                       *string             `json:"modified_time"`
	Epoch                              *int64              `json:"epoch"`
	EventHorizon                       json.RawMessage     `json:"event_horizon"`
	WhitelistedContractImplementations map[string][]string `json:"whitelisted_contract_implementations"`
	PackageOwnership                   map[string]string   `json:"package_ownership"`
}

type wireNotary struct {
	Identity   *string `json:"identity"`
	Validating *bool   `json:"validating"`
}

func invalidParams(format string, args ...any) *engine.Error {
	return engine.Errorf(engine.KindInvalid, CodeInvalidParameters, format, args...)
}

// ParseParameters reads parameters JSON strictly: no unknown fields, no
// duplicate keys, the required fields present. epoch and modified_time may
// be absent (a proposal leaves them to the service), event_horizon is whole
// seconds or a Go duration ("720h") and defaults to 30 days. It checks
// shape only; Validate checks the rules.
func ParseParameters(b []byte, lim Limits) (NetworkParameters, error) {
	if len(b) > lim.MaxParametersBytes {
		return NetworkParameters{}, engine.Errorf(engine.KindTooLarge, CodeInvalidParameters,
			"network parameters are %d bytes, the limit is %d", len(b), lim.MaxParametersBytes)
	}
	var w wireParams
	if err := decodeStrict(b, &w); err != nil {
		return NetworkParameters{}, engine.Wrap(engine.KindInvalid, CodeInvalidParameters, err, "network parameters are not valid JSON of their schema")
	}
	var p NetworkParameters
	switch {
	case w.MinimumPlatformVersion == nil:
		return p, invalidParams("minimum_platform_version is required.")
	case w.Notaries == nil:
		return p, invalidParams("notaries is required (an empty list if there are none).")
	case w.MaxMessageSize == nil:
		return p, invalidParams("max_message_size is required.")
	case w.MaxTransactionSize == nil:
		return p, invalidParams("max_transaction_size is required.")
	}
	p.MinimumPlatformVersion = *w.MinimumPlatformVersion
	p.MaxMessageSize, p.MaxTransactionSize = *w.MaxMessageSize, *w.MaxTransactionSize
	p.Notaries = make([]Notary, 0, len(*w.Notaries))
	for i, n := range *w.Notaries {
		if n.Identity == nil || n.Validating == nil {
			return p, invalidParams("notaries[%d] needs identity and validating.", i)
		}
		p.Notaries = append(p.Notaries, Notary{Identity: *n.Identity, Validating: *n.Validating})
	}
	if w.ModifiedTime != nil {
		t, err := parseUTC(*w.ModifiedTime)
		if err != nil {
			return p, invalidParams("modified_time %v.", err)
		}
		p.ModifiedTime = t
	}
	if w.Epoch != nil {
		p.Epoch = *w.Epoch
	}
	p.EventHorizon = DefaultEventHorizon
	if len(w.EventHorizon) > 0 && string(w.EventHorizon) != "null" {
		d, err := parseHorizon(w.EventHorizon)
		if err != nil {
			return p, invalidParams("event_horizon %v.", err)
		}
		p.EventHorizon = d
	}
	p.WhitelistedContractImplementations = w.WhitelistedContractImplementations
	p.PackageOwnership = w.PackageOwnership
	return p.normalized(), nil
}

// parseUTC reads an RFC 3339 time in UTC ("Z").
func parseUTC(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an RFC 3339 time", truncate(s))
	}
	if !strings.HasSuffix(s, "Z") {
		return time.Time{}, fmt.Errorf("%q is not in UTC (it must end in Z)", truncate(s))
	}
	return t.UTC(), nil
}

func parseHorizon(raw json.RawMessage) (time.Duration, error) {
	var secs int64
	if err := json.Unmarshal(raw, &secs); err == nil {
		if secs > int64(1<<62/time.Second) {
			return 0, fmt.Errorf("%d seconds is too long", secs)
		}
		return time.Duration(secs) * time.Second, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("must be whole seconds or a duration such as \"720h\"")
	}
	d, err := time.ParseDuration(s)
	if err != nil || d%time.Second != 0 {
		return 0, fmt.Errorf("%q is not a duration of whole seconds such as \"720h\"", truncate(s))
	}
	return d, nil
}

func (p NetworkParameters) normalized() NetworkParameters {
	if p.Notaries == nil {
		p.Notaries = []Notary{}
	}
	if p.WhitelistedContractImplementations == nil {
		p.WhitelistedContractImplementations = map[string][]string{}
	}
	if p.PackageOwnership == nil {
		p.PackageOwnership = map[string]string{}
	}
	// A null list is an empty one; copy rather than write to the caller's map.
	for _, v := range p.WhitelistedContractImplementations {
		if v == nil {
			wl := make(map[string][]string, len(p.WhitelistedContractImplementations))
			for k, ids := range p.WhitelistedContractImplementations {
				if ids == nil {
					ids = []string{}
				}
				wl[k] = ids
			}
			p.WhitelistedContractImplementations = wl
			break
		}
	}
	return p
}

// Validate checks Corda's rules on complete parameters; each error is a
// sentence naming the field.
func (p NetworkParameters) Validate(lim Limits) error {
	if p.MinimumPlatformVersion < 1 {
		return invalidParams("minimum_platform_version must be at least 1, not %d.", p.MinimumPlatformVersion)
	}
	if p.MaxMessageSize < 1 {
		return invalidParams("max_message_size must be positive, not %d.", p.MaxMessageSize)
	}
	if p.MaxTransactionSize < 1 {
		return invalidParams("max_transaction_size must be positive, not %d.", p.MaxTransactionSize)
	}
	if p.Epoch < 1 {
		return invalidParams("epoch must be at least 1, not %d.", p.Epoch)
	}
	if p.EventHorizon <= 0 {
		return invalidParams("event_horizon must be positive, not %d seconds.", int64(p.EventHorizon/time.Second))
	}
	if p.ModifiedTime.IsZero() {
		return invalidParams("modified_time is required.")
	}
	if len(p.Notaries) > lim.MaxNotaries {
		return invalidParams("notaries has %d entries, the limit is %d.", len(p.Notaries), lim.MaxNotaries)
	}
	seen := map[string]int{}
	for i, n := range p.Notaries {
		norm, err := NormalizeLegalName(n.Identity)
		if err != nil {
			return invalidParams("notaries[%d].identity is not a legal name: %v.", i, err)
		}
		if j, dup := seen[norm]; dup {
			return invalidParams("notaries[%d] and notaries[%d] are the same notary %q; notaries must be distinct.", j, i, norm)
		}
		seen[norm] = i
	}
	if len(p.WhitelistedContractImplementations) > lim.MaxWhitelistContracts {
		return invalidParams("whitelisted_contract_implementations has %d contracts, the limit is %d.",
			len(p.WhitelistedContractImplementations), lim.MaxWhitelistContracts)
	}
	for _, c := range slices.Sorted(maps.Keys(p.WhitelistedContractImplementations)) {
		if !validJavaName(c) {
			return invalidParams("whitelisted_contract_implementations names %q, which is not a contract class name.", truncate(c))
		}
		ids := map[string]bool{}
		for _, id := range p.WhitelistedContractImplementations[c] {
			if !isLowerHex64(id) {
				return invalidParams("whitelisted_contract_implementations[%q] has %q, which is not an attachment id (64 lowercase hex).", c, truncate(id))
			}
			if ids[id] {
				return invalidParams("whitelisted_contract_implementations[%q] lists %s twice.", c, id)
			}
			ids[id] = true
		}
	}
	if len(p.PackageOwnership) > lim.MaxPackageOwners {
		return invalidParams("package_ownership has %d packages, the limit is %d.", len(p.PackageOwnership), lim.MaxPackageOwners)
	}
	pkgs := slices.Sorted(maps.Keys(p.PackageOwnership))
	for _, pkg := range pkgs {
		if !validJavaName(pkg) {
			return invalidParams("package_ownership names %q, which is not a valid Java package name.", truncate(pkg))
		}
		if strings.TrimSpace(p.PackageOwnership[pkg]) == "" {
			return invalidParams("package_ownership[%q] has no owner key.", pkg)
		}
	}
	if a, b, ok := packagesOverlap(pkgs); ok {
		return invalidParams("package_ownership has %q inside %q; owned packages must not overlap.", b, a)
	}
	if n := len(p.Canonical()); n > lim.MaxParametersBytes {
		return engine.Errorf(engine.KindTooLarge, CodeInvalidParameters, "network parameters are %d bytes, the limit is %d.", n, lim.MaxParametersBytes)
	}
	return nil
}

func (p NetworkParameters) canonical() canonicalParams {
	p = p.normalized()
	mt := ""
	if !p.ModifiedTime.IsZero() {
		mt = p.ModifiedTime.UTC().Format(time.RFC3339Nano)
	}
	return canonicalParams{
		MinimumPlatformVersion:             p.MinimumPlatformVersion,
		Notaries:                           p.Notaries,
		MaxMessageSize:                     p.MaxMessageSize,
		MaxTransactionSize:                 p.MaxTransactionSize,
		ModifiedTime:                       mt,
		Epoch:                              p.Epoch,
		EventHorizon:                       int64(p.EventHorizon / time.Second),
		WhitelistedContractImplementations: p.WhitelistedContractImplementations,
		PackageOwnership:                   p.PackageOwnership,
	}
}

// Canonical is the parameters' canonical JSON, the bytes that are signed
// and hashed.
func (p NetworkParameters) Canonical() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p.canonical()); err != nil {
		panic("netmap: parameters do not encode: " + err.Error()) // strings, ints, bools only
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Hash is the parameters hash: hex SHA-256 of Canonical.
func (p NetworkParameters) Hash() string { return hashHex(p.Canonical()) }

// Equal reports whether two parameter sets have the same canonical form.
func (p NetworkParameters) Equal(q NetworkParameters) bool {
	return bytes.Equal(p.Canonical(), q.Canonical())
}

// MarshalJSON writes the canonical form.
func (p NetworkParameters) MarshalJSON() ([]byte, error) { return p.Canonical(), nil }

// ChangedFields names, in canonical order, the fields whose values differ.
func ChangedFields(a, b NetworkParameters) []string {
	ca, cb := reflect.ValueOf(a.canonical()), reflect.ValueOf(b.canonical())
	t := ca.Type()
	var out []string
	for i := range t.NumField() {
		if !reflect.DeepEqual(ca.Field(i).Interface(), cb.Field(i).Interface()) {
			out = append(out, strings.Split(t.Field(i).Tag.Get("json"), ",")[0])
		}
	}
	return out
}

// Field names of the parameters, as ChangedFields reports them.
const (
	FieldMinimumPlatformVersion = "minimum_platform_version"
	FieldNotaries               = "notaries"
	FieldMaxMessageSize         = "max_message_size"
	FieldMaxTransactionSize     = "max_transaction_size"
	FieldModifiedTime           = "modified_time"
	FieldEpoch                  = "epoch"
	FieldEventHorizon           = "event_horizon"
	FieldWhitelist              = "whitelisted_contract_implementations"
	FieldPackageOwnership       = "package_ownership"
)

func hashHex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// UnmarshalJSON reads parameters as ParseParameters does (their canonical
// form, or a proposal's), without a size limit: the caller bounded the
// bytes it read.
func (p *NetworkParameters) UnmarshalJSON(b []byte) error {
	lim := DefaultLimits()
	lim.MaxParametersBytes = len(b)
	q, err := ParseParameters(b, lim)
	if err != nil {
		return err
	}
	*p = q
	return nil
}
