package kms

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go/logging"

	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
)

// innerSchemes are the schemes "kms+<scheme>" is registered for: those of
// the adapters in this module (read once, at init). The inner adapter's
// package must still be imported for its scheme to open.
var innerSchemes = []string{"memory", "file", "sqlite", "redis", "rediss", "memcached", "mongodb", "mongodb+srv", "etcd", "etcds", "postgres", "postgresql", "dynamodb"}

func init() {
	for _, s := range innerSchemes {
		driver.Register("kms+"+s, OpenURL)
	}
}

// OpenURL opens the inner adapter a kms+<scheme> URL names (its package
// must be imported) and an Adapter over it, with a KMS client from the AWS
// SDK's default chain and configuration (see the package documentation).
// The Adapter owns the inner adapter: Close closes it. It is the opener
// the package registers for every kms+<scheme>.
func OpenURL(ctx context.Context, u *url.URL) (*Adapter, error) {
	redacted := secret.RedactURL(u.String())
	q := u.Query()
	keyID, region, endpoint := q.Get("kms_key_id"), q.Get("kms_region"), q.Get("kms_endpoint")
	var allowed []string
	for _, v := range q["kms_allowed_key_ids"] {
		for id := range strings.SplitSeq(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				allowed = append(allowed, id)
			}
		}
	}
	for k := range q {
		switch k {
		case "kms_key_id", "kms_region", "kms_endpoint", "kms_allowed_key_ids":
			q.Del(k)
		default:
			if strings.HasPrefix(k, "kms_") {
				return nil, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("kms: store URL %q: unknown parameter %q", redacted, k), nil)
			}
		}
	}
	if keyID == "" {
		return nil, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("kms: store URL %q has no kms_key_id", redacted), nil)
	}
	if endpoint != "" {
		if err := checkEndpoint(endpoint); err != nil {
			return nil, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("kms: store URL %q: kms_endpoint: %s", redacted, err), nil)
		}
	}
	inner := *u
	inner.Scheme = strings.TrimPrefix(u.Scheme, "kms+")
	inner.RawQuery = q.Encode()

	// The SDK writes warnings (an unreachable instance metadata service,
	// say) straight to stderr; a library stays silent, and errors carry
	// what matters.
	opts := []func(*config.LoadOptions) error{config.WithLogger(logging.Nop{})}
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("kms: store URL %q: AWS configuration", redacted), err)
	}
	client := awskms.NewFromConfig(cfg, func(o *awskms.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	a, err := driver.Open(ctx, inner.String())
	if err != nil {
		return nil, err
	}
	k, err := New(a, client, keyID, &Options{AllowedKeyIDs: allowed})
	if err != nil {
		a.Close()
		return nil, err
	}
	return k, nil
}

// checkEndpoint refuses a KMS endpoint that would carry data keys in the
// clear off this machine: http:// is accepted only for a loopback host,
// as local-kms in tests is.
func checkEndpoint(raw string) error {
	e, err := url.Parse(raw)
	if err != nil || e.Host == "" {
		return errors.New("not an http(s)://host[:port] URL")
	}
	switch e.Scheme {
	case "https":
		return nil
	case "http":
		host := e.Hostname()
		if httpsafe.Loopback(host) {
			return nil
		}
		return fmt.Errorf("plain http to %q, which is not a loopback address: data keys would cross the network in the clear; use https", host)
	default:
		return fmt.Errorf("scheme %q, want https (or http to a loopback address)", e.Scheme)
	}
}
