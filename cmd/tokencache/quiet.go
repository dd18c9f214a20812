package main

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/logging"
)

// One line on stderr: the drivers' own logging would print before ours.
// go-redis logs every failed pool dial through its package logger; the
// error it returns says the same, and errorLine prints that.
func init() { redis.SetLogger(&logging.VoidLogger{}) }

// maxServerSelection bounds how long the CLI lets the MongoDB driver look
// for a server when the store URL does not say (its own default is 30 s,
// long for a command a person or a script waits for).
const maxServerSelection = 10 * time.Second

// boundStoreURL returns the URL to open: for MongoDB, serverSelectionTimeoutMS
// (unless the URL sets it) ends before --timeout does, so that an
// unreachable server is reported as the store being down (exit 5) rather
// than as a command timeout, and within --timeout.
func boundStoreURL(raw string, left time.Duration) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	switch strings.TrimPrefix(u.Scheme, "kms+") {
	case "mongodb", "mongodb+srv":
	default:
		return raw
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "serverSelectionTimeoutMS") {
			return raw
		}
	}
	sel := maxServerSelection
	if left > 0 {
		sel = min(sel, left*9/10)
	}
	q.Set("serverSelectionTimeoutMS", strconv.FormatInt(max(sel.Milliseconds(), 1), 10))
	u.RawQuery = q.Encode()
	return u.String()
}

// topologyDump matches the MongoDB driver's description of every server it
// tried, which its server selection errors append.
var (
	topologyDump = regexp.MustCompile(`, current topology: \{.*$`)
	lastError    = regexp.MustCompile(`Last error: (.*?) \}`)
)

// condenseDriverErrors keeps, of the driver's topology dump, the distinct
// reasons its servers failed.
func condenseDriverErrors(s string) string {
	dump := topologyDump.FindString(s)
	if dump == "" {
		return s
	}
	var reasons []string
	for _, m := range lastError.FindAllStringSubmatch(dump, -1) {
		if !containsString(reasons, m[1]) {
			reasons = append(reasons, m[1])
		}
	}
	out := strings.TrimSuffix(s, dump)
	if len(reasons) > 0 {
		out += " (" + strings.Join(reasons, "; ") + ")"
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
