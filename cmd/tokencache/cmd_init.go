package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/pancloud"
	"github.com/tokencache/tokencache/resolver"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
)

// Extra record members the CLI keeps beside the library's fields, so that
// revoke and login need not be told the endpoints again.
const (
	extraRevokeURL    = "revoke_url"
	extraAuthorizeURL = "authorize_url"
)

// profileInput is what init (and login) may set in a profile. Empty fields
// are left as stored.
type profileInput struct {
	tokenURL, clientID, flavor, revokeURL, authorizeURL string
	clientSecret, refreshToken, accessToken             secret.Secret
	expiresIn                                           time.Duration
	scopes                                              []string
}

func (in *profileInput) empty() bool {
	return in.tokenURL == "" && in.clientID == "" && in.flavor == "" && in.revokeURL == "" && in.authorizeURL == "" &&
		in.clientSecret == "" && in.refreshToken == "" && in.accessToken == "" && len(in.scopes) == 0
}

func (a *app) initCmd() *cobra.Command {
	var in profileInput
	var fromFile string
	var force bool
	var clientSecret, refreshToken, accessToken string
	var secretFiles [3]string // --client-secret-file, --refresh-token-file, --access-token-file
	var scheme schemeInput
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create or update a profile",
		Long: `Create the profile, or update the fields given in an existing one.

Each value comes from its flag, else from --from-file (a cred-init.json
file, as pancloud reads: {"client_id", "client_secret", "refresh_token"},
optionally "access_token"; "-" reads stdin), else from the environment (PAN_CLIENT_ID, PAN_CLIENT_SECRET,
PAN_REFRESH_TOKEN, PAN_ACCESS_TOKEN). Secrets should not appear in argv,
where other users can see them (ps, /proc): give them in the environment,
in --from-file, or one per file with --client-secret-file,
--refresh-token-file and --access-token-file (the file holds the secret
alone, a trailing newline is ignored; "-" reads it from stdin, for one of
them at a time).

Endpoint URLs must be absolute http:// or https:// URLs. A plain http://
endpoint on a host other than loopback gets a warning: the client secret
and the refresh token would cross the network in clear.

Pancloud's environment is read through the library's resolver, with one
difference from a program's: each value comes from the first source that
has it (flag, then --from-file, then PAN_*), so a flag can override one
variable. A developer token (PAN_DEVELOPER_TOKEN) is not stored: set it
when running token, exec or refresh, which then redeem it (pancloud's
developer-token flow) and store only the access token.

A new refresh token (or client) drops the stored access token, which
belongs to the old grant, unless --access-token is given too.

Running the same init again (a restarted container's entrypoint) is safe:
a refresh token the profile has held before is never written back, since
the store holds its successor. Without --force, init refuses to replace a
stored refresh token with a different one, or to change the client of a
profile that holds one: the stored token may be the newer, and a spent one
makes a server that detects reuse revoke the whole grant.

--scheme NAME makes a profile that authorizes with one of the registered
schemes instead of a stored refresh token, built as a program builds it
(auth.New): oauth2_client_credentials (service to service: no refresh token, a
new token is requested when one expires), oauth2_password, token_endpoint,
tc_token, basic, api_key, bearer, tc_hmac, jwt_es512, ... Its options are
--param NAME=VALUE and --param-file NAME=PATH (for secrets), and
--token-url, --client-id, --client-secret(-file) and --scope for the
options of those names. The options are stored in the profile (secrets as
the client secret is: use a kms+ store to encrypt them); token, exec and
refresh build the scheme from them. A scheme that obtains tokens obtains
its first one during init, which checks the options. --force replaces a
profile that holds other credentials or another scheme's options.`,
		Example: `  tokencache init --token-url https://idp.example/oauth2/token --from-file cred-init.json
  vault read -field=secret kv/app | tokencache init --token-url https://idp.example/oauth2/token --client-id app --client-secret-file -
  PAN_CLIENT_ID=app PAN_CLIENT_SECRET=s PAN_REFRESH_TOKEN=r tokencache init --token-url https://idp.example/oauth2/token
  tokencache init svc --scheme oauth2_client_credentials --token-url https://idp.example/oauth2/token --client-id svc --client-secret-file secret.txt --scope read
  tokencache init legacy --scheme api_key --param-file key=key.txt --param header=X-Api-Key`,
		Args: cobra.NoArgs,
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
			in.clientSecret, in.refreshToken, in.accessToken = secret.Secret(clientSecret), secret.Secret(refreshToken), secret.Secret(accessToken)
			if err := checkEndpoints(&in); err != nil {
				return err
			}
			if err := a.readSecretFiles(cmd, secretFiles, fromFile, &in); err != nil {
				return err
			}
			if scheme.name != "" {
				params, err := a.schemeParams(cmd, scheme, in)
				if err != nil {
					return err
				}
				a.warnPlainHTTP(in.tokenURL, "", "")
				return a.initScheme(ctx, scheme.name, params, force)
			}
			if len(scheme.params) > 0 || len(scheme.paramFiles) > 0 {
				return usagef("--param and --param-file go with --scheme")
			}
			if fromFile != "" {
				if err := a.readCredInit(fromFile, &in); err != nil {
					return err
				}
			}
			a.fillFromEnv(&in)
			if in.empty() {
				return usagef("init: nothing to store: give --token-url, --client-id, ... or --from-file, or set PAN_* variables")
			}
			a.warnPlainHTTP(in.tokenURL, in.revokeURL, in.authorizeURL)
			rec, notes, err := a.saveProfile(ctx, in, force)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "profile %q saved in %s: %s\n", a.profile, displayURL(a.storeURL), strings.Join(notes, "; "))
			if missing := missingForRefresh(rec); len(missing) > 0 {
				fmt.Fprintf(a.stderr, "note: profile %q cannot refresh yet: missing %v\n", a.profile, missing)
			}
			return nil
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.tokenURL, "token-url", "", "token endpoint (RFC 6749), or pancloud's base URL with --flavor pancloud")
	f.StringVar(&in.clientID, "client-id", "", "client id (or PAN_CLIENT_ID)")
	f.StringVar(&clientSecret, "client-secret", "", "client secret (visible in ps: prefer --client-secret-file, PAN_CLIENT_SECRET or --from-file)")
	f.StringVar(&secretFiles[0], "client-secret-file", "", `read the client secret from this file ("-": stdin)`)
	f.StringVar(&refreshToken, "refresh-token", "", "refresh token (visible in ps: prefer --refresh-token-file, PAN_REFRESH_TOKEN or --from-file)")
	f.StringVar(&secretFiles[1], "refresh-token-file", "", `read the refresh token from this file ("-": stdin)`)
	f.StringVar(&accessToken, "access-token", "", "current access token, if any (visible in ps: prefer --access-token-file or PAN_ACCESS_TOKEN)")
	f.StringVar(&secretFiles[2], "access-token-file", "", `read the current access token from this file ("-": stdin)`)
	cmd.MarkFlagsMutuallyExclusive("client-secret", "client-secret-file")
	cmd.MarkFlagsMutuallyExclusive("refresh-token", "refresh-token-file")
	cmd.MarkFlagsMutuallyExclusive("access-token", "access-token-file")
	f.DurationVar(&in.expiresIn, "expires-in", 0, "lifetime left of --access-token (default: its JWT exp claim, else unknown)")
	f.StringVar(&in.flavor, "flavor", "", "token endpoint flavor: oauth2 (default) or pancloud")
	f.StringVar(&in.revokeURL, "revoke-url", "", "revocation endpoint (RFC 7009), remembered for revoke")
	f.StringVar(&in.authorizeURL, "authorize-url", "", "authorization endpoint, remembered for login")
	f.StringSliceVar(&in.scopes, "scope", nil, "scopes to request (login)")
	f.BoolVar(&force, "force", false, "replace the stored refresh token or client: a new grant")
	f.StringVar(&fromFile, "from-file", "", `read client_id, client_secret, refresh_token from a cred-init.json file ("-": stdin)`)
	f.StringVar(&scheme.name, "scheme", "", "authorize with this registered scheme instead (see above); its options by --param")
	f.StringArrayVar(&scheme.params, "param", nil, "a --scheme option, NAME=VALUE (repeatable; visible in ps: give secrets by --param-file)")
	f.StringArrayVar(&scheme.paramFiles, "param-file", nil, `a --scheme option read from a file, NAME=PATH ("-": stdin; repeatable)`)
	return cmd
}

