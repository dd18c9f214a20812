package agent_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/agent"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// The agent's first guarantee: no endpoint returns a refresh token or a
// client secret. tokenError writes err.Error() into the answer and the
// log on the grounds that "library errors carry no secrets", but an
// *EndpointError's Description is the token endpoint's error_description
// as sent, and a server that echoes the request there (some do, for
// invalid_request) puts the profile's refresh token and client secret
// into the JSON any local client of the agent reads, and into the log.
func TestReview12cAgentDoesNotServeEchoedSecrets(t *testing.T) {
	const rt, cs = "rt-9f8e7d6c5b4a", "cs-0a1b2c3d4e5f"
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		_, pass, _ := r.BasicAuth()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid_request","error_description":"refresh_token ` + r.PostForm.Get("refresh_token") + ` unknown to client secret ` + pass + `"}`))
	}))
	defer idp.Close()
	st := storage.NewStore(memory.New(nil))
	defer st.Close()
	rec := &storage.Record{Profile: "default", ClientID: "cid", ClientSecret: cs, TokenURL: idp.URL + "/token"}
	rec.Grant(rt)
	if _, err := st.Replace(context.Background(), nil, "", rec); err != nil {
		t.Fatal(err)
	}
	profiles, err := credentials.NewProfiles(credentials.Config{Store: st, JournalDir: "-", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer profiles.Close()
	var logs bytes.Buffer
	h, err := agent.New(agent.Config{Profiles: profiles, Allow: []string{"default"}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	req := httptest.NewRequest("GET", "http://localhost/v1/token/default", nil)
	req.Header.Set("Tokencache-Agent", "1")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code == http.StatusOK {
		t.Fatalf("served a token: %s", w.Body)
	}
	for _, s := range []string{rt, cs} {
		if strings.Contains(w.Body.String(), s) {
			t.Errorf("the agent's answer (%d) carries a secret: %s", w.Code, w.Body)
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("the agent's log carries a secret: %s", logs.String())
		}
	}
}
