package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestExponentialBounds(t *testing.T) {
	base := 10 * time.Millisecond
	for attempt := range 10 {
		want := base << min(attempt, 6)
		for range 100 {
			if d := Exponential(base, attempt); d < want/2 || d >= want {
				t.Fatalf("Exponential(%v, %d) = %v, want in [%v, %v)", base, attempt, d, want/2, want)
			}
		}
	}
	if Jitter(0) != 0 || Jitter(-1) != 0 {
		t.Fatal("Jitter of a non-positive duration")
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep = %v", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}
