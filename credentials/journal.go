package credentials

import (
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// The recovery journal keeps a rotated refresh token that the store would
// not take, on the local disk, until a process on this machine writes it
// to the store. It is what makes "handed out only once durable" hold through
// a store outage that outlasts the process: the token is in the store or in
// the journal before any caller sees the access token it came with.
//
// One file per entry, named after a hash of the store and profile so that a
// reader finds a profile's entries without opening the others, and a random
// part so that two processes never write each other's entry. An entry is
// replayed under the lineage rule, so replaying it late, twice, or after
// the store moved on is harmless: a superseded entry is dropped.
//
// The directory is per user, so the processes of one machine share it,
// and another process may replay an entry while its writer still holds
// the record pending. What they know must then agree: whoever writes an
// entry's record to the store, its writer or a replaying process, holds
// the entry's lock for the write (an flock, Unix only), reads the entry
// afresh under it, and records the outcome in it. Before the write the
// entry is made to say that a write of it may have landed, and it says
// otherwise again only after one that certainly did not; it is removed
// once the store has the record or has moved past it. A writer that finds
// its entry gone no longer knows that no other write of it landed: from
// then on it writes its record only as the successor of the stored one,
// never into a store that lost the profile.

// EnvJournalDir overrides the default journal directory.
const EnvJournalDir = "TOKENCACHE_JOURNAL_DIR"

// DefaultJournalDir returns $TOKENCACHE_JOURNAL_DIR, else tokencache/journal
// under the user's configuration directory (~/.config on Linux).
func DefaultJournalDir() string {
	if d := os.Getenv(EnvJournalDir); d != "" {
		return d
	}
	base, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(base, "tokencache", "journal")
}

type journal struct {
	dir    string // "" when disabled
	prefix string // hash of store and profile
}

type journalEntry struct {
	Store   string          `json:"store"`
	Profile string          `json:"profile"`
	Record  json.RawMessage `json:"record"`
	// NotApplied: every store write of the record failed without being
	// applied, so no other process can have read it (see ErrNotApplied).
	// Absent in older entries, which count as possibly applied.
	NotApplied bool `json:"not_applied,omitempty"`
}

func newJournal(dir, store, profile string) journal {
	if dir == "" || dir == "-" || store == "" || strings.HasPrefix(store, "memory:") {
		// An in-process store (memory://, or one made by storage.NewStore,
		// which has no name) dies with the process; replaying its entries
		// into another process's store of the same name would be wrong.
		return journal{}
	}
	sum := sha256.Sum256([]byte(store + "\x00" + profile))
	return journal{dir: dir, prefix: hex.EncodeToString(sum[:12])}
}

func (j journal) enabled() bool { return j.dir != "" }

// save writes rec as a new entry, durably, and returns its path.
// notApplied says that no store write of rec may have been applied.
func (j journal) save(store string, rec *storage.Record, notApplied bool) (string, error) {
	if !j.enabled() {
		return "", errors.New("no recovery journal (the store has no name, or it is disabled)")
	}
	raw, err := storage.EncodeRecord(rec)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(journalEntry{Store: store, Profile: rec.Profile, Record: raw, NotApplied: notApplied})
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return "", fmt.Errorf("recovery journal: %w", err)
	}
	if err := j.private(); err != nil {
		return "", err
	}
	rnd := make([]byte, 6)
	crand.Read(rnd)
	path := filepath.Join(j.dir, fmt.Sprintf("%s.%d.%s.json", j.prefix, rec.Lineage.Gen, hex.EncodeToString(rnd)))
	if err := j.writeDurably(path, b); err != nil {
		return "", err
	}
	return path, nil
}

// writeDurably puts b at path whole or not at all: a 0600 temporary file,
// synced, renamed over path, and the directory synced.
func (j journal) writeDurably(path string, b []byte) error {
	rnd := make([]byte, 6)
	crand.Read(rnd)
	tmp := path + "." + hex.EncodeToString(rnd) + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("recovery journal: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(j.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("recovery journal: %w", err)
	}
	return nil
}

