package agent_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tokencache/tokencache/agent"
	"github.com/tokencache/tokencache/credentials"
	"github.com/tokencache/tokencache/oauthtest"
	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage"
	"github.com/tokencache/tokencache/storage/memory"
)

// Review of issue 12, Close ownership: "what you were handed stays yours"
// holds everywhere (resolver.Credentials, pancloud.Open, auth's Env.Store,
// storage adapters' clients), and Config.Profiles' doc says the Handler
// does not close it. Yet Handler.Close closed the Credentials it got from
// Profiles.Get: the Profiles keeps handing out those closed Credentials,
// which refuse to refresh (storage.ErrClosed) once their token expires. A
// program that serves an agent and uses the same Profiles itself, or
// replaces its Handler on a reload, loses every served profile.
func TestReview12HandlerCloseLeavesProfilesUsable(t *testing.T) {
	ctx := context.Background()
	idp := oauthtest.NewServer(oauthtest.Options{Rotate: true})
	t.Cleanup(idp.Close)
	idp.AddClient("app", "app-secret")
	st := storage.NewStore(memory.New(nil))
	defer st.Close()
	rec := &storage.Record{Profile: "default", ClientID: "app", ClientSecret: "app-secret", TokenURL: idp.TokenURL(),
		AccessToken: "expired", Expiry: time.Now().Add(-time.Minute)}
	rec.Grant(idp.IssueRefreshToken("app"))
	if _, err := st.Replace(ctx, nil, "", rec); err != nil {
		t.Fatal(err)
	}
	profiles, err := credentials.NewProfiles(credentials.Config{Store: st, JournalDir: "-"})
	if err != nil {
		t.Fatal(err)
	}
	defer profiles.Close()
	h, err := agent.New(agent.Config{Profiles: profiles, Allow: []string{"default"}, Key: secret.Secret("k")})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodGet, "http://localhost/v1/token/default", nil)
	req.Header.Set(agent.HeaderName, "1")
	req.Header.Set("Authorization", "Bearer k")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != http.StatusOK {
		t.Fatalf("agent answered %d: %s", w.Code, w.Body)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	// The Profiles is its owner's, still open: its profile must refresh.
	c, err := profiles.Get("default")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(ctx, nil); err != nil {
		t.Errorf("after Handler.Close, the Profiles' own Credentials: %v", err)
	}
}
