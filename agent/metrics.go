package agent

import (
	"bufio"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/tokencache/tokencache/credentials"
)

// The agent's own counters, in the Prometheus text format (version 0.0.4)
// written by hand: a handful of counters does not justify a client
// library, and the hot path pays one atomic add per request.

// statusCodes are the codes the agent answers with, in the order counted.
var statusCodes = [...]int{200, 400, 401, 403, 404, 405, 413, 499, 500, 502, 503, 504}

// errorClasses are errorClass's codes, in the order counted.
var errorClasses = [...]string{
	"timeout", "canceled", "profile_not_found", "profile_not_refreshable", "reauth_required",
	"invalid_client", "not_token_endpoint", "token_endpoint_failed", "shutting_down", "store_unavailable", "store_corrupt", "internal",
}

type metrics struct {
	requests [numRoutes][len(statusCodes) + 1]atomic.Int64 // last: other codes
	inFlight atomic.Int64
}

func (m *metrics) count(route, code int) {
	i := len(statusCodes)
	for j, c := range statusCodes {
		if c == code {
			i = j
			break
		}
	}
	m.requests[route][i].Add(1)
}

type profileMetrics struct {
	served            atomic.Int64
	reportsRefreshed  atomic.Int64 // reports naming the current token: Refresh
	reportsSuperseded atomic.Int64 // reports naming an older token: current one served
	errors            [len(errorClasses)]atomic.Int64
	lastToken         atomic.Pointer[credentials.Token]
}

func (pm *profileMetrics) countError(class string) {
	for i, c := range errorClasses {
		if c == class {
			pm.errors[i].Add(1)
			return
		}
	}
}

func (h *Handler) writeMetrics(w io.Writer) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	help := func(name, typ, text string) {
		bw.WriteString("# HELP " + name + " " + text + "\n# TYPE " + name + " " + typ + "\n")
	}
	line := func(name, labels string, v int64) {
		bw.WriteString(name)
		if labels != "" {
			bw.WriteString("{" + labels + "}")
		}
		bw.WriteString(" " + strconv.FormatInt(v, 10) + "\n")
	}
	help("tokencache_agent_requests_total", "counter", "HTTP requests answered, by route and status code.")
	for r := range numRoutes {
		for i := range len(statusCodes) + 1 {
			v := h.m.requests[r][i].Load()
			if v == 0 {
				continue
			}
			code := "other"
			if i < len(statusCodes) {
				code = strconv.Itoa(statusCodes[i])
			}
			line("tokencache_agent_requests_total", `route="`+routeNames[r]+`",code="`+code+`"`, v)
		}
	}
	help("tokencache_agent_requests_in_flight", "gauge", "HTTP requests being answered.")
	line("tokencache_agent_requests_in_flight", "", h.m.inFlight.Load())

	var states []*profileState
	h.eachState(func(s *profileState) { states = append(states, s) })
	help("tokencache_agent_tokens_served_total", "counter", "Access tokens handed out, by profile.")
	for _, s := range states {
		line("tokencache_agent_tokens_served_total", `profile="`+escapeLabel(s.name)+`"`, s.pm.served.Load())
	}
	help("tokencache_agent_rejected_reports_total", "counter", "Reports of rejected tokens, by profile and outcome: current (the reported token was current: refresh) or superseded (an older token: the current one was served).")
	for _, s := range states {
		p := `profile="` + escapeLabel(s.name) + `"`
		line("tokencache_agent_rejected_reports_total", p+`,outcome="current"`, s.pm.reportsRefreshed.Load())
		line("tokencache_agent_rejected_reports_total", p+`,outcome="superseded"`, s.pm.reportsSuperseded.Load())
	}
	help("tokencache_agent_token_errors_total", "counter", "Requests that got no token, by profile and error.")
	for _, s := range states {
		for i, c := range errorClasses {
			if v := s.pm.errors[i].Load(); v != 0 {
				line("tokencache_agent_token_errors_total", `profile="`+escapeLabel(s.name)+`",error="`+c+`"`, v)
			}
		}
	}
	help("tokencache_agent_token_expiry_timestamp_seconds", "gauge", "Expiry of the access token last handed out, by profile (Unix time).")
	for _, s := range states {
		if t := s.pm.lastToken.Load(); t != nil && !t.Expiry.IsZero() {
			line("tokencache_agent_token_expiry_timestamp_seconds", `profile="`+escapeLabel(s.name)+`"`, t.Expiry.Unix())
		}
	}
}

// escapeLabel escapes a label value as the text format wants. Profile
// names have no control characters (storage.CheckKey) but may have quotes.
func escapeLabel(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}
