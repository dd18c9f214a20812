// Package dynamodb stores tokencache profiles in Amazon DynamoDB through
// github.com/aws/aws-sdk-go-v2/service/dynamodb.
//
// # Layout
//
// Profiles are items of one table whose key is a partition key "pk" and a
// sort key "sk", both strings. Every profile of a store shares one
// partition, pk = the prefix ("tokencache" unless the URL or Options name
// another), and sk is the profile name, so that List is a Query of one
// partition rather than a Scan of the table. Each item holds the value in
// "v" (binary) and its revision in "r" (string). A value larger than 64
// KiB is stored deflate-compressed in "vz" instead of "v", because an item
// may not exceed DynamoDB's 400 KB: records are about a kilobyte, and a
// value that does not fit even compressed is refused with
// driver.ErrInvalid rather than cut.
//
// One partition serves at most about 3,000 reads and 1,000 writes a second;
// a token cache does a few writes per profile per token lifetime, far
// below that. Give each independent store in a shared table its own prefix.
//
// The table is not created on use: production tables belong to whoever
// manages the account's infrastructure (capacity, encryption, backups,
// IAM). Create it with
//
//	aws dynamodb create-table --table-name TABLE \
//		--attribute-definitions AttributeName=pk,AttributeType=S AttributeName=sk,AttributeType=S \
//		--key-schema AttributeName=pk,KeyType=HASH AttributeName=sk,KeyType=RANGE \
//		--billing-mode PAY_PER_REQUEST
//
// or, for tests and development, open the URL with create_table=true,
// which does the same (on demand capacity) when the table is missing and
// waits until it is active.
//
// # Guarantees
//
// Conditional writes are DynamoDB's own: PutItem and DeleteItem with a
// ConditionExpression, attribute_not_exists(pk) for an absent key and
// r = :rev for a revision, which DynamoDB evaluates and applies atomically
// on the item. Of N concurrent writers on one revision exactly one wins;
// the others get ConditionalCheckFailedException, which is
// driver.ErrConflict. Reads (GetItem and Query) are strongly consistent,
// so a read after a write sees it. Revisions are 16 random bytes from
// crypto/rand, made by the client, so a profile deleted and created again
// never comes back with a revision someone still holds (no ABA).
//
// The SDK retries a request that timed out or failed in transit, and such
// a request may have been applied. ErrConflict means that nothing changed,
// so a condition that fails on a retry is not reported as one: Put reads
// the item back, strongly consistent, and reports success when it holds
// the revision this Put wrote (no other write can have it); otherwise, and
// for a Delete (whose deletion looks the same as another writer's), the
// outcome is unknown and the error ErrUnavailable, as when DynamoDB does
// not answer at all. A condition that fails on a request's only attempt,
// or after attempts DynamoDB refused (throttling, 4xx), is ErrConflict.
// A write that failed with no attempt that may have applied (none could
// connect, or DynamoDB refused each) also matches driver.ErrNotApplied.
//
// List pages through a Query of the store's partition (1 MB per page),
// strongly consistent, costing read capacity for every item in the
// partition, values included: about one read unit per profile (4 KB) each
// time. Global tables replicate between regions asynchronously: use one
// region for all writers of a store, since conditions hold per region
// only.
//
// DynamoDB has no change notification a client can wait on (Streams are
// for consumers of the table's log, with seconds of delay), so the Adapter
// does not implement driver.Watcher, and storage.Store polls.
//
// dynalite (DynamoDB on LevelDB, the server this package's tests run
// against) evaluates ConditionExpression on PutItem and DeleteItem,
// attribute_not_exists and equality included, under a per-item lock, so
// the same guarantees hold there.
//
// # URLs
//
// Importing the package registers the "dynamodb" scheme with storage.Open:
//
//	dynamodb://TABLE[?region=REGION][&endpoint=URL][&prefix=PARTITION][&create_table=true]
//
// Credentials, and the region when the URL names none, come from the AWS
// SDK's default chain (environment, shared config and credentials files,
// SSO, web identity, container and instance metadata); secrets never go in
// the URL. endpoint replaces the service endpoint, for DynamoDB Local,
// dynalite or a VPC endpoint; plain http is accepted for a loopback host
// only, since the items hold tokens. Opening does not connect unless
// create_table=true; the first call does.
package dynamodb

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strconv"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tokencache/tokencache/storage/driver"
)

