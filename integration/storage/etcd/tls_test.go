package etcd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokencache/tokencache/integration/servers"
	"github.com/tokencache/tokencache/storage/driver"
)

// TestTLS runs a cluster of its own that serves clients over TLS only and
// requires client certificates: the etcds:// URL with the CA and a client
// certificate works; without the certificate, with another CA, or without
// TLS, calls fail with ErrUnavailable within the timeout.
func TestTLS(t *testing.T) {
	servers.SkipShort(t)
	dir := t.TempDir()
	ca, caKey := newCA(t, "tokencache test CA")
	files := servers.EtcdTLS{CAFile: writePEM(t, dir, "ca.pem", "CERTIFICATE", ca.Raw)}
	files.CertFile, files.KeyFile = issue(t, dir, "server", ca, caKey, x509.ExtKeyUsageServerAuth)
	files.ClientCertFile, files.ClientKeyFile = issue(t, dir, "client", ca, caKey, x509.ExtKeyUsageClientAuth)
	other, _ := newCA(t, "another CA")
	otherCA := writePEM(t, dir, "other-ca.pem", "CERTIFICATE", other.Raw)

	ctx := context.Background()
	srv, err := servers.StartEtcdClusterWith(ctx, servers.EtcdOptions{TLS: &files})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Terminate(ctx)
	if !strings.HasPrefix(srv.URL, "etcds://") {
		t.Fatalf("URL %q", srv.URL)
	}

	a := openAdapter(t, srv.URL)
	defer a.Close()
	rev, err := a.Put(ctx, "p", []byte(`{"n":1}`), driver.IfAbsent())
	if err != nil {
		t.Fatalf("Put over TLS: %v", err)
	}
	if _, got, err := a.Get(ctx, "p"); err != nil || got != rev {
		t.Fatalf("Get over TLS: %q, %v", got, err)
	}

	hosts := strings.Join(srv.Endpoints, ",")
	for name, raw := range map[string]string{
		"no client certificate": "etcds://" + hosts + "/?timeout=1s&ca_file=" + url.QueryEscape(files.CAFile),
		"another CA": "etcds://" + hosts + "/?timeout=1s&ca_file=" + url.QueryEscape(otherCA) +
			"&cert_file=" + url.QueryEscape(files.ClientCertFile) + "&key_file=" + url.QueryEscape(files.ClientKeyFile),
		"plain text": "etcd://" + hosts + "/?timeout=1s",
	} {
		b := openAdapter(t, raw)
		_, _, err := b.Get(ctx, "p")
		b.Close()
		if !errors.Is(err, driver.ErrUnavailable) {
			t.Errorf("%s: Get = %v, want ErrUnavailable", name, err)
		}
	}
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// issue writes a certificate for 127.0.0.1 signed by ca, and its key, as
// NAME.pem and NAME-key.pem.
func issue(t *testing.T, dir, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, name+".pem", "CERTIFICATE", der), writePEM(t, dir, name+"-key.pem", "EC PRIVATE KEY", kder)
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