// readSecretFiles reads the --*-file secrets into in. Stdin can be read
// once, so at most one of them, or --from-file, may be "-".
func (a *app) readSecretFiles(cmd *cobra.Command, paths [3]string, fromFile string, in *profileInput) error {
	flags := [3]string{"--client-secret-file", "--refresh-token-file", "--access-token-file"}
	dsts := [3]*secret.Secret{&in.clientSecret, &in.refreshToken, &in.accessToken}
	stdinUsers := 0
	if fromFile == "-" {
		stdinUsers++
	}
	for _, p := range paths {
		if p == "-" {
			stdinUsers++
		}
	}
	if stdinUsers > 1 {
		return usagef(`init: only one of --from-file and the --*-file flags can read stdin ("-")`)
	}
	for i, p := range paths {
		if !cmd.Flag(flags[i][2:]).Changed {
			continue
		}
		if p == "" {
			return usagef("%s: empty path", flags[i])
		}
		s, err := a.readSecretFile(flags[i], p)
		if err != nil {
			return err
		}
		*dsts[i] = s
	}
	return nil
}

// checkEndpoints validates the endpoint URLs init and login take.
func checkEndpoints(in *profileInput) error {
	for _, u := range []struct{ flag, v string }{
		{"--token-url", in.tokenURL}, {"--revoke-url", in.revokeURL}, {"--authorize-url", in.authorizeURL},
	} {
		if err := checkEndpointURL(u.flag, u.v); err != nil {
			return err
		}
	}
	return nil
}