// DefaultPrefix is the partition the profiles live in when Options.Prefix
// is empty.
const DefaultPrefix = "tokencache"

// Attribute names of the items.
const (
	attrPK   = "pk"
	attrSK   = "sk"
	attrVal  = "v"
	attrValZ = "vz"
	attrRev  = "r"
)

// compressAbove is the value size from which values are stored compressed.
const compressAbove = 64 << 10

// maxItem is DynamoDB's item size limit, names and overhead included.
const maxItem = 400_000

// Options configure New. nil, and every zero field, mean the default.
type Options struct {
	// Prefix is the partition key of every profile; DefaultPrefix when
	// empty. Give each independent store sharing a table its own.
	Prefix string
}

// Adapter implements driver.Adapter over DynamoDB.
type Adapter struct {
	c      *dynamodb.Client
	table  string
	prefix string
	conns  *connSet // the client's connections, when the Adapter made it (OpenURL)
	closed atomic.Bool
}

// New returns an Adapter over client, on the table named table, which must
// exist (see the package documentation, or CreateTable). The caller keeps
// ownership of client. nil opts means the defaults. It does no I/O.
func New(client *dynamodb.Client, table string, opts *Options) (*Adapter, error) {
	if client == nil {
		return nil, driver.Wrap(driver.ErrInvalid, "dynamodb: no client", nil)
	}
	if table == "" {
		return nil, driver.Wrap(driver.ErrInvalid, "dynamodb: no table name", nil)
	}
	if opts == nil {
		opts = &Options{}
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Adapter{c: client, table: table, prefix: prefix}, nil
}

// Client returns the DynamoDB client the Adapter uses.
func (a *Adapter) Client() *dynamodb.Client { return a.c }

func (a *Adapter) itemKey(key string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK: &types.AttributeValueMemberS{Value: a.prefix},
		attrSK: &types.AttributeValueMemberS{Value: key},
	}
}

// Get implements driver.Adapter.
func (a *Adapter) Get(ctx context.Context, key string) ([]byte, driver.Revision, error) {
	if err := a.alive(ctx, "get", key); err != nil {
		return nil, "", err
	}
	out, err := a.c.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(a.table),
		Key:            a.itemKey(key),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, "", a.fail(ctx, "get", key, err)
	}
	if out.Item == nil {
		return nil, "", driver.Wrap(driver.ErrNotFound, opMsg("get", key), nil)
	}
	return decodeItem(out.Item, key)
}

func decodeItem(item map[string]types.AttributeValue, key string) ([]byte, driver.Revision, error) {
	r, rok := item[attrRev].(*types.AttributeValueMemberS)
	if !rok || r.Value == "" {
		return nil, "", driver.Wrap(driver.ErrCorrupt, opMsg("get", key)+": item has no revision", nil)
	}
	if v, ok := item[attrVal].(*types.AttributeValueMemberB); ok {
		return v.Value, driver.Revision(r.Value), nil
	}
	if z, ok := item[attrValZ].(*types.AttributeValueMemberB); ok {
		v, err := io.ReadAll(flate.NewReader(bytes.NewReader(z.Value)))
		if err != nil {
			return nil, "", driver.Wrap(driver.ErrCorrupt, opMsg("get", key)+": compressed value", err)
		}
		return v, driver.Revision(r.Value), nil
	}
	return nil, "", driver.Wrap(driver.ErrCorrupt, opMsg("get", key)+": item has no value", nil)
}

