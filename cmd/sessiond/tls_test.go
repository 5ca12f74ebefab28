package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sessiond/sessiond/client"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key for cn, for server or client use.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.WriteFile(p, data, 0o600))
	return p
}

// TestRunMutualTLS: with --client-ca only callers holding a certificate
// from that CA get through; their identity is the certificate's CN.
func TestRunMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, "test CA")
	srvCert, srvKey := ca.issue(t, "sessiond", true)
	cliCert, cliKey := ca.issue(t, "app-server-1", false)
	other := newTestCA(t, "other CA")
	badCert, badKey := other.issue(t, "intruder", false)

	d := startRun(t, []string{
		"--tls-cert", writeFile(t, dir, "srv.pem", srvCert), "--tls-key", writeFile(t, dir, "srv-key.pem", srvKey),
		"--client-ca", writeFile(t, dir, "ca.pem", ca.pem),
	}, nil)
	require.Regexp(t, `^https://127\.0\.0\.1:\d+$`, d.url)
	require.Contains(t, d.stdout.String(), "--cert client.pem --key client-key.pem --cacert ca.pem")

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	httpClient := func(certPEM, keyPEM []byte) *http.Client {
		tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			require.NoError(t, err)
			tc.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	}
	ctx := context.Background()

	good, err := client.New(d.url, client.WithHTTPClient(httpClient(cliCert, cliKey)))
	require.NoError(t, err)
	require.NoError(t, good.Healthz(ctx))
	created, err := good.CreateSession(ctx, client.CreateRequest{UserID: "alice"})
	require.NoError(t, err)
	_, err = good.Lookup(ctx, created.Token)
	require.NoError(t, err)
	require.Contains(t, d.stderr.String(), `"caller":"cert:app-server-1"`)

	for name, hc := range map[string]*http.Client{
		"no certificate":    httpClient(nil, nil),
		"another CA's cert": httpClient(badCert, badKey),
	} {
		c, err := client.New(d.url, client.WithHTTPClient(hc))
		require.NoError(t, err)
		_, err = c.ListSessions(ctx, "alice")
		require.Error(t, err, name)
		var ce *client.Error
		require.False(t, errors.As(err, &ce), "%s: refused in the TLS handshake, before HTTP: %v", name, err)
	}
}
