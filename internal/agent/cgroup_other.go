//go:build !linux

package agent

import "log/slog"

// newCgroups: there are no cgroups here; tasks are process groups only.
func newCgroups(key string, log *slog.Logger) *cgroups { return &cgroups{log: log} }

func (c *cgroups) kill(dir string)     {}
func (c *cgroups) remove(dir string)   {}
func (c *cgroups) cleanLeftovers() int { return 0 }

func (c *cgroups) populated(dir string) bool { return false }

func (c *cgroups) limit(dir string, slots int) {}
