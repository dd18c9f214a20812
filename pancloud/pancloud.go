package pancloud

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/resolver"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
)

// Flavor is the name records carry (storage.Record.Flavor) for pancloud's
// token endpoint.
const Flavor = "pancloud"

// DefaultBaseURL is the Application Framework's API gateway, the base of
// the token endpoints for credentials that do not name one.
const DefaultBaseURL = "https://api.paloaltonetworks.com"

// DefaultDeveloperTokenProvider is API Explorer's access-token redemption
// service.
const DefaultDeveloperTokenProvider = "https://app.apiexplorer.rocks/request_token"

// Environment variables, pancloud's names.
const (
	EnvAccessToken            = "PAN_ACCESS_TOKEN"
	EnvClientID               = "PAN_CLIENT_ID"
	EnvClientSecret           = "PAN_CLIENT_SECRET"
	EnvRefreshToken           = "PAN_REFRESH_TOKEN"
	EnvDeveloperToken         = "PAN_DEVELOPER_TOKEN"
	EnvDeveloperTokenProvider = "PAN_DEVELOPER_TOKEN_PROVIDER"
	// EnvCredentialsFile names the credentials file (DefaultPath).
	EnvCredentialsFile = "PAN_CREDENTIALS_DBFILE"
	// EnvPrefix starts every variable above: a child process that should
	// not inherit pancloud's secrets gets none that starts with it.
	EnvPrefix = "PAN_"
)

// Env is pancloud's environment as a resolver source: PAN_ACCESS_TOKEN,
// PAN_CLIENT_ID, PAN_CLIENT_SECRET and PAN_REFRESH_TOKEN.
func Env() resolver.EnvNames {
	return resolver.EnvNames{AccessToken: EnvAccessToken, ClientID: EnvClientID, ClientSecret: EnvClientSecret, RefreshToken: EnvRefreshToken}
}

// The endpoints under a base URL.
const (
	requestTokenPath = "/api/oauth2/RequestToken"
	revokeTokenPath  = "/api/oauth2/RevokeToken"
)

// RequestTokenURL is the token endpoint under base (a record's TokenURL).
func RequestTokenURL(base string) string { return strings.TrimRight(base, "/") + requestTokenPath }

// RevokeTokenURL is the revocation endpoint under base.
func RevokeTokenURL(base string) string { return strings.TrimRight(base, "/") + revokeTokenPath }

// DefaultPath is pancloud's credentials file: $PAN_CREDENTIALS_DBFILE if
// set (relative to the working directory, as for pancloud), else
// ~/.config/pancloud/credentials.json. getenv reads the environment; nil
// means os.Getenv.
func DefaultPath(getenv func(string) string) (string, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if p := getenv(EnvCredentialsFile); p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", driver.Wrap(storage.ErrInvalid, "pancloud: no credentials path: "+EnvCredentialsFile+" is not set and there is no home directory", err)
	}
	return filepath.Join(home, ".config", "pancloud", "credentials.json"), nil
}

// DefaultStoreURL is DefaultPath as an absolute file:// URL for
// storage.Open (with package storage/file imported). The path is made
// absolute here, so that the store's name, which keys the recovery
// journal, tells two credentials files apart.
func DefaultStoreURL(getenv func(string) string) (string, error) {
	p, err := DefaultPath(getenv)
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", driver.Wrap(storage.ErrInvalid, "pancloud: "+EnvCredentialsFile, err)
	}
	return (&url.URL{Scheme: "file", Path: abs}).String(), nil
}

func init() { credentials.RegisterFlavor(Flavor, flavor{}) }
