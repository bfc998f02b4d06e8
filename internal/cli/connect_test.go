package cli

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestCredentials(t *testing.T) {
	t.Parallel()

	fileCreds := Credentials{URL: "http://127.0.0.1:8080", AccountName: "fileacct", AccountKey: "ZmlsZWtleQ=="}
	withFile := func(t *testing.T) string {
		dir := t.TempDir()
		if err := WriteCredentials(dir, fileCreds); err != nil {
			t.Fatal(err)
		}
		return dir
	}

	t.Run("FileOnly", func(t *testing.T) {
		t.Parallel()
		o := &globalOptions{dataDir: withFile(t), getenv: envMap(nil)}
		got, err := o.credentials()
		if err != nil {
			t.Fatal(err)
		}
		if got != fileCreds {
			t.Errorf("got %+v, want %+v", got, fileCreds)
		}
	})

	t.Run("DataDirFromEnv", func(t *testing.T) {
		t.Parallel()
		o := &globalOptions{getenv: envMap(map[string]string{EnvDataDir: withFile(t)})}
		got, err := o.credentials()
		if err != nil || got != fileCreds {
			t.Errorf("got %+v, %v", got, err)
		}
	})

	t.Run("DefaultDataDirFromXDG", func(t *testing.T) {
		t.Parallel()
		xdg := t.TempDir()
		if err := WriteCredentials(filepath.Join(xdg, "kiln"), fileCreds); err != nil {
			t.Fatal(err)
		}
		o := &globalOptions{getenv: envMap(map[string]string{"XDG_DATA_HOME": xdg})}
		got, err := o.credentials()
		if err != nil || got != fileCreds {
			t.Errorf("got %+v, %v", got, err)
		}
	})

	t.Run("FlagsBeatEnvBeatAzureEnv", func(t *testing.T) {
		t.Parallel()
		env := envMap(map[string]string{
			EnvURL: "http://kiln-env:1", EnvAccountName: "kilnacct",
			EnvAzureEndpoint: "http://azure-env:2", EnvAzureAccount: "azacct", EnvAzureAccessKey: "YXprZXk=",
		})
		o := &globalOptions{url: "http://flag:3", getenv: env, dataDir: t.TempDir()}
		got, err := o.credentials()
		if err != nil {
			t.Fatal(err)
		}
		want := Credentials{URL: "http://flag:3", AccountName: "kilnacct", AccountKey: "YXprZXk="}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	})

	t.Run("AzureEnvWithoutScheme", func(t *testing.T) {
		t.Parallel()
		env := envMap(map[string]string{EnvAzureEndpoint: "acct.westeurope.batch.azure.com", EnvAzureAccount: "acct", EnvAzureAccessKey: "a2V5"})
		o := &globalOptions{getenv: env, dataDir: t.TempDir()}
		got, err := o.credentials()
		if err != nil {
			t.Fatal(err)
		}
		if got.URL != "https://acct.westeurope.batch.azure.com" {
			t.Errorf("URL = %q", got.URL)
		}
	})

	t.Run("FileFillsMissingFieldsForSameServer", func(t *testing.T) {
		t.Parallel()
		o := &globalOptions{url: "127.0.0.1:8080/", dataDir: withFile(t), getenv: envMap(nil)}
		got, err := o.credentials()
		if err != nil || got != fileCreds {
			t.Errorf("got %+v, %v", got, err)
		}
	})

	t.Run("FileKeyNotUsedForOtherServer", func(t *testing.T) {
		t.Parallel()
		o := &globalOptions{url: "http://elsewhere:9000", dataDir: withFile(t), getenv: envMap(nil)}
		_, err := o.credentials()
		if err == nil || !strings.Contains(err.Error(), "no account name for http://elsewhere:9000") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("MissingKey", func(t *testing.T) {
		t.Parallel()
		o := &globalOptions{url: "http://h:1", accountName: "a", dataDir: t.TempDir(), getenv: envMap(nil)}
		_, err := o.credentials()
		if err == nil || !strings.Contains(err.Error(), "--account-key") {
			t.Errorf("err = %v", err)
		}
	})

	t.Run("NothingFound", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		o := &globalOptions{dataDir: dir, getenv: envMap(nil)}
		_, err := o.credentials()
		if err == nil {
			t.Fatal("no error")
		}
		msg := err.Error()
		for _, want := range []string{"no Kiln server found", "kiln server", "--url", CredentialsPath(dir)} {
			if !strings.Contains(msg, want) {
				t.Errorf("error %q lacks %q", msg, want)
			}
		}
	})

	t.Run("CorruptFile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.WriteFile(CredentialsPath(dir), []byte("{nope"), 0o600); err != nil {
			t.Fatal(err)
		}
		o := &globalOptions{dataDir: dir, getenv: envMap(nil)}
		_, err := o.credentials()
		if err == nil || !strings.Contains(err.Error(), "reading "+CredentialsPath(dir)) {
			t.Errorf("err = %v", err)
		}
	})
}

