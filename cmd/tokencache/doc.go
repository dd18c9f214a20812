// Command tokencache keeps OAuth 2.0 credentials for many profiles in a
// shared store and prints valid access tokens, refreshing them so that every
// process sharing the store uses one access token per expiry and exactly one
// of them calls the token endpoint.
//
// Usage:
//
//	tokencache [--store URL] [-p|--profile NAME] <command> [PROFILE] [flags]
//
// The store is the embedded file store (pancloud's credentials.json, or the
// file PAN_CREDENTIALS_DBFILE names) unless --store or TOKENCACHE_STORE
// names another: file:///path, sqlite:///path, memory://name and the
// schemes of the other adapters compiled in (see stores.go). The profile is
// "default" unless the command's argument, --profile (-p) or
// TOKENCACHE_PROFILE names another. Commands that only read (all but init
// and login) never create a store: a local store file that does not exist
// is an error (exit 3), not an empty database at a mistyped path; the
// exception is pancloud's developer token (PAN_DEVELOPER_TOKEN), with
// which token, refresh and exec obtain a token for a profile no store
// holds yet.
//
// The environment, and how it differs from pancloud.Open: the CLI reads
// pancloud's variables through the same code as the library, but only
// where it writes a profile.
//
//   - init reads PAN_CLIENT_ID, PAN_CLIENT_SECRET, PAN_REFRESH_TOKEN and
//     PAN_ACCESS_TOKEN through package resolver with pancloud's names
//     (pancloud.Env), each value from the first source that has it: flag,
//     then --from-file, then variable. A refresh token the profile has
//     held is never put back; another client or an unknown refresh token
//     over a stored grant takes --force.
//   - token, exec and refresh read the stored profile and
//     PAN_DEVELOPER_TOKEN with PAN_DEVELOPER_TOKEN_PROVIDER (resolved as
//     pancloud.Config.Options resolves them), not the four credential
//     variables: pancloud.Open would seed those into the profile, with
//     pancloud's token endpoint, but the CLI's profiles name their own
//     endpoints (init --token-url, --flavor) and a variable left in a shell
//     would apply to whichever profile a command names. Seed with init.
//   - login also reads PAN_CLIENT_SECRET, for a confidential client whose
//     secret the profile lacks; revoke reads what token reads but never
//     creates a store.
//   - PAN_CREDENTIALS_DBFILE names the default store, as for pancloud.
//
// Commands:
//
//	init      create or update a profile (flags, PAN_* environment, --*-file or --from-file cred-init.json),
//	          or one that authorizes with a registered scheme (--scheme NAME --param k=v --param-file k=path)
//	token     print a valid access token, refreshing it through the store when needed
//	          (--format value|header|json|env|k8s, --min-valid DURATION)
//	exec      run a command with the access token in its environment (exec [PROFILE] -- CMD ...)
//	list      list the profiles in the store
//	show      show a profile, secrets masked
//	refresh   refresh the access token now, even if the stored one is valid
//	revoke    revoke the profile's tokens at the server and drop them from the store
//	rm        remove a profile
//	copy      copy profiles to another store (--to, --to-env NAME or TOKENCACHE_COPY_TO)
//	login     authorization code flow with PKCE and a loopback redirect; with --device,
//	          the device authorization grant (RFC 8628) for machines without a browser
//	lease     show the refresh lease; "lease clear" removes one whose holder is dead
//	serve     an agent: serve the profiles' tokens to local programs over a Unix socket or loopback TCP
//	test-server  a local OAuth 2.0 server (rotation, reuse detection) to try the CLI against
//	demo      shared-store refresh vs per-process refresh, against an in-process test server
//	bench     endpoint calls, reuse detections, Token latency and memory per replica, against x/oauth2
//	completion  shell completion scripts (bash, zsh, fish, powershell); profiles complete from the store
//
// --version prints the build's version.
//
// Secrets and the terminal: every secret the CLI takes can come from the
// environment, a file or stdin instead of argv, where other users see it
// (init's --*-file flags and PAN_* variables, TOKENCACHE_STORE, copy's
// --to-env and TOKENCACHE_COPY_TO). login starts the browser opener
// (xdg-open, open, or TOKENCACHE_BROWSER) with an environment reduced to
// what a desktop session needs, without PAN_* or TOKENCACHE_* variables.
// What servers and stores say (error descriptions, profile fields) is
// printed with control characters escaped, and endpoint and store URLs with
// passwords and secret query parameters masked. init and login warn about
// plain-http endpoints that are not loopback, and copy about copying out of
// a kms+ store into a plaintext one.
//
// Exit codes, one per failure class so that scripts can react without
// parsing messages (errors are one line on stderr and never contain secrets):
//
//	0  success
//	1  other error
//	2  usage: bad flags, arguments or store URL
//	3  profile not found
//	4  store corrupt (left untouched for an operator to repair)
//	5  store unavailable or read-only
//	6  token endpoint unreachable, timing out or failing temporarily: retry later
//	7  re-authorization required: the refresh token was revoked, expired or reused (invalid_grant),
//	   or a login's username or password was refused
//	8  invalid client: the server rejected client_id/client_secret (invalid_client)
//	9  partial credentials: the profile lacks what a refresh needs
//	10 the token URL does not answer as a token endpoint (a web page, 403, 404, a redirect)
//	11 conflict: the store changed under the command, or the target exists: look again
package main