// Put implements driver.Adapter.
func (a *Adapter) Put(ctx context.Context, key string, value []byte, cond driver.Condition) (driver.Revision, error) {
	if err := a.alive(ctx, "put", key); err != nil {
		return "", err
	}
	rev := newRevision()
	item := a.itemKey(key)
	item[attrRev] = &types.AttributeValueMemberS{Value: string(rev)}
	if len(value) > compressAbove {
		var buf bytes.Buffer
		zw, _ := flate.NewWriter(&buf, flate.BestSpeed) // level is valid
		zw.Write(value)
		zw.Close()
		item[attrValZ] = &types.AttributeValueMemberB{Value: buf.Bytes()}
	} else {
		item[attrVal] = &types.AttributeValueMemberB{Value: value}
	}
	if size := itemSize(item); size > maxItem {
		return "", driver.Wrap(driver.ErrInvalid, opMsg("put", key)+": value too large for a DynamoDB item ("+
			strconv.Itoa(size)+" bytes after compression, limit 400 KB)", nil)
	}
	in := &dynamodb.PutItemInput{TableName: aws.String(a.table), Item: item}
	a.condition(cond, &in.ConditionExpression, &in.ExpressionAttributeValues)
	var tr attempts
	_, err := a.c.PutItem(ctx, in, tr.watch)
	if isConditionFailed(err) {
		if !tr.maybeApplied {
			return "", driver.Wrap(driver.ErrConflict, opMsg("put", key)+" "+cond.String(), nil)
		}
		// An earlier attempt of this very request, retried by the SDK,
		// may have applied and made this one fail: then the item holds
		// our revision, which no other write can have.
		_, cur, gerr := a.Get(ctx, key)
		switch {
		case gerr == nil && cur == rev:
			return rev, nil
		case gerr != nil && !errors.Is(gerr, driver.ErrNotFound):
			return "", driver.Wrap(driver.ErrUnavailable, opMsg("put", key)+
				": outcome unknown: an attempt's answer was lost and the item cannot be read back", gerr)
		default:
			// Ours may have applied and been replaced or deleted since.
			return "", driver.Wrap(driver.ErrUnavailable, opMsg("put", key)+
				": outcome unknown: an attempt's answer was lost and the item has changed since", nil)
		}
	}
	if err != nil {
		return "", tr.mark(a.fail(ctx, "put", key, err))
	}
	return rev, nil
}

// attempts follows the SDK's attempts at one request. maybeApplied is set
// when an attempt failed without DynamoDB's answer that it did nothing (a
// lost connection, a timeout, a 5xx): the SDK then retries a request that
// may already have been applied, and a failed condition on the retry may
// be the first attempt's own doing. Attempts that could not connect, or
// that DynamoDB refused (4xx), leave it unset.
type attempts struct{ maybeApplied bool }

// mark returns err, a failed write's, marked driver.ErrNotApplied when no
// attempt of it may have been applied.
func (t *attempts) mark(err error) error {
	if t.maybeApplied {
		return err
	}
	return driver.NotApplied(err)
}

// watch is an option for one call: it puts the tracker behind the SDK's
// retry loop, where it sees every attempt.
func (t *attempts) watch(o *dynamodb.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		return st.Finalize.Insert(middleware.FinalizeMiddlewareFunc("tokencacheAttempts",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleFinalize(ctx, in)
				var re *smithyhttp.ResponseError
				var dial *net.OpError
				refused := errors.As(err, &re) && re.HTTPStatusCode() >= 400 && re.HTTPStatusCode() < 500
				unsent := errors.As(err, &dial) && dial.Op == "dial"
				if err != nil && !refused && !unsent {
					t.maybeApplied = true
				}
				return out, md, err
			}), "Retry", middleware.After)
	})
}

