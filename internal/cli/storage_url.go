package cli

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/spf13/cobra"
)

// signedURL is what `kiln storage url -o json` prints.
type signedURL struct {
	URL         string    `json:"url"`
	Container   string    `json:"container"`
	Blob        string    `json:"blob,omitempty"`
	Permissions string    `json:"permissions"`
	Expiry      time.Time `json:"expiry"`
}

// urlCommand is `kiln storage url`.
func (s *storageOptions) urlCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "url",
		Short: "Print a signed URL (service SAS) for a container or a blob",
		Long: "Print a URL signed with a service SAS, for a container (sr=c) or, with --blob, one blob (sr=b).\n" +
			"Paste it into a task's resourceFiles (storageContainerUrl, httpUrl) or outputFiles (containerUrl).\n" +
			"Permissions are letters of racwdl (a blob takes racwd); the default is r for a blob and rl for\n" +
			"a container. Tasks uploading outputFiles need a container URL with w (for example rwl).",
		Example: "  kiln storage url --container inputs\n" +
			"  kiln storage url --container inputs --blob data/a.csv --expiry 2h\n" +
			"  kiln storage url --container results --permissions rwl --expiry 2030-01-01T00:00:00Z",
		Args: cobra.NoArgs,
	}
	var container, blobName, perms, expiry string
	cmd.Flags().StringVarP(&container, "container", "c", "", "container name (required)")
	cmd.Flags().StringVarP(&blobName, "blob", "b", "", "blob name (default: a URL for the whole container)")
	cmd.Flags().StringVar(&perms, "permissions", "", "SAS permissions, letters of racwdl (default r for a blob, rl for a container)")
	cmd.Flags().StringVar(&expiry, "expiry", "24h", "when the URL expires: a duration from now (24h, 90m, 7d) or an RFC 3339 time")
	cmd.RunE = s.g.run(func(ctx context.Context, cmd *cobra.Command, _ []string) error {
		if _, err := requireFlag(cmd, "container"); err != nil {
			return err
		}
		exp, err := parseExpiry(expiry, time.Now())
		if err != nil {
			return err
		}
		t, err := s.target()
		if err != nil {
			return err
		}
		u, err := signURL(t, container, blobName, perms, exp)
		if err != nil {
			return err
		}
		return s.g.printResult(cmd.OutOrStdout(), u, func(w io.Writer) error {
			_, err := fmt.Fprintln(w, u.URL)
			return err
		})
	})
	return cmd
}

// signURL builds the service SAS URL of a container (blobName empty) or a
// blob.
func signURL(t storageTarget, container, blobName, perms string, expiry time.Time) (signedURL, error) {
	p, err := sasPermissions(perms, blobName != "")
	if err != nil {
		return signedURL{}, err
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    expiry.UTC(),
		Permissions:   p,
		ContainerName: container,
		BlobName:      blobName,
	}.SignWithSharedKey(t.cred)
	if err != nil {
		return signedURL{}, fmt.Errorf("sign URL: %w", err)
	}
	u := t.baseURL + "/" + url.PathEscape(container)
	if blobName != "" {
		u += "/" + escapeBlobName(blobName)
	}
	return signedURL{
		URL:         u + "?" + qp.Encode(),
		Container:   container,
		Blob:        blobName,
		Permissions: p,
		Expiry:      expiry.UTC(),
	}, nil
}

// escapeBlobName escapes each /-separated segment of a blob name for a URL
// path, keeping the slashes.
func escapeBlobName(name string) string {
	segs := strings.Split(name, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

// sasPermissions validates a --permissions value and returns it in the
// canonical order. Empty means read (and list, for a container).
func sasPermissions(s string, forBlob bool) (string, error) {
	allowed := "racwdl"
	if forBlob {
		allowed = "racwd"
	}
	if s == "" {
		if forBlob {
			return "r", nil
		}
		return "rl", nil
	}
	var c sas.ContainerPermissions
	var b sas.BlobPermissions
	for _, r := range s {
		if !strings.ContainsRune(allowed, r) {
			what := "a container"
			if forBlob {
				what = "a blob"
			}
			return "", fmt.Errorf("invalid --permissions %q: %s takes letters of %s", s, what, allowed)
		}
		switch r {
		case 'r':
			c.Read, b.Read = true, true
		case 'a':
			c.Add, b.Add = true, true
		case 'c':
			c.Create, b.Create = true, true
		case 'w':
			c.Write, b.Write = true, true
		case 'd':
			c.Delete, b.Delete = true, true
		case 'l':
			c.List = true
		}
	}
	if forBlob {
		return b.String(), nil
	}
	return c.String(), nil
}

// parseExpiry reads --expiry: a duration from now (Go syntax such as 90m or
// 24h, or whole days such as 7d) or an RFC 3339 time. It must be in the
// future.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	var t time.Time
	if m := daysRE.FindStringSubmatch(s); m != nil {
		var days int
		fmt.Sscan(m[1], &days)
		t = now.AddDate(0, 0, days)
	} else if d, err := time.ParseDuration(s); err == nil {
		t = now.Add(d)
	} else if at, err := time.Parse(time.RFC3339, s); err == nil {
		t = at
	} else {
		return time.Time{}, fmt.Errorf("invalid --expiry %q: use a duration such as 24h, 90m or 7d, or an RFC 3339 time such as 2030-01-01T00:00:00Z", s)
	}
	if !t.After(now) {
		return time.Time{}, fmt.Errorf("invalid --expiry %q: it is not in the future", s)
	}
	return t.Truncate(time.Second), nil
}
