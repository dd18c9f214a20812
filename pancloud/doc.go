// Package pancloud is tokencache's flavour for Palo Alto Networks' pancloud
// SDK and its Application Framework (Cortex) endpoints, built on the same
// hooks any other vendor would use:
//
//   - the token endpoint dialect, registered as the credentials Flavor
//     named Flavor ("pancloud"): JSON bodies at {base}/api/oauth2/RequestToken
//     for the refresh-token grant and the authorization code exchange, and
//     at {base}/api/oauth2/RevokeToken for revocation, where a record's
//     TokenURL is the base URL. Importing the package registers it;
//   - developer tokens (API Explorer's access-token redemption service) as
//     a credentials.Grant, DeveloperToken: a profile needs nothing stored to
//     start from, and only the access token is stored, as pancloud does
//     ("credentials.json only stores and updates the access_token value"):
//     the service keeps what refreshes it;
//   - pancloud's environment, PAN_*, as a resolver source (Env), the
//     developer token from PAN_DEVELOPER_TOKEN, and the credentials file
//     from PAN_CREDENTIALS_DBFILE;
//   - the default credentials.json, ~/.config/pancloud/credentials.json
//     (DefaultPath, DefaultStoreURL), which package storage/file reads and
//     writes in pancloud's own TinyDB layout, so pancloud and tokencache
//     share one file.
//
// Open is the equivalent of pancloud's Credentials constructor: explicit
// values, else PAN_* variables, else the stored profile, first match wins;
// Config.ManualRefresh is pancloud's auto_refresh=False.
//
// What pancloud's documentation does not say, this package assumes: the
// redemption service is called with POST, an empty JSON object and the
// developer token as a Bearer credential, and answers as a token endpoint
// does (RFC 6749 §5).
package pancloud
