package servers_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/jackc/pgx/v5"

	"github.com/tokencache/tokencache/integration/servers"
)

// The servers run as host processes: Stop and Start act on the process,
// and, unlike the containers' throwaway servers, they keep their data.

func TestPostgres(t *testing.T) {
	t.Parallel()
	srv := servers.Postgres(t)
	ctx := testContext(t)
	connect := func() *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, srv.URL)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		return c
	}
	c := connect()
	if _, err := c.Exec(ctx, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	if srv.External() {
		return
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if c, err := pgx.Connect(ctx, srv.URL); err == nil {
		c.Close(ctx)
		t.Fatal("connected while the server was stopped")
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	c = connect()
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT n FROM kept").Scan(&n); err != nil || n != 7 {
		t.Fatalf("after restart: %d, %v; want 7", n, err)
	}
}

func TestDynamoDB(t *testing.T) {
	t.Parallel()
	srv := servers.DynamoDB(t)
	ctx := testContext(t)
	c := dynamodb.New(dynamodb.Options{
		Region:       servers.DynamoDBRegion,
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	_, err := c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String("kept"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("k"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("k"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A new table is CREATING for a moment, even with createTableMs 0.
	if err := dynamodb.NewTableExistsWaiter(c, func(o *dynamodb.TableExistsWaiterOptions) { o.MinDelay = 100 * time.Millisecond }).Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String("kept")}, time.Minute); err != nil {
		t.Fatal(err)
	}
	key := map[string]types.AttributeValue{"k": &types.AttributeValueMemberS{Value: "a"}}
	if _, err := c.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("kept"), Item: key}); err != nil {
		t.Fatal(err)
	}
	if srv.External() {
		return
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := c.ListTables(ctx, &dynamodb.ListTablesInput{}); err == nil {
		t.Fatal("ListTables succeeded while the server was stopped")
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	out, err := c.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String("kept"), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil || out.Item == nil {
		t.Fatalf("after restart: %v, %v; want the item", out, err)
	}
}

// TestDynaliteVersionInTestScript: scripts/test.sh installs the dynalite
// that StartDynamoDB runs, not another one that would be installed in vain.
func TestDynaliteVersionInTestScript(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("..", "..", "scripts", "test.sh"))
	if err != nil {
		t.Fatal(err)
	}
	want := servers.DynalitePackage + "@" + servers.DynaliteVersion
	if !strings.Contains(string(script), want) || !strings.Contains(string(script), "dynalite-"+servers.DynaliteVersion) {
		t.Fatalf("scripts/test.sh does not install %s", want)
	}
}
