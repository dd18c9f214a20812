package etcd

// ConfigFromURL exposes the URL parser to the package's tests.
var ConfigFromURL = configFromURL
