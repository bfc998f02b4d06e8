// Package tlspin makes and checks Kiln's server certificates: a self-signed
// ECDSA certificate generated into the data directory, its SHA-256
// fingerprint ("SHA256:<hex>"), and TLS client configurations that trust a
// server by that fingerprint instead of by a certificate authority.
package tlspin

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Prefix starts every fingerprint.
const Prefix = "SHA256:"

// Names of the generated files in the data directory.
const (
	CertFile = "tls-cert.pem"
	KeyFile  = "tls-key.pem"
)

// Fingerprint is the SHA-256 fingerprint of a DER certificate, "SHA256:" and
// lower-case hex.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return Prefix + hex.EncodeToString(sum[:])
}

// Parse normalizes a fingerprint: "SHA256:" optional, hex in any case, with
// or without colons (as openssl prints it). It returns the 32 bytes.
func Parse(fp string) ([]byte, error) {
	s := strings.TrimSpace(fp)
	if len(s) >= len(Prefix) && strings.EqualFold(s[:len(Prefix)], Prefix) {
		s = s[len(Prefix):]
	}
	s = strings.ReplaceAll(s, ":", "")
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return nil, fmt.Errorf("server fingerprint %q: want SHA256: and 64 hexadecimal digits", fp)
	}
	return b, nil
}

// EnsureSelfSigned returns the certificate in dir (CertFile, KeyFile),
// generating a self-signed ECDSA P-256 one valid for hosts (names or IPs)
// plus localhost and 127.0.0.1 if there is none. An existing certificate is
// reused as is.
func EnsureSelfSigned(dir string, hosts []string) (tls.Certificate, error) {
	certPath, keyPath := filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile)
	if c, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		return c, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return tls.Certificate{}, fmt.Errorf("load %s: %w", certPath, err)
	}
	certPEM, keyPEM, err := SelfSigned(hosts)
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

// SelfSigned generates a self-signed server certificate for hosts plus
// localhost and 127.0.0.1, valid ten years, in PEM.
func SelfSigned(hosts []string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "kiln server", Organization: []string{"Kiln"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	seen := map[string]bool{}
	for _, h := range append([]string{"localhost", "127.0.0.1", "::1"}, hosts...) {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

// MismatchError is the failure of a pinned connection.
type MismatchError struct{ Host, Want, Got string }

func (e *MismatchError) Error() string {
	return fmt.Sprintf("TLS: the certificate of %s has fingerprint %s, not the expected %s (wrong --server-fingerprint, or not the Kiln server you meant)",
		e.Host, e.Got, e.Want)
}

// ClientConfig returns a TLS client configuration that accepts a server
// whose leaf certificate has the given fingerprint, whoever signed it, and
// nothing else. An empty fingerprint gives nil (verification by the system's
// certificate authorities).
func ClientConfig(fingerprint string) (*tls.Config, error) {
	if strings.TrimSpace(fingerprint) == "" {
		return nil, nil
	}
	want, err := Parse(fingerprint)
	if err != nil {
		return nil, err
	}
	wantStr := Prefix + hex.EncodeToString(want)
	return &tls.Config{
		// Verification is VerifyConnection's: by fingerprint.
		InsecureSkipVerify: true, //nolint:gosec // see VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("TLS: the server sent no certificate")
			}
			if got := Fingerprint(cs.PeerCertificates[0].Raw); got != wantStr {
				return &MismatchError{Host: cs.ServerName, Want: wantStr, Got: got}
			}
			return nil
		},
	}, nil
}

// HostOf is the host of a URL, without port and brackets.
func HostOf(rawURL string) string {
	rest := rawURL
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	}
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		rest = rest[:j]
	}
	if h, _, err := net.SplitHostPort(rest); err == nil {
		return h
	}
	return strings.Trim(rest, "[]")
}

// Transport returns a clone of http.DefaultTransport whose TLS connections
// to serverURL's host are pinned to fingerprint (see ClientConfig) while
// connections to any other host are verified as usual, so that resource
// files on other HTTPS servers keep their normal checks. With an empty
// fingerprint it is a plain clone.
func Transport(serverURL, fingerprint string) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	pinned, err := ClientConfig(fingerprint)
	if err != nil || pinned == nil {
		return tr, err
	}
	host := HostOf(serverURL)
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		h, _, err := net.SplitHostPort(addr)
		if err != nil {
			h = addr
		}
		cfg := &tls.Config{ServerName: h}
		if strings.EqualFold(h, host) {
			cfg = pinned.Clone()
			cfg.ServerName = h
		}
		td := &tls.Dialer{NetDialer: dialer, Config: cfg}
		c, err := td.DialContext(ctx, network, addr)
		if err != nil {
			var me *MismatchError
			if errors.As(err, &me) && me.Host == "" {
				me.Host = addr
			}
			return nil, err
		}
		return c, nil
	}
	return tr, nil
}

// HTTPClient is an *http.Client on Transport(serverURL, fingerprint).
func HTTPClient(serverURL, fingerprint string) (*http.Client, error) {
	tr, err := Transport(serverURL, fingerprint)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: tr}, nil
}
