package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestSecretNeverPrints(t *testing.T) {
	const value = "hunter2-very-secret"
	s := Secret(value)
	type config struct {
		User  string
		Token Secret
	}
	c := config{User: "u", Token: s}
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%d"} {
		for _, arg := range []any{s, c, &c} {
			if out := fmt.Sprintf(format, arg); strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
				t.Errorf("Sprintf(%q) leaked: %s", format, out)
			}
		}
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		slog.New(h).Info("msg", "token", s, "config", c)
	}
	if strings.Contains(buf.String(), value) {
		t.Errorf("slog leaked: %s", buf.String())
	}
	if s.Reveal() != value {
		t.Errorf("Reveal = %q", s.Reveal())
	}
	b, _ := json.Marshal(c)
	if strings.Contains(string(b), value) {
		t.Errorf("JSON leaked: %s", b)
	}
	var back config
	if err := json.Unmarshal([]byte(`{"Token":"`+value+`"}`), &back); err != nil || back.Token.Reveal() != value {
		t.Errorf("Unmarshal = %v, %v", back, err)
	}
	if Secret("").String() != "" {
		t.Error("empty secret should print empty")
	}
}
