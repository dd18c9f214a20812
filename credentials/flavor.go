package credentials

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/internal/registry"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// A Flavor is a token endpoint's dialect: how a profile's refresh-token
// grant, authorization code exchange and revocation travel to it. A
// record's Flavor field names the one its endpoint speaks. RFC 6749 and
// RFC 7009 (form bodies, FlavorOAuth2, also the empty name) are built in;
// a vendor's dialect is a package that registers its Flavor with
// RegisterFlavor, and importing that package is all a program needs to
// serve its profiles, as with storage adapters.
//
// Credentials calls Refresh while holding the profile's lease, so at most
// one call per profile is in flight across all processes sharing the
// store. Errors follow Grant's rules: one that matches ErrInvalidGrant
// asks for re-authorization; an *EndpointError says whether it is
// Temporary. DoTokenRequest and DoRevocation make and read the requests
// with the same rules (no redirects, bounded and redacted bodies) as the
// built-in flavor.
type Flavor interface {
	// Refresh redeems rec's refresh token for new tokens.
	Refresh(ctx context.Context, client *http.Client, rec *storage.Record) (*Tokens, error)
	// Exchange redeems an authorization code (RFC 6749 §4.1.3) and its
	// PKCE verifier, empty when none was sent.
	Exchange(ctx context.Context, client *http.Client, rec *storage.Record, code string, verifier secret.Secret, redirectURI string) (*Tokens, error)
	// Revoke revokes token, whose hint is "refresh_token" or
	// "access_token". revokeURL is the caller's revocation endpoint, for
	// flavors whose record does not imply one.
	Revoke(ctx context.Context, client *http.Client, rec *storage.Record, token secret.Secret, hint, revokeURL string) error
	// Missing names what rec lacks for Refresh, by its record member
	// names ("client_id", "refresh_token", ...); none when it is complete.
	Missing(rec *storage.Record) []string
}

var flavors = registry.New[Flavor]("credentials: RegisterFlavor")

// RegisterFlavor makes f the Flavor of the records whose Flavor field is
// name. Registering a name twice, the built-in ones included, or a nil
// Flavor panics, as database/sql.Register does: two packages claiming one
// name is a build mistake.
func RegisterFlavor(name string, f Flavor) {
	if name == "" || name == FlavorOAuth2 {
		panic("credentials: RegisterFlavor called twice for " + name)
	}
	flavors.Add(name, f)
}

// Flavors returns the names of the registered flavors, sorted, the
// built-in FlavorOAuth2 included.
func Flavors() []string {
	names := append(flavors.Names(), FlavorOAuth2)
	slices.Sort(names)
	return names
}

// ErrUnknownFlavor: a record names a token endpoint flavor that no
// imported package registered.
var ErrUnknownFlavor = errors.New("credentials: unknown token endpoint flavor")

// LookupFlavor returns the Flavor registered as name; nil and true for the
// built-in RFC 6749 one ("" or FlavorOAuth2), nil and false for a name
// nobody registered.
func LookupFlavor(name string) (Flavor, bool) {
	if name == "" || name == FlavorOAuth2 {
		return nil, true
	}
	return flavors.Lookup(name)
}

// flavorOf returns the registered Flavor of rec, nil for RFC 6749.
func flavorOf(profile string, rec *storage.Record) (Flavor, error) {
	f, ok := LookupFlavor(rec.Flavor)
	if !ok {
		return nil, fmt.Errorf("%w: profile %q names flavor %q, which no imported package registers", ErrUnknownFlavor, profile, rec.Flavor)
	}
	return f, nil
}

// missingRFC6749 is what the RFC 6749 refresh-token grant needs. A public
// client (no secret, §2.1) refreshes with client_id alone (§6, §3.2.1).
func missingRFC6749(rec *storage.Record) []string {
	var missing []string
	if rec.ClientID == "" {
		missing = append(missing, "client_id")
	}
	if rec.RefreshToken == "" {
		missing = append(missing, "refresh_token")
	}
	if rec.TokenURL == "" {
		missing = append(missing, "token_url")
	}
	return missing
}

// MissingForRefresh names what rec lacks for a refresh by its flavor's
// rules; none when it is complete. For tools that check a profile before
// it is used.
func MissingForRefresh(rec *storage.Record) ([]string, error) {
	f, err := flavorOf(rec.Profile, rec)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return missingRFC6749(rec), nil
	}
	return f.Missing(rec), nil
}

// DoTokenRequest sends req, a request to a token or redemption endpoint
// in whatever wire format the endpoint takes, and reads the answer as
// RFC 6749 §5 describes: the tokens of a success, else an *EndpointError
// (or the context's error). Redirects are never followed: the request
// carries credentials. For Flavor and Grant implementations.
func DoTokenRequest(client *http.Client, req *http.Request) (*Tokens, error) {
	e := endpoint{client: httpsafe.NoRedirects(client)}
	sent := time.Now()
	tr, err := e.do(req)
	if err != nil {
		return nil, err
	}
	return tr.result(sent)
}

// DoRevocation sends req, a request to a revocation endpoint, as
// DoTokenRequest does; any success answer, an empty one included
// (RFC 7009 §2.2), is nil.
func DoRevocation(client *http.Client, req *http.Request) error {
	e := endpoint{client: httpsafe.NoRedirects(client)}
	_, err := e.do(req)
	return err
}
