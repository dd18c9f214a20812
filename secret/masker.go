package secret

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Masker replaces every secret it knows with Mask in text. Its users (the
// schemes of package auth, given one in auth.Env) register their secrets
// under a key and register again when a token rotates, so the set follows
// what is live. A nil *Masker masks nothing.
//
// A Secret already masks itself; a Masker catches the values that escaped
// that type: a token inside a header dump, a URL with an API key in its
// query, a server message that echoes a password.
type Masker struct {
	mu     sync.Mutex
	byKey  map[string][]string
	repl   atomic.Pointer[strings.Replacer]
	change atomic.Uint64 // bumped on every change, for handlers' caches
}

// NewMasker returns an empty Masker.
func NewMasker() *Masker { return &Masker{byKey: map[string][]string{}} }

// Set makes key's secrets values, replacing what key held before but for
// the previous values, which stay masked one more generation: a request
// made with a token just rotated out may still be logged.
func (m *Masker) Set(key string, values ...Secret) {
	var vs []string
	for _, v := range values {
		if v != "" {
			// The forms a secret takes on the wire and in our logs.
			raw := v.Reveal()
			vs = append(vs, raw, url.QueryEscape(raw), url.PathEscape(raw), jsonEscape(raw))
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.byKey == nil {
		m.byKey = map[string][]string{}
	}
	prev := m.byKey[key+"\x00prev"]
	if cur := m.byKey[key]; len(cur) > 0 {
		prev = cur
	}
	m.byKey[key] = vs
	m.byKey[key+"\x00prev"] = prev
	m.rebuild()
}

// RemovePrefix forgets every key that starts with prefix.
func (m *Masker) RemovePrefix(prefix string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k := range m.byKey {
		if strings.HasPrefix(k, prefix) {
			delete(m.byKey, k)
		}
	}
	m.rebuild()
}

func (m *Masker) rebuild() {
	seen := map[string]bool{}
	var all []string
	for _, vs := range m.byKey {
		for _, v := range vs {
			if v != "" && !seen[v] {
				seen[v] = true
				all = append(all, v)
			}
		}
	}
	// Longest first, so that a secret containing another is masked whole
	// (strings.Replacer tries old strings in argument order).
	sort.Slice(all, func(i, j int) bool { return len(all[i]) > len(all[j]) })
	pairs := make([]string, 0, 2*len(all))
	for _, v := range all {
		pairs = append(pairs, v, Mask)
	}
	m.repl.Store(strings.NewReplacer(pairs...))
	m.change.Add(1)
}

// Mask returns s with every known secret replaced by Mask.
func (m *Masker) Mask(s string) string {
	if m == nil {
		return s
	}
	r := m.repl.Load()
	if r == nil {
		return s
	}
	return r.Replace(s)
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// ReplaceAttr masks an attribute, for slog.HandlerOptions.ReplaceAttr. It
// sees the message too (under slog.MessageKey). Prefer Handler, which
// works with any handler.
func (m *Masker) ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	return m.attr(a)
}

func (m *Masker) attr(a slog.Attr) slog.Attr {
	return slog.Attr{Key: m.Mask(a.Key), Value: m.value(a.Value)}
}

// value masks v. Values of kind Any (structs, maps, errors) become their
// masked %+v text: a handler would otherwise encode their fields itself,
// past the mask.
func (m *Masker) value(v slog.Value) slog.Value {
	v = v.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.StringValue(m.Mask(v.String()))
	case slog.KindGroup:
		as := v.Group()
		out := make([]slog.Attr, len(as))
		for i, a := range as {
			out[i] = m.attr(a)
		}
		return slog.GroupValue(out...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.StringValue(m.Mask(x.Error()))
		case []byte:
			return slog.StringValue(m.Mask(string(x)))
		default:
			return slog.StringValue(m.Mask(fmt.Sprintf("%+v", x)))
		}
	}
	return v
}

// Handler returns a handler that masks messages, attribute keys and values
// before h sees them. Attributes added with WithAttrs are masked at each
// record against the secrets known then, so a token registered later is
// masked in them too.
func (m *Masker) Handler(h slog.Handler) slog.Handler {
	if m == nil {
		return h
	}
	return &maskHandler{m: m, base: h}
}

type maskHandler struct {
	m    *Masker
	base slog.Handler // the wrapped handler, before ops
	ops  []handlerOp  // WithAttrs and WithGroup calls, in order

	cache atomic.Pointer[builtHandler]
}

type handlerOp struct {
	group string
	attrs []slog.Attr
}

type builtHandler struct {
	gen uint64
	h   slog.Handler
}

func (h *maskHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.base.Enabled(ctx, l) }

func (h *maskHandler) with(op handlerOp) *maskHandler {
	ops := append(h.ops[:len(h.ops):len(h.ops)], op)
	return &maskHandler{m: h.m, base: h.base, ops: ops}
}

func (h *maskHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(as) == 0 {
		return h
	}
	return h.with(handlerOp{attrs: as})
}

func (h *maskHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return h.with(handlerOp{group: name})
}

// built applies the ops to the base handler with the current secrets,
// rebuilding only when the secrets changed.
func (h *maskHandler) built() slog.Handler {
	if len(h.ops) == 0 {
		return h.base
	}
	gen := h.m.change.Load()
	if b := h.cache.Load(); b != nil && b.gen == gen {
		return b.h
	}
	out := h.base
	for _, op := range h.ops {
		if op.group != "" {
			out = out.WithGroup(op.group)
			continue
		}
		as := make([]slog.Attr, len(op.attrs))
		for i, a := range op.attrs {
			as[i] = h.m.attr(a)
		}
		out = out.WithAttrs(as)
	}
	h.cache.Store(&builtHandler{gen: gen, h: out})
	return out
}

func (h *maskHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, h.m.Mask(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.m.attr(a))
		return true
	})
	return h.built().Handle(ctx, out)
}
