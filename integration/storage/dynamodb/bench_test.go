package dynamodb_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tokencache/tokencache/integration/internal/benchratio"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/driver"
	"github.com/tokencache/tokencache/storage/driver/drivertest"
)

func openAdapterB(b *testing.B, u string) driver.Adapter {
	a, err := driver.Open(context.Background(), u)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkStore(b *testing.B) {
	u := tableURL(b, unique("bench"))
	drivertest.Benchmark(b, func(b *testing.B) driver.Adapter { return openAdapterB(b, u) })
}

// BenchmarkAdapter is Store's Load and Update without the record codec.
// Against BenchmarkBaseline it shows what the adapter alone adds to the
// plain SDK client's round trips.
func BenchmarkAdapter(b *testing.B) {
	u := tableURL(b, unique("bench"))
	drivertest.AdapterBenchmark(b, func(b *testing.B) driver.Adapter { return openAdapterB(b, u) })
}

// BenchmarkBaseline does with a bare SDK client the round trips that
// BenchmarkStore's Load and Update stand for: a strongly consistent
// GetItem, and GetItem then an unconditional PutItem, in a table of the
// same key schema. The gap to BenchmarkAdapter is what the revision and
// the condition cost.
func BenchmarkBaseline(b *testing.B) {
	ctx := context.Background()
	table := unique("baseline")
	a := openAdapterB(b, tableURL(b, table)) // makes the table
	a.Close()
	c := plainClient(b)
	key := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "baseline"},
		"sk": &types.AttributeValueMemberS{Value: "baseline"},
	}
	drivertest.Baseline(b,
		func() ([]byte, error) {
			out, err := c.GetItem(ctx, &awsdynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
			if err != nil {
				return nil, err
			}
			v, _ := out.Item["v"].(*types.AttributeValueMemberB)
			if v == nil {
				return nil, nil
			}
			return v.Value, nil
		},
		func(val []byte) error {
			_, err := c.PutItem(ctx, &awsdynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
				"pk": key["pk"], "sk": key["sk"], "v": &types.AttributeValueMemberB{Value: val},
			}})
			return err
		})
}

// Example_open picks the adapter from configuration. Credentials come from
// the AWS SDK's default chain; the table exists (see the package
// documentation).
func Example_open() {
	st, err := storage.Open(context.Background(), "dynamodb://oauth-tokens?region=eu-west-1&prefix=billing")
	if err != nil {
		return
	}
	defer st.Close()
}

// BenchmarkUpdateVsBaseline is the figure the package promises: Store's
// conditional Update against the plain client's GetItem then PutItem, on
// one table of the same server, in alternation (see benchratio).
func BenchmarkUpdateVsBaseline(b *testing.B) {
	ctx := context.Background()
	table := unique("ratio")
	a := openAdapterB(b, tableURL(b, table))
	c := plainClient(b)
	key := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "ratio"},
		"sk": &types.AttributeValueMemberS{Value: "ratio-baseline"},
	}
	benchratio.UpdateVsBaseline(b, a,
		func() ([]byte, error) {
			out, err := c.GetItem(ctx, &awsdynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
			if err != nil {
				return nil, err
			}
			v, _ := out.Item["v"].(*types.AttributeValueMemberB)
			if v == nil {
				return nil, nil
			}
			return v.Value, nil
		},
		func(v []byte) error {
			_, err := c.PutItem(ctx, &awsdynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
				"pk": key["pk"], "sk": key["sk"], "v": &types.AttributeValueMemberB{Value: v},
			}})
			return err
		})
}
