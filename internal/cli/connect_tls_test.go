package cli

import "testing"

// The fingerprint follows the same precedence as the other fields, and the
// file's only applies to the file's own server.
func TestCredentialsFingerprint(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fp := "SHA256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if err := WriteCredentials(dir, Credentials{URL: "https://10.0.0.1:8080", AccountName: "a", AccountKey: "a2V5", ServerFingerprint: fp}); err != nil {
		t.Fatal(err)
	}
	o := &globalOptions{dataDir: dir, getenv: envMap(nil)}
	c, err := o.credentials()
	if err != nil || c.ServerFingerprint != fp {
		t.Fatalf("from file: %+v, %v", c, err)
	}
	o = &globalOptions{dataDir: dir, fingerprint: "SHA256:flag", getenv: envMap(map[string]string{EnvFingerprint: "SHA256:env"})}
	if c, _ := o.credentials(); c.ServerFingerprint != "SHA256:flag" {
		t.Fatalf("flag: %q", c.ServerFingerprint)
	}
	o = &globalOptions{dataDir: dir, getenv: envMap(map[string]string{EnvFingerprint: "SHA256:env"})}
	if c, _ := o.credentials(); c.ServerFingerprint != "SHA256:env" {
		t.Fatalf("env: %q", c.ServerFingerprint)
	}
	o = &globalOptions{dataDir: dir, url: "https://other:8080", accountName: "b", accountKey: "a2V5", getenv: envMap(nil)}
	if c, _ := o.credentials(); c.ServerFingerprint != "" {
		t.Fatalf("another server took the file's fingerprint: %q", c.ServerFingerprint)
	}
	if _, err := (&globalOptions{}).httpTransport(Credentials{URL: "https://x", ServerFingerprint: "SHA256:nothex"}); err == nil {
		t.Fatal("a malformed fingerprint was accepted")
	}
}
