package credentials_test

import (
	"context"
	"fmt"
	"log"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// An operator's view of a refresh storm: the OpenTelemetry SDK with a
// Prometheus exporter (what a /metrics handler would serve), 3 replicas x
// 20 goroutines sharing one store through 2 token expiries. The endpoint
// was called once per expiry, every Token call is accounted for, and the
// store calls are there by operation.
func Example_observability() {
	reg := prometheus.NewRegistry()
	exporter, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo(), otelprom.WithoutTargetInfo())
	if err != nil {
		log.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter))
	defer mp.Shutdown(context.Background())
	// otel.SetMeterProvider(mp) would do as well: Config's nil
	// MeterProvider means the global one.

	srv := oauthtest.NewServer(oauthtest.Options{AccessTTL: time.Second, Rotate: true})
	defer srv.Close()
	srv.AddClient("app", "app-secret")
	srv.SetLatency(20 * time.Millisecond)
	seed := storage.NewStore(memory.New(&memory.Options{Name: "example-observability"}))
	defer seed.Close()
	seed.Update(context.Background(), "api", func(r *storage.Record) error {
		r.ClientID, r.ClientSecret, r.TokenURL = "app", "app-secret", srv.TokenURL()
		r.Grant(srv.IssueRefreshToken("app"))
		return nil
	})

	const replicas, goroutines, expiries = 3, 20, 2
	var mu sync.Mutex
	calls := 0
	var wg sync.WaitGroup
	for range replicas {
		st := storage.NewStore(memory.New(&memory.Options{Name: "example-observability"}))
		defer st.Close() // after c.Close (defers run last first): a Credentials does not close its store
		c, err := credentials.New(credentials.Config{
			Store: st, Profile: "api",
			Skew: 100 * time.Millisecond, RenewAhead: 100 * time.Millisecond,
			MeterProvider: mp,
		})
		if err != nil {
			log.Fatal(err)
		}
		defer c.Close()
		for range goroutines {
			wg.Go(func() {
				last := ""
				for seen := 0; seen < expiries; {
					tok, err := c.Token(context.Background())
					mu.Lock()
					calls++
					mu.Unlock()
					if err != nil {
						log.Fatal(err)
					}
					if v := tok.AccessToken.Reveal(); v != last {
						last, seen = v, seen+1
					}
					time.Sleep(5 * time.Millisecond)
				}
			})
		}
	}
	wg.Wait()

	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	var lines []string
	requests := 0.0
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "tokencache_token_requests_total":
				requests += m.GetCounter().GetValue()
			case "tokencache_refresh_duration_seconds":
				if labels["tokencache_result"] == "refreshed" {
					lines = append(lines, fmt.Sprintf("%s{tokencache_result=refreshed} count %d", f.GetName(), m.GetHistogram().GetSampleCount()))
				}
			case "tokencache_token_endpoint_request_duration_seconds":
				lines = append(lines, fmt.Sprintf("%s{http_response_status_code=%s} count %d", f.GetName(),
					labels["http_response_status_code"], m.GetHistogram().GetSampleCount()))
			case "tokencache_lease_takeovers_total", "tokencache_refresh_token_unpersisted":
				lines = append(lines, fmt.Sprintf("%s %g", f.GetName(), m.GetCounter().GetValue()+m.GetGauge().GetValue()))
			case "db_client_operation_duration_seconds":
				if labels["db_operation_name"] == "put" && labels["tokencache_store_result"] == "ok" {
					lines = append(lines, fmt.Sprintf("%s{db_system_name=%s,db_operation_name=put} present", f.GetName(), labels["db_system_name"]))
				}
			}
		}
	}
	sort.Strings(lines)
	fmt.Println(strings.Join(lines, "\n"))
	fmt.Println("Token calls accounted for:", int(requests) == calls)
	// Output:
	// db_client_operation_duration_seconds{db_system_name=memory,db_operation_name=put} present
	// tokencache_refresh_duration_seconds{tokencache_result=refreshed} count 2
	// tokencache_refresh_token_unpersisted 0
	// tokencache_token_endpoint_request_duration_seconds{http_response_status_code=200} count 2
	// Token calls accounted for: true
}
