package storage

import (
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
)

// The lineage rule.
//
// A server that rotates refresh tokens treats a spent token presented again
// as theft and revokes the whole grant, and a rotated token that is dropped
// leaves no way to refresh. So the refresh token a record holds is replaced
// only by
//
//   - its successor from the server: the same grant, a later generation
//     (Record.Rotate), or
//   - an explicit new grant: a login, a code exchange, a forced init
//     (Record.Grant), or a seed the profile has never held (Record.Seed).
//
// Store enforces the rule on every write it makes (Update, Replace), so no
// writer can put a spent token back: not a late write after an outage, not
// a restarted process re-seeding from its environment, not a copy from an
// older store. A write that breaks it fails with ErrLineage and writes
// nothing.
//
// A successor is admitted when its generation is later than the stored one,
// not only when it is exactly the next: a store restored from an old
// snapshot holds a token the server has long rotated past, and the newer
// token in hand is then the only live one.

// ErrLineage: a write would replace the stored refresh token with one that
// is not its successor or a new grant (an older token of the same grant, or
// a token of a grant the profile has moved past). Nothing was written; the
// stored token is the newer one.
var ErrLineage = errors.New("storage: refresh token is not a successor of the stored one")

// maxSeen bounds Lineage.Seen: enough to remember every grant an operator
// re-seeds between deployments, small enough to keep records small.
const maxSeen = 16

// Lineage says where a record's refresh token comes from. Writers do not
// set it by hand: Rotate, Grant and Seed do, and Store checks it.
type Lineage struct {
	// Grant identifies the authorization the refresh token belongs to. A
	// seed's id is derived from its refresh token, so the same seed always
	// has the same id; other grants get a random one.
	Grant string `json:"grant,omitempty"`
	// Gen counts the rotations since the grant.
	Gen uint64 `json:"gen,omitempty"`
	// Seen lists the grants the profile held before, newest first: their
	// tokens are never taken back.
	Seen []string `json:"seen,omitempty"`
	// Spent lists hashes of the grant's refresh tokens that rotations
	// replaced, newest first: the first names the token the current one
	// succeeds, and none of them is taken back as a seed.
	Spent []string `json:"spent,omitempty"`
}

func (l Lineage) clone() Lineage {
	l.Seen = slices.Clone(l.Seen)
	l.Spent = slices.Clone(l.Spent)
	return l
}

// hasSeen reports whether grant is the current grant or a past one.
func (l *Lineage) hasSeen(grant string) bool {
	return grant != "" && (grant == l.Grant || slices.Contains(l.Seen, grant))
}

// Rotate replaces the refresh token with its successor from the server.
// Call it on the record whose token was spent.
func (r *Record) Rotate(next string) {
	if string(r.RefreshToken) == next {
		return
	}
	if r.RefreshToken != "" {
		r.Lineage.Spent = bounded(append([]string{tokenHash(r.RefreshToken.Reveal())}, r.Lineage.Spent...))
	}
	r.RefreshToken = secret.Secret(next)
	r.Lineage.Gen++
}

// Succeeds reports whether r's refresh token is the successor the server
// gave for prev's: the token r's rotation spent is the one prev holds.
func (r *Record) Succeeds(prev *Record) bool {
	return prev.RefreshToken != "" && len(r.Lineage.Spent) > 0 && r.Lineage.Spent[0] == tokenHash(prev.RefreshToken.Reveal())
}

// Grant installs a new grant: its refresh token (possibly empty, as after
// a revocation) replaces whatever the record held, whichever grant that
// was. For logins, code exchanges and forced initialisation.
func (r *Record) Grant(refreshToken string) {
	r.moveTo(newGrantID())
	r.RefreshToken = secret.Secret(refreshToken)
}

// Seed installs refreshToken as a seed (from flags, a file or the
// environment) unless the profile already holds it or held it before, in
// which case the stored token is its successor, or a newer grant's, and is
// kept. It reports whether the seed was taken.
//
// A record without lineage (pancloud's, or an older version's) cannot say
// where its token came from: one equal to the seed is marked as the seed's
// grant, and one that differs is kept, since it may be the seed's rotated
// successor. Replacing it takes an explicit Grant.
func (r *Record) Seed(refreshToken string) bool {
	if refreshToken == "" {
		return false
	}
	id := SeedGrant(refreshToken)
	if r.Lineage.Grant == "" && r.RefreshToken != "" {
		if string(r.RefreshToken) == refreshToken {
			r.Lineage.Grant = id
		}
		return false
	}
	if r.HasSeen(refreshToken) {
		return false
	}
	r.moveTo(id)
	r.RefreshToken = secret.Secret(refreshToken)
	return true
}

