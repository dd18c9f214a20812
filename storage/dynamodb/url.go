package dynamodb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/logging"

	"github.com/tokencache/tokencache/internal/httpsafe"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
)

func init() {
	driver.Register("dynamodb", OpenURL)
}

// urlOptions is what a dynamodb:// URL says.
type urlOptions struct {
	Options
	Table       string
	Region      string
	Endpoint    string
	CreateTable bool
}

var tableName = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)

// parseURL reads a dynamodb:// URL (see the package documentation).
func parseURL(u *url.URL) (urlOptions, error) {
	// The URL without its query: a secret under a misspelt parameter name
	// would pass Redact, so no query value is ever quoted.
	bare := *u
	bare.RawQuery, bare.Fragment, bare.User = "", "", nil
	bad := func(why string) error {
		return driver.Wrap(driver.ErrInvalid, fmt.Sprintf("dynamodb: store URL %q: %s", bare.String(), why), nil)
	}
	var o urlOptions
	o.Table = u.Host
	if o.Table == "" {
		o.Table = strings.TrimPrefix(u.Path, "/") // dynamodb:///TABLE
	} else if u.Path != "" && u.Path != "/" {
		return o, bad("a path after the table name")
	}
	if !tableName.MatchString(o.Table) {
		return o, bad("table name must be 3 to 255 of [A-Za-z0-9_.-]")
	}
	if u.User != nil {
		return o, bad("credentials do not go in the URL; the AWS SDK's default chain provides them")
	}
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "region":
			o.Region = v
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return o, bad("endpoint must be an http:// or https:// URL")
			}
			if httpsafe.Cleartext(v) {
				// SigV4 keeps the credentials off the wire, not the
				// tokens in the items.
				return o, bad("endpoint: plain http to a host that is not loopback would carry tokens in the clear; use https")
			}
			o.Endpoint = v
		case "prefix":
			o.Prefix = v
		case "create_table":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return o, bad("create_table must be true or false")
			}
			o.CreateTable = b
		default:
			return o, bad(fmt.Sprintf("unknown parameter %q", k))
		}
	}
	return o, nil
}

// OpenURL makes the DynamoDB client a dynamodb:// URL describes (see the
// package documentation), with the AWS SDK's default credential chain and
// configuration, and an Adapter over it, which owns the client's
// connections: Close closes them. With create_table=true it creates the
// table if need be. It is the opener the package registers for
// "dynamodb".
func OpenURL(ctx context.Context, u *url.URL) (*Adapter, error) {
	o, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	// Silent, as a library is: errors carry what matters.
	lo := []func(*config.LoadOptions) error{config.WithLogger(logging.Nop{})}
	if o.Region != "" {
		lo = append(lo, config.WithRegion(o.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, driver.Wrap(driver.ErrInvalid, fmt.Sprintf("dynamodb: store URL %q: AWS configuration", secret.RedactURL(u.String())), err)
	}
	endpoint := func(opt *dynamodb.Options) {
		if o.Endpoint != "" {
			opt.BaseEndpoint = aws.String(o.Endpoint)
		}
	}
	client := dynamodb.NewFromConfig(cfg, endpoint)
	// The SDK's own HTTP client, as configured for the service (the CA
	// bundle, its timeouts), with its connections tracked so that Close
	// can close them: the SDK copies its transport on every change, so the
	// one it ends up using is out of reach, but the dial function is
	// carried along. Frozen, so that the SDK does not copy it again.
	conns := &connSet{open: map[net.Conn]struct{}{}}
	if b, ok := client.Options().HTTPClient.(*awshttp.BuildableClient); ok {
		hc := b.WithTransportOptions(func(t *http.Transport) { t.DialContext = conns.dial(t.DialContext) }).Freeze()
		client = dynamodb.NewFromConfig(cfg, endpoint, func(opt *dynamodb.Options) { opt.HTTPClient = hc })
	}
	a, err := New(client, o.Table, &o.Options)
	if err != nil {
		return nil, err
	}
	a.conns = conns
	if o.CreateTable {
		if err := a.CreateTable(ctx); err != nil {
			a.Close()
			return nil, err
		}
	}
	return a, nil
}

// CreateTable creates the Adapter's table, with the key schema the package
// documentation shows and on-demand capacity, unless it exists, and waits
// until it is active. It is meant for tests and development; production
// tables are better made where the account's infrastructure is managed.
func (a *Adapter) CreateTable(ctx context.Context) error {
	_, err := a.c.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: aws.String(a.table),
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		// ResourceInUse: it exists, or another process is creating it.
		return a.fail(ctx, "create table "+strconv.Quote(a.table), "", err)
	}
	w := dynamodb.NewTableExistsWaiter(a.c, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 100*time.Millisecond, 2*time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(a.table)}, 2*time.Minute); err != nil {
		return a.fail(ctx, "create table "+strconv.Quote(a.table), "", err)
	}
	return nil
}

// connSet holds the open connections of a client the Adapter made.
type connSet struct {
	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
}

// dial wraps a transport's dial function (nil: the default dialer's) so
// that every connection it makes is noted until it is closed.
func (s *connSet) dial(next func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if next == nil {
		next = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			c.Close()
			return nil, net.ErrClosed
		}
		tc := &trackedConn{Conn: c, set: s}
		s.open[tc] = struct{}{}
		return tc, nil
	}
}

// closeAll closes every connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	open := s.open
	s.open, s.closed = nil, true
	s.mu.Unlock()
	for c := range open {
		c.Close()
	}
}

type trackedConn struct {
	net.Conn
	set  *connSet
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.set.mu.Lock()
		delete(c.set.open, c)
		c.set.mu.Unlock()
	})
	return c.Conn.Close()
}
