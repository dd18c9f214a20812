package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tokencache/tokencache/storage/driver"
)

// An error message from the other end of the connection is not always the
// server's word that the statement rolled back. PgBouncer (which the
// package supports in transaction mode) answers "server conn crashed?" or
// "query timeout" when the server connection broke after the statement was
// sent, and a FATAL can follow a commit: such writes may have applied and
// must not match driver.ErrNotApplied, or a caller would put back a
// refresh token another process may already have spent.
func TestReview6WriteErrorMayHaveApplied(t *testing.T) {
	a := &Adapter{}
	for _, e := range []*pgconn.PgError{
		{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "08P01", Message: "server conn crashed?"},
		{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "08P01", Message: "query timeout"},
		{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "57P01", Message: "terminating connection due to administrator command"},
		{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "25P04", Message: "terminating connection due to transaction timeout"},
		{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "XX000", Message: "an error after the commit record"},
		{Severity: "PANIC", SeverityUnlocalized: "PANIC", Code: "58030", Message: "could not write to file"},
	} {
		err := a.writeFail(context.Background(), "put", "p", fmt.Errorf("wrapped: %w", e))
		if errors.Is(err, driver.ErrNotApplied) {
			t.Errorf("%s %s %q: marked ErrNotApplied, but the write may have committed", e.Severity, e.Code, e.Message)
		}
	}
	// The server's refusals of the statement itself still are.
	for _, e := range []*pgconn.PgError{
		{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "25006"},
		{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "40001"},
		{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: "57014"},
		{Severity: "ERROR", Code: "42501"},
	} {
		if err := a.writeFail(context.Background(), "put", "p", e); !errors.Is(err, driver.ErrNotApplied) {
			t.Errorf("%s %s: not marked ErrNotApplied: %v", e.Severity, e.Code, err)
		}
	}
}
