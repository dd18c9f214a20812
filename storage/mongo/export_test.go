package mongo

import "time"

// ClaimID exposes the claim naming to the external tests, which plant the
// claim a writer that died mid-write leaves behind.
var ClaimID = claimID

// SetClock replaces the adapter's clock, so that tests can let a claim's
// time pass without waiting for it.
func SetClock(a *Adapter, now func() time.Time) { a.now = now }
