package etcd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/tokencache/tokencache/secret"
	"github.com/tokencache/tokencache/storage/driver"
)

// DefaultDialTimeout bounds authentication with a username and password at
// open, when the URL sets no dial_timeout.
const DefaultDialTimeout = 5 * time.Second

func init() {
	driver.Register("etcd", OpenURL)
	driver.Register("etcds", OpenURL)
}

// OpenURL makes the etcd client an etcd:// or etcds:// URL describes (the
// forms are in the package documentation; it reads the TLS files the URL
// names) and an Adapter over it, which owns it: Close closes the client.
// It is the opener the package registers for "etcd" and "etcds".
func OpenURL(ctx context.Context, u *url.URL) (*Adapter, error) {
	cfg, opts, err := configFromURL(u)
	if err != nil {
		return nil, err
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		// With a username, New authenticates; the password is not in the
		// client's errors, but make sure.
		if leaksSecret(err.Error(), u) {
			err = errors.New("details withheld: they repeat a secret of the URL")
		}
		why, kind := classify(err)
		return nil, driver.Wrap(kind, fmt.Sprintf("etcd: open %q%s", secret.RedactURL(bareURL(u)), why), lastCause(err))
	}
	a, err := New(c, &opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	a.owned = true
	return a, nil
}

// configFromURL makes the client configuration that an etcd:// or etcds://
// URL describes and the Options its path and parameters set. It reads the
// TLS files it names.
func configFromURL(u *url.URL) (clientv3.Config, Options, error) {
	var cfg clientv3.Config
	opts := Options{Prefix: DefaultPrefix, Timeout: DefaultTimeout}
	bad := func(why string) (clientv3.Config, Options, error) {
		msg := fmt.Sprintf("etcd: store URL %q: %s", secret.RedactURL(bareURL(u)), why)
		return clientv3.Config{}, Options{}, driver.Wrap(driver.ErrInvalid, msg, nil)
	}
	if u.Scheme != "etcd" && u.Scheme != "etcds" {
		return bad("scheme must be etcd or etcds")
	}
	if u.Opaque != "" || u.Host == "" {
		return bad("no hosts: want etcd://host:port[,host:port...]/prefix/")
	}
	for _, h := range strings.Split(u.Host, ",") {
		if h == "" {
			return bad("empty host in the host list")
		}
		if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
			return bad(fmt.Sprintf("host %q: want host:port", h))
		}
		cfg.Endpoints = append(cfg.Endpoints, h)
	}
	if p := strings.TrimPrefix(u.Path, "/"); p != "" {
		if !strings.HasSuffix(p, "/") {
			p += "/"
		}
		opts.Prefix = p
	}
	if u.User != nil {
		pw, ok := u.User.Password()
		if u.User.Username() == "" || !ok || pw == "" {
			return bad("user information needs both a username and a password")
		}
		cfg.Username, cfg.Password = u.User.Username(), pw
	}

	useTLS := u.Scheme == "etcds"
	var caFile, certFile, keyFile, serverName string
	cfg.DialTimeout = DefaultDialTimeout
	for name, vs := range u.Query() {
		if len(vs) != 1 {
			return bad(fmt.Sprintf("parameter %q given %d times", name, len(vs)))
		}
		v := vs[0]
		var err error
		switch name {
		case "prefix":
			if v == "" {
				// An empty prefix would make List and every key the
				// whole keyspace, other applications' keys included.
				return bad("prefix must not be empty")
			}
			opts.Prefix = v
		case "tls":
			useTLS, err = strconv.ParseBool(v)
			if err != nil {
				return bad("tls must be true or false")
			}
		case "ca_file":
			caFile = v
		case "cert_file":
			certFile = v
		case "key_file":
			keyFile = v
		case "server_name":
			serverName = v
		case "dial_timeout", "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return bad(name + " must be a positive duration such as 5s")
			}
			if name == "timeout" {
				opts.Timeout = d
			} else {
				cfg.DialTimeout = d
			}
		default:
			return bad(fmt.Sprintf("unknown parameter %q", name))
		}
	}
	if (certFile == "") != (keyFile == "") {
		return bad("cert_file and key_file go together")
	}
	if !useTLS && (caFile != "" || certFile != "" || serverName != "") {
		return bad("TLS parameters without TLS: use etcds:// or tls=true")
	}
	if useTLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
		if caFile != "" {
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return bad("ca_file: " + fileError(err))
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return bad("ca_file holds no PEM certificate")
			}
		}
		if certFile != "" {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				// The error names the files and what is wrong, never
				// the key's bytes.
				return bad("cert_file and key_file: " + fileError(err))
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		cfg.TLS = tc
	}
	// The library is silent unless given a logger; the client would log
	// every retry to stderr.
	cfg.Logger = zap.NewNop()
	return cfg, opts, nil
}

// bareURL is u without its query, which may hold a misspelt secret
// parameter ("pasword=") that secret.RedactURL would not recognise.
func bareURL(u *url.URL) string {
	bare := *u
	bare.RawQuery, bare.Fragment = "", ""
	return bare.String()
}

func fileError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + " " + pe.Path + ": " + pe.Err.Error()
	}
	return err.Error()
}

// leaksSecret reports whether msg repeats the URL's password.
func leaksSecret(msg string, u *url.URL) bool {
	p, ok := u.User.Password()
	return ok && p != "" && strings.Contains(msg, p)
}
