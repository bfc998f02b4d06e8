package cli

import (
	"net/http"
	"testing"

	"github.com/kilnbatch/kiln/internal/failover"
)

// TestCredentialsServerList: --url (or KILN_URL, or the file's url) may
// list several servers; the first is the URL, all of them get a failover
// transport, and a credentials file naming one of them supplies the key.
func TestCredentialsServerList(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := WriteCredentials(dir, Credentials{URL: "http://127.0.0.1:8081", AccountName: "acct", AccountKey: "a2V5"}); err != nil {
		t.Fatal(err)
	}
	o := &globalOptions{dataDir: dir, getenv: envMap(map[string]string{EnvURL: "127.0.0.1:8080/, http://127.0.0.1:8081"})}
	c, err := o.credentials()
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "http://127.0.0.1:8080" || c.Servers != "http://127.0.0.1:8080,http://127.0.0.1:8081" || c.AccountName != "acct" {
		t.Fatalf("credentials = %+v", c)
	}
	tr, err := o.httpTransport(c)
	if err != nil {
		t.Fatal(err)
	}
	hc, ok := tr.(*http.Client)
	if !ok {
		t.Fatalf("transport %T, want an *http.Client", tr)
	}
	if ft, ok := hc.Transport.(*failover.Transport); !ok || ft.Current() != "http://127.0.0.1:8080" {
		t.Fatalf("client transport %T, want a failover transport starting with the first server", hc.Transport)
	}

	// One URL: no failover transport, as before.
	o = &globalOptions{dataDir: dir, getenv: envMap(nil)}
	if c, err = o.credentials(); err != nil || c.Servers != "" {
		t.Fatalf("single URL: %+v, %v", c, err)
	}
}