// setNotApplied rewrites the entry at path, durably, to say whether no
// store write of its record may have been applied; record and lease stay
// as they are. An entry that says so already is left alone.
func (j journal) setNotApplied(path string, notApplied bool) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("recovery journal: %w", err)
	}
	var e journalEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return driver.Wrap(storage.ErrCorrupt, "recovery journal entry "+path, nil)
	}
	if e.NotApplied == notApplied {
		return nil
	}
	e.NotApplied = notApplied
	if b, err = json.Marshal(e); err != nil {
		return err
	}
	return j.writeDurably(path, b)
}

// heldEntry is an entry locked for one store write of its record.
type heldEntry struct {
	j      journal
	path   string
	rec    *storage.Record
	unlock func()
	// notApplied: the entry said that no write of its record may have
	// landed. It now says one may, until notLanded: a process killed
	// after its write landed must not leave an entry that a replay would
	// put back, spent, into an emptied store.
	notApplied bool
}

// hold locks the entry at path and reads it afresh, for a write of its
// record; nil when the entry is gone. See heldEntry.notApplied.
func (j journal) hold(ctx context.Context, path string) (*heldEntry, error) {
	unlock, found, err := j.lock(ctx, path)
	if err != nil || !found {
		return nil, err
	}
	rec, notApplied, err := j.load(path)
	if err != nil {
		unlock()
		return nil, err
	}
	if notApplied && j.setNotApplied(path, false) != nil {
		// The entry cannot say so: write as if a write had landed
		// (restored only within its lease), the side that loses nothing.
		notApplied = false
	}
	return &heldEntry{j: j, path: path, rec: rec, unlock: unlock, notApplied: notApplied}, nil
}

// notLanded says the write certainly changed nothing: the entry says
// again what it said before it. Should the rewrite fail, the entry keeps
// claiming that a write may have landed, which only holds it back more.
func (e *heldEntry) notLanded() error {
	if !e.notApplied {
		return nil
	}
	return e.j.setNotApplied(e.path, true)
}

// release unlocks the entry, removing it first if done.
func (e *heldEntry) release(done bool) {
	if done {
		e.j.remove(e.path)
	}
	e.unlock()
}

// entries returns the paths of this profile's entries, in no particular
// order (replayJournal sorts them by generation).
func (j journal) entries() []string {
	if !j.enabled() || j.private() != nil {
		return nil
	}
	des, err := os.ReadDir(j.dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, de := range des {
		n := de.Name()
		if !strings.HasPrefix(n, j.prefix+".") || !strings.HasSuffix(n, ".json") {
			continue
		}
		// Only our own private files: anything else may be planted.
		if fi, err := de.Info(); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o077 == 0 && ownedByUs(fi) {
			out = append(out, filepath.Join(j.dir, n))
		}
	}
	return out
}

// load reads an entry and whether no store write of it may have been
// applied; a damaged one is an error, and is left for an operator rather
// than deleted.
func (j journal) load(path string) (rec *storage.Record, notApplied bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	var e journalEntry
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, false, driver.Wrap(storage.ErrCorrupt, "recovery journal entry "+path, nil)
	}
	rec, err = storage.DecodeRecord(e.Record)
	return rec, e.NotApplied, err
}

// private checks that the journal directory is ours and closed to others,
// so that no other user can plant, read or remove entries.
func (j journal) private() error {
	fi, err := os.Lstat(j.dir)
	if err != nil {
		return fmt.Errorf("recovery journal: %w", err)
	}
	if !fi.IsDir() || fi.Mode().Perm()&0o022 != 0 || !ownedByUs(fi) {
		return fmt.Errorf("recovery journal: %s must be a directory of this user's, not writable by others", j.dir)
	}
	return nil
}

// lock takes the entry at path for one write; see lockEntry.
func (j journal) lock(ctx context.Context, path string) (unlock func(), found bool, err error) {
	return lockEntry(ctx, path)
}

// remove deletes the entry at path and then its lock file (see
// lockEntry); the caller holds the lock, or owns the entry alone.
func (j journal) remove(path string) {
	if path != "" {
		os.Remove(path)
		os.Remove(path + ".lock")
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
