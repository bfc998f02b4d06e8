// The client commands (pool, node, job, task), shaped like `az batch`, talk
// to a Kiln server through the Azure Batch Go SDK. This file wires them and
// holds what they share: error reporting, flag helpers and output selection.

package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/spf13/cobra"

	"github.com/kilnbatch/kiln/internal/cli/output"
)

// AddClientCommands adds the client command groups (pool, node, job, task)
// and their persistent flags (--url, --account-name, --account-key,
// --data-dir, --output/-o) to root.
//
// The commands return errors from RunE and never exit the process: give root
// SilenceErrors and report with HandleError, which prints SDK errors as
// "ERROR: <code>: <message>" and returns the exit code.
func AddClientCommands(root *cobra.Command) {
	addClientCommands(root, &globalOptions{})
}

func addClientCommands(root *cobra.Command, o *globalOptions) {
	o.addFlags(root)
	root.AddCommand(
		newPoolCommand(o),
		newNodeCommand(o),
		newJobCommand(o),
		newJobScheduleCommand(o),
		newTaskCommand(o),
	)
}

// ExitError makes a command end with a given exit code. With a nil Err
// nothing is printed (the command already explained itself).
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode is the process exit code for an error returned by a command: 0 for
// nil, the code of an *ExitError, else 1.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

// PrintError writes err for people. Azure Batch errors (*azcore.ResponseError)
// print as "ERROR: <code>: <message>" followed by their detail values, one
// "  key: value" per line; other errors as "ERROR: <text>".
func PrintError(w io.Writer, err error) {
	if err == nil {
		return
	}
	var ee *ExitError
	if errors.As(err, &ee) && ee.Err == nil {
		return
	}
	fmt.Fprintln(w, FormatError(err))
}

// HandleError prints err (see PrintError) and returns its exit code.
func HandleError(w io.Writer, err error) int {
	PrintError(w, err)
	return ExitCode(err)
}

// FormatError renders err as PrintError does, without the trailing newline.
func FormatError(err error) string {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return "ERROR: " + err.Error()
	}
	be := batchErrorOf(re)
	var b strings.Builder
	b.WriteString("ERROR: ")
	b.WriteString(be.code)
	b.WriteString(": ")
	b.WriteString(be.message)
	for _, kv := range be.values {
		fmt.Fprintf(&b, "\n  %s: %s", kv[0], kv[1])
	}
	return b.String()
}

type batchError struct {
	code, message string
	values        [][2]string
}

// batchErrorOf reads Azure Batch's error body:
// {"code": "...", "message": {"lang": "en-US", "value": "..."}, "values": [{"key": "...", "value": "..."}]}
// (also wrapped in "odata.error" or "error", with message as a plain string).
func batchErrorOf(re *azcore.ResponseError) batchError {
	be := batchError{code: re.ErrorCode}
	if re.RawResponse != nil {
		if body, err := runtime.Payload(re.RawResponse); err == nil && len(body) > 0 {
			be = parseBatchError(body, be)
		}
	}
	if be.code == "" {
		be.code = fmt.Sprintf("HTTP%d", re.StatusCode)
	}
	if be.message == "" {
		if re.RawResponse != nil && re.RawResponse.Status != "" {
			be.message = re.RawResponse.Status
		} else {
			be.message = fmt.Sprintf("status %d", re.StatusCode)
		}
	}
	return be
}

func parseBatchError(body []byte, be batchError) batchError {
	var raw map[string]json.RawMessage
	if json.Unmarshal(body, &raw) != nil {
		return be
	}
	for _, wrap := range []string{"odata.error", "error"} {
		if inner, ok := raw[wrap]; ok {
			var m map[string]json.RawMessage
			if json.Unmarshal(inner, &m) == nil {
				raw = m
			}
			break
		}
	}
	var code string
	if json.Unmarshal(raw["code"], &code) == nil && code != "" && be.code == "" {
		be.code = code
	}
	if msg, ok := raw["message"]; ok {
		var s string
		var obj struct {
			Value string `json:"value"`
		}
		if json.Unmarshal(msg, &s) == nil {
			be.message = s
		} else if json.Unmarshal(msg, &obj) == nil {
			be.message = obj.Value
		}
	}
	var values []struct {
		Key   string `json:"key"`
		Value string `json:"value"`
	}
	if json.Unmarshal(raw["values"], &values) == nil {
		for _, v := range values {
			be.values = append(be.values, [2]string{v.Key, v.Value})
		}
	}
	be.message = strings.TrimSpace(be.message)
	return be
}

// run wraps a command body: no usage dump on runtime errors, a context that
// is never nil, and a friendlier message when the server cannot be reached.
func (o *globalOptions) run(fn func(ctx context.Context, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cmd.SilenceUsage = true
		if _, err := o.format(); err != nil {
			return err
		}
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		err := fn(ctx, cmd, args)
		if err != nil && o.resolved.URL != "" && isUnreachable(err) {
			return fmt.Errorf("cannot reach Kiln server at %s (is `kiln server` running?): %w", o.resolved.URL, err)
		}
		return err
	}
}

