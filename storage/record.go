package storage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
)

// SchemaVersion is the Record schema this package writes. Records without a
// version are pancloud's and read as version 1.
const SchemaVersion = 1

// Record is what a store keeps for one profile. The JSON names of the
// credential fields are pancloud's, so a credentials.json written by either
// tool reads in the other.
type Record struct {
	Profile      string
	ClientID     string
	ClientSecret secret.Secret
	RefreshToken secret.Secret
	AccessToken  secret.Secret
	TokenType    string    // "Bearer" when empty
	Expiry       time.Time // when AccessToken expires; zero when unknown
	IssuedAt     time.Time // when AccessToken was requested; zero when unknown
	TokenURL     string    // the token endpoint (RFC 6749), or what the record's flavor takes instead (a base URL)
	Flavor       string    // the token endpoint's dialect (credentials.Flavor); "" is RFC 6749
	Scopes       []string
	Scheme       string  // auth scheme that owns the record; empty for the refresh-token flow
	Lease        *Lease  // set while one client refreshes; Store.Update keeps it as stored
	Lineage      Lineage // where RefreshToken comes from; see Rotate, Grant, Seed
	UpdatedAt    time.Time

	// Extra keeps members this package does not know: scheme-specific
	// fields, or those another tool wrote. They survive a read-modify-write.
	Extra map[string]json.RawMessage
}

// Lease marks a refresh in progress. Whoever holds an unexpired lease is the
// only client that may call the token endpoint for the profile.
type Lease struct {
	Owner string    `json:"owner"`
	Until time.Time `json:"until"` // on the holder's clock
	// TTL is how long the holder may hold it, counted by each observer on
	// its own clock from when it first saw the lease. Zero in leases
	// written before it existed.
	TTL Duration `json:"ttl,omitzero"`
}

// Duration is a time.Duration that reads and writes JSON as a string
// ("30s"), which stays readable in a stored record.
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("lease ttl %q: not a duration", s)
	}
	*d = Duration(v)
	return nil
}

// Clone returns a deep copy, so that a caller may change it freely.
func (r *Record) Clone() *Record {
	c := *r
	c.Scopes = append([]string(nil), r.Scopes...)
	if r.Lease != nil {
		l := *r.Lease
		c.Lease = &l
	}
	c.Lineage = r.Lineage.clone()
	if r.Extra != nil {
		c.Extra = make(map[string]json.RawMessage, len(r.Extra))
		for k, v := range r.Extra {
			c.Extra[k] = v
		}
	}
	return &c
}

// GetExtra decodes the extra member name into v and reports whether it was there.
func (r *Record) GetExtra(name string, v any) (bool, error) {
	raw, ok := r.Extra[name]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, driver.Wrap(ErrCorrupt, fmt.Sprintf("record member %q", name), err)
	}
	return true, nil
}

// SetExtra stores v as the extra member name; a nil v removes it.
func (r *Record) SetExtra(name string, v any) error {
	if isKnownMember(name) {
		return driver.Wrap(ErrInvalid, fmt.Sprintf("record member %q is not extra", name), nil)
	}
	if v == nil {
		delete(r.Extra, name)
		return nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return driver.Wrap(ErrInvalid, fmt.Sprintf("record member %q", name), err)
	}
	if r.Extra == nil {
		r.Extra = make(map[string]json.RawMessage)
	}
	r.Extra[name] = raw
	return nil
}

// wireRecord is the JSON form. Secrets are plain strings here because
// secret.Secret masks itself in JSON.
type wireRecord struct {
	SchemaVersion int       `json:"schema_version,omitempty"`
	Profile       string    `json:"profile"`
	ClientID      string    `json:"client_id,omitempty"`
	ClientSecret  string    `json:"client_secret,omitempty"`
	RefreshToken  string    `json:"refresh_token,omitempty"`
	AccessToken   string    `json:"access_token,omitempty"`
	TokenType     string    `json:"token_type,omitempty"`
	Expiry        time.Time `json:"expiry,omitzero"`
	IssuedAt      time.Time `json:"issued_at,omitzero"`
	TokenURL      string    `json:"token_url,omitempty"`
	Flavor        string    `json:"flavor,omitempty"`
	Scopes        []string  `json:"scopes,omitempty"`
	Scheme        string    `json:"scheme,omitempty"`
	Lease         *Lease    `json:"lease,omitempty"`
	Lineage       Lineage   `json:"lineage,omitzero"`
	UpdatedAt     time.Time `json:"updated_at,omitzero"`
}

