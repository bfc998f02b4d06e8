package service

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/batch/azbatch"
	"github.com/kilnbatch/kiln/internal/batch"
	"github.com/kilnbatch/kiln/internal/provider"
)

// Node providers per pool. The server has a default provider (Config.Provider,
// `kiln server --provider`) and may register more (Config.Providers; the
// server always adds "agents", bring-your-own nodes). A pool picks one with
// the metadata item kiln.provider when it is created; without it the pool
// uses the default. The choice is kept in the pool's record (poolKiln) and
// never changes afterwards: editing the metadata later does not move a pool
// to another provider.

// MetadataProvider is the pool metadata item that names the pool's provider.
const MetadataProvider = "kiln.provider"

// providerAgents is the name of the bring-your-own-nodes provider
// (internal/provider/agents): its pools get nodes only from agents that
// join with the pool's join token (join.go).
const providerAgents = "agents"

// poolKiln holds what Kiln keeps of a pool beyond Azure's document. It is
// stored in the pool record under "kiln" (Azure's document has no such
// property, so decoding the record ignores it) and never shown by the API.
type poolKiln struct {
	// Provider names the pool's node provider; empty: the default.
	Provider string `json:"provider,omitempty"`
	// JoinToken is the pool's current join token (agents provider); empty
	// until first asked for.
	JoinToken string `json:"joinToken,omitempty"`
}

// withKiln adds the Kiln-only fields to a pool document for its record.
func (k poolKiln) withKiln(doc []byte) ([]byte, error) {
	if k == (poolKiln{}) {
		return doc, nil
	}
	b, err := json.Marshal(k)
	if err != nil {
		return nil, err
	}
	doc = bytes.TrimRight(doc, " \n\t")
	if len(doc) < 2 || doc[len(doc)-1] != '}' {
		return doc, nil
	}
	out := make([]byte, 0, len(doc)+len(b)+10)
	out = append(out, doc[:len(doc)-1]...)
	if len(bytes.TrimSpace(doc[1:len(doc)-1])) > 0 {
		out = append(out, ',')
	}
	out = append(out, `"kiln":`...)
	out = append(out, b...)
	return append(out, '}'), nil
}

// loadPoolKiln reads the Kiln-only fields of a pool record.
func loadPoolKiln(doc []byte) poolKiln {
	var r struct {
		Kiln poolKiln `json:"kiln"`
	}
	_ = json.Unmarshal(doc, &r)
	return r.Kiln
}

// providerList is the default provider followed by the registered ones.
func (s *Service) providerList() []provider.Provider {
	out := make([]provider.Provider, 0, 1+len(s.cfg.Providers))
	if s.cfg.Provider != nil {
		out = append(out, s.cfg.Provider)
	}
	for _, p := range s.cfg.Providers {
		if p != nil {
			out = append(out, p)
		}
	}
	return out
}

// providerNamed returns the provider of that name (case-insensitive).
func (s *Service) providerNamed(name string) (provider.Provider, bool) {
	for _, p := range s.providerList() {
		if strings.EqualFold(p.Name(), name) {
			return p, true
		}
	}
	return nil, false
}

// ProviderNames lists the providers pools may name in kiln.provider, the
// default first.
func (s *Service) ProviderNames() []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range s.providerList() {
		n := strings.ToLower(p.Name())
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	if len(out) > 1 {
		sort.Strings(out[1:])
	}
	return out
}

// metadataValue returns the value of a metadata item ("" when absent).
func metadataValue(md []azbatch.MetadataItem, name string) (string, bool) {
	for _, m := range md {
		if deref(m.Name) == name {
			return deref(m.Value), true
		}
	}
	return "", false
}

// validatePoolProvider checks the kiln.provider metadata of a pool to
// create: it must name a provider this server has.
func (s *Service) validatePoolProvider(md []azbatch.MetadataItem) error {
	v, ok := metadataValue(md, MetadataProvider)
	if !ok {
		return nil
	}
	if _, found := s.providerNamed(strings.TrimSpace(v)); !found {
		return batch.InvalidProperty("metadata", MetadataProvider+"="+v,
			"The node provider "+MetadataProvider+" must be one of this server's providers: "+strings.Join(s.ProviderNames(), ", ")+".")
	}
	return nil
}

// providerName is the name of the pool's provider (lower case): the one its
// record keeps, else its kiln.provider metadata (auto pools), else the
// default.
func (s *Service) providerNameLocked(p *poolState) string {
	if p.kiln.Provider != "" {
		return strings.ToLower(p.kiln.Provider)
	}
	if v, ok := metadataValue(p.doc.Metadata, MetadataProvider); ok {
		if prov, found := s.providerNamed(strings.TrimSpace(v)); found {
			p.kiln.Provider = strings.ToLower(prov.Name()) // kept: the choice never changes
			return p.kiln.Provider
		}
	}
	if s.cfg.Provider != nil {
		return strings.ToLower(s.cfg.Provider.Name())
	}
	return ""
}

// poolProviderLocked is the provider that starts and stops the pool's nodes.
func (s *Service) poolProviderLocked(p *poolState) provider.Provider {
	if prov, ok := s.providerNamed(s.providerNameLocked(p)); ok {
		return prov
	}
	return s.cfg.Provider
}

// joinsAgents reports whether the pool's nodes are agents that join it
// (agents provider): the service never creates nodes for it.
func (s *Service) joinsAgentsLocked(p *poolState) bool {
	return s.providerNameLocked(p) == providerAgents
}

// setPoolProviderLocked records the provider a new pool's metadata names.
func (s *Service) setPoolProviderLocked(p *poolState) {
	if v, ok := metadataValue(p.doc.Metadata, MetadataProvider); ok {
		if prov, found := s.providerNamed(strings.TrimSpace(v)); found {
			p.kiln.Provider = strings.ToLower(prov.Name())
		}
	}
}

// specProvider is the provider of the pool a node spec belongs to; it takes
// the lock, so call it without.
func (s *Service) specProvider(spec provider.NodeSpec) provider.Provider {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.pools[key(spec.Account, spec.PoolID)]; ok {
		return s.poolProviderLocked(p)
	}
	if n, ok := s.nodes[spec.NodeID]; ok {
		return s.poolProviderLocked(n.pool)
	}
	return s.cfg.Provider
}

// startNode asks the node's provider to start it (without the lock).
func (s *Service) startNodeSpec(ctx context.Context, spec provider.NodeSpec) error {
	return s.specProvider(spec).Start(ctx, spec)
}

// providerImages are the images of every provider, each node agent SKU once.
func (s *Service) providerImages() []provider.Image {
	var out []provider.Image
	seen := map[string]bool{}
	for _, p := range s.providerList() {
		for _, im := range p.Images() {
			if !seen[im.NodeAgentSKUID] {
				seen[im.NodeAgentSKUID] = true
				out = append(out, im)
			}
		}
	}
	return out
}
