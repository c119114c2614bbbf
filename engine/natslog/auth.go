package natslog

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gavelhq/gavel/engine"
)

// Seed files in the data dir: one NATS nkey user per role.
const (
	ReplicaSeedFile = "replica.nk"
	ClientSeedFile  = "client.nk"
)

// Seeds are the public keys of the two users an embedded server admits and
// the files holding their seeds.
type Seeds struct {
	ReplicaKey, ClientKey   string
	ReplicaFile, ClientFile string
}

// LoadOrCreateSeeds reads DIR/replica.nk and DIR/client.nk, creating a fresh
// user seed (mode 0600) for any that is missing. Replicas of one cluster
// share the files, so a client's credentials work at every replica.
func LoadOrCreateSeeds(dir string) (Seeds, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Seeds{}, engine.Wrap(engine.KindInternal, "DataDirUnusable", err, "cannot create %s", dir)
	}
	s := Seeds{ReplicaFile: filepath.Join(dir, ReplicaSeedFile), ClientFile: filepath.Join(dir, ClientSeedFile)}
	var err error
	if s.ReplicaKey, err = loadOrCreateUserSeed(s.ReplicaFile); err != nil {
		return Seeds{}, err
	}
	if s.ClientKey, err = loadOrCreateUserSeed(s.ClientFile); err != nil {
		return Seeds{}, err
	}
	return s, nil
}

// loadOrCreateUserSeed returns the public key of the user seed in path.
func loadOrCreateUserSeed(path string) (string, error) {
	contents, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return createUserSeed(path)
	}
	if err != nil {
		return "", engine.Wrap(engine.KindInternal, "SeedUnreadable", err, "cannot read %s", path)
	}
	return userPublicKey(contents, path)
}

func createUserSeed(path string) (string, error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", engine.Wrap(engine.KindInternal, "SeedCreateFailed", err, "cannot create a user nkey")
	}
	defer kp.Wipe()
	seed, err := kp.Seed()
	if err != nil {
		return "", engine.Wrap(engine.KindInternal, "SeedCreateFailed", err, "cannot create a user nkey")
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return "", engine.Wrap(engine.KindInternal, "SeedCreateFailed", err, "cannot create a user nkey")
	}
	// Write aside and link into place: a crash never leaves a torn seed, and
	// a concurrent creator loses the link and uses the winner's seed.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".seed-*")
	if err != nil {
		return "", engine.Wrap(engine.KindInternal, "SeedWriteFailed", err, "cannot write %s", path)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(append(seed, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o600)
	}
	if err == nil {
		err = os.Link(tmp.Name(), path)
	}
	if errors.Is(err, fs.ErrExist) {
		return loadOrCreateUserSeed(path)
	}
	if err != nil {
		return "", engine.Wrap(engine.KindInternal, "SeedWriteFailed", err, "cannot write %s", path)
	}
	return pub, nil
}

func userPublicKey(contents []byte, path string) (string, error) {
	kp, err := nkeys.ParseDecoratedNKey(contents)
	if err != nil {
		return "", engine.Wrap(engine.KindInvalid, "InvalidCredentials", err, "%s holds no nkey seed", path)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return "", engine.Errorf(engine.KindInvalid, "InvalidCredentials", "%s holds no user nkey seed", path)
	}
	return pub, nil
}

// credentialKind is what a credentials file holds.
type credentialKind int

const (
	credentialsUnknown credentialKind = iota
	credentialsNkeySeed
	credentialsJWT // a standard .creds file: user JWT and seed
)

var jwtMarker = []byte("-----BEGIN NATS USER JWT-----")

// classifyCredentials tells a .creds file from a bare nkey seed by content.
func classifyCredentials(contents []byte) credentialKind {
	if bytes.Contains(contents, jwtMarker) {
		return credentialsJWT
	}
	kp, err := nkeys.ParseDecoratedNKey(contents)
	if err != nil {
		return credentialsUnknown
	}
	defer kp.Wipe()
	if pub, err := kp.PublicKey(); err != nil || !nkeys.IsValidPublicUserKey(pub) {
		return credentialsUnknown
	}
	return credentialsNkeySeed
}

// ConnectOptions returns the nats.Option that authenticates with the file:
// an nkey user seed (as written by LoadOrCreateSeeds) or a standard JWT
// .creds file, told apart by content.
func ConnectOptions(seedFile string) (nats.Option, error) {
	contents, err := os.ReadFile(seedFile)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, "InvalidCredentials", err, "cannot read %s", seedFile)
	}
	kind := classifyCredentials(contents)
	clear(contents)
	switch kind {
	case credentialsJWT:
		return nats.UserCredentials(seedFile), nil
	case credentialsNkeySeed:
		opt, err := nats.NkeyOptionFromSeed(seedFile)
		if err != nil {
			return nil, engine.Wrap(engine.KindInvalid, "InvalidCredentials", err, "cannot use %s", seedFile)
		}
		return opt, nil
	default:
		return nil, engine.Errorf(engine.KindInvalid, "InvalidCredentials", "%s is neither an nkey user seed nor a .creds file", seedFile)
	}
}

// replicaPermissions is nil: a replica may do everything.
func replicaPermissions() *server.Permissions { return nil }

// ClientPublishAllow lists what a client user may publish: submissions, and
// the JetStream API subjects needed to read the ledger and the feeds
// (stream info, ordered consumers, direct and API message gets). Stream
// create, update, delete, purge and message delete are not among them.
func ClientPublishAllow() []string {
	allow := []string{"gavel.submit.>"}
	for _, stream := range []string{LedgerStream, FeedsStream} {
		allow = append(allow,
			"$JS.API.STREAM.INFO."+stream,
			"$JS.API.STREAM.MSG.GET."+stream,
			"$JS.API.DIRECT.GET."+stream,
			"$JS.API.DIRECT.GET."+stream+".>",
			"$JS.API.CONSUMER.CREATE."+stream+".>",
			"$JS.API.CONSUMER.INFO."+stream+".*",
			"$JS.API.CONSUMER.MSG.NEXT."+stream+".*",
			"$JS.API.CONSUMER.DELETE."+stream+".*",
			"$JS.ACK."+stream+".>",
			"$JS.FC."+stream+".>",
		)
	}
	return allow
}

// clientPermissions: allow-listed, and the writes a client must never make
// denied outright so a later widening of the allow list cannot leak them.
func clientPermissions() *server.Permissions {
	return &server.Permissions{
		Publish: &server.SubjectPermission{
			Allow: ClientPublishAllow(),
			Deny: []string{
				LedgerSubjects, FeedSubjects,
				"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>",
				"$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>",
			},
		},
		Subscribe: &server.SubjectPermission{
			Allow: []string{"_INBOX.>", FeedSubjects},
		},
	}
}

// nkeyUsers is the embedded server's user list.
func nkeyUsers(seeds Seeds, extraClientKeys []string) ([]*server.NkeyUser, error) {
	users := []*server.NkeyUser{
		{Nkey: seeds.ReplicaKey, Permissions: replicaPermissions()},
		{Nkey: seeds.ClientKey, Permissions: clientPermissions()},
	}
	for _, k := range extraClientKeys {
		if !nkeys.IsValidPublicUserKey(k) {
			return nil, engine.Errorf(engine.KindInvalid, "InvalidCredentials", "%q is not a public user nkey", k)
		}
		users = append(users, &server.NkeyUser{Nkey: k, Permissions: clientPermissions()})
	}
	return users, nil
}
