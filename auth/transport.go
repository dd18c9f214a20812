package auth

import (
	"context"

	"golang.org/x/oauth2"

	"github.com/tokencache/tokencache/httpauth"
)

// TokenSource returns an oauth2.TokenSource over a scheme that has a
// bearer token (Bearer, JWT and every TokenAuthorizer), or ErrNoToken.
func TokenSource(ctx context.Context, a httpauth.Authorizer) (oauth2.TokenSource, error) {
	if s, ok := a.(interface {
		TokenSource(context.Context) oauth2.TokenSource
	}); ok {
		return s.TokenSource(ctx), nil
	}
	return nil, ErrNoToken
}
