package dynamodb_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsdynamodb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/storagetest"
)

func openAdapterB(b *testing.B, u string) storage.Adapter {
	a, err := storage.OpenAdapter(context.Background(), u)
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkStore(b *testing.B) {
	u := tableURL(b, unique("bench"))
	storagetest.Benchmark(b, func(b *testing.B) storage.Adapter { return openAdapterB(b, u) })
}

// BenchmarkAdapter is Store's Load and Update without the record codec.
// Against BenchmarkBaseline it shows what the adapter alone adds to the
// plain SDK client's round trips.
func BenchmarkAdapter(b *testing.B) {
	u := tableURL(b, unique("bench"))
	storagetest.AdapterBenchmark(b, func(b *testing.B) storage.Adapter { return openAdapterB(b, u) })
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
	storagetest.Baseline(b,
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
// one table of the same server, in alternation, one of each per
// iteration. Run separately (BenchmarkStore, then BenchmarkBaseline) the
// two meet different loads on a shared machine and a server warmed up
// differently; alternating puts both under the same. It reports the ratio
// of their mean times ("x-baseline"), and each mean.
func BenchmarkUpdateVsBaseline(b *testing.B) {
	ctx := context.Background()
	table := unique("ratio")
	a := openAdapterB(b, tableURL(b, table))
	st := storage.NewStore(a)
	b.Cleanup(func() { st.Close() })
	profile := "ratio-store"
	if _, _, err := st.Update(ctx, profile, func(r *storage.Record) error {
		*r = *storagetest.SampleRecord(profile)
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	bump := func(r *storage.Record) error {
		r.AccessToken += "x"
		if len(r.AccessToken) > 600 {
			r.AccessToken = r.AccessToken[:500]
		}
		return nil
	}
	c := plainClient(b)
	key := map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "ratio"},
		"sk": &types.AttributeValueMemberS{Value: "ratio-baseline"},
	}
	val, err := storage.EncodeRecord(storagetest.SampleRecord(profile))
	if err != nil {
		b.Fatal(err)
	}
	set := func(v []byte) error {
		_, err := c.PutItem(ctx, &awsdynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
			"pk": key["pk"], "sk": key["sk"], "v": &types.AttributeValueMemberB{Value: v},
		}})
		return err
	}
	baseline := func() error {
		out, err := c.GetItem(ctx, &awsdynamodb.GetItemInput{TableName: aws.String(table), Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return err
		}
		v, _ := out.Item["v"].(*types.AttributeValueMemberB)
		if v == nil {
			return errors.New("baseline item has no value")
		}
		return set(v.Value)
	}
	update := func() error {
		_, _, err := st.Update(ctx, profile, bump)
		return err
	}
	if err := set(val); err != nil {
		b.Fatal(err)
	}
	// Warm both paths (connections, the server's JIT) before timing.
	for range 50 {
		if err := errors.Join(update(), baseline()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	var tUpdate, tBase time.Duration
	for b.Loop() {
		t0 := time.Now()
		if err := update(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := baseline(); err != nil {
			b.Fatal(err)
		}
		tUpdate += t1.Sub(t0)
		tBase += time.Since(t1)
	}
	b.ReportMetric(float64(tUpdate)/float64(tBase), "x-baseline")
	b.ReportMetric(float64(tUpdate.Nanoseconds())/float64(b.N), "update-ns")
	b.ReportMetric(float64(tBase.Nanoseconds())/float64(b.N), "baseline-ns")
}
