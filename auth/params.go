package auth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Params are a scheme's options as configuration supplies them, typically
// decoded from JSON or YAML: strings, numbers, booleans, lists and maps.
// Names are the `json` struct tags of the scheme's Config type.
type Params map[string]any

// decodeParams fills the Config struct dst from p with encoding/json, by
// its `json:"name"` tags. An unknown option is an error: a misspelled
// "client_secert" must not silently leave the secret unset. Before
// decoding, each value is brought to the form encoding/json takes for its
// field, leniently where configuration formats differ: a duration is
// seconds or "90s", a time Unix seconds or RFC 3339, a boolean may be
// "true", a list is a list or one space- or comma-separated string, a map
// may be given as a JSON string (as SL1 credentials carry them).
func decodeParams(scheme string, p Params, dst any) error {
	kinds := optionKinds(reflect.TypeOf(dst).Elem())
	norm := make(map[string]any, len(p))
	for _, name := range sortedKeys(p) {
		kind, ok := kinds[name]
		if !ok {
			return &OptionError{Scheme: scheme, Option: name, Reason: "unknown option"}
		}
		if p[name] == nil {
			continue
		}
		v, reason := normalize(kind, p[name])
		if reason != "" {
			return &OptionError{Scheme: scheme, Option: name, Reason: reason}
		}
		norm[name] = v
	}
	b, err := json.Marshal(norm)
	if err != nil {
		return fmt.Errorf("auth: %s: encoding options: %w", scheme, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		// Not reached for values normalize accepted; the error names
		// fields and types, never values.
		return fmt.Errorf("auth: %s: decoding options: %w", scheme, err)
	}
	return nil
}

// optionKind is the form an option's value takes in JSON.
type optionKind int

const (
	optString optionKind = iota
	optBool
	optDuration
	optTime
	optStrings
	optStringMap
)

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
)

// optionKinds maps each option name of the Config struct t to its kind.
// Config structs hold only these kinds: a field of another type is a
// programming error in this package.
func optionKinds(t reflect.Type) map[string]optionKind {
	kinds := map[string]optionKind{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		switch ft := f.Type; {
		case ft == durationType:
			kinds[name] = optDuration
		case ft == timeType:
			kinds[name] = optTime
		case ft.Kind() == reflect.String:
			kinds[name] = optString
		case ft.Kind() == reflect.Bool:
			kinds[name] = optBool
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
			kinds[name] = optStrings
		case ft.Kind() == reflect.Map && ft.Key().Kind() == reflect.String && ft.Elem().Kind() == reflect.String:
			kinds[name] = optStringMap
		default:
			panic(fmt.Sprintf("auth: option %s.%s of unsupported type %v", t, f.Name, ft))
		}
	}
	return kinds
}

// normalize converts x into what encoding/json decodes into an option of
// kind k, or returns why it cannot. Reasons never quote x: it may be a
// secret.
func normalize(k optionKind, x any) (any, string) {
	switch k {
	case optDuration:
		d, ok := toDuration(x)
		if !ok {
			return nil, "want a duration: seconds or a string such as \"90s\""
		}
		return int64(d), ""
	case optTime:
		t, ok := toTime(x)
		if !ok {
			return nil, "want a time: Unix seconds or RFC 3339"
		}
		return t.Format(time.RFC3339Nano), ""
	case optString:
		s, ok := x.(string)
		if !ok {
			return nil, "want a string"
		}
		return s, ""
	case optBool:
		switch b := x.(type) {
		case bool:
			return b, ""
		case string:
			if v, err := strconv.ParseBool(b); err == nil {
				return v, ""
			}
		}
		return nil, "want true or false"
	case optStrings:
		list, ok := toStrings(x)
		if !ok {
			return nil, "want a list of strings"
		}
		return list, ""
	default: // optStringMap
		m, ok := toStringMap(x)
		if !ok {
			return nil, "want an object of strings"
		}
		return m, ""
	}
}

func toFloat(x any) (float64, bool) {
	switch n := x.(type) {
	case float64:
		return n, true
	case float32:
		return float64(n), true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	case json.Number:
		f, err := n.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
		return f, err == nil
	}
	return 0, false
}

func toDuration(x any) (time.Duration, bool) {
	if s, ok := x.(string); ok {
		if d, err := time.ParseDuration(s); err == nil {
			return d, d >= 0
		}
	}
	f, ok := toFloat(x)
	if !ok || f < 0 || f > math.MaxInt64/float64(time.Second) {
		return 0, false
	}
	return time.Duration(f * float64(time.Second)), true
}

func toTime(x any) (time.Time, bool) {
	if t, ok := x.(time.Time); ok {
		return t, true
	}
	if s, ok := x.(string); ok {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t, true
		}
	}
	f, ok := toFloat(x)
	if !ok || f <= 0 || f > 253402300799 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

func toStrings(x any) ([]string, bool) {
	switch l := x.(type) {
	case string:
		return strings.FieldsFunc(l, func(r rune) bool { return r == ' ' || r == ',' }), true
	case []string:
		return l, true
	case []any:
		out := make([]string, len(l))
		for i, e := range l {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out[i] = s
		}
		return out, true
	}
	return nil, false
}

func toStringMap(x any) (map[string]string, bool) {
	switch m := x.(type) {
	case string:
		var out map[string]string
		return out, json.Unmarshal([]byte(m), &out) == nil
	case map[string]string:
		return m, true
	case map[string]any:
		out := make(map[string]string, len(m))
		for k, e := range m {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out[k] = s
		}
		return out, true
	}
	return nil, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
