package kms

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/tokencache/tokencache/storage"
)

// InnerSchemes are the schemes "kms+<scheme>" is registered for: those of
// the adapters in this module. The inner adapter's package must still be
// imported for its scheme to open.
var InnerSchemes = []string{"memory", "file", "sqlite", "redis", "rediss", "memcached", "mongodb", "mongodb+srv"}

func init() {
	for _, s := range InnerSchemes {
		storage.Register("kms+"+s, open)
	}
}

func open(ctx context.Context, u *url.URL) (storage.Adapter, error) {
	redacted := storage.Redact(u.String())
	q := u.Query()
	keyID, region, endpoint := q.Get("kms_key_id"), q.Get("kms_region"), q.Get("kms_endpoint")
	for k := range q {
		switch k {
		case "kms_key_id", "kms_region", "kms_endpoint":
			q.Del(k)
		default:
			if strings.HasPrefix(k, "kms_") {
				return nil, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("kms: store URL %q: unknown parameter %q", redacted, k), nil)
			}
		}
	}
	if keyID == "" {
		return nil, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("kms: store URL %q has no kms_key_id", redacted), nil)
	}
	inner := *u
	inner.Scheme = strings.TrimPrefix(u.Scheme, "kms+")
	inner.RawQuery = q.Encode()

	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, storage.Wrap(storage.ErrInvalid, fmt.Sprintf("kms: store URL %q: AWS configuration", redacted), err)
	}
	client := awskms.NewFromConfig(cfg, func(o *awskms.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
	})
	a, err := storage.OpenAdapter(ctx, inner.String())
	if err != nil {
		return nil, err
	}
	return Wrap(a, client, keyID), nil
}
