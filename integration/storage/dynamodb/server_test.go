package dynamodb_test

import (
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awscreds "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/tokencache/tokencache/integration/servers"
)

// The server comes from integration/servers, started on first use and
// shared by the whole test binary; TestMain removes it. A server that
// cannot be had fails the test, never skips it.
var server = servers.SharedDynamoDB()

func TestMain(m *testing.M) {
	// The SDK takes credentials from the environment, as in production;
	// dynalite wants requests signed, by anyone. No instance metadata:
	// nothing but the loopback endpoint is ever dialled.
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true"} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	code := m.Run()
	server.Terminate()
	os.Exit(code)
}

func endpoint(t testing.TB) string { return server.Get(t).URL }

func unique(what string) string {
	b := make([]byte, 4)
	rand.Read(b)
	return what + "-" + hex.EncodeToString(b)
}

// tableURL is a dynamodb:// URL of the test server with the parameters kv;
// the table is made on open.
func tableURL(t testing.TB, table string, kv ...string) string {
	t.Helper()
	q := url.Values{}
	q.Set("region", servers.DynamoDBRegion)
	q.Set("endpoint", endpoint(t))
	q.Set("create_table", "true")
	for i := 0; i+1 < len(kv); i += 2 {
		q.Set(kv[i], kv[i+1])
	}
	return "dynamodb://" + table + "?" + q.Encode()
}

// plainClient is an SDK client of the test server: for baselines and for
// setting up what the adapter must cope with.
func plainClient(t testing.TB) *dynamodb.Client {
	return dynamodb.New(dynamodb.Options{
		Region:       servers.DynamoDBRegion,
		BaseEndpoint: aws.String(endpoint(t)),
		Credentials:  awscreds.NewStaticCredentialsProvider("test", "test", ""),
	})
}
