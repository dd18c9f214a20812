// Package kms adds envelope encryption with AWS KMS to any driver.Adapter.
//
// Each value is sealed with AES-256-GCM under a data key that KMS made
// (GenerateDataKey); the data key, encrypted by the KMS key, travels with
// the value. What the inner adapter stores is still a JSON object, so that
// every backend (the file store included, which keeps a "profile" member)
// can hold it:
//
//	{"profile": "<key>",
//	 "tokencache_kms": {"v": 1, "key_id": "<KMS key ARN>", "edk": "<base64>",
//	                    "nonce": "<base64>", "ct": "<base64>"}}
//
// # Guarantees
//
//   - Confidentiality and integrity of the value: a changed ciphertext,
//     nonce or encrypted data key fails to decrypt.
//   - Binding to the profile: the storage key is GCM's associated data, and
//     the KMS encryption context {"tokencache:profile": key} binds the data
//     key itself. A value copied under another profile fails to decrypt, in
//     GCM and, when the data key is not cached, at KMS.
//   - Every decryption failure (wrong profile, tampering, a KMS that refuses
//     the key) is ErrDecrypt, which also matches driver.ErrCorrupt: a
//     caller never sees garbage, and Store reports rather than overwrites.
//     A KMS that cannot be reached is driver.ErrUnavailable.
//   - Revisions and conditions are the inner adapter's, unchanged, so the
//     wrapper is exactly as atomic as what it wraps.
//   - Pinned keys: a value is read only if its data key belongs to the
//     configured KMS key or to one listed with Options.AllowedKeyIDs
//     (kms_allowed_key_ids). Without the pin, anyone who can write the
//     store and use some other key that this process may also use could
//     seal credentials of their choosing under that key and plant them.
//     An envelope that names another key is ErrDecrypt (so
//     driver.ErrCorrupt: reported, never overwritten by Store) with a
//     message naming the key, refused before KMS is asked when the
//     accepted keys are given as key ids or ARNs. Every Decrypt names the
//     accepted key it expects (DecryptInput.KeyId), so KMS refuses a data
//     key of any other key too, and the key that KMS reports having used
//     must be the one the envelope names. Keys given by alias are resolved
//     by KMS: an envelope that matches no listed key id or ARN is tried
//     against each accepted alias in turn.
//   - Rotation: the envelope records the ARN of the KMS key that sealed
//     it. To move a store to a new key, configure the new key and list the
//     old one with Options.AllowedKeyIDs until every profile has been written
//     again; the next write of a profile seals it under the new key.
//
// Not guaranteed: the profile name and the value's size are visible, and a
// store writer can replace a value with an older envelope of the same
// profile (a rollback); the revision, which the inner store makes, is what
// protects against lost updates, not the encryption.
//
// Errors are the inner adapter's: where it can return an error for a
// write that was applied (a timeout after the command was sent; see each
// adapter's documentation), so can this one.
//
// # KMS calls and caching
//
// Calling KMS on every operation would make each Load a network round trip
// to AWS and cost money per request. So a data key made for a profile is
// reused for further writes of that profile until it is DataKeyTTL old or
// has sealed DataKeyUses values (nonces are random, so the use bound keeps
// GCM far from its random-nonce limit), and decrypted data keys are kept in
// a bounded LRU keyed by profile and encrypted key, for DataKeyTTL too. A
// Load of a value this process wrote, or read recently, costs no KMS call.
//
// The trade-off: plaintext data keys live in process memory for up to
// DataKeyTTL (the tokens they protect live there anyway once loaded), and
// revoking the process's KMS permissions takes effect for cached keys only
// when they expire. A negative Options.DataKeyTTL turns caching off.
//
// # URLs
//
// The wrapper has one scheme per inner scheme, "kms+<scheme>", registered
// for the adapters in this module (memory, file, sqlite, redis, rediss,
// memcached, mongodb, mongodb+srv, etcd, etcds). The inner URL is the same URL without
// the "kms+" and without the kms_* parameters:
//
//	kms+sqlite:///var/lib/app/tokens.db?kms_key_id=alias/tokencache&kms_region=eu-west-2
//	kms+redis://host:6379/0?kms_key_id=arn:aws:kms:...&kms_endpoint=http://127.0.0.1:4599
//
// kms_key_id is required; kms_region, kms_endpoint (a KMS-compatible
// endpoint such as local-kms) and kms_allowed_key_ids (comma-separated key
// ids, ARNs or aliases whose values may be read, see Options.AllowedKeyIDs)
// are optional. An http:// kms_endpoint is refused (driver.ErrInvalid)
// unless its host is a loopback address or "localhost": data keys cross
// it in the clear, and a host that could answer for KMS could hand out
// keys of its own. Use https:// for anything else. Credentials come from the AWS
// SDK's default chain (AWS_ACCESS_KEY_ID and friends, shared config, roles),
// never from the URL. A scheme per inner scheme keeps URLs readable (no
// nested escaping) at the price of a fixed list; an adapter outside it can
// be wrapped with New.
package kms

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"

	"github.com/tokencache/tokencache/storage/driver"
)