func TestWriteReadCredentials(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "new", "data")
	c := Credentials{URL: "http://127.0.0.1:8080", AccountName: "kiln", AccountKey: "c2VjcmV0"}
	if err := WriteCredentials(dir, c); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(CredentialsPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %o, want 600", perm)
	}
	b, _ := os.ReadFile(CredentialsPath(dir))
	for _, key := range []string{`"url"`, `"accountName"`, `"accountKey"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("file %s lacks %s", b, key)
		}
	}
	got, err := ReadCredentials(dir)
	if err != nil || got != c {
		t.Errorf("ReadCredentials = %+v, %v", got, err)
	}
	// Overwrite keeps 0600 and leaves no temporary files.
	c.AccountKey = "bmV3"
	if err := WriteCredentials(dir, c); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want 1", len(entries))
	}
	if got, _ := ReadCredentials(dir); got.AccountKey != "bmV3" {
		t.Errorf("after overwrite: %+v", got)
	}
	if _, err := ReadCredentials(t.TempDir()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestDataDir(t *testing.T) {
	t.Parallel()
	if got := defaultDataDir(envMap(map[string]string{"XDG_DATA_HOME": "/xdg", "HOME": "/home/u"})); got != "/xdg/kiln" {
		t.Errorf("with XDG: %q", got)
	}
	if got := defaultDataDir(envMap(map[string]string{"XDG_DATA_HOME": "relative", "HOME": "/home/u"})); got != "/home/u/.local/share/kiln" {
		t.Errorf("relative XDG ignored: %q", got)
	}
	if got := defaultDataDir(envMap(map[string]string{"HOME": "/home/u"})); got != "/home/u/.local/share/kiln" {
		t.Errorf("without XDG: %q", got)
	}
	env := envMap(map[string]string{EnvDataDir: "/env/dir", "HOME": "/home/u"})
	if got := resolveDataDir("/flag", env); got != "/flag" {
		t.Errorf("flag: %q", got)
	}
	if got := resolveDataDir("", env); got != "/env/dir" {
		t.Errorf("env: %q", got)
	}
	if got := resolveDataDir("", envMap(map[string]string{"HOME": "/h"})); got != "/h/.local/share/kiln" {
		t.Errorf("default: %q", got)
	}
	if DefaultDataDir() == "" {
		t.Error("DefaultDataDir is empty")
	}
}

func TestNormalizeURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"http://127.0.0.1:8080/": "http://127.0.0.1:8080",
		"127.0.0.1:8080":         "http://127.0.0.1:8080",
		"localhost:8080":         "http://localhost:8080",
		"[::1]:8080":             "http://[::1]:8080",
		"acct.batch.azure.com":   "https://acct.batch.azure.com",
		"https://kiln.example/ ": "https://kiln.example",
		"HTTP://Mixed.Case:1/x/": "HTTP://Mixed.Case:1/x",
	} {
		if got := normalizeURL(in); got != want {
			t.Errorf("normalizeURL(%q) = %q, want %q", in, got, want)
		}
	}
}
