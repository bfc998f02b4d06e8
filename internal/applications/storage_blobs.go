package applications

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kilnbatch/kiln/internal/storage"
)

// StorageBlobs adapts Kiln storage (opened with storage.Open: every
// account's) to what the registry needs.
func StorageBlobs(st *storage.Storage) Blobs { return storageBlobs{st} }

type storageBlobs struct{ st *storage.Storage }

func (b storageBlobs) EnsureContainer(ctx context.Context, account, name string) error {
	st, err := b.st.Account(ctx, account)
	if err != nil {
		return err
	}
	if ok, err := st.ContainerExists(ctx, name); err != nil || ok {
		return err
	}
	err = st.CreateContainer(ctx, name)
	if errors.Is(err, storage.ErrContainerExists) {
		return nil
	}
	return err
}

func (b storageBlobs) Put(ctx context.Context, account, container, name string, r io.Reader, contentType string) error {
	st, err := b.st.Account(ctx, account)
	if err != nil {
		return err
	}
	_, err = st.Put(ctx, container, name, r, storage.PutOptions{ContentType: contentType})
	return err
}

func (b storageBlobs) Get(ctx context.Context, account, container, name string) (io.ReadCloser, error) {
	st, err := b.st.Account(ctx, account)
	if err != nil {
		return nil, err
	}
	return st.NewReader(ctx, container, name, 0, -1)
}

func (b storageBlobs) Delete(ctx context.Context, account, container, name string) error {
	st, err := b.st.Account(ctx, account)
	if err != nil {
		return err
	}
	err = st.DeleteBlob(ctx, container, name)
	if errors.Is(err, storage.ErrBlobNotFound) || errors.Is(err, storage.ErrContainerNotFound) {
		return nil
	}
	return err
}

func (b storageBlobs) List(ctx context.Context, account, container, prefix string) ([]string, error) {
	st, err := b.st.Account(ctx, account)
	if err != nil {
		return nil, err
	}
	var names []string
	marker := ""
	for {
		page, next, err := st.ListBlobs(ctx, container, prefix, marker, storage.MaxListResults)
		if errors.Is(err, storage.ErrContainerNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", container, err)
		}
		for _, bi := range page {
			names = append(names, bi.Name)
		}
		if next == "" {
			return names, nil
		}
		marker = next
	}
}