var knownMembers = map[string]struct{}{
	"schema_version": {}, "profile": {}, "client_id": {}, "client_secret": {},
	"refresh_token": {}, "access_token": {}, "token_type": {}, "expiry": {}, "issued_at": {},
	"token_url": {}, "flavor": {}, "scopes": {}, "scheme": {}, "lease": {},
	"lineage": {}, "updated_at": {},
}

func isKnownMember(name string) bool {
	if _, ok := knownMembers[name]; ok {
		return true
	}
	for k := range knownMembers {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// EncodeRecord returns r's JSON form.
func EncodeRecord(r *Record) ([]byte, error) {
	w := wireRecord{
		SchemaVersion: SchemaVersion,
		Profile:       r.Profile,
		ClientID:      r.ClientID,
		ClientSecret:  r.ClientSecret.Reveal(),
		RefreshToken:  r.RefreshToken.Reveal(),
		AccessToken:   r.AccessToken.Reveal(),
		TokenType:     r.TokenType,
		Expiry:        r.Expiry,
		IssuedAt:      r.IssuedAt,
		TokenURL:      r.TokenURL,
		Flavor:        r.Flavor,
		Scopes:        r.Scopes,
		Scheme:        r.Scheme,
		Lease:         r.Lease,
		Lineage:       r.Lineage,
		UpdatedAt:     r.UpdatedAt,
	}
	b, err := json.Marshal(&w)
	if err != nil || len(r.Extra) == 0 {
		return b, err
	}
	// Splice the extra members in before the closing brace; sorted for
	// stable output, since map order would change the bytes on every write.
	var buf bytes.Buffer
	buf.Write(b[:len(b)-1])
	for _, k := range slices.Sorted(maps.Keys(r.Extra)) {
		if isKnownMember(k) {
			continue
		}
		v := r.Extra[k]
		if !json.Valid(v) {
			return nil, driver.Wrap(ErrInvalid, fmt.Sprintf("record member %q is not JSON", k), nil)
		}
		kb, _ := json.Marshal(k)
		buf.WriteByte(',')
		buf.Write(kb)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// DecodeRecord parses a stored value. Errors match ErrCorrupt.
func DecodeRecord(b []byte) (*Record, error) {
	var w wireRecord
	// The common record has only known members: decode it once, strictly.
	// A record with members we do not know (another tool's, or a scheme's)
	// takes a second pass to keep them.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(&w)
	unknown := err != nil && strings.HasPrefix(err.Error(), "json: unknown field")
	if unknown {
		w = wireRecord{}
		err = json.Unmarshal(b, &w)
	} else if err == nil {
		if _, tail := dec.Token(); tail != io.EOF {
			err = errors.New("trailing data after the record")
		}
	}
	if err != nil {
		return nil, driver.Wrap(ErrCorrupt, "decode record", err)
	}
	if w.SchemaVersion > SchemaVersion {
		return nil, driver.Wrap(ErrCorrupt, fmt.Sprintf("record schema %d is newer than this build supports (%d)", w.SchemaVersion, SchemaVersion), nil)
	}
	r := &Record{
		Profile:      w.Profile,
		ClientID:     w.ClientID,
		ClientSecret: secret.Secret(w.ClientSecret),
		RefreshToken: secret.Secret(w.RefreshToken),
		AccessToken:  secret.Secret(w.AccessToken),
		TokenType:    w.TokenType,
		Expiry:       w.Expiry,
		IssuedAt:     w.IssuedAt,
		TokenURL:     w.TokenURL,
		Flavor:       w.Flavor,
		Scopes:       w.Scopes,
		Scheme:       w.Scheme,
		Lease:        w.Lease,
		Lineage:      w.Lineage,
		UpdatedAt:    w.UpdatedAt,
	}
	if unknown {
		var all map[string]json.RawMessage
		if err := json.Unmarshal(b, &all); err != nil {
			return nil, driver.Wrap(ErrCorrupt, "decode record", err)
		}
		for k := range all {
			// encoding/json matches member names case-insensitively, so
			// "Expiry" already set Expiry: keeping it as an extra would
			// write a stale duplicate that a later decode prefers.
			if isKnownMember(k) {
				delete(all, k)
			}
		}
		if len(all) > 0 {
			r.Extra = all
		}
	}
	return r, nil
}
