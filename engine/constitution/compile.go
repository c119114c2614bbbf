package constitution

import (
	"crypto/sha256"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/dop251/goja"
	"github.com/gavelhq/gavel/engine"
	"github.com/gavelhq/gavel/scripts"
)

// Cache sizes: constitutions change by vote, ballots arrive with every
// vote and are re-run at each later vote of their proposal.
const (
	constitutionCacheSize = 16
	ballotCacheSize       = 4096
)

var (
	constitutions = newLRU[[32]byte, *Constitution](constitutionCacheSize)
	ballots       = newLRU[[32]byte, *Ballot](ballotCacheSize)
	compilations  atomic.Int64 // bundles compiled, for tests of the cache
)

// Constitution is a compiled constitution: a bundle exporting validate,
// resolve and apply. It is safe for concurrent use.
type Constitution struct {
	hash [32]byte
	// One bundle per entry point: esbuild leaves out what an entry point
	// does not import, so a call instantiates only the code it can run
	// (each call still gets a fresh instance).
	validate, resolve, apply *module
}

// Hash is the SHA-256 identifying the constitution's sources (the cache key).
func (c *Constitution) Hash() [32]byte { return c.hash }

// Ballot is a compiled ballot: a module exporting vote(proposal, proposerId).
type Ballot struct {
	hash [32]byte
	mod  *module
}

// module is a compiled, instrumented bundle. The program is immutable and
// shared; every call instantiates it afresh.
type module struct {
	program *goja.Program
	// unpreparable: its top level cannot be instantiated ahead of a call
	// (prepare.go).
	unpreparable atomic.Bool
}

// Hash is the SHA-256 of the ballot source.
func (b *Ballot) Hash() [32]byte { return b.hash }

var entryPoints = []string{"validate", "resolve", "apply"}

// Compile bundles and compiles a constitution given as files: either
// FileConstitution exporting validate, resolve and apply, or FileValidate,
// FileResolve and FileApply each exporting its function; other .js files may
// be imported by relative path. Results are cached by the SHA-256 of the
// files, so the same sources are never compiled twice while cached.
func Compile(files map[string]string) (*Constitution, error) {
	h := filesHash(files)
	if c, ok := constitutions.get(h); ok {
		return c, nil
	}
	// The whole set first: every file must bundle, and all three entry
	// points must be exported.
	if _, err := bundle(files, entryPoints, false); err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeConstitutionCompileError, err, "constitution does not compile")
	}
	var mods [3]*module
	for i, entry := range entryPoints {
		src, err := bundle(files, []string{entry}, false)
		if err != nil {
			return nil, engine.Wrap(engine.KindInvalid, CodeConstitutionCompileError, err, "constitution does not compile")
		}
		if mods[i], err = compileModule("gavel:constitution:"+entry, src); err != nil {
			return nil, engine.Wrap(engine.KindInvalid, CodeConstitutionCompileError, err, "constitution does not compile")
		}
	}
	return constitutions.add(h, &Constitution{hash: h, validate: mods[0], resolve: mods[1], apply: mods[2]}), nil
}

// CompileModule compiles a constitution stored as one module (the value of
// TableConstitution, the argument of set_constitution).
func CompileModule(source string) (*Constitution, error) {
	return Compile(map[string]string{FileConstitution: source})
}

// Bundle joins a constitution's files into the single ES module that
// CompileModule accepts and TableConstitution stores.
func Bundle(files map[string]string) (string, error) {
	src, err := bundle(files, entryPoints, true)
	if err != nil {
		return "", engine.Wrap(engine.KindInvalid, CodeConstitutionCompileError, err, "constitution does not bundle")
	}
	return src, nil
}

// DefaultModule is the default constitution (scripts/constitution) as one
// module, for genesis.
func DefaultModule() (string, error) { return Bundle(scripts.Constitution()) }

// Default compiles the default constitution.
func Default() (*Constitution, error) { return Compile(scripts.Constitution()) }

// CompileBallot compiles a ballot: an ES module exporting
// vote(proposal, proposerId) that returns a boolean; it cannot import.
// Ballots are cached (LRU) by the SHA-256 of their source.
func CompileBallot(src string) (*Ballot, error) {
	h := sha256.Sum256([]byte(src))
	if b, ok := ballots.get(h); ok {
		return b, nil
	}
	out, err := bundle(map[string]string{fileBallot: src}, []string{"vote"}, false)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeBallotCompileError, err, "ballot does not compile")
	}
	mod, err := compileModule("gavel:ballot", out)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, CodeBallotCompileError, err, "ballot does not compile")
	}
	return ballots.add(h, &Ballot{hash: h, mod: mod}), nil
}

// compileModule instruments an IIFE bundle (instrument.go) and wraps it
// into a strict factory of the export hook and the meter: running the
// program yields the factory, calling the factory instantiates the modules
// and hands out the exports.
func compileModule(name, iife string) (*module, error) {
	src, err := instrument(iife)
	if err != nil {
		return nil, err
	}
	compilations.Add(1)
	prog, err := goja.Compile(name, "(function ("+exportHook+") {\n\"use strict\";\n"+src+"\n})", false)
	if err != nil {
		return nil, err
	}
	return &module{program: prog}, nil
}

// filesHash is SHA-256 over the sorted (name, content) pairs, each
// length-prefixed so different file sets never collide by concatenation.
func filesHash(files map[string]string) [32]byte {
	h := sha256.New()
	var n [8]byte
	put := func(s string) {
		l := uint64(len(s))
		for i := range n {
			n[i] = byte(l >> (56 - 8*i))
		}
		h.Write(n[:])
		h.Write([]byte(s))
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		put(name)
		put(files[name])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