// API is the part of *kms.Client (aws-sdk-go-v2/service/kms) the adapter
// uses, so that tests and other KMS implementations can stand in.
type API interface {
	GenerateDataKey(ctx context.Context, in *awskms.GenerateDataKeyInput, opts ...func(*awskms.Options)) (*awskms.GenerateDataKeyOutput, error)
	Decrypt(ctx context.Context, in *awskms.DecryptInput, opts ...func(*awskms.Options)) (*awskms.DecryptOutput, error)
}

// ErrDecrypt reports a value that cannot be decrypted: tampered, moved to
// another profile, not an envelope, or refused by KMS. It also matches
// driver.ErrCorrupt.
var ErrDecrypt error = decryptError{}

type decryptError struct{}

func (decryptError) Error() string        { return "kms: cannot decrypt" }
func (decryptError) Is(target error) bool { return target == driver.ErrCorrupt }

// Defaults for the data key caches.
const (
	DefaultDataKeyTTL  = 5 * time.Minute
	DefaultDataKeyUses = 1000
	DefaultCacheSize   = 1000
)

// contextKey names the profile in the KMS encryption context; it shows in
// CloudTrail, which is why it is a plain, stable name.
const contextKey = "tokencache:profile"

// Options configure New. nil, and every zero field, mean the default.
type Options struct {
	// AllowedKeyIDs lets values sealed under other KMS keys (key ids, key
	// ARNs, alias names or alias ARNs) be read besides those of the key New
	// writes with: the keys a store used before a rotation. Nothing is ever
	// written under them.
	AllowedKeyIDs []string
	// DataKeyTTL bounds how long a data key is reused for writes and how
	// long a decrypted one is cached; DefaultDataKeyTTL when zero. A
	// negative DataKeyTTL turns caching off: KMS is called on every
	// operation.
	DataKeyTTL time.Duration
	// DataKeyUses bounds how many values one data key seals;
	// DefaultDataKeyUses when zero.
	DataKeyUses int
	// CacheSize bounds the number of data keys kept, for writing and for
	// reading each; DefaultCacheSize when zero.
	CacheSize int
}

// Adapter is a driver.Adapter that encrypts values for an inner one. It
// implements driver.Watcher and driver.KeyWatcher when the inner adapter
// does: keys and revisions are the inner adapter's, so its notifications
// hold unchanged.
type Adapter struct {
	inner    driver.Adapter
	kms      API
	keyID    string
	accepted []string // keyID, then Options.AllowedKeyIDs
	ttl      time.Duration
	maxUses  int
	size     int
	now      func() time.Time

	closed atomic.Bool

	mu  sync.Mutex
	enc *lru[string, *writeKey] // profile -> key in use for writes
	dec *lru[string, *readKey]  // profile + edk -> plaintext key
}

type writeKey struct {
	aead  cipher.AEAD
	edk   []byte
	keyID string // the KMS key's ARN, as KMS reports it
	born  time.Time
	uses  int
}

type readKey struct {
	aead  cipher.AEAD
	keyID string // the ARN of the KMS key the data key belongs to
	born  time.Time
}

