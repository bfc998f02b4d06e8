package agent

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/kilnbatch/kiln/internal/protocol"
)

// Certificates of the pool (certificateReferences), installed in the node's
// certs directory, which tasks find in AZ_BATCH_CERTIFICATES_DIR:
// sha1-<thumbprint>.cer (the DER or PEM data as added) or .pfx (the PKCS #12
// file as added, with its password in sha1-<thumbprint>.pfx.pw, mode 0600).

var certThumbprint = regexp.MustCompile(`^[0-9a-f]{1,40}$`)

// installCertificates makes the certs directory hold exactly certs.
func (a *agent) installCertificates(certs []protocol.Certificate) error {
	dir := filepath.Join(a.rootDir, dirCerts)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	want := map[string][]byte{}
	for _, c := range certs {
		tp := strings.ToLower(c.Thumbprint)
		if !certThumbprint.MatchString(tp) || strings.ToLower(c.ThumbprintAlgorithm) != "sha1" {
			return fmt.Errorf("certificate %q: invalid thumbprint", c.Thumbprint)
		}
		data, err := base64.StdEncoding.DecodeString(c.Data)
		if err != nil {
			return fmt.Errorf("certificate %s: %w", tp, err)
		}
		name := "sha1-" + tp + ".cer"
		if c.Format != "cer" {
			name = "sha1-" + tp + ".pfx"
			if c.Password != "" {
				want[name+".pw"] = []byte(c.Password)
			}
		}
		want[name] = data
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if _, ok := want[e.Name()]; !ok && strings.HasPrefix(e.Name(), "sha1-") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	for name, data := range want {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".pfx") || strings.HasSuffix(name, ".pw") {
			mode = 0o600 // private keys
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, mode); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(dir, name), mode); err != nil {
			return err
		}
	}
	return nil
}