func isUnreachable(err error) bool {
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return true
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return true
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// idFrom returns the ID given by flag name or as the single positional
// argument (az batch takes the flag; `kiln pool show p1` is allowed too).
func idFrom(cmd *cobra.Command, args []string, flag string) (string, error) {
	v, _ := cmd.Flags().GetString(flag)
	switch {
	case v != "" && len(args) == 1 && args[0] != v:
		return "", fmt.Errorf("--%s %q and argument %q disagree", flag, v, args[0])
	case v != "":
		return v, nil
	case len(args) == 1:
		return args[0], nil
	default:
		return "", fmt.Errorf("--%s is required", flag)
	}
}

// requireFlag returns the value of a string flag that must be set.
func requireFlag(cmd *cobra.Command, flag string) (string, error) {
	v, _ := cmd.Flags().GetString(flag)
	if v == "" {
		return "", fmt.Errorf("--%s is required", flag)
	}
	return v, nil
}

// confirm asks a yes/no question on the command's input unless yes is set.
// Without an answer (no terminal, end of input) it refuses.
func confirm(cmd *cobra.Command, yes bool, question string) error {
	if yes {
		return nil
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N]: ", question)
	line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
	ans := strings.ToLower(strings.TrimSpace(line))
	if ans == "y" || ans == "yes" {
		return nil
	}
	if err != nil && ans == "" {
		fmt.Fprintln(cmd.ErrOrStderr())
		return errors.New("not confirmed: pass --yes to skip the question")
	}
	return errors.New("cancelled")
}

// readJSONFile reads path, or standard input for "-".
func readJSONFile(cmd *cobra.Command, path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(cmd.InOrStdin())
	}
	return os.ReadFile(path)
}

var isoDurationRE = regexp.MustCompile(`^P(\d+(\.\d+)?[YMWD])*(T(\d+(\.\d+)?[HMS])+)?$`)
var daysRE = regexp.MustCompile(`^(\d+)d$`)

// isoDuration turns a duration flag into the ISO 8601 form Azure Batch
// expects. It takes ISO 8601 as is ("PT1H30M", "P7D"), Go durations
// ("90m", "1h30m", "2.5s") and whole days ("7d").
func isoDuration(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty duration")
	}
	if up := strings.ToUpper(s); strings.HasPrefix(up, "P") {
		if up == "P" || strings.HasSuffix(up, "T") || !isoDurationRE.MatchString(up) {
			return "", fmt.Errorf("invalid ISO 8601 duration %q", s)
		}
		return up, nil
	}
	if m := daysRE.FindStringSubmatch(s); m != nil {
		return "P" + m[1] + "D", nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return "", fmt.Errorf("invalid duration %q: use a Go duration such as 90m or 1h30m, days such as 7d, or ISO 8601 such as PT1H30M", s)
	}
	if d < 0 {
		return "", fmt.Errorf("invalid duration %q: negative", s)
	}
	return formatISODuration(d), nil
}

// durationText shows an ISO 8601 duration from the server, writing Azure's
// "no limit" value (the largest .NET TimeSpan, P10675199DT2H48M5.4775807S)
// as "unlimited".
func durationText(p *string) string {
	if p == nil {
		return ""
	}
	if strings.HasPrefix(*p, "P10675199D") {
		return "unlimited"
	}
	return *p
}

func formatISODuration(d time.Duration) string {
	if d == 0 {
		return "PT0S"
	}
	var b strings.Builder
	b.WriteString("PT")
	if h := d / time.Hour; h > 0 {
		b.WriteString(strconv.FormatInt(int64(h), 10) + "H")
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		b.WriteString(strconv.FormatInt(int64(m), 10) + "M")
		d -= m * time.Minute
	}
	if d > 0 {
		secs := strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
		b.WriteString(secs + "S")
	}
	return b.String()
}

// parseEnv turns K=V pairs into environment settings, keeping order.
func parseEnv(pairs []string) ([][2]string, error) {
	out := make([][2]string, 0, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid --env %q: want NAME=VALUE", p)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// splitList splits a comma-separated --select value.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// optString returns a pointer to the flag value, or nil when it is empty.
func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// printResult prints v as JSON or, for table output, with table(w).
func (o *globalOptions) printResult(w io.Writer, v any, table func(io.Writer) error) error {
	f, err := o.format()
	if err != nil {
		return err
	}
	if f == output.FormatJSON {
		return output.JSON(w, v)
	}
	return table(w)
}

// say prints an informational message in table format only, so that JSON
// output stays machine-readable.
func (o *globalOptions) say(w io.Writer, format string, args ...any) {
	if f, _ := o.format(); f == output.FormatJSON {
		return
	}
	fmt.Fprintf(w, format+"\n", args...)
}
