package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
)

// certSelfSigned returns a new self-signed certificate (DER) and its SHA-1
// thumbprint in hex.
func certSelfSigned(t *testing.T, cn string) ([]byte, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(der)
	return der, hex.EncodeToString(sum[:])
}

func certGet(t *testing.T, s *Server, tp string) azbatch.Certificate {
	t.Helper()
	r, err := s.Client.GetCertificate(ctx(t), "sha1", tp, nil)
	if err != nil {
		t.Fatalf("get certificate %s: %v", tp, err)
	}
	return r.Certificate
}

func certList(t *testing.T, s *Server) []string {
	t.Helper()
	var out []string
	pager := s.Client.NewListCertificatesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range page.Value {
			out = append(out, *c.Thumbprint+":"+string(*c.State))
		}
	}
	return out
}

func TestCertificates(t *testing.T) {
	t.Parallel()
	s := StartServer(t, nil)
	der, cerTP := certSelfSigned(t, "kiln cer")
	pfxData := []byte("not really PKCS#12, kept as given " + time.Now().String())
	_, pfxTP := certSelfSigned(t, "kiln pfx")

	// Add: the thumbprint may have spaces and upper-case digits.
	spaced := strings.ToUpper(cerTP[:10]) + " " + cerTP[10:]
	cer := azbatch.Certificate{Thumbprint: &spaced, ThumbprintAlgorithm: to("sha1"), Format: to(azbatch.CertificateFormatCER),
		Data: to(base64.StdEncoding.EncodeToString(der))}
	if _, err := s.Client.CreateCertificate(ctx(t), cer, nil); err != nil {
		t.Fatal(err)
	}
	pfx := azbatch.Certificate{Thumbprint: &pfxTP, ThumbprintAlgorithm: to("sha1"), Format: to(azbatch.CertificateFormatPFX),
		Data: to(base64.StdEncoding.EncodeToString(pfxData)), Password: to("pfx-secret")}
	if _, err := s.Client.CreateCertificate(ctx(t), pfx, nil); err != nil {
		t.Fatal(err)
	}
	_, err := s.Client.CreateCertificate(ctx(t), cer, nil)
	poolExpectError(t, err, http.StatusConflict, "CertificateExists")
	for name, bad := range map[string]azbatch.Certificate{
		"wrong thumbprint": {Thumbprint: &pfxTP, ThumbprintAlgorithm: to("sha1"), Format: to(azbatch.CertificateFormatCER), Data: cer.Data},
		"cer password":     {Thumbprint: &cerTP, ThumbprintAlgorithm: to("sha1"), Format: to(azbatch.CertificateFormatCER), Data: cer.Data, Password: to("x")},
		"sha256":           {Thumbprint: &cerTP, ThumbprintAlgorithm: to("sha256"), Data: cer.Data},
		"not hex":          {Thumbprint: to("xyz"), ThumbprintAlgorithm: to("sha1"), Data: cer.Data},
	} {
		_, err := s.Client.CreateCertificate(ctx(t), bad, nil)
		if statusOf(err) != http.StatusBadRequest {
			t.Fatalf("%s: %v", name, err)
		}
	}

	// Get and List: active, public data for the cer, never data or password.
	got := certGet(t, s, cerTP)
	if *got.Thumbprint != cerTP || *got.State != azbatch.CertificateStateActive || got.Data != nil || got.Password != nil ||
		opsVal(got.PublicData) != base64.StdEncoding.EncodeToString(der) || got.StateTransitionTime == nil ||
		!strings.HasSuffix(opsVal(got.URL), "/certificates(thumbprintAlgorithm=sha1,thumbprint="+cerTP+")") {
		t.Fatalf("get cer: %+v", got)
	}
	if g := certGet(t, s, strings.ToUpper(pfxTP)); g.Password != nil || g.Data != nil || *g.State != azbatch.CertificateStateActive {
		t.Fatalf("get pfx: %+v", g)
	}
	_, err = s.Client.GetCertificate(ctx(t), "sha1", "00ff", nil)
	poolExpectError(t, err, http.StatusNotFound, "CertificateNotFound")
	if l := certList(t, s); len(l) != 2 {
		t.Fatalf("list: %v", l)
	}

	// A pool cannot reference a missing certificate.
	bad := poolContent("badcert", 1, 1)
	bad.CertificateReferences = []azbatch.CertificateReference{{Thumbprint: to("00ff"), ThumbprintAlgorithm: to("sha1")}}
	_, err = s.Client.CreatePool(ctx(t), bad, nil)
	poolExpectError(t, err, http.StatusConflict, "InvalidCertificateReferences")

	// Nodes of a pool that references them have them in their certs
	// directory, which tasks find in AZ_BATCH_CERTIFICATES_DIR.
	refs := []azbatch.CertificateReference{
		{Thumbprint: &cerTP, ThumbprintAlgorithm: to("sha1")},
		{Thumbprint: &pfxTP, ThumbprintAlgorithm: to("sha1")},
	}
	s.CreatePool(t, "cp", 1, 1, func(c *azbatch.CreatePoolContent) { c.CertificateReferences = refs })
	nodeID := s.poolNodeIDs(t, "cp")[0]
	certsDir := filepath.Join(taskNodeRoot(s, nodeID), "certs")
	certCheckFile(t, filepath.Join(certsDir, "sha1-"+cerTP+".cer"), der, 0o644)
	certCheckFile(t, filepath.Join(certsDir, "sha1-"+pfxTP+".pfx"), pfxData, 0o600)
	certCheckFile(t, filepath.Join(certsDir, "sha1-"+pfxTP+".pfx.pw"), []byte("pfx-secret"), 0o600)
	if n := s.poolNode(t, "cp", nodeID); len(n.CertificateReferences) != 2 {
		t.Fatalf("node certificateReferences: %+v", n.CertificateReferences)
	}
	s.CreateJob(t, "cj", "cp", nil)
	taskAdd(t, s, "cj", taskCmd("ls", `/bin/sh -c 'echo "$AZ_BATCH_CERTIFICATES_DIR"; ls "$AZ_BATCH_CERTIFICATES_DIR"'`))
	taskWaitState(t, s, "cj", "ls", azbatch.TaskStateCompleted, 30*time.Second)
	out := taskMustReadFile(t, s, "cj", "ls", "stdout.txt")
	if !strings.HasPrefix(out, certsDir+"\n") || !strings.Contains(out, "sha1-"+cerTP+".cer") || !strings.Contains(out, "sha1-"+pfxTP+".pfx") {
		t.Fatalf("task sees: %q", out)
	}

	// Delete while a pool uses it: deletefailed, with the pool and node.
	if _, err := s.Client.DeleteCertificate(ctx(t), "sha1", cerTP, nil); err != nil {
		t.Fatal(err)
	}
	got = certGet(t, s, cerTP)
	if *got.State != azbatch.CertificateStateDeleteFailed || opsVal(got.PreviousState) != azbatch.CertificateStateDeleting ||
		got.DeleteCertificateError == nil || opsVal(got.DeleteCertificateError.Code) != "CertificateStateDeleteFailed" {
		t.Fatalf("after delete in use: %+v %+v", got, got.DeleteCertificateError)
	}
	var users []string
	for _, v := range got.DeleteCertificateError.Values {
		users = append(users, *v.Name+"="+*v.Value)
	}
	if fmt.Sprint(users) != fmt.Sprint([]string{"PoolId=cp", "ComputeNodeId=" + nodeID}) {
		t.Fatalf("deleteCertificateError values: %v", users)
	}
	if _, err := s.Client.CancelCertificateDeletion(ctx(t), "sha1", cerTP, nil); err != nil {
		t.Fatal(err)
	}
	if got = certGet(t, s, cerTP); *got.State != azbatch.CertificateStateActive || got.DeleteCertificateError != nil ||
		opsVal(got.PreviousState) != azbatch.CertificateStateDeleteFailed {
		t.Fatalf("after cancel: %+v", got)
	}
	_, err = s.Client.CancelCertificateDeletion(ctx(t), "sha1", cerTP, nil)
	poolExpectError(t, err, http.StatusConflict, "CertificateStateActive")

	// Certificates are kept across a restart.
	if _, err := s.Client.DeleteCertificate(ctx(t), "sha1", cerTP, nil); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	s.Start()
	if got = certGet(t, s, cerTP); *got.State != azbatch.CertificateStateDeleteFailed {
		t.Fatalf("after restart: %s", *got.State)
	}
	if l := certList(t, s); len(l) != 2 {
		t.Fatalf("list after restart: %v", l)
	}

	// A pool's new references reach its nodes when they restart: a reboot
	// (which keeps the node's files) or a reimage.
	s.CreatePool(t, "cp2", 1, 1, nil)
	node2 := s.poolNodeIDs(t, "cp2")[0]
	if _, err := s.Client.UpdatePool(ctx(t), "cp2", azbatch.UpdatePoolContent{CertificateReferences: refs[1:]}, nil); err != nil {
		t.Fatal(err)
	}
	pfxFile := filepath.Join(taskNodeRoot(s, node2), "certs", "sha1-"+pfxTP+".pfx")
	if _, err := os.Stat(pfxFile); err == nil {
		t.Fatal("certificate installed before the node restarted")
	}
	kept := filepath.Join(taskNodeRoot(s, node2), "shared", "kept.txt")
	if err := os.WriteFile(kept, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.RebootNode(ctx(t), "cp2", node2, nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitNodeState(t, "cp2", node2, azbatch.NodeStateIdle)
	certCheckFile(t, pfxFile, pfxData, 0o600)
	if _, err := os.Stat(kept); err != nil {
		t.Fatalf("a reboot lost the node's files: %v", err)
	}
	if n := s.poolNode(t, "cp2", node2); len(n.CertificateReferences) != 1 || *n.CertificateReferences[0].Thumbprint != pfxTP {
		t.Fatalf("node certificateReferences after reboot: %+v", n.CertificateReferences)
	}
	if _, err := s.Client.UpdatePool(ctx(t), "cp2", azbatch.UpdatePoolContent{CertificateReferences: []azbatch.CertificateReference{}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Client.ReimageNode(ctx(t), "cp2", node2, nil); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "certificate removed by a reimage", func() error {
		if _, err := os.Stat(pfxFile); err == nil {
			return fmt.Errorf("%s still there", pfxFile)
		}
		return nil
	})
	s.poolWaitNodeState(t, "cp2", node2, azbatch.NodeStateIdle)
	if _, err := os.Stat(kept); err == nil {
		t.Fatal("a reimage kept the shared directory")
	}
	if _, err := s.Client.UpdatePool(ctx(t), "cp2", azbatch.UpdatePoolContent{CertificateReferences: refs[1:]}, nil); err != nil {
		t.Fatal(err)
	}

	// Once no pool or node uses it, the certificate is deleted.
	if _, err := s.Client.DeletePool(ctx(t), "cp", nil); err != nil {
		t.Fatal(err)
	}
	s.poolWaitGone(t, "cp")
	if _, err := s.Client.DeleteCertificate(ctx(t), "sha1", cerTP, nil); err != nil {
		t.Fatal(err)
	}
	_, err = s.Client.GetCertificate(ctx(t), "sha1", cerTP, nil)
	poolExpectError(t, err, http.StatusNotFound, "CertificateNotFound")
	if l := certList(t, s); len(l) != 1 || !strings.HasPrefix(l[0], pfxTP) {
		t.Fatalf("list after delete: %v", l)
	}
	// The pfx is still used by cp2 and its node.
	if _, err := s.Client.DeleteCertificate(ctx(t), "sha1", pfxTP, nil); err != nil {
		t.Fatal(err)
	}
	if got := certGet(t, s, pfxTP); *got.State != azbatch.CertificateStateDeleteFailed {
		t.Fatalf("pfx in use: %s", *got.State)
	}
}

func certCheckFile(t *testing.T, path string, want []byte, mode os.FileMode) {
	t.Helper()
	var got []byte
	eventually(t, 10*time.Second, path, func() error {
		var err error
		got, err = os.ReadFile(path)
		return err
	})
	fi, err := os.Stat(path)
	if err != nil || !bytes.Equal(got, want) || fi.Mode().Perm() != mode {
		t.Fatalf("%s: %v mode %v, content matches %v", path, err, fi.Mode().Perm(), bytes.Equal(got, want))
	}
}
