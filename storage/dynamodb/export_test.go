package dynamodb

import "net/http"

// TransportOf exposes the transport Close releases, to tests.
func TransportOf(a *Adapter) *http.Transport {
	if a.transport == nil {
		return nil
	}
	return a.transport.Load()
}