// HasSeen reports whether the profile holds refreshToken, or held it
// before: as a seed, or as a token of its grant that a rotation spent.
func (r *Record) HasSeen(refreshToken string) bool {
	return string(r.RefreshToken) == refreshToken || r.Lineage.hasSeen(SeedGrant(refreshToken)) ||
		slices.Contains(r.Lineage.Spent, tokenHash(refreshToken))
}

func (r *Record) moveTo(grant string) {
	l := &r.Lineage
	if l.Grant != "" && l.Grant != grant {
		l.Seen = append([]string{l.Grant}, l.Seen...)
	}
	l.Seen = slices.DeleteFunc(l.Seen, func(s string) bool { return s == grant })
	if len(l.Seen) > maxSeen {
		l.Seen = l.Seen[:maxSeen]
	}
	l.Grant, l.Gen, l.Spent = grant, 0, nil
}

// tokenHash identifies a refresh token without storing it.
func tokenHash(refreshToken string) string {
	sum := sha256.Sum256([]byte("tokencache token\x00" + refreshToken))
	return "t:" + hex.EncodeToString(sum[:8])
}

func bounded(l []string) []string {
	if len(l) > maxSeen {
		return l[:maxSeen]
	}
	return l
}

// SeedGrant returns the grant id of a seeded refresh token. It is a hash,
// safe to store: refresh tokens are high-entropy server secrets.
func SeedGrant(refreshToken string) string {
	sum := sha256.Sum256([]byte("tokencache seed\x00" + refreshToken))
	return "s:" + hex.EncodeToString(sum[:12])
}

func newGrantID() string {
	b := make([]byte, 12)
	crand.Read(b)
	return "g:" + hex.EncodeToString(b)
}

// checkLineage enforces the rule on a write of next over cur (nil when the
// profile is absent). It also carries the grants cur has seen into next, so
// that no writer can make the profile forget them.
func checkLineage(cur, next *Record) error {
	if cur == nil {
		return nil
	}
	if next.Lineage.Grant == cur.Lineage.Grant {
		next.Lineage.Seen = mergeSeen(cur.Lineage.Seen, next.Lineage.Seen)
		next.Lineage.Spent = mergeSeen(next.Lineage.Spent, cur.Lineage.Spent)
		if next.RefreshToken == cur.RefreshToken {
			// The same token: its generation cannot go back.
			next.Lineage.Gen = max(next.Lineage.Gen, cur.Lineage.Gen)
		}
	} else {
		seen := next.Lineage.Seen
		if cur.Lineage.Grant != "" {
			seen = append([]string{cur.Lineage.Grant}, seen...)
		}
		next.Lineage.Seen = slices.DeleteFunc(mergeSeen(seen, cur.Lineage.Seen), func(s string) bool { return s == next.Lineage.Grant })
	}
	if next.RefreshToken == cur.RefreshToken {
		return nil
	}
	switch {
	case next.Lineage.Grant == cur.Lineage.Grant:
		if next.Lineage.Gen > cur.Lineage.Gen {
			return nil
		}
		return driver.Wrap(ErrLineage, fmt.Sprintf("profile %q: generation %d does not follow the stored %d of the same grant", cur.Profile, next.Lineage.Gen, cur.Lineage.Gen), nil)
	case slices.Contains(cur.Lineage.Seen, next.Lineage.Grant):
		return driver.Wrap(ErrLineage, fmt.Sprintf("profile %q: the refresh token belongs to a grant the profile has moved past", cur.Profile), nil)
	case next.Lineage.Grant == "":
		// A writer that changed the token without saying why: a successor
		// must come through Rotate, a new grant through Grant or Seed.
		return driver.Wrap(ErrLineage, fmt.Sprintf("profile %q: the refresh token changed without Rotate, Grant or Seed", cur.Profile), nil)
	}
	return nil
}

// mergeSeen returns a then the members of b not in a, bounded.
func mergeSeen(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) > maxSeen {
		out = out[:maxSeen]
	}
	return out
}
