package secret_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/tokencache/tokencache/secret"
)

func TestMaskerHandler(t *testing.T) {
	m := secret.NewMasker()
	var buf bytes.Buffer
	log := slog.New(m.Handler(slog.NewJSONHandler(&buf, nil)))
	// Attributes bound before the secret is known are masked when logged.
	early := log.With("token", "tok-1").WithGroup("g")
	m.Set("k", "tok-1")
	early.Info("msg tok-1", "nested", slog.GroupValue(slog.String("v", "x tok-1 y")), "err", errors.New("bad tok-1"))
	// Rotation: the new value is masked, and the previous one still is.
	m.Set("k", "tok-2")
	log.Info("rotated", "a", "tok-1", "b", "tok-2", "c", []byte("tok-2"), "d", struct{ S string }{"tok-2"})
	out := buf.String()
	if strings.Contains(out, "tok-1") || strings.Contains(out, "tok-2") {
		t.Errorf("unmasked:\n%s", out)
	}
	if c := strings.Count(out, secret.Mask); c != 8 {
		t.Errorf("%d masks, want 8:\n%s", c, out)
	}
	m.RemovePrefix("k")
	if m.Mask("tok-2") != "tok-2" {
		t.Error("RemovePrefix kept the secret")
	}
	var nilMasker *secret.Masker
	if nilMasker.Mask("x") != "x" || nilMasker.Handler(slog.DiscardHandler) != slog.DiscardHandler {
		t.Error("a nil Masker is not a no-op")
	}
	// The longest secret wins where one contains another.
	m.Set("short", "abc")
	m.Set("long", "abcdef")
	if got := m.Mask("xabcdefx"); got != "x"+secret.Mask+"x" {
		t.Errorf("Mask = %q", got)
	}
}