// Delete implements driver.Adapter.
func (a *Adapter) Delete(ctx context.Context, key string, cond driver.Condition) error {
	if err := a.alive(ctx, "delete", key); err != nil {
		return err
	}
	in := &dynamodb.DeleteItemInput{TableName: aws.String(a.table), Key: a.itemKey(key)}
	a.condition(cond, &in.ConditionExpression, &in.ExpressionAttributeValues)
	var tr attempts
	_, err := a.c.DeleteItem(ctx, in, tr.watch)
	if isConditionFailed(err) {
		if tr.maybeApplied && cond.Kind == driver.Match {
			// A retried delete finding the item gone or changed may have
			// deleted it itself: another writer's delete leaves the same
			// trace, so the outcome is unknown, not a conflict.
			return driver.Wrap(driver.ErrUnavailable, opMsg("delete", key)+
				": outcome unknown: an attempt's answer was lost and the item has changed since", nil)
		}
		return driver.Wrap(driver.ErrConflict, opMsg("delete", key)+" "+cond.String(), nil)
	}
	if err != nil {
		return tr.mark(a.fail(ctx, "delete", key, err))
	}
	return nil
}

// condition sets a request's ConditionExpression for cond.
func (a *Adapter) condition(cond driver.Condition, expr **string, values *map[string]types.AttributeValue) {
	switch cond.Kind {
	case driver.Absent:
		*expr = aws.String("attribute_not_exists(" + attrPK + ")")
	case driver.Match:
		*expr = aws.String(attrRev + " = :rev")
		*values = map[string]types.AttributeValue{":rev": &types.AttributeValueMemberS{Value: string(cond.Revision)}}
	}
}

// List implements driver.Adapter.
func (a *Adapter) List(ctx context.Context) ([]string, error) {
	if err := a.alive(ctx, "list", ""); err != nil {
		return nil, err
	}
	p := dynamodb.NewQueryPaginator(a.c, &dynamodb.QueryInput{
		TableName:                 aws.String(a.table),
		KeyConditionExpression:    aws.String(attrPK + " = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: a.prefix}},
		ProjectionExpression:      aws.String(attrSK),
		ConsistentRead:            aws.Bool(true),
	})
	var keys []string
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, a.fail(ctx, "list", "", err)
		}
		for _, it := range page.Items {
			if sk, ok := it[attrSK].(*types.AttributeValueMemberS); ok {
				keys = append(keys, sk.Value)
			}
		}
	}
	return keys, nil
}

// Close implements driver.Adapter. It closes the connections of the
// client only when the Adapter made it (OpenURL, storage.Open); a client
// passed to New stays the caller's.
func (a *Adapter) Close() error {
	if !a.closed.Swap(true) && a.conns != nil {
		a.conns.closeAll()
	}
	return nil
}

func (a *Adapter) alive(ctx context.Context, op, key string) error {
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, opMsg(op, key), nil)
	}
	return ctx.Err()
}

func opMsg(op, key string) string {
	msg := "dynamodb: " + op
	if key != "" {
		msg += " " + strconv.Quote(key)
	}
	return msg
}

func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

// fail maps an SDK error to the storage sentinels. SDK errors name the
// operation, the service's error code and message and a request id; they
// carry no credentials.
func (a *Adapter) fail(ctx context.Context, op, key string, err error) error {
	msg := opMsg(op, key)
	if cerr := ctx.Err(); cerr != nil {
		return driver.Wrap(cerr, msg, cerr)
	}
	if a.closed.Load() {
		return driver.Wrap(driver.ErrClosed, msg, nil)
	}
	var rnf *types.ResourceNotFoundException
	if errors.As(err, &rnf) {
		return driver.Wrap(driver.ErrUnavailable, msg+": table "+strconv.Quote(a.table)+
			" not found (create it as the package documentation shows, or open with create_table=true)", err)
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "ValidationException", "SerializationException":
			return driver.Wrap(driver.ErrInvalid, msg, err)
		}
	}
	// Throttling, capacity, internal errors, credentials that are missing
	// or refused, network errors: all may pass.
	return driver.Wrap(driver.ErrUnavailable, msg, err)
}

// itemSize is DynamoDB's measure of an item: attribute names plus values.
func itemSize(item map[string]types.AttributeValue) int {
	n := 0
	for k, v := range item {
		n += len(k)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberB:
			n += len(v.Value)
		}
	}
	return n
}

func newRevision() driver.Revision {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return short)
	return driver.Revision(hex.EncodeToString(b[:]))
}
