package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/spf13/cobra"
)

// packageCommand is `kiln application package`.
func (a *applicationOptions) packageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "package",
		Short: "Upload and delete application packages (zip files)",
	}

	var makeDefault bool
	upload := &cobra.Command{
		Use:   "upload NAME VERSION FILE.zip",
		Short: "Upload a zip file as a version of an application",
		Example: "  kiln application package upload blender 4.2 blender-4.2.zip --default\n" +
			"  # then, in a task: \"applicationPackageReferences\": [{\"applicationId\": \"blender\", \"version\": \"4.2\"}]",
		Args: cobra.ExactArgs(3),
	}
	upload.Flags().BoolVar(&makeDefault, "default", false, "also make this version the application's default")
	upload.RunE = a.g.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		appID, version, path := args[0], args[1], args[2]
		f, size, err := openZip(path)
		if err != nil {
			return err
		}
		defer f.Close()
		m, err := a.g.mgmtClient()
		if err != nil {
			return err
		}
		stderr := cmd.ErrOrStderr()
		var sent, done atomic.Int64
		stopBar := startBar(stderr, a.isTerminal != nil && a.isTerminal(stderr), size, 1, &sent, &done)
		body := &countingReader{r: f, report: func(n int64) { sent.Store(n) }}
		pkg, raw, err := m.putPackage(ctx, appID, version, body, size)
		done.Store(1)
		stopBar(err == nil)
		if err != nil {
			return err
		}
		if makeDefault {
			if _, _, _, err := m.putApplication(ctx, appID, applicationUpdate{DefaultVersion: &version}); err != nil {
				return fmt.Errorf("version %s uploaded, but making it the default failed: %w", version, err)
			}
		}
		return a.printPackage(cmd.OutOrStdout(), appID, version, pkg, raw, size, makeDefault)
	})

	var yes bool
	del := &cobra.Command{
		Use:   "delete NAME VERSION",
		Short: "Delete a version of an application",
		Args:  cobra.ExactArgs(2),
	}
	del.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	del.RunE = a.g.run(func(ctx context.Context, cmd *cobra.Command, args []string) error {
		if err := confirm(cmd, yes, fmt.Sprintf("Delete version %s of application %s?", args[1], args[0])); err != nil {
			return err
		}
		m, err := a.g.mgmtClient()
		if err != nil {
			return err
		}
		if err := m.deletePackage(ctx, args[0], args[1]); err != nil {
			return err
		}
		a.g.say(cmd.OutOrStdout(), "Deleted version %s of application %s.", args[1], args[0])
		return nil
	})

	cmd.AddCommand(upload, del)
	return cmd
}

// zipMagic are the first bytes of a zip file: a local file header, or the
// end of central directory record of an empty archive.
var zipMagic = [][]byte{[]byte("PK\x03\x04"), []byte("PK\x05\x06")}

// openZip opens a package file for streaming, after checking that it is a
// regular file that starts like a zip archive.
func openZip(path string) (*os.File, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, fmt.Errorf("%s is not a regular file", path)
	}
	head := make([]byte, 4)
	if _, err := io.ReadFull(f, head); err != nil || !(bytes.Equal(head, zipMagic[0]) || bytes.Equal(head, zipMagic[1])) {
		f.Close()
		return nil, 0, fmt.Errorf("%s is not a zip file: application packages must be zip archives", path)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}
