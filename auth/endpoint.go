package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/secret"
)

// lookup follows a dotted path through decoded JSON; nil when absent.
func lookup(doc any, path string) any {
	for _, key := range strings.Split(path, ".") {
		switch v := doc.(type) {
		case map[string]any:
			doc = v[key]
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(v) {
				return nil
			}
			doc = v[i]
		default:
			return nil
		}
	}
	return doc
}

// getJSON sends req and decodes a JSON answer. Failures are
// *credentials.EndpointError, classified by credentials.DoEndpointRequest as
// the token endpoint's own, so that the refresh protocol can tell a
// temporary failure from a refusal and a wrong URL; their URL carries no
// query, which may hold a token.
func getJSON(client *http.Client, req *http.Request) (any, error) {
	resp, b, err := credentials.DoEndpointRequest(client, req)
	var doc any
	var jsonErr error
	if b != nil {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		jsonErr = dec.Decode(&doc)
	}
	if err != nil {
		// Besides OAuth 2.0's error_description, the usual "message".
		var ee *credentials.EndpointError
		if m, ok := doc.(map[string]any); ok && errors.As(err, &ee) && ee.Description == "" {
			if s, ok := m["message"].(string); ok {
				ee.Description = truncate(s, 200)
			}
		}
		return nil, err
	}
	if jsonErr != nil {
		// Cut short, the server may have acted; a page that is not JSON
		// at all is the wrong URL.
		cause := credentials.ErrNotTokenEndpoint
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt == "application/json" || strings.HasSuffix(mt, "+json") {
			cause = credentials.ErrMalformedResponse
		}
		return nil, &credentials.EndpointError{URL: redact(req.URL), StatusCode: resp.StatusCode, Response: resp, Err: cause,
			ContentType: resp.Header.Get("Content-Type"), Description: fmt.Sprintf("the %d response is not JSON", resp.StatusCode)}
	}
	return doc, nil
}

// malformed is a JSON answer without what the scheme needs from it: the
// endpoint is not the one the scheme is configured for.
func malformed(req *http.Request, desc string) error {
	return &credentials.EndpointError{URL: redact(req.URL), StatusCode: http.StatusOK, Err: credentials.ErrNotTokenEndpoint, Description: desc}
}

// redact is secret.RedactURL, the one redaction of every URL printed or
// logged.
func redact(u *url.URL) string { return secret.RedactURL(u.String()) }

func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n] + "…"
	}
	return httpsafe.Printable(s)
}
