package natslog

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/gavelhq/gavel/engine"
)

// User is one NATS identity of the embedded server. Each job of a replica
// has its own (a leaked or confused connection can do only that job), and
// each kind of client has its own, with its own inbox prefix.
type User string

// The service's users: only the sequencer may write the ledger, only the
// feed publisher the feeds, and the request-answering handler may publish
// nothing but answers into client inboxes; the replica user follows the
// ledger, holds the leader lease and forwards writes between replicas.
const (
	UserSequencer User = "sequencer"
	UserFeeds     User = "feeds"
	UserHandler   User = "handler"
	UserReplica   User = "replica"
)

// The client kinds: members submit governance and statements, nodes submit
// node requests and statements and follow the feeds, auditors only read.
const (
	UserMember  User = "member"
	UserNode    User = "node"
	UserAuditor User = "auditor"
)

// ClientKinds are the users handed to clients, in a fixed order.
var ClientKinds = []User{UserMember, UserNode, UserAuditor}

// serviceUsers are the replica's own users.
var serviceUsers = []User{UserSequencer, UserFeeds, UserHandler, UserReplica}

// IsClient says whether u is one of the client kinds.
func (u User) IsClient() bool { return slices.Contains(ClientKinds, u) }

// InboxPrefix is where u receives answers: "_INBOX.<user>". A user may
// subscribe under its own prefix only.
func (u User) InboxPrefix() string { return "_INBOX." + string(u) }

// SeedFile and InfoFile are the file names of u's nkey seed and of its
// UserInfo, in the seeds folder (DATA/nats).
func (u User) SeedFile() string { return string(u) + ".nk" }
func (u User) InfoFile() string { return string(u) + ".json" }

// UserInfo is DATA/nats/<user>.json beside the seed: what a client needs
// besides the seed to connect (DESIGN.md "NATS subjects and streams").
type UserInfo struct {
	User        string `json:"user"` // the public nkey
	InboxPrefix string `json:"inbox_prefix"`
}

// legacyClientSeedFile held the one client user that every client shared;
// no server admits it any more, so it is removed rather than left to mislead.
const legacyClientSeedFile = "client.nk"

// Seeds are the public keys of the users an embedded server admits; their
// seeds and infos live in Dir.
type Seeds struct {
	Dir  string
	Keys map[User]string
}

// File is the path of u's seed file.
func (s Seeds) File(u User) string { return filepath.Join(s.Dir, u.SeedFile()) }

// LoadOrCreateSeeds reads DIR/<user>.nk for every user, creating a fresh
// user seed (mode 0600) for any that is missing, and (re)writes each
// DIR/<user>.json. Replicas of one cluster share the files, so a client's
// credentials work at every replica.
func LoadOrCreateSeeds(dir string) (Seeds, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Seeds{}, engine.Wrap(engine.KindInternal, "DataDirUnusable", err, "cannot create %s", dir)
	}
	s := Seeds{Dir: dir, Keys: map[User]string{}}
	for _, u := range slices.Concat(serviceUsers, ClientKinds) {
		pub, err := loadOrCreateUserSeed(s.File(u))
		if err != nil {
			return Seeds{}, err
		}
		s.Keys[u] = pub
		info, _ := json.Marshal(UserInfo{User: pub, InboxPrefix: u.InboxPrefix()})
		if err := writeIfChanged(filepath.Join(dir, u.InfoFile()), append(info, '\n'), 0o644); err != nil {
			return Seeds{}, err
		}
	}
	if err := os.Remove(filepath.Join(dir, legacyClientSeedFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Seeds{}, engine.Wrap(engine.KindInternal, "SeedWriteFailed", err, "cannot remove the retired %s", legacyClientSeedFile)
	}
	return s, nil
}