// warnPlainHTTP warns on stderr about each plain-http, non-loopback
// endpoint among token, revoke and authorize URL (empty ones are skipped).
func (a *app) warnPlainHTTP(tokenURL, revokeURL, authorizeURL string) {
	for _, u := range []struct{ what, exposed, v string }{
		{"token URL", "the client secret and the refresh token", tokenURL},
		{"revocation URL", "the client secret and the tokens", revokeURL},
		{"authorization URL", "the sign-in page and what the user types there", authorizeURL},
	} {
		if w := plainHTTPWarning(u.what, u.exposed, u.v); w != "" {
			fmt.Fprintln(a.stderr, w)
		}
	}
}

// readCredInit fills the fields the flags left empty from a cred-init.json.
func (a *app) readCredInit(path string, in *profileInput) error {
	var r io.Reader = a.stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return usagef("--from-file: %v", err)
		}
		defer f.Close()
		r = f
	}
	var v struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
		RefreshToken string `json:"refresh_token"`
		AccessToken  string `json:"access_token"`
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	if err := dec.Decode(&raw); err != nil {
		// The decoder's message may quote the input, which holds secrets.
		return usagef("--from-file %s: not a cred-init.json object", path)
	}
	// A misspelt key would otherwise be dropped silently, and init would
	// store less than the file says (or "nothing to store"). Keys are
	// named, values never (they are secrets).
	var unknown []string
	for k := range raw {
		switch k {
		case "client_id", "client_secret", "refresh_token", "access_token":
		default:
			unknown = append(unknown, strconv.Quote(httpsafe.Printable(k)))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return usagef("--from-file %s: unknown key(s) %s; a cred-init.json has client_id, client_secret, refresh_token and optionally access_token", path, strings.Join(unknown, ", "))
	}
	b, _ := json.Marshal(raw)
	if err := json.Unmarshal(b, &v); err != nil {
		return usagef("--from-file %s: client_id, client_secret, refresh_token and access_token must be strings", path)
	}
	setIfEmpty(&in.clientID, v.ClientID)
	setSecretIfEmpty(&in.clientSecret, v.ClientSecret)
	setSecretIfEmpty(&in.refreshToken, v.RefreshToken)
	setSecretIfEmpty(&in.accessToken, v.AccessToken)
	return nil
}

// fillFromEnv completes in through the resolver with pancloud's
// environment (PAN_CLIENT_ID, PAN_CLIENT_SECRET, PAN_REFRESH_TOKEN,
// PAN_ACCESS_TOKEN), each value from the first source that has it: the
// flags and --from-file (explicit), then the environment. The library
// reads the same variables through the same resolver (pancloud.Env).
func (a *app) fillFromEnv(in *profileInput) {
	res := resolver.Resolve(resolver.Options{
		Profile: a.profile, AccessToken: in.accessToken, ClientID: in.clientID, ClientSecret: in.clientSecret, RefreshToken: in.refreshToken,
		Env: pancloud.Env(), Getenv: a.getenv, Rule: resolver.EachField,
	})
	if res.Seed == nil {
		return
	}
	in.accessToken, in.clientID, in.clientSecret, in.refreshToken = res.Seed.AccessToken, res.Seed.ClientID, res.Seed.ClientSecret, res.Seed.RefreshToken
}

