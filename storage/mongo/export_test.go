package mongo

// ClaimID exposes the claim naming to the external tests, which plant the
// claim a writer that died mid-write leaves behind.
var ClaimID = claimID
