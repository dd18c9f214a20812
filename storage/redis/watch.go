package redis

import (
	"context"
	"errors"
	"sync"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tokencache/tokencache/storage/driver"
)

// WatchKeys implements driver.KeyWatcher: one pattern subscription
// (PSUBSCRIBE on PREFIX*) on one connection hears the notification of
// every write under the prefix, so that a Store waiting on any number of
// profiles holds one subscription instead of a connection per Wait. The
// price is that it hears every profile's writes, not only those waited
// for: one message per write in the store, dropped in this process unless
// someone waits on that profile.
//
// Shard channels (SPUBLISH on a Redis 7 Cluster) have no patterns, so
// there WatchKeys reports errors.ErrUnsupported and each Wait subscribes to
// its profile's channel on its own, on the shard that owns it.
func (a *Adapter) WatchKeys(ctx context.Context, changed func(key string)) (driver.KeySubscription, error) {
	if err := a.alive(ctx, "watch", ""); err != nil {
		return nil, err
	}
	if a.shardChannels(ctx) {
		return nil, driver.Wrap(errors.ErrUnsupported, "redis: watch: shard channels have no pattern subscriptions", nil)
	}
	ps := a.c.PSubscribe(ctx)
	if err := ps.PSubscribe(ctx, globEscape(a.prefix)+"*"); err != nil {
		ps.Close()
		return nil, a.fail(ctx, "watch", "", err)
	}
	ch := ps.ChannelWithSubscriptions()
	// Live once the server confirms: anything written from then on is
	// published to us.
	for confirmed := false; !confirmed; {
		select {
		case m, ok := <-ch:
			if !ok {
				return nil, driver.Wrap(driver.ErrClosed, "redis: watch", nil)
			}
			_, confirmed = m.(*goredis.Subscription)
		case <-ctx.Done():
			ps.Close()
			return nil, ctx.Err()
		case <-a.done:
			ps.Close()
			return nil, driver.Wrap(driver.ErrClosed, "redis: watch", nil)
		}
	}
	s := &keySubscription{ps: ps, stopped: make(chan struct{})}
	go s.run(a, ch, changed)
	return s, nil
}

// keySubscription is the pattern subscription WatchKeys opens.
type keySubscription struct {
	ps        *goredis.PubSub
	stopped   chan struct{} // closed when run returns
	closeOnce sync.Once
}

func (s *keySubscription) run(a *Adapter, ch <-chan any, changed func(string)) {
	defer close(s.stopped)
	for {
		select {
		case m, ok := <-ch:
			if !ok {
				return
			}
			switch m := m.(type) {
			case *goredis.Message:
				if name, ok := a.name(m.Channel); ok {
					changed(name)
				}
			case *goredis.Subscription:
				// Subscribed again after a lost connection: what was
				// published meanwhile is lost, so any key may have changed.
				changed("")
			}
		case <-a.done:
			s.ps.Close()
			return
		}
	}
}

// Watch implements driver.KeySubscription; the pattern covers every key.
func (s *keySubscription) Watch(string, driver.Revision) {}

// Unwatch implements driver.KeySubscription.
func (s *keySubscription) Unwatch(string) {}

// Close implements driver.KeySubscription.
func (s *keySubscription) Close() error {
	var err error
	s.closeOnce.Do(func() {
		err = s.ps.Close()
		<-s.stopped
	})
	if errors.Is(err, goredis.ErrClosed) {
		err = nil
	}
	return err
}
