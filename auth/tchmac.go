package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokencache/tokencache/secret"
)

func init() { registerConfig("tc_hmac", NewTCHMAC) }

// TCHMACConfig configures ThreatConnect HMAC authorization,
// used by Apps that run outside the platform.
type TCHMACConfig struct {
	AccessID  string        `json:"api_access_id"`
	SecretKey secret.Secret `json:"api_secret_key"`
}

// TCHMAC signs each request. The signature covers the path with its query,
// the method and a timestamp, so it must be made after the URL is final and
// just before the request leaves: use it through Transport.
//
//	Authorization: TC <api_access_id>:<base64(HMAC-SHA256(key, "<path?query>:<METHOD>:<timestamp>"))>
//	Timestamp: <Unix seconds>
type TCHMAC struct {
	printable
	id  string
	key secret.Secret
	now func() time.Time
}

// NewTCHMAC returns a TCHMAC authorizer.
func NewTCHMAC(c TCHMACConfig, env Env) (*TCHMAC, error) {
	const scheme = "tc_hmac"
	switch {
	case c.AccessID == "":
		return nil, &OptionError{Scheme: scheme, Option: "api_access_id", Reason: "required"}
	case strings.Contains(c.AccessID, ":"):
		return nil, &OptionError{Scheme: scheme, Option: "api_access_id", Reason: "must not contain ':'"}
	case c.SecretKey == "":
		return nil, &OptionError{Scheme: scheme, Option: "api_secret_key", Reason: "required"}
	}
	newSecrets(env.Masker, scheme).set("api_secret_key", c.SecretKey)
	now := env.Now
	if now == nil {
		now = time.Now
	}
	return &TCHMAC{printable: printable{"TCHMAC"}, id: c.AccessID, key: c.SecretKey, now: now}, nil
}

// Authorize signs req as it is now.
func (h *TCHMAC) Authorize(_ context.Context, req *http.Request) error {
	method := req.Method
	if method == "" {
		method = http.MethodGet // what net/http sends for ""
	}
	ts := strconv.FormatInt(h.now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(h.key.Reveal()))
	mac.Write([]byte(req.URL.RequestURI() + ":" + method + ":" + ts))
	req.Header.Set("Timestamp", ts)
	req.Header.Set("Authorization", "TC "+h.id+":"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return nil
}
