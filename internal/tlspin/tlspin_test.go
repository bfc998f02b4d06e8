package tlspin

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	fp := "SHA256:" + strings.Repeat("ab", 32)
	for _, in := range []string{fp, strings.ToUpper(fp), strings.Repeat("AB", 32), "sha256:" + strings.TrimSuffix(strings.Repeat("ab:", 32), ":")} {
		b, err := Parse(in)
		if err != nil || len(b) != 32 || b[0] != 0xab {
			t.Errorf("Parse(%q) = %x, %v", in, b, err)
		}
	}
	for _, in := range []string{"", "SHA256:abcd", "SHA256:" + strings.Repeat("zz", 32)} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}

func TestSelfSignedCoversHosts(t *testing.T) {
	certPEM, keyPEM, err := SelfSigned([]string{"kiln.example", "10.1.2.3"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(c.Certificate[0])
	for _, h := range []string{"localhost", "127.0.0.1", "kiln.example", "10.1.2.3"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("%s: %v", h, err)
		}
	}
	dir := t.TempDir()
	a, err := EnsureSelfSigned(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := EnsureSelfSigned(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(a.Certificate[0]) != Fingerprint(b.Certificate[0]) {
		t.Fatal("EnsureSelfSigned generated a new certificate instead of reusing it")
	}
}

func TestTransportPinsServerHostOnly(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	fp := Fingerprint(srv.Certificate().Raw)

	hc, err := HTTPClient(srv.URL, fp)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get(srv.URL)
	if err != nil {
		t.Fatalf("pinned: %v", err)
	}
	resp.Body.Close()

	// Another host (localhost rather than 127.0.0.1) is verified normally:
	// the test certificate is not trusted there.
	other := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)
	if _, err := hc.Get(other); err == nil {
		t.Fatal("a host other than the server's was trusted by the pin")
	}

	wrong, _ := HTTPClient(srv.URL, "SHA256:"+strings.Repeat("00", 32))
	_, err = wrong.Get(srv.URL)
	var me *MismatchError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), fp) {
		t.Fatalf("wrong fingerprint: %v", err)
	}
}