func setIfEmpty(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

func setSecretIfEmpty(dst *secret.Secret, v string) {
	if *dst == "" {
		*dst = secret.Secret(v)
	}
}

// initRefusal refuses, without --force, a write that would replace a
// profile's grant with one the store cannot tell is newer.
type initRefusal struct{ msg string }

func (e *initRefusal) Error() string { return e.msg }

// saveProfile merges in into the stored profile (creating it) and returns
// the record written and a description of what changed. The refresh token
// follows the store's lineage rule: the same seed again is a no-op (the
// store holds its successor), and without force a different client or an
// unknown refresh token over a stored one is refused, since the stored one
// may be the newer and is the only one that still works.
func (a *app) saveProfile(ctx context.Context, in profileInput, force bool) (*storage.Record, []string, error) {
	if _, ok := credentials.LookupFlavor(in.flavor); !ok {
		return nil, nil, usagef("--flavor must be one of %s, not %q", strings.Join(credentials.Flavors(), ", "), in.flavor)
	}
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer st.Close()
	var notes []string
	rec, _, err := st.Update(ctx, a.profile, func(r *storage.Record) error {
		notes = notes[:0]
		changed := func(what string) { notes = append(notes, "set "+what) }
		hasGrant := r.RefreshToken != ""
		if in.clientID != "" && in.clientID != r.ClientID && r.ClientID != "" && hasGrant && !force {
			return &initRefusal{fmt.Sprintf("init: profile %q belongs to client %q, not %q; its refresh token would be lost (--force replaces it, or use another --profile)",
				a.profile, r.ClientID, in.clientID)}
		}
		newGrant := false
		switch rt := in.refreshToken.Reveal(); {
		case rt == "" || rt == r.RefreshToken.Reveal():
		case r.HasSeen(rt) && r.RefreshToken == "":
			// Even --force: the profile held this token and moved past it
			// (rotation, revocation); the server would take it as theft.
			return &initRefusal{fmt.Sprintf("init: profile %q held this refresh token before and has no refresh token now (revoked?); it is spent: run \"tokencache login\" or give a new one", a.profile)}
		case r.HasSeen(rt):
			notes = append(notes, "kept the stored refresh token: it is the successor of the one given (the given one was spent)")
		case force:
			r.Grant(rt)
			newGrant = true
		case hasGrant:
			return &initRefusal{fmt.Sprintf("init: profile %q already holds a refresh token, which may be newer than the one given and is the one that works after rotation; --force replaces it", a.profile)}
		default:
			r.Seed(rt)
			newGrant = true
		}
		if newGrant {
			changed("refresh_token")
			r.AccessToken, r.TokenType, r.Expiry = "", "", time.Time{}
		}
		if in.clientID != r.ClientID && in.clientID != "" {
			r.ClientID = in.clientID
			changed("client_id")
			if !newGrant {
				r.AccessToken, r.TokenType, r.Expiry = "", "", time.Time{}
			}
		}
		for _, f := range []struct {
			name string
			dst  *string
			v    string
		}{{"token_url", &r.TokenURL, in.tokenURL}, {"flavor", &r.Flavor, in.flavor}} {
			if f.v != "" && *f.dst != f.v {
				*f.dst = f.v
				changed(f.name)
			}
		}
		if in.clientSecret != "" && in.clientSecret != r.ClientSecret {
			r.ClientSecret = in.clientSecret
			changed("client_secret")
		}
		if in.accessToken != "" && (newGrant || !hasGrant || force) && in.accessToken != r.AccessToken {
			r.AccessToken, r.TokenType = in.accessToken, ""
			r.Expiry = time.Time{}
			if in.expiresIn != 0 {
				r.Expiry = time.Now().Add(in.expiresIn).UTC()
			}
			changed("access_token")
		}
		if len(in.scopes) > 0 && !slices.Equal(in.scopes, r.Scopes) {
			r.Scopes = in.scopes
			changed("scopes")
		}
		for _, f := range []struct{ name, v string }{{extraRevokeURL, in.revokeURL}, {extraAuthorizeURL, in.authorizeURL}} {
			if f.v != "" && extraString(r, f.name) != f.v {
				if err := r.SetExtra(f.name, f.v); err != nil {
					return err
				}
				changed(f.name)
			}
		}
		if len(notes) == 0 || (len(notes) == 1 && !strings.HasPrefix(notes[0], "set ")) {
			return storage.ErrAbort
		}
		return nil
	})
	if errors.Is(err, storage.ErrAbort) {
		rec, _, err = st.Load(ctx, a.profile)
		if len(notes) == 0 {
			notes = append(notes, "nothing changed")
		}
	}
	var refusal *initRefusal
	if errors.As(err, &refusal) {
		return nil, nil, usagef("%s", refusal.msg)
	}
	return rec, notes, err
}

// missingForRefresh is the library's check by the record's flavor, so
// that init can warn instead of token failing later.
func missingForRefresh(r *storage.Record) []string {
	m, err := credentials.MissingForRefresh(r)
	if err != nil {
		return []string{"a known flavor"}
	}
	return m
}

func extraString(r *storage.Record, name string) string {
	var s string
	r.GetExtra(name, &s)
	return s
}
