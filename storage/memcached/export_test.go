package memcached

// NewClientFromURL exposes the URL parser to the package's tests.
var NewClientFromURL = newClientFromURL
