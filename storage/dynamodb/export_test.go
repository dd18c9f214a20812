package dynamodb

// ParseURL exposes the URL parser to the package's tests.
var ParseURL = parseURL
