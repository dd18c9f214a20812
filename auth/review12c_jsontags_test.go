package auth_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tokencache/tokencache/auth"
)

// 648e881 tagged every Config field `json:"..."` with the option names,
// which reads as "decode your configuration file into this struct". With
// encoding/json itself the documented option forms mean something else or
// fail: "ttl": 3600 is 3600 ns, not the 3600 s Params reads; "90s" and
// "true" and "a,b" are refused. Either the tags should not promise what
// only decodeParams delivers, or the Config types should decode through it
// (an UnmarshalJSON that runs decodeParams).
func TestReview12cConfigJSONTagsReadAsParams(t *testing.T) {
	var c auth.TokenEndpointConfig
	if err := json.Unmarshal([]byte(`{"url":"https://idp.example/login","ttl":3600}`), &c); err != nil {
		t.Fatalf("json.Unmarshal: %v", err)
	}
	if c.TTL != time.Hour {
		t.Errorf(`json.Unmarshal of {"ttl":3600} into TokenEndpointConfig: TTL %v; as an auth.Params option it is 1h0m0s`, c.TTL)
	}
	var c2 auth.TokenEndpointConfig
	if err := json.Unmarshal([]byte(`{"url":"https://idp.example/login","ttl":"90s","static_ttl":"true"}`), &c2); err != nil {
		t.Errorf(`json.Unmarshal of {"ttl":"90s","static_ttl":"true"}: %v; as auth.Params options both are accepted`, err)
	}
}
