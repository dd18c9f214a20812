package servers

import (
	"context"
	"net/url"
)

// EnvKMSEndpoint names an existing KMS endpoint (http://host:port) to use
// instead of a container.
const EnvKMSEndpoint = "TOKENCACHE_TEST_KMS_ENDPOINT"

// local-kms, built from the module proxy. Its region and account are the
// ones local-kms defaults to, set explicitly so they do not drift.
const (
	LocalKMSModule    = "github.com/nsmithuk/local-kms"
	LocalKMSVersion   = "v0.0.0-20231025161602-e4d9425700fe"
	LocalKMSRegion    = "eu-west-2"
	LocalKMSAccountID = "111122223333"
)

// StartLocalKMS starts nsmithuk/local-kms in a container. Its URL is the
// endpoint "http://127.0.0.1:PORT", to be used as the KMS client's base
// endpoint with region LocalKMSRegion and any static credentials (local-kms
// checks no signatures). It implements CreateKey, GenerateDataKey, Encrypt,
// Decrypt and friends; keys live in the container and go with it.
func StartLocalKMS(ctx context.Context) (*Server, error) {
	bin, err := goBinary(ctx, "local-kms", LocalKMSVersion, func(ctx context.Context, dst string) error {
		return goInstall(ctx, LocalKMSModule+"@"+LocalKMSVersion, dst)
	})
	if err != nil {
		return nil, err
	}
	image, err := ensureImage(ctx, imageSpec{
		name:  "local-kms",
		files: []imageFile{{path: "/local-kms", src: bin, mode: 0o755}},
		tail:  []string{"WORKDIR /data", `ENTRYPOINT ["/local-kms"]`},
	})
	if err != nil {
		return nil, err
	}
	return startSingle(ctx, "local-kms", containerSpec{
		image:         image,
		containerPort: "8080/tcp",
		// local-kms listens on every interface of its container; only
		// 127.0.0.1 of the host reaches the published port.
		env: map[string]string{
			"PORT":           "8080",
			"KMS_REGION":     LocalKMSRegion,
			"KMS_ACCOUNT_ID": LocalKMSAccountID,
			"KMS_DATA_PATH":  "/data",
		},
	}, probeKMS, func(addr string) string { return "http://" + addr })
}

func kmsFromEnv() (*Server, error) {
	raw := getenv(EnvKMSEndpoint)
	if raw == "" {
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, envError(EnvKMSEndpoint, raw, "want http://host:port")
	}
	return externalServer(raw, u.Host), nil
}
