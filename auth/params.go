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

// decodeParams fills the Config struct dst from p by its `json:"name"`
// tags. An unknown option is an error: a misspelled "client_secert" must
// not silently leave the secret unset. Each value is read leniently where
// configuration formats differ: a duration is seconds or "90s", a time
// Unix seconds or RFC 3339, a boolean may be "true", a list is a list or
// one space- or comma-separated string, a map may be given as a JSON
// string (as SL1 credentials carry them). Fields are set directly, not
// through encoding/json, whose encoder would replace a string's invalid
// UTF-8 (a Latin-1 password) with U+FFFD and so change a secret.
func decodeParams(scheme string, p Params, dst any) error {
	v := reflect.ValueOf(dst).Elem()
	fields := optionFields(v.Type())
	for _, name := range sortedKeys(p) {
		f, ok := fields[name]
		if !ok {
			return &OptionError{Scheme: scheme, Option: name, Reason: "unknown option"}
		}
		if p[name] == nil {
			continue
		}
		x, reason := normalize(f.kind, p[name])
		if reason != "" {
			return &OptionError{Scheme: scheme, Option: name, Reason: reason}
		}
		setOption(v.Field(f.index), x)
	}
	return nil
}

// unmarshalConfig is the UnmarshalJSON of a scheme's Config type: the JSON
// object is read as Params, so that a configuration file decoded straight
// into the Config means what the same options given to New mean.
func unmarshalConfig(scheme string, b []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var p Params
	if err := dec.Decode(&p); err != nil {
		// encoding/json's syntax and type errors quote no values.
		return fmt.Errorf("auth: %s: options: %w", scheme, err)
	}
	return decodeParams(scheme, p, dst)
}

// optionKind is the form an option's value takes.
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

// optionField is a Config struct field an option sets.
type optionField struct {
	index int
	kind  optionKind
}

// optionFields maps each option name of the Config struct t to its field.
// Config structs hold only these kinds: a field of another type is a
// programming error in this package.
func optionFields(t reflect.Type) map[string]optionField {
	fields := map[string]optionField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		var kind optionKind
		switch ft := f.Type; {
		case ft == durationType:
			kind = optDuration
		case ft == timeType:
			kind = optTime
		case ft.Kind() == reflect.String:
			kind = optString
		case ft.Kind() == reflect.Bool:
			kind = optBool
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.String:
			kind = optStrings
		case ft.Kind() == reflect.Map && ft.Key().Kind() == reflect.String && ft.Elem().Kind() == reflect.String:
			kind = optStringMap
		default:
			panic(fmt.Sprintf("auth: option %s.%s of unsupported type %v", t, f.Name, ft))
		}
		fields[name] = optionField{index: i, kind: kind}
	}
	return fields
}

// normalize converts x into the Go value of an option of kind k, or
// returns why it cannot. Reasons never quote x: it may be a secret.
func normalize(k optionKind, x any) (any, string) {
	switch k {
	case optDuration:
		d, ok := toDuration(x)
		if !ok {
			return nil, "want a duration: seconds or a string such as \"90s\""
		}
		return d, ""
	case optTime:
		t, ok := toTime(x)
		if !ok {
			return nil, "want a time: Unix seconds or RFC 3339"
		}
		return t, ""
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

// setOption sets the field f, of a kind optionFields accepts, to x, a value
// normalize returned for that kind. Named string types (secret.Secret)
// are set by their kind.
func setOption(f reflect.Value, x any) {
	switch x := x.(type) {
	case time.Duration:
		f.SetInt(int64(x))
	case time.Time:
		f.Set(reflect.ValueOf(x))
	case string:
		f.SetString(x)
	case bool:
		f.SetBool(x)
	case []string:
		s := reflect.MakeSlice(f.Type(), len(x), len(x))
		for i, e := range x {
			s.Index(i).SetString(e)
		}
		f.Set(s)
	case map[string]string:
		m := reflect.MakeMapWithSize(f.Type(), len(x))
		kt, et := f.Type().Key(), f.Type().Elem()
		for k, e := range x {
			m.SetMapIndex(reflect.ValueOf(k).Convert(kt), reflect.ValueOf(e).Convert(et))
		}
		f.Set(m)
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
