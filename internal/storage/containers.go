package storage

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// Container describes a container.
type Container struct {
	Name         string
	LastModified time.Time
	ETag         string // quoted, like Azure's "0x8D..."
}

// timeETag is an Azure-style ETag derived from a modification time, for
// objects whose backend ETag is not meaningful (container markers).
func timeETag(t time.Time) string {
	return fmt.Sprintf("\"0x%X\"", t.UnixNano())
}

// CreateContainer creates an empty container. It fails with
// ErrContainerExists when the container exists.
func (s *Storage) CreateContainer(ctx context.Context, name string) error {
	if err := ValidateContainerName(name); err != nil {
		return err
	}
	key := containerKey(name)
	// IfNotExist makes two concurrent creates end with exactly one winner on
	// backends that support conditional writes; the Exists check first gives
	// the same answer on the others.
	if ok, err := s.bucket.Exists(ctx, key); err != nil {
		return fmt.Errorf("storage: create container %s: %w", name, err)
	} else if ok {
		return fmt.Errorf("%w: %s", ErrContainerExists, name)
	}
	err := s.bucket.WriteAll(ctx, key, nil, &blob.WriterOptions{
		ContentType: "application/octet-stream",
		IfNotExist:  true,
	})
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return fmt.Errorf("%w: %s", ErrContainerExists, name)
	}
	if err != nil {
		return fmt.Errorf("storage: create container %s: %w", name, err)
	}
	return nil
}

// ContainerExists reports whether the container exists.
func (s *Storage) ContainerExists(ctx context.Context, name string) (bool, error) {
	if err := ValidateContainerName(name); err != nil {
		return false, err
	}
	ok, err := s.bucket.Exists(ctx, containerKey(name))
	if err != nil {
		return false, fmt.Errorf("storage: container %s: %w", name, err)
	}
	return ok, nil
}

// requireContainer returns ErrContainerNotFound when the container does not
// exist.
func (s *Storage) requireContainer(ctx context.Context, name string) error {
	ok, err := s.ContainerExists(ctx, name)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: %s", ErrContainerNotFound, name)
	}
	return nil
}

// GetContainer returns the properties of a container.
func (s *Storage) GetContainer(ctx context.Context, name string) (Container, error) {
	if err := ValidateContainerName(name); err != nil {
		return Container{}, err
	}
	a, err := s.bucket.Attributes(ctx, containerKey(name))
	if isNotFound(err) {
		return Container{}, fmt.Errorf("%w: %s", ErrContainerNotFound, name)
	}
	if err != nil {
		return Container{}, fmt.Errorf("storage: container %s: %w", name, err)
	}
	return Container{Name: name, LastModified: a.ModTime, ETag: timeETag(a.ModTime)}, nil
}

// ListContainers returns the containers whose names start with prefix,
// sorted by name.
func (s *Storage) ListContainers(ctx context.Context, prefix string) ([]Container, error) {
	var out []Container
	it := s.bucket.List(&blob.ListOptions{Prefix: containersPrefix + prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("storage: list containers: %w", err)
		}
		name := strings.TrimPrefix(o.Key, containersPrefix)
		if o.IsDir || ValidateContainerName(name) != nil {
			continue // not a marker Kiln wrote
		}
		out = append(out, Container{Name: name, LastModified: o.ModTime, ETag: timeETag(o.ModTime)})
	}
	return out, nil // bucket listings are in key order
}

// DeleteContainer deletes a container and every blob and staged block in
// it. The marker goes last, so a delete that fails half-way leaves a
// container that can be deleted again.
func (s *Storage) DeleteContainer(ctx context.Context, name string) error {
	if err := s.requireContainer(ctx, name); err != nil {
		return err
	}
	for _, prefix := range []string{name + "/", blocksPrefix + name + "/"} {
		if err := s.deletePrefix(ctx, prefix); err != nil {
			return fmt.Errorf("storage: delete container %s: %w", name, err)
		}
	}
	if err := s.bucket.Delete(ctx, containerKey(name)); err != nil && !isNotFound(err) {
		return fmt.Errorf("storage: delete container %s: %w", name, err)
	}
	return nil
}

// deletePrefix deletes every key under prefix. Keys that vanish meanwhile
// are not an error.
func (s *Storage) deletePrefix(ctx context.Context, prefix string) error {
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(ctx)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if o.IsDir {
			continue
		}
		if err := s.bucket.Delete(ctx, o.Key); err != nil && !isNotFound(err) {
			return err
		}
	}
}