// writeIfChanged replaces path with b (written aside, renamed into place)
// unless it already holds b.
func writeIfChanged(path string, b []byte, mode fs.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, b) {
		return nil
	}
	tmp := path + ".tmp"
	err := os.WriteFile(tmp, b, mode)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return engine.Wrap(engine.KindInternal, "SeedWriteFailed", err, "cannot write %s", path)
	}
	return nil
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
// .creds file, told apart by content. Beside an nkey seed F.nk, F.json (a
// UserInfo) names the user's inbox prefix, which the option then sets: the
// server lets a user receive answers under its own prefix only.
func ConnectOptions(seedFile string) (nats.Option, error) {
	contents, err := os.ReadFile(seedFile)
	if err != nil {
		return nil, engine.Wrap(engine.KindInvalid, "InvalidCredentials", err, "cannot read %s", seedFile)
	}
	kind := classifyCredentials(contents)
	var pub string
	if kind == credentialsNkeySeed {
		pub, err = userPublicKey(contents, seedFile)
	}
	clear(contents)
	if err != nil {
		return nil, err
	}
	switch kind {
	case credentialsJWT:
		return nats.UserCredentials(seedFile), nil
	case credentialsNkeySeed:
		auth, err := nats.NkeyOptionFromSeed(seedFile)
		if err != nil {
			return nil, engine.Wrap(engine.KindInvalid, "InvalidCredentials", err, "cannot use %s", seedFile)
		}
		prefix, err := inboxPrefixBeside(seedFile, pub)
		if err != nil || prefix == "" {
			return auth, err
		}
		inbox := nats.CustomInboxPrefix(prefix)
		return func(o *nats.Options) error {
			if err := auth(o); err != nil {
				return err
			}
			return inbox(o)
		}, nil
	default:
		return nil, engine.Errorf(engine.KindInvalid, "InvalidCredentials", "%s is neither an nkey user seed nor a .creds file", seedFile)
	}
}

// inboxPrefixBeside reads the UserInfo beside seedFile ("" when there is
// none) and checks that it describes the seed's user.
func inboxPrefixBeside(seedFile, pub string) (string, error) {
	infoFile := strings.TrimSuffix(seedFile, filepath.Ext(seedFile)) + ".json"
	b, err := os.ReadFile(infoFile)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", engine.Wrap(engine.KindInvalid, "InvalidCredentials", err, "cannot read %s", infoFile)
	}
	var info UserInfo
	if err := json.Unmarshal(b, &info); err != nil {
		return "", engine.Wrap(engine.KindInvalid, "InvalidCredentials", err, "%s is not a user info", infoFile)
	}
	if info.User != pub {
		return "", engine.Errorf(engine.KindInvalid, "InvalidCredentials", "%s describes user %s, not the seed's %s", infoFile, info.User, pub)
	}
	if err := nats.CustomInboxPrefix(info.InboxPrefix)(&nats.Options{}); err != nil {
		return "", engine.Errorf(engine.KindInvalid, "InvalidCredentials", "%s: inbox prefix %q is not a subject prefix", infoFile, info.InboxPrefix)
	}
	return info.InboxPrefix, nil
}

// Consumer limits of both streams (a named setting each). Clients read
// through ephemeral ordered consumers, and the permissions give each
// stream's consumers to one client kind only: auditors follow the ledger,
// nodes the feeds; members, the service and auditors reading feeds use
// direct gets. So a stream's MaxConsumers is one user's consumer limit, and
// that user exhausting it leaves every other user's readers working.
// Every consumer, a "durable" made through the CREATE subject included, is
// deleted after ConsumerInactiveThreshold without interest (nats.go's
// ordered consumer default, so stock clients need no option).
const (
	MaxLedgerConsumers        = 64
	MaxFeedConsumers          = 1024
	ConsumerInactiveThreshold = 5 * time.Minute
)

// readStream is what reading stream through direct gets needs.
func readStream(stream string) []string {
	return []string{
		"$JS.API.STREAM.INFO." + stream,
		"$JS.API.STREAM.MSG.GET." + stream,
		"$JS.API.DIRECT.GET." + stream,
		"$JS.API.DIRECT.GET." + stream + ".>",
	}
}

// followStream is what an ephemeral ordered consumer on stream needs: the
// create subjects (legacy ephemeral, named, named with a filter), info and
// pulls. Not DURABLE.CREATE, DELETE, PAUSE, RESET or UNPIN.
func followStream(stream string) []string {
	return []string{
		"$JS.API.CONSUMER.CREATE." + stream,
		"$JS.API.CONSUMER.CREATE." + stream + ".>",
		"$JS.API.CONSUMER.INFO." + stream + ".*",
		"$JS.API.CONSUMER.MSG.NEXT." + stream + ".*",
	}
}

// clientDeny is denied to every client kind whatever its allow list says,
// so a later widening of an allow list cannot leak these.
var clientDeny = []string{
	LedgerSubjects, FeedSubjects, "_INBOX.>",
	"$JS.API.STREAM.CREATE.>", "$JS.API.STREAM.UPDATE.>", "$JS.API.STREAM.DELETE.>",
	"$JS.API.STREAM.PURGE.>", "$JS.API.STREAM.MSG.DELETE.>", "$JS.API.STREAM.LEADER.>", "$JS.API.STREAM.PEER.>",
	"$JS.API.CONSUMER.DURABLE.>", "$JS.API.CONSUMER.DELETE.>", "$JS.API.CONSUMER.PAUSE.>",
	"$JS.API.CONSUMER.RESET.>", "$JS.API.CONSUMER.UNPIN.>", "$JS.API.CONSUMER.LEADER.>",
	"$JS.API.META.>", "$JS.API.SERVER.>", "$JS.API.ACCOUNT.>",
}

