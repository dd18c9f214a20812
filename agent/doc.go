// Package agent serves the access tokens of the profiles in a store over
// HTTP, for programs in any language on the same machine or pod: an
// http.Handler over credentials.Profiles, plus listeners and a server with
// the bounds such a service needs. "tokencache serve" runs it.
//
// Every token comes from the profile's credentials.Credentials, so the
// refresh protocol is the library's: agents, CLI runs and Go programs
// sharing one store (Redis, SQLite, a file, ...) make one refresh per
// expiry between them, and a rotated refresh token is durable (in the store
// or the recovery journal) before its access token is served.
//
// # Endpoints
//
//	GET  /v1/token/{profile}           {"access_token","token_type","expires_in","expiry"}
//	GET  /v1/token/{profile}/raw       the bare access token, text/plain
//	POST /v1/token/{profile}/rejected  report a token a resource server rejected (401);
//	                                   body: the token, bare or {"access_token": "..."};
//	                                   answers the token to use instead, as JSON
//	GET  /readyz                       200 when the store is reachable and every served
//	                                   profile is there and refreshable, else 503; JSON
//	GET  /metrics                      the agent's counters, Prometheus text format
//	GET  /healthz                      200 "ok" while the process serves (no header needed)
//
// The bare token has no trailing newline. expires_in (whole seconds) and
// expiry (RFC 3339, UTC) are omitted when the server gave no lifetime. A
// profile is one path segment: names with "/" cannot be served. A
// report refreshes only when it names the token the agent currently hands
// out, and many reports of that token, to this agent or to any other
// sharing the store, make one refresh (credentials.Credentials.Refresh);
// a report of an older or unknown token gets the current one.
//
// Errors are JSON, {"error": CODE, "message": TEXT}, with stable codes:
// 400 missing_header, bad_path, bad_profile, bad_body; 401 unauthorized;
// 403 forwarded, origin, host, profile_not_allowed; 404 not_found,
// profile_not_found; 405 method_not_allowed; 413 too_large; 502
// token_endpoint_failed; 503 reauth_required, invalid_client,
// not_token_endpoint, profile_not_refreshable, store_unavailable,
// shutting_down; 504 timeout.
//
// Checks run in this order, so that a request without the header and key
// learns nothing about routes or profiles: X-Forwarded-For, Forwarded,
// Origin and a non-loopback Host over TCP (403); the path's spelling (400);
// /healthz answers here; the agent header (400); the key (401); the route
// (404, 405); the profile name (400); the allow-list (403).
//
// /metrics has tokencache_agent_requests_total{route,code} (requests
// refused before their route was read count as route="other"),
// tokencache_agent_requests_in_flight, and per profile
// tokencache_agent_tokens_served_total,
// tokencache_agent_rejected_reports_total{outcome="current"|"superseded"},
// tokencache_agent_token_errors_total{error} and
// tokencache_agent_token_expiry_timestamp_seconds.
//
// # Guarantees
//
//   - No endpoint returns a refresh token, a client secret or anything of
//     a profile but its access token, type and expiry. Responses carry
//     Cache-Control: no-store.
//   - Every request but /healthz needs the header "Tokencache-Agent: 1",
//     and, when Config.Key is set, "Authorization: Bearer KEY". Requests
//     with X-Forwarded-For, Forwarded or Origin are refused, and over TCP
//     so is a Host that is not a loopback address or localhost (DNS
//     rebinding). Together these keep a server-side request forgery in a
//     co-located web app, or a web page in a local browser, from reading
//     tokens, as the header of EC2's IMDSv2 and GCE's metadata server do.
//   - Only the profiles in Config.Allow are served, 403 for the others
//     whether or not they exist.
//   - ListenUnix makes a socket only its user can open (0600), in a
//     directory nobody else can write; ListenLoopback refuses any address
//     that is not loopback.
//   - Request bodies are bounded (MaxBodyBytes, 413 beyond), headers too
//     (MaxHeaderBytes, 431), and NewServer times every connection: headers
//     within 5 s, idle keep-alive connections closed, responses within the
//     wait bound. A request waits for a refresh at most Config.WaitTimeout
//     (504 then); a client that leaves mid-refresh cancels only its own
//     wait, never the refresh the others wait for.
//   - The Handler closes nothing it was handed. Its owner closes the
//     Profiles after the server has stopped: a rotated refresh token that a
//     store outage held back gets a last write, and the error names the
//     recovery journal entry of one that could not be written, so the owner
//     can exit non-zero instead of silently losing the grant.
//
// # Clients
//
// With curl, over the default Unix socket:
//
//	curl -sf --unix-socket "$XDG_RUNTIME_DIR/tokencache/agent.sock" \
//	    -H 'Tokencache-Agent: 1' http://localhost/v1/token/default/raw
//
// From Python, with the standard library only:
//
//	import http.client, json, os, socket
//
//	class AgentConnection(http.client.HTTPConnection):
//	    def __init__(self, path):
//	        super().__init__("localhost", timeout=35)
//	        self.path = path
//	    def connect(self):
//	        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
//	        self.sock.settimeout(self.timeout)
//	        self.sock.connect(self.path)
//
//	def token(profile="default", rejected=None):
//	    conn = AgentConnection(os.environ["XDG_RUNTIME_DIR"] + "/tokencache/agent.sock")
//	    headers = {"Tokencache-Agent": "1"}
//	    if rejected:   # the resource server answered 401 to this token
//	        conn.request("POST", f"/v1/token/{profile}/rejected", body=rejected, headers=headers)
//	    else:
//	        conn.request("GET", f"/v1/token/{profile}", headers=headers)
//	    resp = conn.getresponse()
//	    body = json.loads(resp.read())
//	    if resp.status != 200:
//	        raise RuntimeError(f"tokencache agent: {resp.status} {body['error']}: {body['message']}")
//	    return body["access_token"]
//
// From Node, with the standard library only:
//
//	const http = require("node:http");
//	function token(profile = "default") {
//	  return new Promise((resolve, reject) => {
//	    const req = http.get({
//	      socketPath: `${process.env.XDG_RUNTIME_DIR}/tokencache/agent.sock`,
//	      path: `/v1/token/${encodeURIComponent(profile)}`,
//	      headers: { "Tokencache-Agent": "1" },
//	      timeout: 35000,
//	    }, (res) => {
//	      let body = "";
//	      res.on("data", (c) => (body += c));
//	      res.on("end", () => {
//	        const v = JSON.parse(body);
//	        res.statusCode === 200 ? resolve(v.access_token)
//	          : reject(new Error(`tokencache agent: ${res.statusCode} ${v.error}: ${v.message}`));
//	      });
//	    });
//	    req.on("timeout", () => req.destroy(new Error("tokencache agent: timeout")));
//	    req.on("error", reject);
//	  });
//	}
//
// Over loopback TCP ("tokencache serve --tcp 127.0.0.1:8181 --key-file
// FILE"), send the key as well: curl -H 'Tokencache-Agent: 1' -H
// "Authorization: Bearer $(cat FILE)" http://127.0.0.1:8181/v1/token/default.
// The Go Example shows a client in Go.
package agent
