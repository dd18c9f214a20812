package auth

import (
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
// Names are the `auth` struct tags of the scheme's Config type.
type Params map[string]any

// decodeParams fills the Config struct dst from p by its `auth:"name"`
// tags. An unknown option is an error: a misspelled "client_secert" must
// not silently leave the secret unset. Conversions are lenient where
// configuration formats differ: a duration is seconds or "90s", a list is
// a list or one space- or comma-separated string, a map may be given as a
// JSON string (as SL1 credentials carry them).
func decodeParams(scheme string, p Params, dst any) error {
	v := reflect.ValueOf(dst).Elem()
	t := v.Type()
	fields := map[string]int{}
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("auth"), ","); name != "" {
			fields[name] = i
		}
	}
	for _, name := range sortedKeys(p) {
		i, ok := fields[name]
		if !ok {
			return &OptionError{Scheme: scheme, Option: name, Reason: "unknown option"}
		}
		if p[name] == nil {
			continue
		}
		if reason := setField(v.Field(i), p[name]); reason != "" {
			return &OptionError{Scheme: scheme, Option: name, Reason: reason}
		}
	}
	return nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
)

// setField converts x into f and returns why it could not. Reasons never
// quote x: it may be a secret.
func setField(f reflect.Value, x any) string {
	switch {
	case f.Type() == durationType:
		d, ok := toDuration(x)
		if !ok {
			return "want a duration: seconds or a string such as \"90s\""
		}
		f.SetInt(int64(d))
	case f.Type() == timeType:
		t, ok := toTime(x)
		if !ok {
			return "want a time: Unix seconds or RFC 3339"
		}
		f.Set(reflect.ValueOf(t))
	case f.Kind() == reflect.String:
		s, ok := x.(string)
		if !ok {
			return "want a string"
		}
		f.SetString(s)
	case f.Kind() == reflect.Bool:
		switch b := x.(type) {
		case bool:
			f.SetBool(b)
		case string:
			v, err := strconv.ParseBool(b)
			if err != nil {
				return "want true or false"
			}
			f.SetBool(v)
		default:
			return "want true or false"
		}
	case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.String:
		list, ok := toStrings(x)
		if !ok {
			return "want a list of strings"
		}
		f.Set(reflect.ValueOf(list).Convert(f.Type()))
	case f.Kind() == reflect.Map && f.Type().Key().Kind() == reflect.String && f.Type().Elem().Kind() == reflect.String:
		m, ok := toStringMap(x)
		if !ok {
			return "want an object of strings"
		}
		f.Set(reflect.ValueOf(m).Convert(f.Type()))
	default:
		panic(fmt.Sprintf("auth: option of unsupported type %v", f.Type()))
	}
	return ""
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
