package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"

	"github.com/kilnbatch/kiln/batchclient"
	"github.com/kilnbatch/kiln/internal/tlspin"
)

// startHTTPSServer starts `kiln server` with extra flags that make it serve
// HTTPS, waits until hc reaches it, and returns it with s.Client built on
// hc. The harness's Start speaks plain HTTP, so this starts the process
// itself.
func startHTTPSServer(t *testing.T, dataDir string, args []string, hc func(dataDir string) *http.Client) *Server {
	t.Helper()
	s := &Server{t: t, DataDir: dataDir, Addr: freeAddr(t), Args: args}
	s.URL = "https://" + s.Addr
	s.logPath = filepath.Join(s.DataDir, "server.log")
	t.Cleanup(func() {
		s.Kill()
		killAgents(s.DataDir)
		if t.Failed() {
			if b, err := os.ReadFile(s.logPath); err == nil {
				t.Logf("server log:\n%s", tail(string(b), 8000))
			}
		}
	})
	s.startHTTPS()
	client := hc(dataDir)
	eventually(t, 30*time.Second, "HTTPS server healthy", func() error {
		resp, err := client.Get(s.URL + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	s.Client = batchClient(t, s.URL, testKey, client)
	return s
}

func (s *Server) startHTTPS() {
	s.t.Helper()
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	args := append([]string{"server", "--addr", s.Addr, "--data-dir", s.DataDir, "--heartbeat-interval", "2s", "--agent-orphan-timeout", "2m"}, s.Args...)
	cmd := exec.Command(kilnBin, args...)
	cmd.Env = append(os.Environ(), "KILN_ACCOUNT_NAME="+testAccount, "KILN_ACCOUNT_KEY="+testKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	logf.Close()
	s.cmd = cmd
}

func batchClient(t testing.TB, url, key string, hc policy.Transporter) *azbatch.Client {
	t.Helper()
	opts := &azbatch.ClientOptions{}
	if hc != nil {
		opts.ClientOptions = azcore.ClientOptions{Transport: hc}
	}
	c, err := batchclient.New(url, testAccount, key, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pinnedFromCredentials is a client pinned to the fingerprint the server
// wrote into credentials.json (waiting for the file to appear).
func pinnedFromCredentials(t *testing.T) func(string) *http.Client {
	return func(dataDir string) *http.Client {
		var fp, url string
		eventually(t, 30*time.Second, "credentials.json with a fingerprint", func() error {
			c, err := readCreds(dataDir)
			if err != nil {
				return err
			}
			if c.ServerFingerprint == "" {
				return os.ErrNotExist
			}
			fp, url = c.ServerFingerprint, c.URL
			return nil
		})
		hc, err := batchclient.PinnedTransport(url, fp)
		if err != nil {
			t.Fatal(err)
		}
		return hc
	}
}

type creds struct {
	URL               string `json:"url"`
	AccountName       string `json:"accountName"`
	AccountKey        string `json:"accountKey"`
	ServerFingerprint string `json:"serverFingerprint"`
}

func readCreds(dataDir string) (creds, error) {
	var c creds
	b, err := os.ReadFile(filepath.Join(dataDir, "credentials.json"))
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(b, &c)
}

func runKiln(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(kilnBin, args...)
	cmd.Env = append(os.Environ(), "KILN_URL=", "KILN_ACCOUNT_NAME=", "KILN_ACCOUNT_KEY=", "KILN_SERVER_FINGERPRINT=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestTLSSelfSigned: `kiln server --tls` generates a self-signed
// certificate, writes its fingerprint to credentials.json, and the official
// SDK (pinned), local agents and the CLI all work over HTTPS; a wrong
// fingerprint and an unpinned client are refused; a restart reuses the
// certificate.
func TestTLSSelfSigned(t *testing.T) {
	t.Parallel()
	dataDir := t.TempDir()
	s := startHTTPSServer(t, dataDir, []string{"--tls"}, pinnedFromCredentials(t))
	c, err := readCreds(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != s.URL {
		t.Fatalf("credentials url %q, want %q", c.URL, s.URL)
	}
	certPEM, err := os.ReadFile(filepath.Join(dataDir, tlspin.CertFile))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	if got := tlspin.Fingerprint(blk.Bytes); got != c.ServerFingerprint {
		t.Fatalf("credentials fingerprint %s, certificate's %s", c.ServerFingerprint, got)
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := cert.VerifyHostname("localhost"); err != nil {
		t.Errorf("certificate does not cover localhost: %v", err)
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate does not cover 127.0.0.1: %v", err)
	}

	// The SDK over HTTPS, local agents joining over HTTPS, a task run.
	s.CreatePool(t, "tlspool", 1, 1, nil)
	s.CreateJob(t, "tlsjob", "tlspool", nil)
	s.AddTasks(t, "tlsjob", []azbatch.CreateTaskContent{{ID: to("t1"), CommandLine: to("/bin/sh -c 'echo over-https'")}})
	counts := s.WaitJobTasks(t, "tlsjob", 60*time.Second)
	if *counts.TaskCounts.Succeeded != 1 {
		t.Fatalf("task counts %+v", *counts.TaskCounts)
	}
	f, err := s.Client.GetTaskFile(ctx(t), "tlsjob", "t1", "stdout.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 64)
	n, _ := f.Body.Read(b)
	f.Body.Close()
	if !strings.Contains(string(b[:n]), "over-https") {
		t.Fatalf("stdout %q", b[:n])
	}

	// The CLI finds URL, key and fingerprint in credentials.json.
	if out, err := runKiln(t, "pool", "list", "--data-dir", dataDir); err != nil || !strings.Contains(out, "tlspool") {
		t.Fatalf("kiln pool list over HTTPS: %v\n%s", err, out)
	}

	// So do the storage and account commands (their own HTTP clients).
	if out, err := runKiln(t, "storage", "container", "create", "overhttps", "--data-dir", dataDir); err != nil {
		t.Fatalf("kiln storage over HTTPS: %v\n%s", err, out)
	}
	if out, err := runKiln(t, "account", "keys", "list", "--data-dir", dataDir); err != nil {
		t.Fatalf("kiln account keys list over HTTPS: %v\n%s", err, out)
	}

	// A wrong fingerprint fails, clearly.
	wrong := "SHA256:" + strings.Repeat("ab", 32)
	hc, err := batchclient.PinnedTransport(s.URL, wrong)
	if err != nil {
		t.Fatal(err)
	}
	_, err = batchClient(t, s.URL, testKey, hc).GetPool(ctx(t), "tlspool", nil)
	if err == nil || !strings.Contains(err.Error(), "fingerprint") {
		t.Fatalf("wrong fingerprint: err %v, want a fingerprint mismatch", err)
	}
	out, err := runKiln(t, "pool", "list", "--url", s.URL, "--account-name", testAccount, "--account-key", testKey, "--server-fingerprint", wrong, "--data-dir", t.TempDir())
	if err == nil || !strings.Contains(out, "fingerprint") {
		t.Fatalf("CLI with a wrong fingerprint: %v\n%s", err, out)
	}
	// Without a pin, the self-signed certificate is not trusted.
	if _, err := batchClient(t, s.URL, testKey, nil).GetPool(ctx(t), "tlspool", nil); err == nil {
		t.Fatal("an unpinned client accepted a self-signed certificate")
	}

	// A restart keeps the certificate.
	s.Kill()
	s.startHTTPS()
	eventually(t, 30*time.Second, "restarted server", func() error {
		_, err := s.Client.GetPool(ctx(t), "tlspool", nil)
		return err
	})
	if c2, _ := readCreds(dataDir); c2.ServerFingerprint != c.ServerFingerprint {
		t.Fatalf("fingerprint changed on restart: %s then %s", c.ServerFingerprint, c2.ServerFingerprint)
	}
}

// testCA makes a certificate authority and a server certificate it signs
// for 127.0.0.1, written to dir; it returns the pool trusting the CA.
func testCA(t *testing.T, dir string) (certFile, keyFile string, roots *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kiln test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "kiln test server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	if err := os.WriteFile(certFile, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	roots = x509.NewCertPool()
	roots.AddCert(ca)
	return certFile, keyFile, roots
}

// TestTLSCertificateFromCA: --tls-cert/--tls-key serve a CA-signed
// certificate that clients verify the usual way (no fingerprint), and local
// agents still join (the server hands them its fingerprint).
func TestTLSCertificateFromCA(t *testing.T) {
	t.Parallel()
	certFile, keyFile, roots := testCA(t, t.TempDir())
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	dataDir := t.TempDir()
	s := startHTTPSServer(t, dataDir, []string{"--tls-cert", certFile, "--tls-key", keyFile},
		func(string) *http.Client { return hc })
	s.CreatePool(t, "capool", 1, 1, nil)
	c, err := readCreds(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if c.ServerFingerprint != "" || c.URL != s.URL {
		t.Fatalf("credentials %+v: want %s and no fingerprint for a CA-signed certificate", c, s.URL)
	}
	if _, err := batchClient(t, s.URL, testKey, nil).GetPool(ctx(t), "capool", nil); err == nil {
		t.Fatal("a client without the test CA accepted its certificate")
	}
}

// TestAccountKeyRegeneration: both keys sign requests; regenerating the
// primary retires the old one at once, the secondary keeps working, the new
// primary works and credentials.json follows it.
func TestAccountKeyRegeneration(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	out, err := runKiln(t, "account", "keys", "list", "--data-dir", s.DataDir, "-o", "json")
	if err != nil {
		t.Fatalf("keys list: %v\n%s", err, out)
	}
	var keys struct{ Primary, Secondary string }
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatalf("keys list output %q: %v", out, err)
	}
	if keys.Primary != testKey || keys.Secondary == "" {
		t.Fatalf("keys %+v", keys)
	}
	secondary := batchClient(t, s.URL, keys.Secondary, nil)
	if _, err := secondary.NewListPoolsPager(nil).NextPage(ctx(t)); err != nil {
		t.Fatalf("secondary key: %v", err)
	}

	out, err = runKiln(t, "account", "keys", "regenerate", "primary", "--data-dir", s.DataDir, "-o", "json")
	if err != nil {
		t.Fatalf("regenerate primary: %v\n%s", err, out)
	}
	var after struct{ Primary, Secondary string }
	if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &after); err != nil {
		t.Fatalf("regenerate output %q: %v", out, err)
	}
	if after.Primary == keys.Primary || after.Secondary != keys.Secondary {
		t.Fatalf("after regenerate primary: %+v (before %+v)", after, keys)
	}
	if _, err := s.Client.NewListPoolsPager(nil).NextPage(ctx(t)); statusOf(err) != http.StatusForbidden {
		t.Fatalf("old primary key: err %v, want 403", err)
	}
	if _, err := secondary.NewListPoolsPager(nil).NextPage(ctx(t)); err != nil {
		t.Fatalf("secondary key after regenerating the primary: %v", err)
	}
	if _, err := batchClient(t, s.URL, after.Primary, nil).NewListPoolsPager(nil).NextPage(ctx(t)); err != nil {
		t.Fatalf("new primary key: %v", err)
	}
	if c, _ := readCreds(s.DataDir); c.AccountKey != after.Primary {
		t.Fatalf("credentials.json key %q, want the new primary", c.AccountKey)
	}
	// The CLI, reading credentials.json, keeps working.
	if out, err := runKiln(t, "pool", "list", "--data-dir", s.DataDir); err != nil {
		t.Fatalf("pool list with rewritten credentials: %v\n%s", err, out)
	}

	// Kiln storage verifies SAS signed with the new primary key.
	if out, err := runKiln(t, "storage", "container", "create", "afterregen", "--data-dir", s.DataDir); err != nil {
		t.Fatalf("storage with the new primary key: %v\n%s", err, out)
	}

	// Regenerating the secondary (signed with it) retires it too.
	out, err = runKiln(t, "account", "keys", "regenerate", "secondary", "--url", s.URL, "--account-name", testAccount,
		"--account-key", keys.Secondary, "--data-dir", t.TempDir(), "-o", "json")
	if err != nil {
		t.Fatalf("regenerate secondary: %v\n%s", err, out)
	}
	if _, err := secondary.NewListPoolsPager(nil).NextPage(ctx(t)); statusOf(err) != http.StatusForbidden {
		t.Fatalf("old secondary key: err %v, want 403", err)
	}
	if out, err := runKiln(t, "account", "keys", "regenerate", "tertiary", "--data-dir", s.DataDir); err == nil {
		t.Fatalf("regenerate tertiary succeeded:\n%s", out)
	}
}