// Submit subjects by client kind.
const (
	submitGov       = "gavel.submit.gov.>"
	submitNode      = "gavel.submit.node.>"
	submitStatement = "gavel.submit.statement"
)

// PublishAllow lists what u may publish.
func PublishAllow(u User) []string {
	switch u {
	case UserSequencer:
		// Entries, stream management and the reads of catch-up; no
		// consumers of its own, but it removes unbounded ones at start.
		return []string{LedgerSubjects, "$JS.API.STREAM.>", "$JS.API.DIRECT.GET.>",
			"$JS.API.CONSUMER.LIST." + LedgerStream, "$JS.API.CONSUMER.LIST." + FeedsStream,
			"$JS.API.CONSUMER.DELETE." + LedgerStream + ".*", "$JS.API.CONSUMER.DELETE." + FeedsStream + ".*"}
	case UserFeeds:
		return []string{FeedSubjects, "$JS.API.STREAM.INFO." + FeedsStream}
	case UserReplica:
		// The follower's ordered consumer, the lease bucket, moving the
		// ledger's stream leader, and forwarded writes and their answers.
		return slices.Concat(readStream(LedgerStream), followStream(LedgerStream), []string{
			"$JS.API.STREAM.LEADER.STEPDOWN." + LedgerStream, "$JS.API.CONSUMER.DELETE." + LedgerStream + ".*",
			"$KV." + LeaseBucket + ".>",
			"$JS.API.STREAM.CREATE." + leaseStream, "$JS.API.STREAM.UPDATE." + leaseStream,
			"$JS.API.STREAM.INFO." + leaseStream, "$JS.API.DIRECT.GET." + leaseStream + ".>",
			"$JS.API.STREAM.MSG.GET." + leaseStream, "$JS.API.INFO",
			ReplicaSubjects, UserReplica.InboxPrefix() + ".>",
		})
	case UserHandler:
		// Answers, into the inboxes of the kinds that submit.
		return []string{UserMember.InboxPrefix() + ".>", UserNode.InboxPrefix() + ".>"}
	case UserMember:
		return []string{submitGov, submitStatement}
	case UserNode:
		return slices.Concat([]string{submitNode, submitStatement}, readStream(FeedsStream), followStream(FeedsStream))
	case UserAuditor:
		return slices.Concat(readStream(LedgerStream), followStream(LedgerStream), readStream(FeedsStream))
	}
	return nil
}

// permissions of u: allow-listed publishes and subscriptions. No user
// subscribes to anything a client can publish into, but the handler to the
// submit subjects; clients subscribe under their own inbox prefix only.
func permissions(u User) *server.Permissions {
	p := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: PublishAllow(u)},
		Subscribe: &server.SubjectPermission{Allow: []string{u.InboxPrefix() + ".>"}},
	}
	switch {
	case u == UserHandler:
		p.Publish.Deny = []string{LedgerSubjects, FeedSubjects, "$JS.>", SubmitSubjects}
		p.Subscribe.Allow = []string{SubmitSubjects}
	case u == UserSequencer:
		p.Publish.Deny = []string{FeedSubjects, "_INBOX.>"}
	case u == UserFeeds:
		p.Publish.Deny = []string{LedgerSubjects, "_INBOX.>"}
	case u == UserReplica:
		p.Publish.Deny = []string{LedgerSubjects, FeedSubjects}
		p.Subscribe.Allow = append(p.Subscribe.Allow, ReplicaSubjects)
	case u.IsClient():
		p.Publish.Deny = clientDeny
	}
	return p
}

// nkeyUsers is the embedded server's user list: the seeds' users, then
// extra public keys per client kind.
func nkeyUsers(seeds Seeds, extra map[User][]string) ([]*server.NkeyUser, error) {
	var users []*server.NkeyUser
	for _, u := range slices.Concat(serviceUsers, ClientKinds) {
		users = append(users, &server.NkeyUser{Nkey: seeds.Keys[u], Permissions: permissions(u)})
	}
	for _, u := range ClientKinds {
		for _, k := range extra[u] {
			if !nkeys.IsValidPublicUserKey(k) {
				return nil, engine.Errorf(engine.KindInvalid, "InvalidCredentials", "%q is not a public user nkey", k)
			}
			users = append(users, &server.NkeyUser{Nkey: k, Permissions: permissions(u)})
		}
	}
	for u := range extra {
		if !u.IsClient() {
			return nil, engine.Errorf(engine.KindInvalid, "InvalidCredentials", "extra keys for %q, which is not a client kind", u)
		}
	}
	return users, nil
}