// New returns an adapter that stores values in inner, encrypted under data
// keys from the KMS key keyID (a key id, ARN or alias), through client,
// which stays the caller's. Once New has succeeded the Adapter owns inner:
// Close closes it. nil opts means the defaults. It does no I/O.
func New(inner driver.Adapter, client API, keyID string, opts *Options) (*Adapter, error) {
	switch {
	case inner == nil:
		return nil, driver.Wrap(driver.ErrInvalid, "kms: no inner adapter", nil)
	case client == nil:
		return nil, driver.Wrap(driver.ErrInvalid, "kms: no KMS client", nil)
	case keyID == "":
		return nil, driver.Wrap(driver.ErrInvalid, "kms: no key id", nil)
	}
	if opts == nil {
		opts = &Options{}
	}
	a := &Adapter{
		inner: inner, kms: client, keyID: keyID, accepted: append([]string{keyID}, opts.AllowedKeyIDs...),
		ttl: DefaultDataKeyTTL, maxUses: DefaultDataKeyUses, size: DefaultCacheSize,
		now: time.Now,
	}
	switch {
	case opts.DataKeyTTL < 0:
		a.ttl = 0
	case opts.DataKeyTTL > 0:
		a.ttl = opts.DataKeyTTL
	}
	if opts.DataKeyUses > 0 {
		a.maxUses = opts.DataKeyUses
	}
	if opts.CacheSize > 0 {
		a.size = opts.CacheSize
	}
	a.enc = newLRU[string, *writeKey](a.size)
	a.dec = newLRU[string, *readKey](a.size)
	return a, nil
}

// Inner returns the wrapped adapter.
func (a *Adapter) Inner() driver.Adapter { return a.inner }

type envelope struct {
	Profile string  `json:"profile"`
	KMS     *sealed `json:"tokencache_kms"`
}

type sealed struct {
	V     int    `json:"v"`
	KeyID string `json:"key_id"`
	EDK   []byte `json:"edk"` // encoding/json writes []byte as base64
	Nonce []byte `json:"nonce"`
	CT    []byte `json:"ct"`
}

// aad binds a ciphertext to its format version and profile, so that it
// cannot be replayed under another key of the store.
func aad(key string) []byte { return []byte("tokencache/kms/v1\x00" + key) }

func encContext(key string) map[string]string { return map[string]string{contextKey: key} }

// Get implements driver.Adapter.
func (a *Adapter) Get(ctx context.Context, key string) ([]byte, driver.Revision, error) {
	raw, rev, err := a.inner.Get(ctx, key)
	if err != nil {
		return nil, "", err
	}
	v, err := a.open(ctx, key, raw)
	if err != nil {
		return nil, "", err
	}
	return v, rev, nil
}

func (a *Adapter) open(ctx context.Context, key string, raw []byte) ([]byte, error) {
	what := "kms: get " + strconv.Quote(key)
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil || env.KMS == nil {
		// A plaintext value is refused too: accepting it would let anyone
		// who can write the store inject credentials.
		return nil, driver.Wrap(ErrDecrypt, what+": not an encrypted envelope", nil)
	}
	s := env.KMS
	if s.V != 1 || s.KeyID == "" || len(s.EDK) == 0 {
		return nil, driver.Wrap(ErrDecrypt, what+": envelope version "+strconv.Itoa(s.V)+" or fields not understood", nil)
	}
	aead, err := a.readKey(ctx, key, s)
	if err != nil {
		return nil, err
	}
	if len(s.Nonce) != aead.NonceSize() {
		return nil, driver.Wrap(ErrDecrypt, what+": bad nonce", nil)
	}
	v, err := aead.Open(nil, s.Nonce, s.CT, aad(key))
	if err != nil {
		return nil, driver.Wrap(ErrDecrypt, what+": ciphertext does not authenticate (tampered, or moved from another profile)", nil)
	}
	return v, nil
}

