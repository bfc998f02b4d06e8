// Package netns makes separate network hosts on one Linux machine for tests:
// each Host is a network namespace joined to the root namespace by a veth
// pair on its own /30 subnet. A process started with Host.Command sees only
// its namespace's interfaces, so it reaches the root namespace (where the
// test's server listens) over the veth link exactly as a machine reaches
// another over a network; Cut takes that link down and Restore brings it
// back. It needs root (CAP_NET_ADMIN) and iproute2's `ip`.
package netns

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
)

// Host is a network namespace with a veth link to the root namespace.
type Host struct {
	// Name is the namespace name (`ip netns exec <Name> ...`).
	Name string
	// IP is the host's address inside its namespace; RootIP is the root
	// namespace's end of the link, where the host reaches servers that
	// listen on it (or on 0.0.0.0).
	IP, RootIP string
	rootLink   string
}

var (
	seq     atomic.Int32
	checkMu sync.Mutex
	checked error
	didChk  bool
)

// Available reports why hosts cannot be made here (nil when they can).
func Available() error {
	checkMu.Lock()
	defer checkMu.Unlock()
	if didChk {
		return checked
	}
	didChk = true
	if _, err := exec.LookPath("ip"); err != nil {
		checked = fmt.Errorf("netns: `ip` not found (apt-get install iproute2): %w", err)
		return checked
	}
	if os.Geteuid() != 0 {
		checked = fmt.Errorf("netns: network namespaces need root (CAP_NET_ADMIN)")
		return checked
	}
	name := fmt.Sprintf("kilnchk%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		checked = fmt.Errorf("netns: ip netns add: %v: %s", err, bytes.TrimSpace(out))
		return checked
	}
	_ = exec.Command("ip", "netns", "del", name).Run()
	return nil
}

// New makes a host and removes it when the test ends. Hosts of one test
// process get distinct subnets in 10.213.0.0/16 (up to 16,000 of them).
func New(t testing.TB) *Host {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatal(err)
	}
	n := int(seq.Add(1))
	// Names are short (interface names have at most 15 bytes) and unique
	// per test process, so parallel test binaries do not collide.
	tag := fmt.Sprintf("%d%c", os.Getpid()%100000, 'a'+rune(n%26))
	if n >= 26 {
		tag = fmt.Sprintf("%d%d", os.Getpid()%100000, n)
	}
	// Subnets are picked from the pid too, so that two test processes
	// running at once do not route the same /30 twice.
	block := (os.Getpid()%64)*256 + n
	third, fourth := (block*4)/256%256, (block*4)%256
	h := &Host{
		Name:     "kiln" + tag,
		RootIP:   fmt.Sprintf("10.213.%d.%d", third, fourth+1),
		IP:       fmt.Sprintf("10.213.%d.%d", third, fourth+2),
		rootLink: "kr" + tag,
	}
	peer := "kp" + tag
	t.Cleanup(func() { h.remove() })
	steps := [][]string{
		{"netns", "add", h.Name},
		{"link", "add", h.rootLink, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", h.Name},
		{"addr", "add", h.RootIP + "/30", "dev", h.rootLink},
		{"link", "set", h.rootLink, "up"},
		{"-n", h.Name, "addr", "add", h.IP + "/30", "dev", peer},
		{"-n", h.Name, "link", "set", peer, "up"},
		{"-n", h.Name, "link", "set", "lo", "up"},
		{"-n", h.Name, "route", "add", "default", "via", h.RootIP},
	}
	for _, s := range steps {
		if err := ip(s...); err != nil {
			t.Fatalf("netns: make host %s: %v", h.Name, err)
		}
	}
	return h
}

// Command is exec.Command run inside the host's namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// Cut takes the host's link down: packets stop in both directions, and
// open connections stall as they do when a cable is pulled.
func (h *Host) Cut() error { return ip("link", "set", h.rootLink, "down") }

// Restore brings the link back up.
func (h *Host) Restore() error { return ip("link", "set", h.rootLink, "up") }

func (h *Host) remove() {
	_ = ip("link", "del", h.rootLink) // removes the peer too
	_ = ip("netns", "del", h.Name)
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %v: %v: %s", args, err, bytes.TrimSpace(out))
	}
	return nil
}
