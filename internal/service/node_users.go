package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/agent/fileserver"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/protocol"
)

// Node user accounts (ComputeNode_AddUser, UpdateUser, DeleteUser). The
// node's agent makes them: a real account of the node's machine
// (internal/agent/users.go), which needs the agent to run as root.

// userExpiryDefault is Azure's default account lifetime: "If omitted, the
// default is 1 day from the current time."
const userExpiryDefault = 24 * time.Hour

// NodeUserAdd adds a user account to a node.
func (s *Service) NodeUserAdd(ctx context.Context, account, poolID, nodeID string, c *azbatch.CreateNodeUserContent) error {
	if c == nil || c.Name == nil || *c.Name == "" {
		return batch.MissingProperty("name")
	}
	o := protocol.NodeUserOrder{Name: *c.Name, Password: deref(c.Password), SSHPublicKey: deref(c.SSHPublicKey), IsAdmin: deref(c.IsAdmin)}
	o.ExpiryTime = s.now().Add(userExpiryDefault)
	if c.ExpiryTime != nil {
		if !c.ExpiryTime.After(s.now()) {
			return batch.InvalidProperty("expiryTime", c.ExpiryTime.Format(time.RFC3339), "The expiry time must be in the future.")
		}
		o.ExpiryTime = *c.ExpiryTime
	}
	return s.nodeUserCall(ctx, account, poolID, nodeID, http.MethodPost, protocol.PathOpsUsers, o)
}

// NodeUserUpdate replaces a user's password, SSH key and expiry: omitted
// ones are removed (the expiry goes back to the default), as Azure's
// Update User does.
func (s *Service) NodeUserUpdate(ctx context.Context, account, poolID, nodeID, name string, c *azbatch.UpdateNodeUserContent) error {
	o := protocol.NodeUserOrder{Name: name, Replace: true, ExpiryTime: s.now().Add(userExpiryDefault)}
	if c != nil {
		o.Password, o.SSHPublicKey = deref(c.Password), deref(c.SSHPublicKey)
		if c.ExpiryTime != nil {
			o.ExpiryTime = *c.ExpiryTime
		}
	}
	return s.nodeUserCall(ctx, account, poolID, nodeID, http.MethodPut, protocol.PathOpsUsers+"/"+url.PathEscape(name), o)
}

// NodeUserDelete deletes a user account from a node.
func (s *Service) NodeUserDelete(ctx context.Context, account, poolID, nodeID, name string) error {
	return s.nodeUserCall(ctx, account, poolID, nodeID, http.MethodDelete, protocol.PathOpsUsers+"/"+url.PathEscape(name), nil)
}

func (s *Service) nodeUserCall(ctx context.Context, account, poolID, nodeID, method, path string, body any) error {
	s.mu.Lock()
	t, err := s.nodeAgentLocked(account, poolID, nodeID)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return callAgent(ctx, t, method, path, body, nil)
}

// nodeUsersResetLocked has the agent delete every account it made, as a
// reimage or a restart of the node does (best effort: the node may be
// gone).
func (s *Service) nodeUsersResetLocked(n *nodeState) {
	if n.fileURL == "" || !n.registered {
		return
	}
	t := agentTarget{url: n.fileURL, secret: n.secret, n: n}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := callAgent(ctx, t, http.MethodDelete, protocol.PathOpsUsers, nil, nil); err != nil {
			s.log.Debug("remove node users", "node", n.id, "err", err)
		}
	}()
}

// callAgent makes a signed call to a node agent's /ops/ endpoint. An
// error answer of the agent becomes the Azure error it carries.
func callAgent(ctx context.Context, t agentTarget, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(t.url, "/")+path, body)
	if err != nil {
		return err
	}
	date := time.Now().UTC().Format(time.RFC3339)
	req.Header.Set(fileserver.HeaderDate, date)
	req.Header.Set(fileserver.HeaderSignature, fileserver.Sign(t.secret, method, req.URL.EscapedPath(), date))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return batch.Errorf(http.StatusConflict, "NodeNotReady", "The node's agent cannot be reached: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var ae protocol.OpsError
		if json.Unmarshal(data, &ae) == nil && ae.Code != "" {
			return batch.Errorf(resp.StatusCode, ae.Code, "%s", ae.Message)
		}
		return batch.Errorf(http.StatusInternalServerError, "InternalError", "The node's agent answered %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("agent answer: %w", err)
		}
	}
	return nil
}

// newUUID returns a random version 4 UUID.
func newUUID() string {
	h := randomHex(16)
	b := []byte(h)
	b[12] = '4'
	b[16] = "89ab"[int(b[16])%4]
	return string(b[0:8]) + "-" + string(b[8:12]) + "-" + string(b[12:16]) + "-" + string(b[16:20]) + "-" + string(b[20:32])
}
