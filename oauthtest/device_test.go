package oauthtest_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tokencache/tokencache/oauthtest"
)

// fakeClock is a settable clock for Options.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func postForm(t *testing.T, u string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s: not JSON: %v", u, err)
	}
	return resp.StatusCode, m
}

func deviceAuth(t *testing.T, s *oauthtest.Server, form url.Values) (deviceCode, userCode string) {
	t.Helper()
	status, m := postForm(t, s.DeviceAuthorizationURL(), form)
	if status != http.StatusOK {
		t.Fatalf("device authorization: %d %v", status, m)
	}
	deviceCode, _ = m["device_code"].(string)
	userCode, _ = m["user_code"].(string)
	if deviceCode == "" || len(userCode) != 9 || m["verification_uri"] != s.VerificationURL() ||
		m["verification_uri_complete"] != s.VerificationURL()+"?user_code="+userCode || m["interval"] != 1.0 || m["expires_in"] != 60.0 {
		t.Fatalf("device authorization response %v", m)
	}
	return deviceCode, userCode
}

func TestDeviceFlowWire(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s := oauthtest.NewServer(oauthtest.Options{Now: clock.Now, Rotate: true})
	defer s.Close()
	s.AddClient("tv", "")
	s.AddClient("confidential", "pw")
	s.SetDeviceFlow(time.Second, time.Minute)

	// A confidential client must authenticate; a public one names itself.
	if status, m := postForm(t, s.DeviceAuthorizationURL(), url.Values{"client_id": {"confidential"}}); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Errorf("unauthenticated confidential client: %d %v", status, m)
	}
	dc, uc := deviceAuth(t, s, url.Values{"client_id": {"tv"}, "scope": {"read"}})
	poll := func() (int, map[string]any) {
		return postForm(t, s.TokenURL(), url.Values{"client_id": {"tv"}, "grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dc}})
	}
	if _, m := poll(); m["error"] != "authorization_pending" {
		t.Fatalf("first poll: %v", m)
	}
	// Polling again at once is too fast: slow_down, and the interval grows.
	if _, m := poll(); m["error"] != "slow_down" {
		t.Fatalf("eager poll: %v", m)
	}
	if s.ApproveDevice("nope-nope") {
		t.Error("approved an unknown code")
	}
	if !s.ApproveDevice(strings.ToLower(strings.ReplaceAll(uc, "-", ""))) {
		t.Fatal("the code as a person types it was not found")
	}
	time.Sleep(6100 * time.Millisecond) // the interval, raised by 5s

	status, m := poll()
	if status != http.StatusOK || !s.Valid(m["access_token"].(string)) || !s.ValidRefresh(m["refresh_token"].(string)) {
		t.Fatalf("approved poll: %d %v", status, m)
	}
	if _, m := poll(); m["error"] != "invalid_grant" {
		t.Errorf("redeemed code polled again: %v", m)
	}
	var got []string
	for _, p := range s.DevicePolls(uc) {
		got = append(got, p.Result)
	}
	if want := "authorization_pending slow_down ok"; strings.Join(got, " ") != want {
		t.Errorf("DevicePolls: %v, want %s", got, want)
	}
	if s.DenyDevice(uc) {
		t.Error("denied a code already redeemed")
	}

	// Expiry is on the server's clock.
	dc, uc = deviceAuth(t, s, url.Values{"client_id": {"tv"}})
	clock.Add(time.Minute)
	if s.ApproveDevice(uc) {
		t.Error("approved an expired code")
	}
	if _, m := poll(); m["error"] != "expired_token" {
		t.Errorf("expired code: %v", m)
	}

	// Another client cannot redeem the code.
	dc, uc = deviceAuth(t, s, url.Values{"client_id": {"tv"}})
	s.ApproveDevice(uc)
	req, _ := http.NewRequest(http.MethodPost, s.TokenURL(), strings.NewReader(url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dc}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("confidential", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("another client redeemed the code: %d", resp.StatusCode)
	}
}

// TestDevicePage: a person approves or denies on the verification page.
func TestDevicePage(t *testing.T) {
	s := oauthtest.NewServer(oauthtest.Options{})
	defer s.Close()
	s.AddClient("tv", "")
	s.SetDeviceFlow(time.Second, time.Minute)
	dc, uc := deviceAuth(t, s, url.Values{"client_id": {"tv"}})

	resp, err := http.Get(s.VerificationURL() + "?user_code=" + url.QueryEscape(uc))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `value="`+uc+`"`) {
		t.Errorf("verification page: %d %s", resp.StatusCode, page)
	}
	for _, tc := range []struct {
		code, action string
		status       int
	}{
		{"BCDF-GHJK", "approve", http.StatusNotFound}, // no such code
		{uc, "maybe", http.StatusBadRequest},
		{uc, "deny", http.StatusOK},
		{uc, "approve", http.StatusNotFound}, // already decided
	} {
		resp, err := http.PostForm(s.VerificationURL(), url.Values{"user_code": {tc.code}, "action": {tc.action}})
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: %d, want %d", tc.action, tc.code, resp.StatusCode, tc.status)
		}
		if tc.status == http.StatusOK && !strings.Contains(string(page), "denied") {
			t.Errorf("%s %s: page %q does not say what happened", tc.action, tc.code, page)
		}
	}
	_, m := postForm(t, s.TokenURL(), url.Values{"client_id": {"tv"}, "grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dc}})
	if m["error"] != "access_denied" {
		t.Errorf("denied code: %v", m)
	}
}