func (a *Adapter) readKey(ctx context.Context, key string, s *sealed) (cipher.AEAD, error) {
	what := "kms: get " + strconv.Quote(key)
	exact, aliases := a.pins(s.KeyID)
	if exact == "" && len(aliases) == 0 {
		return nil, driver.Wrap(ErrDecrypt, fmt.Sprintf("%s: sealed under KMS key %q, which is neither kms_key_id nor in kms_allowed_key_ids; refused", what, s.KeyID), nil)
	}
	id := key + "\x00" + string(s.EDK)
	now := a.now()
	a.mu.Lock()
	rk, ok := a.dec.get(id)
	a.mu.Unlock()
	// Cached data keys came from accepted keys; the envelope must still
	// name the one this data key belongs to.
	if ok && now.Sub(rk.born) < a.ttl && rk.keyID == s.KeyID {
		return rk.aead, nil
	}
	pins := aliases
	if exact != "" {
		pins = []string{exact}
	}
	var out *awskms.DecryptOutput
	var err error
	for _, pin := range pins {
		// Naming the key makes KMS refuse a data key of any other.
		out, err = a.kms.Decrypt(ctx, &awskms.DecryptInput{
			CiphertextBlob:    s.EDK,
			KeyId:             aws.String(pin),
			EncryptionContext: encContext(key),
		})
		if err == nil || !refused(ctx, err) {
			// Done, or an outage or a cancellation, where the next alias
			// would fare no better.
			break
		}
	}
	if err != nil {
		if exact == "" && refused(ctx, err) {
			return nil, driver.Wrap(ErrDecrypt, fmt.Sprintf("%s: sealed under KMS key %q, which KMS does not accept for kms_key_id or any alias in kms_allowed_key_ids; refused", what, s.KeyID), err)
		}
		return nil, kmsError(ctx, "kms: decrypt data key for "+strconv.Quote(key), err, ErrDecrypt)
	}
	if used := aws.ToString(out.KeyId); used != "" && used != s.KeyID {
		return nil, driver.Wrap(ErrDecrypt, fmt.Sprintf("%s: the envelope names KMS key %q but its data key belongs to %q; refused", what, s.KeyID, used), nil)
	}
	aead, err := newAEAD(out.Plaintext)
	if err != nil {
		return nil, driver.Wrap(ErrDecrypt, "kms: data key for "+strconv.Quote(key), err)
	}
	if a.ttl > 0 {
		a.mu.Lock()
		a.dec.put(id, &readKey{aead: aead, keyID: s.KeyID, born: now})
		a.mu.Unlock()
	}
	return aead, nil
}

// refused reports whether KMS answered a Decrypt with a refusal (wrong
// key, bad ciphertext, access denied) rather than being unreachable.
func refused(ctx context.Context, err error) bool {
	return errors.Is(kmsError(ctx, "", err, ErrDecrypt), ErrDecrypt)
}

// pins says which accepted key an envelope naming the KMS key named may be
// decrypted with. exact is an accepted key id or ARN that is that key;
// failing that, aliases are the accepted aliases, which only KMS can
// resolve. Neither means the envelope is refused without asking KMS.
func (a *Adapter) pins(named string) (exact string, aliases []string) {
	for _, id := range a.accepted {
		switch {
		case id == "":
		case isAlias(id):
			aliases = append(aliases, id)
		case id == named, strings.HasSuffix(named, ":key/"+id):
			// A key ARN, or the bare key id at the end of one.
			return id, nil
		}
	}
	return "", aliases
}

// isAlias reports whether a key id names an alias: "alias/NAME" or
// "arn:aws:kms:REGION:ACCOUNT:alias/NAME".
func isAlias(id string) bool {
	return strings.HasPrefix(id, "alias/") || strings.Contains(id, ":alias/")
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("data key is %d bytes, want 32 (AES-256)", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// Put implements driver.Adapter.
func (a *Adapter) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	if a.closed.Load() {
		// Before KMS is asked for a key the closed inner adapter won't use.
		return "", driver.Wrap(driver.ErrClosed, "kms: put", nil)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	raw, err := a.seal(ctx, key, value)
	if err != nil {
		return "", err
	}
	return a.inner.Put(ctx, key, raw, cond)
}

func (a *Adapter) seal(ctx context.Context, key string, value []byte) ([]byte, error) {
	wk, err := a.writeKey(ctx, key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, wk.aead.NonceSize())
	rand.Read(nonce)
	return json.Marshal(envelope{Profile: key, KMS: &sealed{
		V: 1, KeyID: wk.keyID, EDK: wk.edk, Nonce: nonce,
		CT: wk.aead.Seal(nil, nonce, value, aad(key)),
	}})
}

// writeKey returns the data key to seal key's next value with, making a
// new one when the cached one is too old or too used.
func (a *Adapter) writeKey(ctx context.Context, key string) (*writeKey, error) {
	now := a.now()
	a.mu.Lock()
	wk, ok := a.enc.get(key)
	if ok && now.Sub(wk.born) < a.ttl && wk.uses < a.maxUses {
		wk.uses++
		a.mu.Unlock()
		return wk, nil
	}
	a.mu.Unlock()
	// Concurrent writers of one profile may each make a key here; that
	// costs a KMS call, not correctness, and beats holding the lock
	// across a network call.
	out, err := a.kms.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{
		KeyId:             aws.String(a.keyID),
		KeySpec:           types.DataKeySpecAes256,
		EncryptionContext: encContext(key),
	})
	if err != nil {
		return nil, kmsError(ctx, "kms: generate data key for "+strconv.Quote(key), err, driver.ErrInvalid)
	}
	aead, err := newAEAD(out.Plaintext)
	clear(out.Plaintext)
	if err != nil {
		return nil, driver.Wrap(driver.ErrUnavailable, "kms: generate data key", err)
	}
	keyID := aws.ToString(out.KeyId)
	if keyID == "" {
		keyID = a.keyID
	}
	wk = &writeKey{aead: aead, edk: out.CiphertextBlob, keyID: keyID, born: now, uses: 1}
	if a.ttl > 0 {
		a.mu.Lock()
		a.enc.put(key, wk)
		// This process can read what it writes without asking KMS.
		a.dec.put(key+"\x00"+string(wk.edk), &readKey{aead: aead, keyID: keyID, born: now})
		a.mu.Unlock()
	}
	return wk, nil
}

// kmsError maps a KMS failure: the caller's context ends as itself; a
// request KMS answered with a client fault (bad ciphertext, wrong key or
// context, access denied, disabled key) is refused, as kind says; anything
// else (no connection, throttling, a KMS fault) is an outage.
func kmsError(ctx context.Context, msg string, err error, refused error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return driver.Wrap(ctxErr, msg, ctxErr)
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ThrottlingException", "LimitExceededException", "RequestLimitExceeded",
			"KMSInternalException", "DependencyTimeoutException", "KeyUnavailableException":
			return driver.Wrap(driver.ErrUnavailable, msg, err)
		}
		if api.ErrorFault() != smithy.FaultServer {
			return driver.Wrap(refused, msg, err)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		// The SDK's own timeouts; the caller's context is still live.
		err = errors.New(err.Error())
	}
	return driver.Wrap(driver.ErrUnavailable, msg, err)
}

// Delete implements driver.Adapter; nothing to decrypt.
func (a *Adapter) Delete(ctx context.Context, key string, cond driver.Condition) error {
	return a.inner.Delete(ctx, key, cond)
}

// List implements driver.Adapter.
func (a *Adapter) List(ctx context.Context) ([]string, error) { return a.inner.List(ctx) }

// Wait implements driver.Watcher through the inner adapter. A wrapper's
// method set cannot depend on what it wraps, so when the inner adapter
// cannot watch, Wait says so with errors.ErrUnsupported and the Store polls.
func (a *Adapter) Wait(ctx context.Context, key string, rev driver.Revision) error {
	if w, ok := a.inner.(driver.Watcher); ok {
		return w.Wait(ctx, key, rev)
	}
	return errors.ErrUnsupported
}

// WatchKeys implements driver.KeyWatcher through the inner adapter, so
// that a Store over the envelope shares one subscription among its
// waiters as it would over the inner adapter. When the inner adapter has
// no KeyWatcher it returns errors.ErrUnsupported and the Store falls back
// to Wait.
func (a *Adapter) WatchKeys(ctx context.Context, changed func(key string)) (driver.KeySubscription, error) {
	if a.closed.Load() {
		return nil, driver.Wrap(driver.ErrClosed, "kms: watch", nil)
	}
	if kw, ok := a.inner.(driver.KeyWatcher); ok {
		return kw.WatchKeys(ctx, changed)
	}
	return nil, errors.ErrUnsupported
}

// Close implements driver.Adapter. It closes the inner adapter and forgets
// the cached data keys.
func (a *Adapter) Close() error {
	a.closed.Store(true)
	a.mu.Lock()
	a.enc = newLRU[string, *writeKey](1)
	a.dec = newLRU[string, *readKey](1)
	a.mu.Unlock()
	return a.inner.Close()
}
